"""Campaign rows through the real sender (docs/campaigns.md, "Sending"): envelopes put on the send queue as the
planner puts them (``nxcloud_wa.campaigns.envelope``), campaigns stored with ``CampaignStore``, the handler run
against moto's server and the NXCloud simulator. What reached the simulator is what was sent; the campaigns table's
row items and counts are what was recorded.

Time a put-back copy waits (``DelaySeconds``) and the container's status cache pass on a controlled clock, which
moto's SQS and the sender's campaign rows read, so nothing here sleeps.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from local_stack.lambda_events import api_event
from nxcloud_wa.campaigns import Action, RowState, RowTag, Status, envelope, message_key
from nxcloud_wa.campaigns_table import Campaign, CampaignStore, RowOutcome
from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore
from tests.stack import AdvancingClock as Clock
from tests.stack import reset_function_runtime

from .conftest import SECRET, Stack, message

CID = "c-0a1b2c"
NUMBERS = [f"861380000{n:04d}" for n in range(1, 7)]
AT = "2026-12-06T08:00:00+00:00"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> Clock:
    import moto.sqs.models
    from campaign_rows import CampaignRows

    import runtime

    controlled = Clock()
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: controlled())
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: controlled() * 1000)
    monkeypatch.setattr(runtime, "CampaignRows", functools.partial(CampaignRows, clock=controlled))
    reset_function_runtime()
    return controlled


def store(stack: Stack) -> CampaignStore:
    return CampaignStore(stack.resources.client("dynamodb"), stack.resources.campaigns_table)


def create(stack: Stack, *, status: Status = Status.RUNNING, rows: int = 0, **changes: Any) -> Campaign:
    """A campaign as the API and the planner leave it: ``rows`` read and queued (``planned``: the file is read)."""
    from nxcloud_wa.campaigns_table import Checkpoint

    planned = changes.pop("planned", False)
    campaign = Campaign(
        campaign_id=CID,
        name="spring",
        template_name="order_update",
        language="en_US",
        audience_key="audiences/a.csv",
        created_at=AT,
        start_at=AT,
        rate=10.0,
        status=status,
        checkpoint=Checkpoint(rows=rows, planned=planned),
        counts={"rows": rows, "queued": rows},
        **changes,
    )
    store(stack).create(campaign)
    return campaign


def row(n: int, to: str | None = None, campaign_id: str = CID, ref: str | None = None) -> str:
    """Row ``n``'s queue body, as the planner writes it."""
    to = to or NUMBERS[n - 1]
    return envelope(RowTag(campaign_id, n, ref), message(to) | {"idempotency_key": message_key(campaign_id, to)})


def run_until_drained(stack: Stack, clock: Clock, limit: int = 30) -> None:
    """Run batches until the send queue (delayed copies too) is empty, advancing the clock while all is delayed."""
    for _ in range(limit):
        if not stack.queue_depth() and not delayed(stack):
            return
        event, _ = stack.run_batch()
        if not event["Records"]:
            clock.advance(10)
    raise AssertionError("the send queue never drained")


def delayed(stack: Stack) -> int:
    answer = stack.sqs.get_queue_attributes(
        QueueUrl=stack.resources.send_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )
    return int(answer["Attributes"]["ApproximateNumberOfMessagesDelayed"])


def outcomes(stack: Stack) -> dict[int, RowOutcome]:
    found, cursor = store(stack).rows(CID)
    assert cursor is None
    return {o.row: o for o in found}


def sent_to(stack: Stack) -> list[str]:
    return [str(r.body["to"]) for r in stack.simulator.requests if r.body is not None and r.accepted]


def counts(stack: Stack) -> dict[str, int]:
    return {k: v for k, v in store(stack).get(CID).counts.items() if v}


def test_sent_rows_get_their_outcome_items_and_are_counted(stack: Stack, clock: Clock) -> None:
    create(stack, rows=3)
    for n in (1, 2, 3):
        stack.enqueue(row(n, ref=f"cust-{n}"))

    run_until_drained(stack, clock)

    assert sorted(sent_to(stack)) == NUMBERS[:3]
    settled = outcomes(stack)
    assert {n: o.state for n, o in settled.items()} == {1: RowState.SENT, 2: RowState.SENT, 3: RowState.SENT}
    assert all(o.message_id and o.ref == f"cust-{n}" and o.reason is None for n, o in settled.items())
    assert counts(stack) == {"rows": 3, "queued": 3, "sent": 3}
    assert store(stack).get(CID).status is Status.RUNNING  # the file is not read to its end yet


def test_a_row_delivered_again_or_twice_is_sent_once_and_counted_once(stack: Stack, clock: Clock) -> None:
    create(stack, rows=2)
    stack.enqueue(row(1))
    stack.enqueue(row(1))  # a duplicate of the planner's batch: the same row in the same receive
    stack.enqueue(row(2))
    run_until_drained(stack, clock)
    stack.enqueue(row(1))  # a redelivery after its settlement
    run_until_drained(stack, clock)

    assert sorted(sent_to(stack)) == NUMBERS[:2]
    assert counts(stack) == {"rows": 2, "queued": 2, "sent": 2}
    assert stack.dlq_messages() == []


def test_a_paused_campaigns_row_is_put_back_unsent_and_sent_after_resume(stack: Stack, clock: Clock) -> None:
    paused = create(stack, status=Status.PAUSED, rows=1)
    stack.enqueue(row(1))

    event, response = stack.run_batch()

    assert len(event["Records"]) == 1 and response == {"batchItemFailures": []}  # done: no receive spent
    assert sent_to(stack) == [] and outcomes(stack) == {}
    assert delayed(stack) == 1
    clock.advance(10)
    stack.run_batch()  # still paused: put back again
    assert sent_to(stack) == [] and delayed(stack) == 1

    store(stack).apply(paused, Action.RESUME, AT)
    run_until_drained(stack, clock)

    assert sent_to(stack) == [NUMBERS[0]]
    assert outcomes(stack)[1].state is RowState.SENT
    assert counts(stack) == {"rows": 1, "queued": 1, "sent": 1}


def test_a_campaign_row_never_takes_a_slot_a_plain_message_would_wait_behind(stack: Stack, clock: Clock) -> None:
    """A backlog of rows (say, just resumed) has taken the number's next second; a row and an OTP arrive together."""
    create(stack, rows=1)
    stack.enqueue(json.dumps(message("8613900000002")))
    stack.run_batch()  # the function's runtime built: what follows takes milliseconds, not the cold start's
    busy_until = int((time.time() + 1.5) * 1_000_000)
    stack.resources.client("dynamodb").put_item(
        TableName=stack.resources.rate_table,
        Item={"id": {"S": str(SECRET["business_phone"])}, "tat": {"N": str(busy_until)}},
    )
    stack.enqueue(row(1))
    stack.enqueue(json.dumps(message("8613900000001")))

    event, response = stack.run_batch()

    assert len(event["Records"]) == 2 and response == {"batchItemFailures": []}
    assert sent_to(stack)[1:] == ["8613900000001"]  # the OTP waited its turn (1.5 s, within its 2 s)
    assert outcomes(stack) == {} and delayed(stack) == 1  # the row was put back for later, unsent
    run_until_drained(stack, clock)
    assert sent_to(stack)[1:] == ["8613900000001", NUMBERS[0]]


def test_a_cancelled_campaigns_row_ends_cancelled_unsent_and_not_dead_lettered(stack: Stack, clock: Clock) -> None:
    create(stack, status=Status.CANCELLED, rows=2)
    stack.enqueue(row(1))
    stack.enqueue(row(2))

    run_until_drained(stack, clock)

    assert sent_to(stack) == [] and stack.dlq_messages() == []
    assert {n: (o.state, o.reason) for n, o in outcomes(stack).items()} == {
        1: (RowState.CANCELLED, "campaign_cancelled"),
        2: (RowState.CANCELLED, "campaign_cancelled"),
    }
    assert counts(stack) == {"rows": 2, "queued": 2, "cancelled": 2}


def test_a_row_not_sent_by_expires_at_ends_expired_even_while_paused(stack: Stack, clock: Clock) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    create(stack, status=Status.PAUSED, rows=1, expires_at=past)
    stack.enqueue(row(1))

    run_until_drained(stack, clock)

    assert sent_to(stack) == []
    assert outcomes(stack)[1].state is RowState.EXPIRED
    assert counts(stack) == {"rows": 1, "queued": 1, "expired": 1}


def test_a_suppressed_recipients_row_is_skipped_with_the_entrys_reason(stack: Stack, clock: Clock) -> None:
    entries = SuppressionStore(stack.resources.client("dynamodb"), stack.resources.suppressions_table)
    business = str(SECRET["business_phone"])
    assert entries.put(Suppression(business, NUMBERS[0], Scope.ALL, Reason.MANUAL, "ops", AT))
    create(stack, rows=2)
    stack.enqueue(row(1))
    stack.enqueue(row(2))

    run_until_drained(stack, clock)

    assert sent_to(stack) == [NUMBERS[1]]
    skipped = outcomes(stack)[1]
    assert (skipped.state, skipped.reason, skipped.error_code) == (RowState.SKIPPED, "recipient_suppressed", "manual")
    assert counts(stack) == {"rows": 2, "queued": 2, "sent": 1, "skipped": 1}


def test_a_permanent_nxcloud_failure_is_dead_lettered_with_its_code(stack: Stack, clock: Clock) -> None:
    stack.simulator.add_fault(kind="code", code=22090, to=NUMBERS[1])
    create(stack, rows=2)
    stack.enqueue(row(1))
    stack.enqueue(row(2))

    run_until_drained(stack, clock)

    dead = outcomes(stack)[2]
    assert (dead.state, dead.reason, dead.error_code, dead.message_id) == (
        RowState.DEAD_LETTERED,
        "nxcloud_code",
        "22090",
        None,
    )
    [letter] = stack.dead_letters().values()
    assert letter["attributes"]["error_code"] == "22090"
    assert counts(stack) == {"rows": 2, "queued": 2, "sent": 1, "dead_lettered": 1}


def test_the_last_row_to_end_completes_the_campaign(stack: Stack, clock: Clock) -> None:
    create(stack, rows=3, planned=True)
    for n in (1, 2):
        stack.enqueue(row(n))
    run_until_drained(stack, clock)
    assert store(stack).get(CID).status is Status.RUNNING

    stack.enqueue(row(3))
    run_until_drained(stack, clock)

    done = store(stack).get(CID)
    assert done.status is Status.COMPLETED and done.finished_at is not None
    assert done.counts["sent"] == 3


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {
                "nxwa_campaign": {"id": CID, "row": 1},
                "message": message(idempotency_key="campaign:c-other:8613800000001"),
            },
            "invalid_campaign",
        ),
        (
            {
                "nxwa_campaign": {"id": CID, "row": 0},
                "message": message(idempotency_key=message_key(CID, "8613800000000")),
            },
            "invalid_campaign",
        ),
        (
            {
                "nxwa_campaign": {"id": "c-missing", "row": 1},
                "message": message(idempotency_key=message_key("c-missing", "8613800000000")),
            },
            "campaign_not_found",
        ),
    ],
)
def test_a_forged_or_orphan_envelope_is_dead_lettered_unsent(
    stack: Stack, clock: Clock, body: dict[str, Any], code: str
) -> None:
    create(stack, rows=1)
    stack.enqueue(body)

    run_until_drained(stack, clock)

    assert sent_to(stack) == []
    [letter] = stack.dead_letters().values()
    assert (letter["attributes"]["reason"], letter["attributes"]["error_code"]) == ("invalid_message", code)
    assert json.loads(letter["body"]) == body  # unchanged: it can be looked at and redriven
    assert outcomes(stack) == {} and counts(stack) == {"rows": 1, "queued": 1}


def test_without_a_campaigns_table_a_row_is_dead_lettered_as_campaigns_disabled(
    stack: Stack, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPAIGNS_TABLE", "")
    reset_function_runtime()
    stack.enqueue(row(1))

    run_until_drained(stack, clock)

    assert sent_to(stack) == []
    [letter] = stack.dead_letters().values()
    assert letter["attributes"]["error_code"] == "campaigns_disabled"


def test_the_api_refuses_a_campaign_envelope(stack: Stack) -> None:
    body = json.loads(row(1))
    answer = stack.invoke(api_event(json.dumps(body), headers={"Content-Type": "application/json"}))

    assert answer["statusCode"] == 400
    assert "nxwa_campaign" in answer["body"]
    assert sent_to(stack) == []


def test_a_batch_of_one_campaigns_rows_costs_three_requests_more_than_plain_messages(
    stack: Stack, clock: Clock
) -> None:
    """The sender's extra cost per campaign batch: one status read (none while cached), one INSERT request for the
    rows' items, one ADD for the counts."""
    import runtime

    seen: Counter[str] = Counter()
    runtime.get().delivery.store.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.update([model.name])
    )
    for n in range(10):
        stack.enqueue(message(f"86139000000{n:02d}") | {"idempotency_key": f"plain-{n}"})
    stack.run_batch()
    plain = Counter(seen)
    seen.clear()
    create(stack, rows=20)
    for n in range(1, 21):
        stack.enqueue(row(n, f"86137000000{n:02d}"))

    stack.run_batch()
    first = Counter(seen)
    seen.clear()
    stack.run_batch()  # within the 2 s the status is cached

    assert first - plain == Counter({"BatchGetItem": 1, "BatchExecuteStatement": 1, "UpdateItem": 1})
    assert plain - first == Counter() and plain - seen == Counter()
    assert seen - plain == Counter({"BatchExecuteStatement": 1, "UpdateItem": 1})
    assert counts(stack)["sent"] == 20


def delivered(message_id: str, status: str = "delivered", after: int = 60, **extra: Any) -> dict[str, Any]:
    """NXCloud's status callback: the message's ``status`` ``after`` seconds from now (after its acceptance)."""
    entry = {"id": message_id, "status": status, "timestamp": str(int(time.time()) + after), **extra}
    return {
        "statuses": [entry | {"recipient_id": "8613800000000"}],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }


def clicked(message_id: str) -> dict[str, Any]:
    """NXCloud's button click callback, in reply to the message."""
    entry = {
        "from": "8613800000000",
        "id": "evt-1",
        "timestamp": str(int(time.time()) + 90),
        "type": "button",
        "button": {"payload": "yes", "text": "Yes"},
        "context": {"from": "8618512348399", "id": message_id},
    }
    return {
        "contacts": [{"wa_id": "8613800000000", "profile": {"name": "David"}}],
        "messages": [entry],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }


def test_a_campaign_messages_status_and_click_events_carry_the_campaign_and_ref(stack: Stack, clock: Clock) -> None:
    create(stack, rows=2)
    stack.enqueue(row(1, "8613800000000", ref="cust-1"))
    run_until_drained(stack, clock)
    message_id = str(outcomes(stack)[1].message_id)

    assert stack.call_webhook(delivered(message_id))["statusCode"] == 200
    assert stack.call_webhook(clicked(message_id))["statusCode"] == 200
    stack.publish()

    by_type = {e["detail-type"]: e["detail"] for e in stack.events()}
    status, click = by_type["WhatsApp Message Status Changed"], by_type["WhatsApp Template Button Clicked"]
    assert (status["status"], status["campaign_id"], status["ref"]) == ("delivered", CID, "cust-1")
    assert (click["message_id"], click["campaign_id"], click["ref"]) == (message_id, CID, "cust-1")


def test_a_plain_messages_events_name_no_campaign(stack: Stack, clock: Clock) -> None:
    stack.enqueue(message() | {"idempotency_key": "plain-1"})
    stack.run_batch()
    [sent] = [r for r in stack.simulator.requests if r.accepted]
    message_id = str(sent.message_id)
    assert stack.call_webhook(delivered(message_id))["statusCode"] == 200
    stack.publish()

    [event] = stack.events()
    assert "campaign_id" not in event["detail"] and "ref" not in event["detail"]


def test_the_webhook_counts_a_campaign_messages_new_statuses_once(stack: Stack, clock: Clock) -> None:
    create(stack, rows=3)
    for n in (1, 2, 3):
        stack.enqueue(row(n))
    run_until_drained(stack, clock)
    ids = [str(outcomes(stack)[n].message_id) for n in (1, 2, 3)]
    undeliverable = {"errors": [{"code": 131026, "title": "Message undeliverable"}]}

    for body in (
        delivered(ids[0]),
        delivered(ids[0]),  # NXCloud repeats a callback: counted once
        delivered(ids[0], "read", 90),
        delivered(ids[1], "read", 90),  # read before its delivered: read is delivered too
        delivered(ids[1], "delivered", 60),  # which then changes nothing
        delivered(ids[2], "failed", 60, **undeliverable),
    ):
        assert stack.call_webhook(body)["statusCode"] == 200

    assert counts(stack) == {"rows": 3, "queued": 3, "sent": 3, "delivered": 2, "read": 2, "failed": 1}


def test_a_plain_messages_statuses_count_in_no_campaign(stack: Stack, clock: Clock) -> None:
    create(stack, rows=1)
    stack.enqueue(message() | {"idempotency_key": "plain-1"})
    stack.run_batch()
    [sent] = [r for r in stack.simulator.requests if r.accepted]

    assert stack.call_webhook(delivered(str(sent.message_id)))["statusCode"] == 200
    assert counts(stack) == {"rows": 1, "queued": 1}


def test_a_plain_message_with_a_campaign_rows_key_is_refused_on_either_path(stack: Stack, clock: Clock) -> None:
    """A campaign row's key (campaign:<id>:<digits>) is the row's one send: a plain message carrying it would take
    that send (the row then answered from the table, or refused as the key reused). Only an envelope may carry it."""
    create(stack, rows=1)
    to = NUMBERS[0]
    key = message_key(CID, to)
    stack.enqueue(message(to) | {"idempotency_key": key})
    body = json.dumps(message(to))
    answer = stack.invoke(api_event(body, headers={"Content-Type": "application/json", "Idempotency-Key": key}))

    run_until_drained(stack, clock)

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["code"] == "reserved_key"
    [letter] = stack.dead_letters().values()
    assert (letter["attributes"]["reason"], letter["attributes"]["error_code"]) == ("invalid_message", "reserved_key")
    assert sent_to(stack) == []
    stack.enqueue(row(1))  # the row itself still goes, once
    run_until_drained(stack, clock)
    assert sent_to(stack) == [to]
