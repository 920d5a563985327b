"""The timeline store against DynamoDB as moto implements it in-process (no server): whatever the order and the
repeats of a message's callbacks, the stored item ends the same, and the current status follows the precedence rule
(``nxcloud_wa.statuses``): ``failed`` and ``deleted`` over ``accepted``, ``sent`` and ``delivered``, never over
``read``. Reads of send records retry what DynamoDB leaves unprocessed a bounded number of times."""

from __future__ import annotations

import itertools
import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws

from idempotency import Claim, IdempotencyStore
from idempotency_record import StoredUnknown, stored_data
from nxcloud_wa.callbacks import StatusCallback, parse_callback
from nxcloud_wa.dynamo import BACKOFF_SECONDS, READ_ATTEMPTS
from nxcloud_wa.error_codes import UNKNOWN_OUTCOME
from nxcloud_wa.failures import failure
from nxcloud_wa.messages_table import SendRecord, SkipRecord
from nxcloud_wa.statuses import STATUS_RANK, current_status
from nxcloud_wa.timeline import SendRecords, Timeline
from outcomes import Sent

TABLE = "messages"
IDEMPOTENCY = "idempotency"
STATUSES = sorted(set(STATUS_RANK) - {"accepted"})


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for name in (TABLE, IDEMPOTENCY):  # as template.yaml declares them: key ``id``, no index
            client.create_table(
                TableName=name,
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield client


def tracked(dynamodb: Any) -> Timeline:
    """The query API's timeline: it finds a key's message through the key's idempotency record."""
    return Timeline(dynamodb, TABLE, retention_days=30, idempotency_table=IDEMPOTENCY)


def settle_sent(dynamodb: Any, record: SendRecord, expiry_seconds: int = 86_400, clock: float = 0.0) -> Claim:
    """What the sender's settlement writes for a message sent now: the key's idempotency record, stored as sent, and
    the send's record in the messages table, in one request (``idempotency.IdempotencyStore.settle``)."""
    store = IdempotencyStore(
        dynamodb,
        IDEMPOTENCY,
        expiry_seconds=expiry_seconds,
        take_over_interrupted=False,
        clock=(lambda: clock) if clock else time.time,
    )
    claim = Claim.of(record.idempotency_key, {"to": record.recipient})
    sent = Sent(record.message_id, "trace-1", record.accepted_at)
    expiration = tracked(dynamodb).expiration()
    assert store.settle([(claim, stored_data(sent))], [], {TABLE: [record.item(expiration)]}) == set()
    return claim


def callback(message_id: str, status: str, second: int, **extra: Any) -> StatusCallback:
    return StatusCallback.model_validate(
        {
            "id": message_id,
            "status": status,
            "timestamp": str(1_800_000_000 + second),
            "recipient_id": "8613800000000",
            **extra,
        }
    )


def stored(dynamodb: Any, message_id: str) -> dict[str, Any]:
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": f"status#{message_id}"}}, ConsistentRead=True)["Item"]
    return {k: v for k, v in item.items() if k != "expiration"}


@settings(max_examples=25, deadline=None)
@given(
    events=st.lists(st.tuples(st.sampled_from(STATUSES), st.integers(0, 50)), min_size=1, max_size=6),
    seed=st.integers(0, 10_000),
)
def test_any_order_and_any_repeats_store_the_same_item(dynamodb: Any, events: list[tuple[str, int]], seed: int) -> None:
    timeline = Timeline(dynamodb, TABLE, retention_days=30, clock=lambda: 1_800_000_000.0)
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    results = []
    for order in (events, shuffled, [*shuffled, *events]):
        message_id = uuid.uuid4().hex  # the table outlives examples: each run its own message
        changed = [timeline.record_status(callback(message_id, status, second)) for status, second in order]
        results.append({k: v for k, v in stored(dynamodb, message_id).items() if k != "id"})
        running = itertools.accumulate((s for s, _ in order), lambda a, b: max(a, b, key=STATUS_RANK.__getitem__))
        assert sum(changed) == len(set(running))  # True exactly when the current status moved up
    assert results[0] == results[1] == results[2]
    expected_status = current_status(status for status, _ in events)
    assert results[0]["status"] == {"S": expected_status}
    for status in {s for s, _ in events}:
        earliest = min(second for s, second in events if s == status)
        assert results[0][f"at_{status}"] == {"S": callback("x", status, earliest).at}


def test_the_send_record_is_found_by_message_id_and_by_idempotency_key(dynamodb: Any) -> None:
    timeline = tracked(dynamodb)
    record = SendRecord("mid-1", "key-1", "order_update", "en_US", "8618512348399", 7, "8613800000000", "2026-01-01")
    settle_sent(dynamodb, record)

    assert timeline.find("mid-1") == timeline.find("key-1")
    found = timeline.find("mid-1")
    assert found is not None
    assert (found["status"], found["matched"], found["to"]) == ("accepted", True, "+86*******0000")
    assert timeline.send_records(["mid-1", "nope", ""]) == SendRecords({"mid-1": record}, frozenset())
    assert timeline.find("unknown") is None


def test_a_key_is_found_through_its_idempotency_record_not_through_an_index(dynamodb: Any) -> None:
    """The key's message id comes from the key's idempotency record: a send record whose key has no record is found
    by its message id only (the messages table has no index to find it by)."""
    timeline = tracked(dynamodb)
    record = SendRecord("mid-3", "key-3", "order_update", "en_US", "8618512348399", 7, "8613800000000", "2026-01-01")
    dynamodb.put_item(TableName=TABLE, Item=record.item(timeline.expiration()))

    assert timeline.find("key-3") is None
    assert timeline.find("mid-3") is not None


def test_a_key_whose_idempotency_record_is_gone_is_found_by_its_message_id_only(dynamodb: Any) -> None:
    """The one answer that changed with the index's removal: the record lives IDEMPOTENCY_EXPIRY_SECONDS after the
    send (until DynamoDB's TTL deletes it), the messages MESSAGE_RETENTION_DAYS. While it is there, even past its
    expiry, the key finds the message; once deleted, only the message id does (docs/lifecycle.md)."""
    timeline = tracked(dynamodb)
    record = SendRecord("mid-4", "key-4", "order_update", "en_US", "8618512348399", 7, "8613800000000", "2026-01-01")
    claim = settle_sent(dynamodb, record, expiry_seconds=3600, clock=1_000_000_000.0)  # expired long ago

    assert timeline.find("key-4") == timeline.find("mid-4") is not None  # not deleted yet: still found
    dynamodb.delete_item(TableName=IDEMPOTENCY, Key={"id": {"S": claim.record_id}})  # what the TTL does
    assert timeline.find("key-4") is None
    assert timeline.find("mid-4") is not None


def test_a_key_reused_after_its_record_expired_finds_its_latest_send(dynamodb: Any) -> None:
    timeline = tracked(dynamodb)
    first = SendRecord("mid-5a", "key-5", "order_update", "en_US", "8618512348399", 7, "8613800000000", "2026-01-01")
    second = SendRecord("mid-5b", "key-5", "order_update", "en_US", "8618512348399", 7, "8613800000000", "2026-01-03")
    settle_sent(dynamodb, first, expiry_seconds=3600, clock=1_000_000_000.0)
    settle_sent(dynamodb, second)

    found = timeline.find("key-5")

    assert found is not None and found["message_id"] == "mid-5b"


@pytest.mark.parametrize("state", ["in_progress", "unknown_outcome"])
def test_a_key_whose_record_names_no_message_is_not_found(dynamodb: Any, state: str) -> None:
    """A claim not settled yet, or an unknown outcome, has no message id (and the sender wrote no send record)."""
    timeline = tracked(dynamodb)
    store = IdempotencyStore(dynamodb, IDEMPOTENCY, expiry_seconds=86_400, take_over_interrupted=False)
    claim = Claim.of(f"key-6-{state}", {"to": "8613800000000"})
    store.claim([claim], in_progress_until_ms=int(time.time() * 1000) + 60_000)
    if state == "unknown_outcome":
        unknown = StoredUnknown(failure(UNKNOWN_OUTCOME, "read_timeout", "no answer"), dead_lettered=True)
        assert store.settle([(claim, stored_data(unknown))], []) == set()

    assert timeline.find(f"key-6-{state}") is None


def skip_record(key: str, source: str = "Stop promotions") -> SkipRecord:
    return SkipRecord(
        key, "weekend_offer", "en_US", "8618512348399", 7, "8613800000301", "2026-01-01T00:00:00.000+00:00",
        "suppressed", "opted_out", "marketing", source,
    )  # fmt: skip


def test_a_skipped_message_is_found_by_its_idempotency_key_and_says_why(dynamodb: Any) -> None:
    timeline = tracked(dynamodb)
    dynamodb.put_item(TableName=TABLE, Item=skip_record("promo-9", "api 8613800000301").item(timeline.expiration()))

    found = timeline.find("promo-9")

    assert found is not None and found == timeline.find("skip#promo-9")
    assert (found["message_id"], found["status"], found["to"]) == ("skip#promo-9", "skipped", "+86*******0301")
    assert found["timeline"] == [{"status": "skipped", "at": "2026-01-01T00:00:00.000+00:00"}]
    assert found["skipped"] == {
        "reason": "suppressed",
        "suppression_reason": "opted_out",
        "scope": "marketing",
        "source": "api +86*******0301",  # a number in the source is masked, as everywhere in the answer
    }


def test_a_capped_message_s_record_holds_the_cap_instead_of_an_entry(dynamodb: Any) -> None:
    timeline = tracked(dynamodb)
    capped = SkipRecord(
        "promo-10", "weekend_offer", "en_US", "8618512348399", 7, "8613800000301", "2026-01-01T00:00:00.000+00:00",
        "frequency_cap", cap="1/24h",
    )  # fmt: skip
    item = capped.item(timeline.expiration())
    dynamodb.put_item(TableName=TABLE, Item=item)

    found = timeline.find("promo-10")

    assert item["cap"] == {"S": "1/24h"} and not {"suppression_reason", "scope", "source"} & set(item)
    assert found is not None and found["skipped"] == {"reason": "frequency_cap", "cap": "1/24h"}


@pytest.mark.parametrize("skipped_first", [True, False])
def test_a_key_both_skipped_and_sent_is_answered_with_its_send(dynamodb: Any, skipped_first: bool) -> None:
    """Skipped, then sent after the recipient opted back in; or sent, then skipped on a later delivery of the key
    (screened before the claim, so its record still says sent): both answer the send, as with the index."""
    timeline = tracked(dynamodb)
    key = f"both-{skipped_first}"
    record = SendRecord(
        f"mid-9-{skipped_first}", key, "weekend_offer", "en_US", "8618512348399", 7, "8613800000301", "2026-01-02"
    )
    skip = skip_record(key).item(timeline.expiration())
    if skipped_first:
        dynamodb.put_item(TableName=TABLE, Item=skip)
    settle_sent(dynamodb, record)
    if not skipped_first:
        dynamodb.put_item(TableName=TABLE, Item=skip)

    found = timeline.find(key)

    assert found is not None and (found["message_id"], found["status"]) == (record.message_id, "accepted")


def test_a_click_linked_to_a_message_is_kept_once(dynamodb: Any) -> None:
    timeline = Timeline(dynamodb, TABLE, retention_days=30)
    body = parse_callback(
        '{"messages": [{"from": "8613800000000", "id": "evt-9", "timestamp": "1800000000", "type": "button",'
        ' "button": {"payload": "p", "text": "t"}, "context": {"from": "8618512348399", "id": "mid-2"},'
        ' "wa_ext": "{\\"templateId\\": 5, \\"templateName\\": \\"n\\", \\"components\\": []}"}]}'
    )
    [message] = body.messages

    assert timeline.record_click(message) is True
    assert timeline.record_click(message) is False
    item = stored(dynamodb, "mid-2")
    [button] = item["buttons"]["L"]
    assert button["M"]["template_id"] == {"S": "5"}
    assert item["click_ids"] == {"SS": ["evt-9"]}


UNDELIVERABLE = [{"code": 131026, "title": "Message undeliverable"}]


def replay(dynamodb: Any, order: list[str]) -> tuple[str, list[bool], dict[str, Any]]:
    """Store a new message's callbacks in this order (one second apart, failed with errors); return its id, which
    callbacks changed the current status, and what the query API shows."""
    timeline = Timeline(dynamodb, TABLE, retention_days=30)
    message_id = uuid.uuid4().hex
    changed = [
        timeline.record_status(
            callback(message_id, status, second, **({"errors": UNDELIVERABLE} if status == "failed" else {}))
        )
        for second, status in enumerate(order)
    ]
    found = timeline.find(message_id)
    assert found is not None
    return message_id, changed, found


def test_a_failure_after_read_is_kept_but_read_stays_current(dynamodb: Any) -> None:
    _, changed, found = replay(dynamodb, ["delivered", "read", "failed"])

    assert found["status"] == "read"
    assert changed == [True, True, False]  # no change of the current status: the publisher has nothing to publish
    assert [entry["status"] for entry in found["timeline"]] == ["delivered", "read", "failed"]
    assert found["errors"] == UNDELIVERABLE


def test_a_read_after_a_failure_becomes_current(dynamodb: Any) -> None:
    _, changed, found = replay(dynamodb, ["failed", "read"])

    assert (found["status"], changed) == ("read", [True, True])
    assert found["errors"] == UNDELIVERABLE


def test_a_failure_after_delivered_becomes_current(dynamodb: Any) -> None:
    _, changed, found = replay(dynamodb, ["sent", "delivered", "failed"])

    assert (found["status"], changed) == ("failed", [True, True, True])


def test_a_deletion_after_read_is_kept_but_read_stays_current(dynamodb: Any) -> None:
    _, changed, found = replay(dynamodb, ["read", "deleted"])

    assert (found["status"], changed) == ("read", [True, False])
    assert [entry["status"] for entry in found["timeline"]] == ["read", "deleted"]


def test_a_deletion_outranks_a_failure(dynamodb: Any) -> None:
    _, changed, found = replay(dynamodb, ["failed", "deleted", "failed"])

    assert (found["status"], changed) == ("deleted", [True, True, False])


def test_an_item_stored_under_the_earlier_ranking_is_judged_by_this_one(dynamodb: Any) -> None:
    """Items written before the fix carry ``status_rank`` with ``read`` ranked 3, below both failures: the condition
    reads the stored status, not that number."""
    timeline = Timeline(dynamodb, TABLE, retention_days=30)
    item = {"id": {"S": "status#old-1"}, "kind": {"S": "status"}, "status": {"S": "read"}, "status_rank": {"N": "3"}}
    dynamodb.put_item(TableName=TABLE, Item=item | {"at_read": {"S": "2027-01-15T08:00:00.000+00:00"}})

    assert timeline.record_status(callback("old-1", "deleted", 10)) is False
    assert timeline.record_status(callback("old-1", "failed", 11, errors=UNDELIVERABLE)) is False
    found = timeline.find("old-1")
    assert found is not None
    assert (found["status"], found["errors"]) == ("read", UNDELIVERABLE)


class Unprocessing:
    """A DynamoDB client whose ``BatchGetItem`` leaves every key unprocessed (throttled), or, after ``answer_after``
    calls, finds every key."""

    def __init__(self, *, answer_after: int | None = None) -> None:
        self.answer_after = answer_after
        self.calls: list[list[str]] = []

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:  # boto3's name
        keys = RequestItems[TABLE]["Keys"]
        self.calls.append([key["id"]["S"] for key in keys])
        if self.answer_after is not None and len(self.calls) > self.answer_after:
            items = [{"id": key["id"], "recipient": {"S": "8613800000000"}} for key in keys]
            return {"Responses": {TABLE: items}, "UnprocessedKeys": {}}
        return {"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": keys}}}


def test_unprocessed_keys_are_asked_again_a_few_times_with_backoff_then_reported_unread() -> None:
    client, slept = Unprocessing(), []
    timeline = Timeline(client, TABLE, retention_days=30, sleep=slept.append, jitter=lambda: 1.0)

    records = timeline.send_records(["m-1", "m-2"])

    assert records == SendRecords({}, frozenset({"m-1", "m-2"}))
    assert len(client.calls) == READ_ATTEMPTS
    assert slept == [BACKOFF_SECONDS * 2**n for n in range(READ_ATTEMPTS - 1)]  # exponential, at most


def test_a_retry_reads_what_the_first_call_left_unprocessed() -> None:
    client, slept = Unprocessing(answer_after=1), []
    timeline = Timeline(client, TABLE, retention_days=30, sleep=slept.append, jitter=lambda: 0.25)

    records = timeline.send_records(["m-1"])

    assert set(records.found) == {"m-1"} and not records.unread
    assert client.calls == [["m-1"], ["m-1"]]
    assert slept == [0.25 * BACKOFF_SECONDS]  # the jitter scales the wait


def test_a_read_with_nothing_unprocessed_does_not_wait() -> None:
    client, slept = Unprocessing(answer_after=0), []
    timeline = Timeline(client, TABLE, retention_days=30, sleep=slept.append)

    assert set(timeline.send_records([f"m-{n}" for n in range(150)]).found) == {f"m-{n}" for n in range(150)}
    assert [len(call) for call in client.calls] == [100, 50]  # BatchGetItem's limit
    assert slept == []


def test_a_status_move_says_which_status_it_replaced(dynamodb: Any) -> None:
    timeline = Timeline(dynamodb, TABLE, retention_days=30, clock=lambda: 1_800_000_000.0)
    moves = [
        timeline.record_status_move(callback("mv-1", status, second))
        for status, second in (("sent", 1), ("read", 3), ("delivered", 2), ("read", 3))
    ]
    assert [m.previous if m is not None else "unchanged" for m in moves] == [None, "sent", "unchanged", "unchanged"]
