"""A campaign's rules (nxcloud_wa.campaigns) and its table's store (nxcloud_wa.campaigns_table) against moto's
DynamoDB, the table created as template.yaml declares it: every status move and refusal, the counts, the checkpoint
that only one planner pass can advance, the envelope the planner hands the sender."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.aws import campaigns_table
from nxcloud_wa.campaigns import (
    COUNTS,
    Action,
    InvalidEnvelopeError,
    RowState,
    RowTag,
    Status,
    TransitionError,
    campaign_of,
    envelope,
    is_complete,
    message_key,
    transition,
    unwrap,
)
from nxcloud_wa.campaigns_table import (
    Campaign,
    CampaignNotFoundError,
    CampaignStore,
    Checkpoint,
    CheckpointMovedError,
    RowOutcome,
    decode,
    encode,
    encode_row,
)

TABLE = "campaigns"
AT = "2027-01-15T08:00:00+00:00"


def campaign(campaign_id: str = "c-1", created_at: str = AT, **changes: Any) -> Campaign:
    base: dict[str, Any] = {
        "campaign_id": campaign_id,
        "name": "spring sale",
        "template_name": "promo",
        "language": "en_US",
        "audience_key": "audiences/a.csv",
        "created_at": created_at,
        "start_at": created_at,
        "rate": 64.0,
    }
    return Campaign(**{**base, **changes})


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        campaigns_table(client, TABLE)
        yield client


@pytest.fixture
def store(dynamodb: Any) -> CampaignStore:
    return CampaignStore(dynamodb, TABLE)


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (Status.SCHEDULED, Action.START, Status.RUNNING),
        (Status.RUNNING, Action.PAUSE, Status.PAUSED),
        (Status.PAUSED, Action.RESUME, Status.RUNNING),
        (Status.PAUSED, Action.CANCEL, Status.CANCELLED),
        (Status.RUNNING, Action.COMPLETE, Status.COMPLETED),
        (Status.COMPLETED, Action.RETRY, Status.RUNNING),
    ],
)
def test_transition_moves(status: Status, action: Action, expected: Status) -> None:
    assert transition(status, action) is expected


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (Status.CANCELLED, Action.RESUME),
        (Status.COMPLETED, Action.PAUSE),
        (Status.RUNNING, Action.RESUME),
        (Status.SCHEDULED, Action.RETRY),
        (Status.PAUSED, Action.COMPLETE),
    ],
)
def test_transition_refuses_and_names_the_status(status: Status, action: Action) -> None:
    with pytest.raises(TransitionError, match=f"cannot {action.value} a campaign that is {status.value}"):
        transition(status, action)


def test_every_row_state_is_a_count_and_complete_needs_the_file_read() -> None:
    assert {state.value for state in RowState} <= set(COUNTS)
    counts = {"rows": 5, "sent": 2, "invalid": 1, "duplicate": 1, "dead_lettered": 1, "queued": 3}
    assert is_complete(counts, planned=True)
    assert not is_complete(counts, planned=False)
    assert not is_complete({**counts, "sent": 1}, planned=True)


def test_message_key_names_its_campaign() -> None:
    key = message_key("c-1", "8613800138000")
    assert key == "campaign:c-1:8613800138000"
    assert campaign_of(key) == "c-1"
    assert campaign_of("order-17") is None
    assert campaign_of(None) is None


def test_envelope_round_trip() -> None:
    message = {"to": "8613800138000", "idempotency_key": message_key("c-1", "8613800138000")}
    tag, inner = unwrap(json.loads(envelope(RowTag("c-1", 7, "cust-9"), message)))
    assert tag == RowTag("c-1", 7, "cust-9")
    assert inner == message
    assert unwrap(message) == (None, message)


@pytest.mark.parametrize(
    "body",
    [
        {"nxwa_campaign": {"id": "c-1", "row": 1}},
        {"nxwa_campaign": {"id": "c-1", "row": 0}, "message": {"idempotency_key": "campaign:c-1:86"}},
        {"nxwa_campaign": {"id": "c-1", "row": True}, "message": {"idempotency_key": "campaign:c-1:86"}},
        {"nxwa_campaign": {"id": "c-1", "row": 1}, "message": {"idempotency_key": "campaign:c-2:86"}},
        {"nxwa_campaign": {"id": "c-1", "row": 1}, "message": {"idempotency_key": "mine"}},
        {"nxwa_campaign": {"id": "c-1", "row": 1, "ref": 3}, "message": {"idempotency_key": "campaign:c-1:86"}},
        {"nxwa_campaign": {"id": "c-1", "row": 1}, "message": {}, "extra": 1},
    ],
)
def test_a_forged_envelope_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidEnvelopeError):
        unwrap(body)


def test_encode_decode_round_trip() -> None:
    original = campaign(
        quiet_hours={"start": "21:00", "end": "09:00"},
        business_phone="8618512348399",
        checkpoint=Checkpoint(offset=120, line=5, rows=4, tick=2, planned=True),
        counts={"rows": 4, "sent": 3},
    )
    decoded = decode(encode(original))
    assert decoded == campaign(
        quiet_hours={"start": "21:00", "end": "09:00"},
        business_phone="8618512348399",
        checkpoint=Checkpoint(offset=120, line=5, rows=4, tick=2, planned=True),
        counts={name: {"rows": 4, "sent": 3}.get(name, 0) for name in COUNTS},
    )


def test_create_get_and_refuse_a_taken_id(store: CampaignStore) -> None:
    store.create(campaign())
    assert store.get("c-1").status is Status.SCHEDULED
    with pytest.raises(Exception, match="ConditionalCheckFailed"):
        store.create(campaign())
    with pytest.raises(CampaignNotFoundError):
        store.get("c-2")


def test_list_is_newest_first_and_paged(store: CampaignStore) -> None:
    for n in range(5):
        store.create(campaign(f"c-{n}", created_at=f"2027-01-1{n}T08:00:00+00:00"))
    first, cursor = store.newest(limit=3)
    assert [c.campaign_id for c in first] == ["c-4", "c-3", "c-2"]
    second, last = store.newest(limit=3, cursor=cursor)
    assert [c.campaign_id for c in second] == ["c-1", "c-0"]
    assert last is None


def test_apply_moves_stamps_and_raises_version(store: CampaignStore) -> None:
    store.create(campaign())
    running = store.apply(store.get("c-1"), Action.START, "2027-01-15T08:01:00+00:00")
    assert (running.status, running.version, running.started_at) == (Status.RUNNING, 1, "2027-01-15T08:01:00+00:00")
    paused = store.apply(running, Action.PAUSE, "2027-01-15T08:02:00+00:00", reason="the audience file was deleted")
    assert paused.status_reason == "the audience file was deleted"
    resumed = store.apply(paused, Action.RESUME, "2027-01-15T08:03:00+00:00")
    assert resumed.status_reason is None
    assert resumed.started_at == "2027-01-15T08:01:00+00:00"
    cancelled = store.apply(resumed, Action.CANCEL, "2027-01-15T08:04:00+00:00")
    assert cancelled.finished_at == "2027-01-15T08:04:00+00:00"
    with pytest.raises(TransitionError, match="that is cancelled"):
        store.apply(cancelled, Action.RESUME, AT)


def test_apply_from_a_stale_read_judges_the_stored_status(store: CampaignStore) -> None:
    store.create(campaign())
    stale = store.get("c-1")
    store.apply(stale, Action.START, AT)
    paused = store.apply(stale, Action.PAUSE, AT)  # read as scheduled, stored as running: pausing still applies
    assert (paused.status, paused.version) == (Status.PAUSED, 2)
    with pytest.raises(TransitionError, match="that is paused"):
        store.apply(stale, Action.START, AT)


def test_counts_only_grow_and_refuse_an_unknown_name(store: CampaignStore) -> None:
    store.create(campaign())
    store.add_counts("c-1", {"sent": 2, "skipped": 0})
    store.add_counts("c-1", {"sent": 1, "delivered": 3})
    counts = store.get("c-1").counts
    assert (counts["sent"], counts["delivered"], counts["skipped"]) == (3, 3, 0)
    with pytest.raises(ValueError, match="not a campaign count: snet"):
        store.add_counts("c-1", {"snet": 1})


def test_only_one_pass_advances_a_checkpoint(store: CampaignStore) -> None:
    store.create(campaign())
    read = store.get("c-1")
    moved = store.advance(read, Checkpoint(offset=100, line=4, rows=3, tick=1), {"rows": 3, "queued": 2, "invalid": 1})
    assert moved.checkpoint == Checkpoint(offset=100, line=4, rows=3, tick=1)
    with pytest.raises(CheckpointMovedError):
        store.advance(read, Checkpoint(offset=100, line=4, rows=3, tick=1), {"rows": 3})
    assert store.get("c-1").counts["rows"] == 3


def test_a_status_change_stops_a_pass_in_flight(store: CampaignStore) -> None:
    store.create(campaign())
    read = store.apply(store.get("c-1"), Action.START, AT)
    store.apply(read, Action.PAUSE, AT)
    with pytest.raises(CheckpointMovedError):
        store.advance(read, Checkpoint(offset=10, line=2, rows=1, tick=1), {"rows": 1})


def test_row_outcomes_read_back_in_row_order(store: CampaignStore, dynamodb: Any) -> None:
    store.create(campaign())
    outcomes = [
        RowOutcome("c-1", 12, RowState.SENT, AT, message_id="wamid.1", ref="r12"),
        RowOutcome("c-1", 3, RowState.DEAD_LETTERED, AT, reason="invalid_recipient", error_code="131026"),
    ]
    dynamodb.batch_write_item(RequestItems={TABLE: [{"PutRequest": {"Item": encode_row(o)}} for o in outcomes]})
    rows, cursor = store.rows("c-1")
    assert rows == sorted(outcomes, key=lambda o: o.row)
    assert cursor is None
    listed, _ = store.newest()
    assert [c.campaign_id for c in listed] == ["c-1"]


def test_a_tick_names_its_campaign_and_nothing_else_is_one() -> None:
    from nxcloud_wa.campaigns import tick, tick_campaign

    assert tick_campaign(tick("c-1f")) == "c-1f"
    for body in ('{"campaign_id": "../x"}', '{"id": "c-1"}', "[1]", '{"campaign_id": 3}'):
        with pytest.raises(ValueError):
            tick_campaign(body)


def test_add_counts_answers_the_campaign_after(store: CampaignStore) -> None:
    store.create(campaign())
    after = store.add_counts("c-1", {"rows": 2, "sent": 2})
    assert after is not None and after.counts["sent"] == 2
    assert store.add_counts("c-1", {"sent": 0}) is None
