"""The soak's account of its 131049 retries (tools/soak/retries.py): a retry the send queue's redrive policy moved to
the dead-letter queue (after kills) has no send record, no skip record and no settled idempotency record; it ended
there and is not lost. A CI soak once reported such a retry as lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from soak.ledger import Tracker
from soak.retries import tally

from nxcloud_wa.retries import RetryMarker, envelope

MESSAGES, IDEMPOTENCY = "messages", "idempotency"


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        import boto3

        client = boto3.client("dynamodb", region_name="us-east-1")
        for table in (MESSAGES, IDEMPOTENCY):
            client.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        # the original's send record, and its status: failed with 131049, a first retry scheduled
        client.put_item(
            TableName=MESSAGES, Item={"id": {"S": "m-1"}, "kind": {"S": "send"}, "idempotency_key": {"S": "k1"}}
        )
        client.put_item(
            TableName=MESSAGES,
            Item={
                "id": {"S": "status#m-1"},
                "status": {"S": "failed"},
                "errors": {"L": [{"M": {"code": {"N": "131049"}}}]},
                "retry_attempt": {"N": "1"},
            },
        )
        yield client


def test_a_retry_found_in_the_dead_letter_queue_ended_there(dynamodb: Any) -> None:
    tracker = Tracker([])
    tracker.dead_letter(envelope(RetryMarker("m-1", "m-1", 1), {"to": "+8613800000000"}), {}, 0.0)
    tracker.dead_letter('{"to": "+8613800000001"}', {}, 0.0)  # not a retry: no marker

    counted = tally(dynamodb, MESSAGES, IDEMPOTENCY, frozenset(tracker.dead_retries))

    assert tracker.dead_retries == {("m-1", 1)}
    assert (counted.scheduled, counted.sent, counted.ended, counted.lost) == (1, 0, 1, 0)


def test_a_retry_neither_sent_skipped_nor_dead_lettered_is_lost(dynamodb: Any) -> None:
    counted = tally(dynamodb, MESSAGES, IDEMPOTENCY, frozenset({("m-2", 1)}))

    assert (counted.scheduled, counted.ended, counted.lost) == (1, 0, 1)
