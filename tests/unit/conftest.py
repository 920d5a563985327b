"""Fixtures the unit tests share (the servers' fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts


@pytest.fixture(autouse=True, scope="session")
def moto_as_the_local_stack_has_it() -> None:
    """Every unit test's in-process moto (this module's ``dynamodb``, the delivery tests' own worlds) is moto as the
    local stack has it (:mod:`local_stack.moto_fixes`): an ``INSERT`` on an existing key refused, as DynamoDB does."""
    refuse_duplicate_partiql_inserts()


@pytest.fixture
def dynamodb(request: pytest.FixtureRequest) -> Iterator[Any]:
    """In-process DynamoDB (moto, no server) with one on-demand table keyed by ``id``, named by the test module's
    ``TABLE``: the shape of the idempotency and rate-limit tables. Yields the client."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=request.module.TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
