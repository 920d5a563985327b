"""Meta's per-user marketing limit (131049) end to end: the send, the failed callback through the webhook, the
one-time schedule in moto's Scheduler, the schedule fired by the local due-schedules runner (a controlled clock:
"25 hours later" without waiting), the retry through the sender to the NXCloud simulator, one timeline in
GET /messages/{id}, and the events the publisher puts on the bus (docs/audience.md, "Meta's marketing limit").

Callback bodies are written out here in NXCloud's shapes, not built by the code under test.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from local_stack.schedules import DueSchedules, due_at
from tests.stack import Stack, message

HOUR = 3_600
LATER = 25 * HOUR
"""Past the default delay (24 hours): when the runner is told it is this much later, the retry is due."""
TEMPLATES = [
    {
        "id": "1",
        "name": "order_update",
        "language": "en_US",
        "category": "UTILITY",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "Your order {{1}} has shipped."}],
    },
    {
        "id": "2",
        "name": "weekend_offer",
        "language": "en_US",
        "category": "MARKETING",
        "status": "APPROVED",
        "components": [{"type": "BODY", "text": "This weekend only: {{1}} off everything."}],
    },
]


def offer(key: str) -> dict[str, Any]:
    """A marketing message (the catalogue says so)."""
    body = message(
        template={
            "name": "weekend_offer",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "20%"}]}],
        }
    )
    return body | {"idempotency_key": key}


@pytest.fixture(autouse=True)
def _catalogue(stack: Stack) -> None:
    stack.simulator.set_templates("app1", "8618512348399", TEMPLATES)


def failed_131049(message_id: str) -> dict[str, Any]:
    return {
        "statuses": [
            {
                "id": message_id,
                "status": "failed",
                "timestamp": str(int(time.time()) + 5),
                "recipient_id": "8613800000000",
                "errors": [
                    {
                        "code": 131049,
                        "title": "This message was not delivered to maintain healthy ecosystem engagement.",
                    }
                ],
            }
        ],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }


def delivered(message_id: str) -> dict[str, Any]:
    body = failed_131049(message_id)
    body["statuses"][0] = {k: v for k, v in body["statuses"][0].items() if k != "errors"} | {"status": "delivered"}
    return body


def send(stack: Stack, body: dict[str, Any]) -> str:
    """Enqueue, run one batch; NXCloud's message id of the message."""
    stack.enqueue(body)
    _, response = stack.run_batch()
    assert response == {"batchItemFailures": []}
    return str(view(stack, str(body["idempotency_key"]))["message_id"])


def view(stack: Stack, message_id: str) -> dict[str, Any]:
    from local_stack.lambda_events import api_event

    answer = stack.invoke(api_event(None, method="GET", path=f"/messages/{message_id}"))
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def callback(stack: Stack, body: dict[str, Any]) -> None:
    answer = stack.call_webhook(body)
    assert answer["statusCode"] == 200, answer
    assert stack.peek(stack.resources.kept_callbacks_queue_url) == []  # stored, not kept for replay


def runner(stack: Stack) -> DueSchedules:
    res = stack.resources
    return DueSchedules(res.client("scheduler"), stack.sqs, res.retry_group)


def status_events(stack: Stack) -> list[dict[str, Any]]:
    stack.publish()
    return [e["detail"] for e in stack.events() if e["detail-type"] == "WhatsApp Message Status Changed"]


def test_a_marketing_message_that_meets_the_limit_is_scheduled_once_fired_later_and_sent_as_the_same_message(
    stack: Stack,
) -> None:
    first = send(stack, offer("promo-1"))
    before = time.time()

    callback(stack, failed_131049(first))
    callback(stack, failed_131049(first))  # NXCloud repeats a callback: still one schedule

    [schedule] = runner(stack).pending()
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert schedule["ActionAfterCompletion"] == "DELETE"
    assert schedule["ScheduleExpressionTimezone"] == "UTC"
    assert schedule["Target"]["Arn"] == stack.resources.send_queue_arn
    assert schedule["Target"]["RoleArn"] == stack.resources.retry_role_arn
    due = due_at(schedule["ScheduleExpression"])
    assert due is not None and before + 24 * HOUR - 1 <= due <= time.time() + 24 * HOUR
    scheduled = view(stack, first)
    assert scheduled["status"] == "retry_scheduled"
    assert [e["status"] for e in scheduled["timeline"]] == ["accepted", "failed", "retry_scheduled"]
    assert scheduled["errors"] == [{"code": 131049, "title": scheduled["errors"][0]["title"]}]
    events = status_events(stack)
    assert [e["status"] for e in events] == ["retry_scheduled"]  # never "failed": a fallback must not fire
    assert events[0]["retry"]["attempt"] == 1

    assert runner(stack).fire_due() == []  # not due yet
    fired = runner(stack).fire_due(now=time.time() + LATER)
    assert len(fired) == 1
    assert runner(stack).pending() == []  # deleted once it ran
    _, response = stack.run_batch()
    assert response == {"batchItemFailures": []}
    assert stack.queue_depth() == 0

    sent = stack.simulator.accepted
    assert len(sent) == 2
    assert sent[0].body["template"] == sent[1].body["template"]
    assert sent[0].body["to"] == sent[1].body["to"]
    retried = view(stack, first)
    second = retried["attempts"][1]["message_id"]
    assert second != first
    assert retried["message_id"] == first
    assert retried["status"] == "accepted"
    assert [(e["status"], e.get("attempt")) for e in retried["timeline"]] == [
        ("accepted", None),
        ("failed", None),
        ("retry_scheduled", None),
        ("accepted", 1),
    ]
    assert view(stack, second) == retried  # the retry's own id answers with the same, one timeline

    callback(stack, delivered(second))
    assert view(stack, first)["status"] == "delivered"
    [event] = status_events(stack)
    assert (event["message_id"], event["status"], event["retry_of"], event["attempt"]) == (
        second,
        "delivered",
        first,
        1,
    )


def test_retries_used_up_a_second_131049_is_final(stack: Stack) -> None:
    first = send(stack, offer("promo-2"))
    callback(stack, failed_131049(first))
    runner(stack).fire_due(now=time.time() + LATER)
    stack.run_batch()
    second = view(stack, first)["attempts"][1]["message_id"]

    callback(stack, failed_131049(second))

    assert runner(stack).pending() == []
    final = view(stack, first)
    assert final["status"] == "failed"
    assert [a["status"] for a in final["attempts"]] == ["retry_scheduled", "failed"]
    assert [e["status"] for e in status_events(stack)] == ["retry_scheduled", "failed"]


def test_a_utility_message_that_fails_with_131049_is_final(stack: Stack) -> None:
    first = send(stack, message(idempotency_key="otp-1"))  # order_update: UTILITY in the catalogue

    callback(stack, failed_131049(first))

    assert runner(stack).pending() == []
    assert view(stack, first)["status"] == "failed"
    assert [e["status"] for e in status_events(stack)] == ["failed"]


def test_retry_hours_0_turns_the_retry_off(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.stack import reset_function_runtime

    monkeypatch.setenv("MARKETING_LIMIT_RETRY_HOURS", "0")
    reset_function_runtime()
    first = send(stack, offer("promo-3"))

    callback(stack, failed_131049(first))

    assert runner(stack).pending() == []
    assert view(stack, first)["status"] == "failed"


def test_a_schedule_delivered_twice_is_sent_once(stack: Stack) -> None:
    first = send(stack, offer("promo-4"))
    callback(stack, failed_131049(first))
    [schedule] = runner(stack).pending()
    stack.enqueue(schedule["Target"]["Input"])
    stack.enqueue(schedule["Target"]["Input"])

    stack.run_batch()
    stack.run_batch()

    assert len(stack.simulator.accepted) == 2  # the original and one retry
    assert stack.dead_letters() == {}


def test_a_forged_retry_marker_is_dead_lettered_unsent(stack: Stack) -> None:
    """A customer's message that carries a retry envelope of its own making: no retry was scheduled for the message it
    names, so it is refused whole (never sent, never attached to that message's timeline)."""
    first = send(stack, offer("promo-5"))
    forged = {
        "nxwa_retry": {"original_message_id": first, "after": first, "attempt": 1},
        "message": offer("promo-5#retry1"),
    }
    stack.enqueue(json.dumps(forged))

    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert len(stack.simulator.accepted) == 1
    [dead] = stack.dead_letters().values()
    assert dead["attributes"]["error_code"] == "invalid_retry"
    assert "attempts" not in view(stack, first)


def test_the_scheduled_retry_is_checked_against_the_suppression_list(stack: Stack) -> None:
    """An opt-out stored while the retry waits stops it: the retry is a send like any other."""
    first = send(stack, offer("promo-6"))
    callback(stack, failed_131049(first))
    stack.call_webhook(
        {
            "messages": [
                {
                    "from": "8613800000000",
                    "id": "click-1",
                    "timestamp": str(int(time.time())),
                    "type": "button",
                    "button": {"payload": "Stop promotions", "text": "Stop promotions"},
                    "context": {"from": "8618512348399", "id": first},
                }
            ],
            "business_phone": "8618512348399",
            "messaging_product": "whatsapp",
        }
    )
    runner(stack).fire_due(now=time.time() + LATER)

    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert len(stack.simulator.accepted) == 1


def test_the_runner_reads_at_expressions_as_utc() -> None:
    assert due_at("at(2026-12-07T08:00:00)") == datetime(2026, 12, 7, 8, tzinfo=UTC).timestamp()
    assert due_at("rate(5 minutes)") is None
