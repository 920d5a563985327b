"""The delivery lifecycle end to end: a sent message's record, NXCloud's callbacks through the webhook, the timeline
in the messages table, GET /messages/{id}, and the events the publisher puts on the bus from the table's stream.

Everything runs against moto's server (DynamoDB with its stream, SQS, EventBridge delivering to an SQS
queue, Secrets Manager) and the real handlers. Callback bodies are written out here in NXCloud's shapes (see
docs/nxcloud.md, "Webhook"), not built by the code under test.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from .conftest import WEBHOOK_TOKEN, Stack, message

T0 = int(time.time())
"""Callbacks report times after the send (Unix seconds, as strings on the wire): set for each test by ``_t0``."""


@pytest.fixture(autouse=True)
def _t0() -> None:
    """Callback times a minute after this test starts, so they always follow its sends' acceptance."""
    global T0
    T0 = int(time.time()) + 60


def at(offset: int) -> str:
    """How the timeline writes the time T0 + offset."""
    return datetime.fromtimestamp(T0 + offset, UTC).isoformat(timespec="milliseconds")


def statuses(*entries: tuple[str, str, int], **extra: Any) -> dict[str, Any]:
    """A status callback body: (message id, status, seconds after T0) per entry."""
    body: dict[str, Any] = {
        "statuses": [
            {
                "id": mid,
                "status": status,
                "timestamp": str(T0 + offset),
                "recipient_id": "8613800000000",
                "conversation": {"id": "conv-1", "origin": {"type": "business_initiated"}},
                **extra,
            }
            for mid, status, offset in entries
        ],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }
    return body


def click(event_id: str, context_id: str | None, payload: str = "yes", offset: int = 30) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "from": "8613800000000",
        "id": event_id,
        "timestamp": str(T0 + offset),
        "type": "button",
        "button": {"payload": payload, "text": "Yes, confirm"},
        "wa_ext": json.dumps(
            {"templateId": 42, "templateName": "order_update", "components": [{"type": "body", "parameters": []}]}
        ),
    }
    if context_id:
        entry["context"] = {"from": "8618512348399", "id": context_id}
    return {
        "contacts": [{"wa_id": "8613800000000", "profile": {"name": "David"}}],
        "messages": [entry],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }


def send_one(stack: Stack, key: str = "order-42") -> str:
    """Send a message through the queue; return NXCloud's message_id."""
    stack.enqueue(message(), {"idempotency_key": key})
    _, response = stack.run_batch()
    assert response == {"batchItemFailures": []}
    found = get(stack, key)
    assert found["statusCode"] == 200
    return str(json.loads(found["body"])["message_id"])


def get(stack: Stack, message_id: str) -> Any:
    from local_stack.lambda_events import api_event

    return stack.invoke(api_event(None, method="GET", path=f"/messages/{message_id}"))


def view(stack: Stack, message_id: str) -> dict[str, Any]:
    answer = get(stack, message_id)
    assert answer["statusCode"] == 200, answer
    return dict(json.loads(answer["body"]))


def ok(answer: dict[str, Any], received: int) -> None:
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"received": received}


# --- the send's record and the query API ---------------------------------------------------------------------------


def test_a_sent_message_can_be_looked_up_at_once_by_message_id_and_by_key(stack: Stack) -> None:
    message_id = send_one(stack)

    by_id, by_key = view(stack, message_id), view(stack, "order-42")

    assert by_id == by_key
    assert by_id["message_id"] == message_id
    assert by_id["idempotency_key"] == "order-42"
    assert (by_id["status"], by_id["matched"]) == ("accepted", True)
    assert by_id["template"] == {"name": "order_update", "language": "en_US"}
    assert by_id["to"] == "+86*******0000"
    assert [entry["status"] for entry in by_id["timeline"]] == ["accepted"]
    assert by_id["errors"] == by_id["buttons"] == []


def test_the_local_messages_table_is_the_templates_with_no_index(stack: Stack) -> None:
    """The local stack creates the messages table from template.yaml's definition: the key lookups below run against
    a table without the by_idempotency_key index, as a deployed one now is."""
    from local_stack.template import resource_properties

    table = stack.resources.client("dynamodb").describe_table(TableName=stack.resources.messages_table)["Table"]
    declared = resource_properties("MessagesTable")
    assert table["KeySchema"] == declared["KeySchema"]
    assert table["AttributeDefinitions"] == declared["AttributeDefinitions"]
    assert not table.get("GlobalSecondaryIndexes") and "GlobalSecondaryIndexes" not in declared


def test_a_key_finds_its_message_through_its_idempotency_record_while_the_record_lives(stack: Stack) -> None:
    """GET /messages/{key} reads the key's idempotency record for the message id. Once DynamoDB's TTL deletes the
    record (IDEMPOTENCY_EXPIRY_SECONDS after the send, 24 h by default), the key answers the 404 of an unknown id and
    the message id still answers, until MESSAGE_RETENTION_DAYS (docs/lifecycle.md)."""
    from nxcloud_wa.idempotency_keys import record_id

    message_id = send_one(stack, "order-77")
    by_id = view(stack, message_id)
    assert view(stack, "order-77") == by_id

    dynamodb = stack.resources.client("dynamodb")
    dynamodb.delete_item(TableName=stack.resources.table_name, Key={"id": {"S": record_id("order-77")}})

    gone = get(stack, "order-77")
    assert (gone["statusCode"], json.loads(gone["body"])) == (404, json.loads(get(stack, "no-such-message")["body"]))
    assert view(stack, message_id) == by_id


def test_an_unknown_id_is_a_404(stack: Stack) -> None:
    answer = get(stack, "no-such-message")
    assert answer["statusCode"] == 404
    assert json.loads(answer["body"])["error"] == "not_found"


@pytest.mark.parametrize("message_id", ["%C3%84%F1%A6%A7%B6%7FU%07j", "a/b"])
def test_an_id_no_route_takes_is_a_404_not_a_503(stack: Stack, message_id: str) -> None:
    """API Gateway hands the path over decoded; the resolver's route parameter takes no control character or slash."""
    from urllib.parse import unquote

    answer = get(stack, unquote(message_id))
    assert answer["statusCode"] == 404, answer
    assert json.loads(answer["body"])["error"] == "not_found"


# --- callbacks -----------------------------------------------------------------------------------------------------


def test_callbacks_in_order_build_the_timeline_and_one_event_per_change(stack: Stack) -> None:
    message_id = send_one(stack)
    for status, offset in (("sent", 1), ("delivered", 2), ("read", 5)):
        ok(stack.call_webhook(statuses((message_id, status, offset))), 1)
    stack.publish()

    found = view(stack, message_id)
    assert found["status"] == "read"
    assert [e["status"] for e in found["timeline"]] == ["accepted", "sent", "delivered", "read"]
    assert found["timeline"][-1]["at"] == at(5)
    events = stack.events()
    assert [e["detail"]["status"] for e in events] == ["sent", "delivered", "read"]
    assert [e["detail"]["previous_status"] for e in events] == ["accepted", "sent", "delivered"]
    first = events[0]
    assert (first["source"], first["detail-type"]) == ("nxcloud.whatsapp", "WhatsApp Message Status Changed")
    assert first["detail"]["idempotency_key"] == "order-42"
    assert first["detail"]["template"] == {"name": "order_update", "language": "en_US"}
    assert first["detail"]["recipient"] == "8613800000000"  # the customer's own bus: the full number
    assert first["detail"]["unmatched"] is False
    assert len({e["detail"]["dedupe_id"] for e in events}) == 3


def test_late_duplicated_and_reordered_callbacks_end_the_same(stack: Stack) -> None:
    message_id = send_one(stack)
    body = statuses((message_id, "read", 5), (message_id, "sent", 1), (message_id, "read", 6))
    ok(stack.call_webhook(body), 3)
    ok(stack.call_webhook(statuses((message_id, "delivered", 2))), 1)
    ok(stack.call_webhook(statuses((message_id, "sent", 0))), 1)  # a duplicate that reports an earlier time
    stack.publish()

    found = view(stack, message_id)
    assert found["status"] == "read"
    times = {e["status"]: e["at"] for e in found["timeline"]}
    assert times["sent"] == at(0)  # the earliest time reported
    assert times["read"] == at(5)
    assert [e["detail"]["status"] for e in stack.events()] == ["read"]  # the only change of the current status


def test_a_failure_keeps_its_errors_and_outranks_what_came_before(stack: Stack) -> None:
    message_id = send_one(stack)
    ok(stack.call_webhook(statuses((message_id, "sent", 1))), 1)
    failed = statuses((message_id, "failed", 3), errors=[{"code": 131026, "title": "Message undeliverable"}])
    ok(stack.call_webhook(failed), 1)
    ok(stack.call_webhook(statuses((message_id, "delivered", 2))), 1)  # late: failed stays current
    stack.publish()

    found = view(stack, message_id)
    assert found["status"] == "failed"
    assert found["errors"] == [{"code": 131026, "title": "Message undeliverable"}]
    events = stack.events()
    assert [e["detail"]["status"] for e in events] == ["sent", "failed"]
    assert events[-1]["detail"]["errors"] == [{"code": 131026, "title": "Message undeliverable"}]


def test_a_failure_after_read_is_kept_but_publishes_nothing(stack: Stack) -> None:
    """``failed`` does not take precedence over ``read``: a subscriber's SMS fallback must not text someone who
    already read the message. The failure is still in the timeline and its errors in the answer."""
    message_id = send_one(stack)
    ok(stack.call_webhook(statuses((message_id, "delivered", 1), (message_id, "read", 2))), 2)
    failed = statuses((message_id, "failed", 3), errors=[{"code": 131026, "title": "Message undeliverable"}])
    ok(stack.call_webhook(failed), 1)
    ok(stack.call_webhook(statuses((message_id, "deleted", 4))), 1)
    stack.publish()

    found = view(stack, message_id)
    assert found["status"] == "read"
    assert [e["status"] for e in found["timeline"]] == ["accepted", "delivered", "read", "failed", "deleted"]
    assert found["errors"] == [{"code": 131026, "title": "Message undeliverable"}]
    assert [e["detail"]["status"] for e in stack.events()] == ["delivered", "read"]


def test_a_read_after_a_failure_becomes_current_and_is_published(stack: Stack) -> None:
    message_id = send_one(stack)
    failed = statuses((message_id, "failed", 3), errors=[{"code": 131026, "title": "Message undeliverable"}])
    ok(stack.call_webhook(failed), 1)
    ok(stack.call_webhook(statuses((message_id, "read", 4))), 1)
    stack.publish()

    assert view(stack, message_id)["status"] == "read"
    events = stack.events()
    assert [(e["detail"]["status"], e["detail"]["previous_status"]) for e in events] == [
        ("failed", "accepted"),
        ("read", "failed"),
    ]


def test_a_send_record_left_unread_is_handed_over_again_not_published_unmatched(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DynamoDB leaving the send records unprocessed after every retry (throttling) is a failed record, not a
    callback that matches no send."""
    from nxcloud_wa.timeline import SendRecords, Timeline

    message_id = send_one(stack)
    ok(stack.call_webhook(statuses((message_id, "delivered", 1))), 1)
    with monkeypatch.context() as throttled:
        throttled.setattr(Timeline, "send_records", lambda self, ids: SendRecords({}, frozenset(ids)))
        assert stack.publish() > 0
    assert stack.events() == []

    stack.publish()  # the stream hands the record over again
    [event] = stack.events()
    assert (event["detail"]["status"], event["detail"]["unmatched"]) == ("delivered", False)


def test_a_callback_for_an_id_we_never_sent_is_kept_and_flagged_unmatched(stack: Stack) -> None:
    ok(stack.call_webhook(statuses(("wamid.HBgNODYxMzgwMDAwMDAwMRUCABEYEjQ2QTlFRDQ4", "delivered", 2))), 1)
    stack.publish()

    found = view(stack, "wamid.HBgNODYxMzgwMDAwMDAwMRUCABEYEjQ2QTlFRDQ4")
    assert (found["status"], found["matched"], found["idempotency_key"]) == ("delivered", False, None)
    assert found["to"] == "+86*******0000"
    [event] = stack.events()
    assert event["detail"]["unmatched"] is True
    assert event["detail"]["previous_status"] is None


def test_button_clicks_join_their_message_once_each_and_become_events(stack: Stack) -> None:
    message_id = send_one(stack)
    ok(stack.call_webhook(click("evt-1", message_id)), 1)
    ok(stack.call_webhook(click("evt-1", message_id)), 1)  # NXCloud posting the same click again
    ok(stack.call_webhook(click("evt-2", None, payload="orphan")), 1)  # names no message
    stack.publish()

    found = view(stack, message_id)
    assert found["buttons"] == [{"payload": "yes", "text": "Yes, confirm", "at": at(30)}]
    events = [e for e in stack.events() if e["detail-type"] == "WhatsApp Template Button Clicked"]
    details = sorted((e["detail"] for e in events), key=lambda d: str(d["payload"]))
    assert [d["payload"] for d in details] == ["orphan", "yes"]
    linked = details[1]
    assert linked["message_id"] == message_id
    assert (linked["template_id"], linked["template_name"]) == ("42", "order_update")
    assert linked["parameters"] == [{"type": "body", "parameters": []}]
    assert details[0]["message_id"] is None


@pytest.mark.parametrize(
    "token", ["", "wrong-token-of-some-length-0123456789", WEBHOOK_TOKEN[:-1], WEBHOOK_TOKEN + "x"]
)
def test_a_wrong_token_is_a_404_and_nothing_else_happens(stack: Stack, token: str) -> None:
    answer = stack.call_webhook(statuses(("m-1", "delivered", 2)), token=token)

    assert answer["statusCode"] == 404
    assert WEBHOOK_TOKEN not in answer["body"]
    assert get(stack, "m-1")["statusCode"] == 404
    assert stack.peek(stack.resources.kept_callbacks_queue_url) == []


@pytest.mark.parametrize("secret_token", [None, "too-short-0123456789"])
def test_without_a_long_enough_token_in_the_secret_the_webhook_is_closed(
    stack: Stack, secret_token: str | None
) -> None:
    from aws_lambda_powertools.utilities import parameters

    from .conftest import SECRET

    secret = {k: v for k, v in SECRET.items() if k != "webhook_token"}
    if secret_token:
        secret["webhook_token"] = secret_token
    stack.resources.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.secret_id, SecretString=json.dumps(secret)
    )
    parameters.clear_caches()

    assert (
        stack.call_webhook(statuses(("m-1", "delivered", 2)), token=secret_token or WEBHOOK_TOKEN)["statusCode"] == 404
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "invalid_json"),
        ('["statuses"]', "invalid_shape"),
        ('{"statuses": []}', "invalid_shape"),
        ('{"statuses": [{"id": "m-1", "status": "pending", "timestamp": "1764403200"}]}', "invalid_shape"),
        ('{"statuses": [{"id": "m-1", "status": "read"}]}', "invalid_shape"),
    ],
)
def test_a_body_that_is_not_nxclouds_is_a_400_and_kept_with_its_reason(stack: Stack, body: str, reason: str) -> None:
    answer = stack.call_webhook(body)

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == reason
    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    assert kept["Body"] == body
    assert kept["MessageAttributes"]["reason"]["StringValue"] == reason


def test_an_oversized_body_is_a_413_and_its_first_64_kib_are_kept(stack: Stack) -> None:
    body = json.dumps(statuses(*[(f"m-{n}", "sent", n) for n in range(1200)]))
    assert len(body) > 64 * 1024

    answer = stack.call_webhook(body)

    assert answer["statusCode"] == 413
    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    assert kept["Body"] == body[: 64 * 1024]
    assert kept["MessageAttributes"]["reason"]["StringValue"] == "too_large"


def test_when_the_table_cannot_be_written_the_callback_is_kept_and_acknowledged(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook

    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table + "-missing")
    webhook.reset()
    body = json.dumps(statuses(("m-1", "delivered", 2)))

    ok(stack.call_webhook(body), 1)

    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    assert (kept["Body"], kept["MessageAttributes"]["reason"]["StringValue"]) == (body, "store_failed")


def test_when_nothing_can_keep_the_callback_the_answer_is_503(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import webhook

    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table + "-missing")
    monkeypatch.setenv("KEPT_CALLBACKS_QUEUE_URL", stack.resources.kept_callbacks_queue_url + "-missing")
    webhook.reset()

    assert stack.call_webhook(statuses(("m-1", "delivered", 2)))["statusCode"] == 503


def test_a_kept_callback_replayed_later_is_stored_once(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import webhook

    message_id = send_one(stack)
    body = json.dumps(statuses((message_id, "delivered", 2)))
    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table + "-missing")
    webhook.reset()
    ok(stack.call_webhook(body), 1)
    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table)
    webhook.reset()
    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)

    ok(stack.call_webhook(kept["Body"]), 1)  # what nxwa webhooks replay does
    ok(stack.call_webhook(kept["Body"]), 1)
    stack.publish()

    assert view(stack, message_id)["status"] == "delivered"
    assert [e["detail"]["status"] for e in stack.events()] == ["delivered"]


# --- the publisher -------------------------------------------------------------------------------------------------


def test_events_that_fail_to_publish_are_published_when_the_stream_hands_them_over_again(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import publisher

    message_id = send_one(stack)
    ok(stack.call_webhook(statuses((message_id, "delivered", 2))), 1)
    monkeypatch.setenv("EVENT_BUS_NAME", stack.resources.event_bus + "-missing")
    publisher.reset()
    monkeypatch.setattr(publisher.time, "sleep", lambda _: None)  # its backoff between retries
    stack.publish()
    assert stack.events() == []

    monkeypatch.setenv("EVENT_BUS_NAME", stack.resources.event_bus)
    publisher.reset()
    stack.publish()  # the event source mapping retries from the failed record

    [event] = stack.events()
    assert event["detail"]["status"] == "delivered"


def test_only_the_statuses_asked_for_are_published(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import publisher

    monkeypatch.setenv("PUBLISH_STATUSES", "failed,read")
    publisher.reset()
    message_id = send_one(stack)
    for status, offset in (("sent", 1), ("delivered", 2), ("read", 3)):
        ok(stack.call_webhook(statuses((message_id, status, offset))), 1)
    stack.publish()

    assert [e["detail"]["status"] for e in stack.events()] == ["read"]
