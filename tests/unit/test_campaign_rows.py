"""A campaign row on the send path (functions/sender/campaign_rows.py): the status rule before the send, a row's final
outcome, the container's status cache on a controlled clock, and what a failed write costs; and the campaigns
table's two requests the sender makes (``get_many``, ``insert_rows``) against moto, where a row's second INSERT is
refused as DynamoDB refuses it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

import boto3
import pytest
from botocore.exceptions import ClientError
from campaign_rows import CampaignRows, row_outcome, verdict
from moto import mock_aws

from local_stack.aws import campaigns_table
from nxcloud_wa.campaigns import RowState, RowTag, Status, TransitionError
from nxcloud_wa.campaigns_table import Campaign, CampaignStore, Checkpoint, RowOutcome, RowsInserted
from nxcloud_wa.error_codes import (
    INVALID_MESSAGE,
    READ_TIMEOUT,
    RECIPIENT_SUPPRESSED,
    RETRIES_EXHAUSTED,
    UNKNOWN_OUTCOME,
    ErrorClass,
    classify_code,
)
from nxcloud_wa.failures import Failure, failure, is_throttle
from outcomes import DeadLettered, Delayed, RetryLater, Sent, Skipped

TABLE = "campaigns"
AT = "2026-12-06T08:00:00+00:00"
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TAG = RowTag("c-1", 4, "cust-4")


def campaign(status: Status = Status.RUNNING, **changes: Any) -> Campaign:
    base = Campaign("c-1", "spring", "order_update", "en_US", "audiences/a.csv", AT, AT, 10.0, status=status)
    return replace(base, **changes)


@pytest.mark.parametrize("status", [Status.RUNNING, Status.COMPLETED])
def test_a_running_or_completed_campaigns_row_goes_on(status: Status) -> None:
    assert verdict(campaign(status), NOW) is None


@pytest.mark.parametrize("status", [Status.PAUSED, Status.SCHEDULED])
def test_a_paused_or_scheduled_campaigns_row_is_delayed_as_a_throttle_is(status: Status) -> None:
    held = verdict(campaign(status), NOW)
    assert isinstance(held, Failure) and is_throttle(held) and held.reason == "campaign_paused"
    assert held.error_code == status.value and held.retry_after == 2.0


def test_cancelled_wins_then_expired_then_paused() -> None:
    past = "2026-12-06T08:59:59+00:00"
    cancelled = verdict(campaign(Status.CANCELLED, expires_at=past), NOW)
    expired = verdict(campaign(Status.PAUSED, expires_at=past), NOW)
    assert isinstance(cancelled, Skipped) and cancelled.reason == "campaign_cancelled"
    assert isinstance(expired, Skipped) and expired.reason == "campaign_expired"
    assert verdict(campaign(expires_at="2026-12-06T10:00:00+01:00"), NOW) is not None  # the same instant: expired
    assert verdict(campaign(expires_at="2026-12-06T09:00:01+00:00"), NOW) is None


def test_an_expiry_without_an_offset_is_utc_and_an_unreadable_one_expires_nothing() -> None:
    assert isinstance(verdict(campaign(expires_at="2026-12-06T09:00:00"), NOW), Skipped)
    assert verdict(campaign(expires_at="2026-12-06T09:00:01"), NOW) is None
    assert verdict(campaign(expires_at="tomorrow"), NOW) is None


def test_a_missing_campaign_is_a_permanent_failure() -> None:
    missing = verdict(None, NOW)
    assert isinstance(missing, Failure)
    assert (missing.reason, missing.error_code, missing.error_class) == (
        "invalid_message",
        "campaign_not_found",
        ErrorClass.PERMANENT,
    )


def test_a_rows_final_outcome_and_none_for_what_is_not_final() -> None:
    sent = row_outcome(TAG, Sent("wamid.1", None, AT), "now")
    suppressed = Skipped(failure(RECIPIENT_SUPPRESSED, "opted_out"), "suppressed", AT)
    nxcloud = failure(INVALID_MESSAGE, "22090")
    assert sent == RowOutcome("c-1", 4, RowState.SENT, AT, message_id="wamid.1", ref="cust-4")
    assert row_outcome(TAG, suppressed, "now") == RowOutcome(
        "c-1", 4, RowState.SKIPPED, AT, reason="recipient_suppressed", error_code="opted_out", ref="cust-4"
    )
    assert row_outcome(TAG, DeadLettered(nxcloud, "dlq-1"), "now") == RowOutcome(
        "c-1", 4, RowState.DEAD_LETTERED, "now", reason="invalid_message", error_code="22090", ref="cust-4"
    )
    orphan = failure(INVALID_MESSAGE, "campaign_not_found")
    timeout = failure(READ_TIMEOUT)
    for not_final in (DeadLettered(orphan), RetryLater(timeout), Delayed(timeout, 3, "q-1")):
        assert row_outcome(TAG, not_final, "now") is None


NXCLOUD_CODE = classify_code(22090).classification


def test_a_dead_lettered_row_keeps_its_message_only_when_it_may_pass_on_a_retry() -> None:
    message = {"to": "8613800000004", "idempotency_key": "campaign:c-1:8613800000004"}
    balance = DeadLettered(failure(RETRIES_EXHAUSTED, "22125"), "dlq-1")
    kept = row_outcome(RowTag("c-1", 4, round=2), balance, "now", message)
    assert kept is not None and kept.round == 2
    assert kept.message == '{"to":"8613800000004","idempotency_key":"campaign:c-1:8613800000004"}'
    bad_number = DeadLettered(failure(NXCLOUD_CODE, "22090"), "dlq-2")
    unknown = DeadLettered(failure(UNKNOWN_OUTCOME, "read_timeout"), "dlq-3")
    for never in (bad_number, unknown):
        found = row_outcome(TAG, never, "now", message)
        assert found is not None and found.state is RowState.DEAD_LETTERED and found.message is None


@dataclass
class FakeStore:
    """A campaigns table in memory, recording the requests made to it."""

    campaigns: dict[str, Campaign] = field(default_factory=dict)
    reads: list[list[str]] = field(default_factory=list)
    refuse: set[int] = field(default_factory=set)
    """Rows whose INSERT fails (throttled)."""
    settled: dict[tuple[str, int], RowOutcome] = field(default_factory=dict)
    adds: list[tuple[str, dict[str, int]]] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    fail_reads: bool = False
    fail_adds: bool = False
    race_complete: bool = False

    def get_many(self, ids: Sequence[str]) -> dict[str, Campaign]:
        self.reads.append(list(ids))
        if self.fail_reads:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "BatchGetItem")
        return {i: self.campaigns[i] for i in ids if i in self.campaigns}

    def insert_rows(self, outcomes: Sequence[RowOutcome]) -> RowsInserted:
        done = RowsInserted()
        throttled = ClientError({"Error": {"Code": "ThrottlingError"}}, "BatchExecuteStatement")
        for o in outcomes:
            if o.row in self.refuse:
                done.failed.append((o, throttled))
            elif (o.campaign_id, o.row) not in self.settled:
                self.settled[(o.campaign_id, o.row)] = o
                done.inserted.append(o)
        return done

    def add_counts(self, campaign_id: str, counts: Mapping[str, int]) -> Campaign:
        if self.fail_adds:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "UpdateItem")
        self.adds.append((campaign_id, dict(counts)))
        current = self.campaigns[campaign_id]
        total = {k: current.counts.get(k, 0) + counts.get(k, 0) for k in {*current.counts, *counts}}
        self.campaigns[campaign_id] = replace(current, counts=total)
        return self.campaigns[campaign_id]

    def apply(self, c: Campaign, action: Any, at: str) -> Campaign:
        if self.race_complete:
            raise TransitionError(Status.COMPLETED, action)
        self.completed.append(c.campaign_id)
        return c


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def rows_of(store: FakeStore, clock: Ticks | None = None) -> CampaignRows:
    return CampaignRows(cast(CampaignStore, store), clock=clock or Ticks(), wall=lambda: NOW)


def test_one_read_per_distinct_campaign_per_batch_then_cached_for_two_seconds() -> None:
    store = FakeStore({"c-1": campaign(), "c-2": campaign(Status.PAUSED, campaign_id="c-2")})
    clock = Ticks()
    rows = rows_of(store, clock)

    first = rows.verdicts(["c-1", "c-2", "c-1", "c-3"])
    store.campaigns["c-1"] = campaign(Status.PAUSED)  # paused by a person meanwhile
    clock.now += 1.9
    cached = rows.verdicts(["c-1"])
    clock.now += 0.2
    after = rows.verdicts(["c-1"])

    assert store.reads == [["c-1", "c-2", "c-3"], ["c-1"]]
    assert first[0] is None and first[2] is None and isinstance(first[1], Failure)
    assert isinstance(first[3], Failure) and first[3].error_code == "campaign_not_found"
    assert cached == [None]
    assert isinstance(after[0], Failure) and after[0].reason == "campaign_paused"


def test_an_unreadable_status_retries_the_rows_and_is_not_cached() -> None:
    store = FakeStore({"c-1": campaign()}, fail_reads=True)
    rows = rows_of(store)
    [unread] = rows.verdicts(["c-1"])
    store.fail_reads = False
    assert isinstance(unread, Failure) and unread.error_class is ErrorClass.RETRYABLE and not is_throttle(unread)
    assert rows.verdicts(["c-1"]) == [None]


def test_settle_counts_only_rows_inserted_now_and_completes_the_last() -> None:
    planned = Checkpoint(rows=3, planned=True)
    store = FakeStore({"c-1": campaign(checkpoint=planned, counts={"rows": 3, "queued": 3})})
    rows = rows_of(store)
    tag = lambda n: RowTag("c-1", n)  # noqa: E731

    assert rows.settle({0: (tag(1), Sent("w1", None, AT)), 1: (tag(2), Sent("w2", None, AT))}) == {}
    assert rows.settle({0: (tag(2), Sent("w2", None, AT, replayed=True))}) == {}  # settled again: not counted
    assert store.completed == []
    rows.settle({0: (tag(3), Skipped(failure(RECIPIENT_SUPPRESSED), "suppressed", AT))})

    assert store.adds == [("c-1", {"sent": 2}), ("c-1", {"skipped": 1})]
    assert store.completed == ["c-1"]


def test_a_lost_race_to_complete_and_a_failed_add_raise_nothing() -> None:
    planned = Checkpoint(rows=1, planned=True)
    store = FakeStore({"c-1": campaign(checkpoint=planned, counts={"rows": 1})}, race_complete=True)
    assert rows_of(store).settle({0: (RowTag("c-1", 1), Sent("w1", None, AT))}) == {}
    store.fail_adds = True
    assert rows_of(store).settle({0: (RowTag("c-1", 2), Sent("w2", None, AT))}) == {}


def test_an_unwritten_row_is_retried_only_when_nothing_was_sent() -> None:
    store = FakeStore({"c-1": campaign()}, refuse={1, 2, 3})
    cancelled = Skipped(failure(INVALID_MESSAGE), "campaign_cancelled", AT)
    retry = rows_of(store).settle(
        {
            0: (RowTag("c-1", 1), Sent("w1", None, AT)),
            1: (RowTag("c-1", 2), cancelled),
            2: (RowTag("c-1", 3), DeadLettered(failure(INVALID_MESSAGE, "22090"), "d1")),
        }
    )
    assert list(retry) == [1] and isinstance(retry[1], RetryLater)
    assert store.adds == []


@pytest.fixture
def table() -> Iterator[CampaignStore]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        campaigns_table(client, TABLE)
        yield CampaignStore(client, TABLE)


def test_insert_rows_refuses_a_row_settled_before_and_keeps_the_first_outcome(table: CampaignStore) -> None:
    table.create(campaign())
    first = RowOutcome("c-1", 1, RowState.SENT, AT, message_id="w1")
    again = RowOutcome("c-1", 1, RowState.CANCELLED, AT, reason="campaign_cancelled")
    other = RowOutcome("c-1", 2, RowState.EXPIRED, AT, reason="campaign_expired", ref="r2")

    assert table.insert_rows([first]).inserted == [first]
    written = table.insert_rows([again, other, other])

    assert written.inserted == [other] and written.failed == []
    stored, _ = table.rows("c-1")
    assert stored == [first, other]


def test_get_many_answers_the_campaigns_that_exist(table: CampaignStore) -> None:
    table.create(campaign())
    found = table.get_many(["c-1", "c-9", "c-1"])
    assert list(found) == ["c-1"] and found["c-1"].status is Status.RUNNING


@pytest.mark.parametrize(
    ("status", "previous", "counts"),
    [
        ("delivered", "sent", ("delivered",)),
        ("read", "delivered", ("read",)),
        ("read", "sent", ("read", "delivered")),
        ("read", None, ("read", "delivered")),
        ("failed", "sent", ("failed",)),
        ("sent", None, ()),
        ("deleted", "read", ()),
    ],
)
def test_a_new_current_status_adds_its_delivery_counts(
    status: str, previous: str | None, counts: tuple[str, ...]
) -> None:
    from nxcloud_wa.campaigns import delivery_counts

    assert delivery_counts(status, previous) == counts
