"""Meta's marketing limit (131049): the retry decision, its schedule request, the queue envelope and the marker check
(``nxcloud_wa.retries``), and the items the retry adds to the messages table (``nxcloud_wa.messages_table``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from nxcloud_wa.audience import AudienceSettings, RetryLater, status_action
from nxcloud_wa.dynamo import plain
from nxcloud_wa.messages_table import (
    RETRY_SCHEDULED,
    RetryMark,
    SendRecord,
    StatusItem,
    attempt_link,
    attempt_link_id,
    view,
)
from nxcloud_wa.models import MAX_IDEMPOTENCY_KEY, parse_message
from nxcloud_wa.retries import (
    InvalidEnvelopeError,
    RetryMarker,
    RetryScheduler,
    ScheduleTarget,
    keeps_request,
    marker_problem,
    next_attempt,
    request_text,
    retry_key,
    root_key,
    schedule_name,
    unwrap,
)

NOW = datetime(2026, 12, 6, 8, 0, 0, 123_000, tzinfo=UTC)
REQUEST = parse_message(
    {
        "to": "8613800000000",
        "template": {
            "name": "weekend_offer",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "20%"}]}],
        },
        "idempotency_key": "promo-7",
    }
)
ACTION = RetryLater(delay=24 * 3600, max_retries=1)


def record(**changes: Any) -> SendRecord:
    fields: dict[str, Any] = {
        "message_id": "m-1",
        "idempotency_key": "promo-7",
        "template_name": "weekend_offer",
        "template_language": "en_US",
        "business_phone": "8618512348399",
        "tenant_id": 1,
        "recipient": "8613800000000",
        "accepted_at": "2026-12-06T07:00:00.000+00:00",
        "retry_request": request_text(REQUEST),
    }
    return SendRecord(**(fields | changes))


def status(retry: RetryMark | None = None, state: str = "failed") -> StatusItem:
    return StatusItem("m-1", state, {state: "2026-12-06T07:00:05.000+00:00"}, "8613800000000", (), (), retry)


# --- the decision -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hours", "expected"), [(24, RetryLater(24 * 3600, 1)), (0, None)])
def test_131049_asks_for_a_retry_unless_its_hours_are_0(hours: int, expected: RetryLater | None) -> None:
    settings = AudienceSettings(marketing_limit_retry_hours=hours)
    assert status_action(settings, 131049) == expected


@pytest.mark.parametrize(
    ("hours", "category", "kept"),
    [
        (24, "MARKETING", True),
        (24, None, True),
        (24, "UTILITY", False),
        (24, "AUTHENTICATION", False),
        (0, None, False),
    ],
)
def test_a_send_record_keeps_its_request_only_when_a_retry_could_apply(
    hours: int, category: str | None, kept: bool
) -> None:
    assert keeps_request(AudienceSettings(marketing_limit_retry_hours=hours), category) is kept


def test_the_first_131049_of_a_kept_request_plans_attempt_1_after_the_delay() -> None:
    plan = next_attempt(ACTION, record(), NOW)

    assert plan is not None
    assert plan.marker == RetryMarker("m-1", "m-1", 1)
    assert plan.key == "promo-7#retry1"
    assert plan.retry_at == datetime(2026, 12, 7, 8, 0, 0, tzinfo=UTC)
    body = json.loads(plan.body())
    assert body["nxwa_retry"] == {"original_message_id": "m-1", "after": "m-1", "attempt": 1}
    assert body["message"] == json.loads(request_text(REQUEST)) | {"idempotency_key": "promo-7#retry1"}


@pytest.mark.parametrize(
    "failed",
    [None, record(retry_request=None), record(message_id="m-2", retry_of="m-1", attempt=1, idempotency_key="k#retry1")],
    ids=["no send record", "no request kept", "retries used up"],
)
def test_a_131049_is_final_without_a_record_a_kept_request_or_retries_left(failed: SendRecord | None) -> None:
    assert next_attempt(ACTION, failed, NOW) is None


def test_a_second_retry_follows_the_first_and_keeps_the_original() -> None:
    first_retry = record(message_id="m-2", retry_of="m-1", attempt=1, idempotency_key="promo-7#retry1")

    plan = next_attempt(RetryLater(3600, 2), first_retry, NOW)

    assert plan is not None
    assert plan.marker == RetryMarker("m-1", "m-2", 2)
    assert plan.key == "promo-7#retry2"
    assert plan.name == schedule_name("m-1", 2) != schedule_name("m-1", 1)


def test_keys_and_schedule_names_are_deterministic_and_within_limits() -> None:
    long_key = "k" * MAX_IDEMPOTENCY_KEY
    assert retry_key(long_key, 1) == retry_key(long_key, 1)
    assert len(retry_key(long_key, 1)) <= MAX_IDEMPOTENCY_KEY
    assert root_key(record(idempotency_key=retry_key("promo-7", 3), attempt=3, retry_of="m-1")) == "promo-7"
    name = schedule_name("wamid." + "x" * 200, 1)
    assert len(name) <= 64 and name == schedule_name("wamid." + "x" * 200, 1)
    assert all(c.isalnum() or c in "-_." for c in name)


# --- the schedule ---------------------------------------------------------------------------------------------------


class FakeScheduler:
    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.requests: list[dict[str, Any]] = []

    def create_schedule(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, "CreateSchedule")
        return {"ScheduleArn": "arn"}


TARGET = ScheduleTarget("stack-retries", "arn:aws:sqs:us-east-1:123456789012:send", "arn:aws:iam::1:role/r")


def test_the_schedule_is_one_time_in_utc_deleted_after_it_ran_and_targets_the_send_queue() -> None:
    plan = next_attempt(ACTION, record(), NOW)
    assert plan is not None
    client = FakeScheduler()

    assert RetryScheduler(client, TARGET).schedule(plan) is True

    [request] = client.requests
    assert request["ScheduleExpression"] == "at(2026-12-07T08:00:00)"
    assert request["ScheduleExpressionTimezone"] == "UTC"
    assert request["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert request["ActionAfterCompletion"] == "DELETE"
    assert request["GroupName"] == "stack-retries"
    assert request["Target"] == {"Arn": TARGET.queue_arn, "RoleArn": TARGET.role_arn, "Input": plan.body()}


def test_a_schedule_that_exists_is_already_scheduled_any_other_error_raises() -> None:
    plan = next_attempt(ACTION, record(), NOW)
    assert plan is not None
    assert RetryScheduler(FakeScheduler("ConflictException"), TARGET).schedule(plan) is False
    with pytest.raises(ClientError):
        RetryScheduler(FakeScheduler("ThrottlingException"), TARGET).schedule(plan)


# --- the envelope and the marker -----------------------------------------------------------------------------------


def test_a_plain_message_is_not_an_envelope_and_an_envelope_unwraps() -> None:
    plain_body = json.dumps({"to": "8613800000000", "template": {"name": "nxwa_retry"}})
    assert unwrap(plain_body) == (None, plain_body)
    plan = next_attempt(ACTION, record(), NOW)
    assert plan is not None
    marker, message = unwrap(plan.body())
    assert marker == plan.marker
    assert parse_message(message).idempotency_key == "promo-7#retry1"


@pytest.mark.parametrize(
    "body",
    [
        {"nxwa_retry": {"original_message_id": "m-1", "after": "m-1", "attempt": 0}, "message": {}},
        {"nxwa_retry": {"original_message_id": "m-1", "after": "m-1", "attempt": True}, "message": {}},
        {"nxwa_retry": {"original_message_id": "", "after": "m-1", "attempt": 1}, "message": {}},
        {"nxwa_retry": {"original_message_id": "m-1", "after": "m-1", "attempt": 1}, "message": "x"},
        {"nxwa_retry": {"original_message_id": "m-1", "after": "m-1", "attempt": 1}, "message": {}, "to": "1"},
        {"nxwa_retry": "yes", "message": {}},
    ],
)
def test_a_malformed_envelope_is_refused(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidEnvelopeError):
        unwrap(json.dumps(body))


def _checked(marker: RetryMarker, key: str, failed: SendRecord | None, item: StatusItem | None) -> str | None:
    message = parse_message(json.loads(request_text(REQUEST)) | {"idempotency_key": key})
    return marker_problem(marker, message, key, failed, item)


MARK = RetryMark(1, "2026-12-07T08:00:00.000+00:00", "2026-12-06T08:00:00.123+00:00")


def test_the_marker_the_webhook_scheduled_passes() -> None:
    assert _checked(RetryMarker("m-1", "m-1", 1), "promo-7#retry1", record(), status(MARK)) is None


@pytest.mark.parametrize(
    ("marker", "key", "failed", "item", "why"),
    [
        (RetryMarker("m-1", "m-1", 1), "promo-7#retry1", None, None, "not recorded"),
        (RetryMarker("m-1", "m-1", 1), "promo-7#retry1", record(), status(), "no such retry"),
        (RetryMarker("m-1", "m-1", 2), "promo-7#retry2", record(), status(MARK), "no such retry"),
        (RetryMarker("m-9", "m-1", 1), "promo-7#retry1", record(), status(MARK), "does not follow"),
        (RetryMarker("m-1", "m-1", 1), "other-key", record(), status(MARK), "idempotency key"),
        (
            RetryMarker("m-1", "m-1", 1),
            "promo-7#retry1",
            record(retry_request=request_text(REQUEST).replace("20%", "90%")),
            status(MARK),
            "not the one first sent",
        ),
    ],
)
def test_a_marker_the_webhook_did_not_write_is_refused(
    marker: RetryMarker, key: str, failed: SendRecord | None, item: StatusItem | None, why: str
) -> None:
    problem = _checked(marker, key, failed, item)
    assert problem is not None and why in problem


# --- the items -------------------------------------------------------------------------------------------------------


def test_a_send_record_keeps_the_request_and_a_retry_names_its_original_and_attempt() -> None:
    original = record()
    retry = record(message_id="m-2", retry_of="m-1", attempt=1, retry_request=None, idempotency_key="promo-7#retry1")

    assert SendRecord.from_image(plain(original.item(99))) == original
    assert SendRecord.from_image(plain(retry.item(99))) == retry
    assert "retry_of" not in original.item(99) and "retry_request" not in retry.item(99)
    link = attempt_link(retry, 99)
    assert (link["id"], link["message_id"]) == ({"S": attempt_link_id("m-1", 1)}, {"S": "m-2"})


def test_a_plain_send_record_is_what_it_was() -> None:
    item = record(retry_request=None).item(99)
    assert set(item) == {
        "id",
        "kind",
        "idempotency_key",
        "template_name",
        "template_language",
        "recipient",
        "business_phone",
        "tenant_id",
        "at_accepted",
        "expiration",
    }


def test_a_failure_with_its_retry_reads_as_retry_scheduled_and_the_view_shows_every_attempt() -> None:
    failed = status(MARK)
    assert failed.shown_status == RETRY_SCHEDULED
    assert status().shown_status == "failed"
    image = {
        "id": "status#m-1",
        "status": "failed",
        "at_failed": "2026-12-06T07:00:05.000+00:00",
        "retry_attempt": 1,
        "retry_at": MARK.retry_at,
        "retry_scheduled_at": MARK.scheduled_at,
    }
    assert StatusItem.from_image(image).retry == MARK

    second = record(message_id="m-2", retry_of="m-1", attempt=1, idempotency_key="promo-7#retry1")
    delivered = StatusItem("m-2", "delivered", {"delivered": "2026-12-07T08:00:09.000+00:00"}, None, (), ())
    answer = view(record(), failed, [(second, delivered)])

    assert answer["message_id"] == "m-1"
    assert answer["status"] == "delivered"
    assert [(e["status"], e.get("attempt")) for e in answer["timeline"]] == [
        ("accepted", None),
        ("failed", None),
        (RETRY_SCHEDULED, None),
        ("accepted", 1),
        ("delivered", 1),
    ]
    assert [(a["message_id"], a["status"]) for a in answer["attempts"]] == [
        ("m-1", RETRY_SCHEDULED),
        ("m-2", "delivered"),
    ]
    assert "attempts" not in view(record(), status())
