"""Fixtures the unit tests share (the servers' fixtures are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts


@pytest.fixture
def dynamodb(request: pytest.FixtureRequest) -> Iterator[Any]:
    """In-process DynamoDB (moto, no server) with one on-demand table keyed by ``id``, named by the test module's
    ``TABLE``: the shape of the idempotency and rate-limit tables. Yields the client. moto as the local stack has it
    (:mod:`local_stack.moto_fixes`)."""
    refuse_duplicate_partiql_inserts()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=request.module.TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
