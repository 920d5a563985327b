"""The suppression check in the real handler, both triggers, against moto's server and the simulator (docs/audience.md,
"Enforcement"): the stack's suppression list holds entries for the secret's business number, the simulator's
catalogue says each template's category, and what reaches the simulator's send endpoint is what was sent.

A suppressed message is skipped: never sent, never claimed, never dead-lettered, deleted from the queue, recorded so
``GET /messages/{key}`` says why; the API answers 422 ``recipient_suppressed``.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

import pytest

import runtime
from local_stack.lambda_events import api_event
from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore
from tests.page_templates import ORDER_UPDATE, template

from .conftest import SECRET, Stack, message
from .test_template_check import log_lines, metrics

BUSINESS = str(SECRET["business_phone"])
ACCOUNT = (str(SECRET["appkey"]), BUSINESS)
OPTED_OUT = "8613800000001"
FREE = "8613800000002"


def catalogue(stack: Stack, **categories: str) -> None:
    """The account's catalogue: each named template (en_US, one body variable) in its category."""
    templates = [
        {**template(name, "en_US", {"type": "BODY", "text": "Hi {{1}}"}), "category": category}
        for name, category in categories.items()
    ]
    stack.simulator.set_templates(*ACCOUNT, templates)


def suppress(stack: Stack, recipient: str, scope: Scope = Scope.MARKETING, reason: Reason = Reason.OPTED_OUT) -> None:
    store = SuppressionStore(stack.resources.client("dynamodb"), stack.resources.suppressions_table)
    entry = Suppression(BUSINESS, recipient, scope, reason, "Stop promotions", "2026-12-06T00:00:00.000+00:00")
    assert store.put(entry)


def sent_to(stack: Stack) -> list[str]:
    return [r.body["to"] for r in stack.simulator.requests if r.body is not None and r.accepted]


def named(to: str, name: str = "promo") -> dict[str, Any]:
    return message(to, template={**message()["template"], "name": name})


def get(stack: Stack, message_id: str) -> Any:
    return stack.invoke(api_event(None, method="GET", path=f"/messages/{message_id}"))


def claims(stack: Stack) -> int:
    table = stack.resources.table_name
    return int(stack.resources.client("dynamodb").scan(TableName=table, Select="COUNT")["Count"])


@pytest.fixture
def listed(stack: Stack) -> Stack:
    """The stack (TEMPLATE_CHECK=off, SUPPRESSION_CHECK=enforce by default) with a marketing opt-out for OPTED_OUT
    and a catalogue of one marketing, one utility and one authentication template."""
    catalogue(stack, promo="MARKETING", receipt="UTILITY", otp="AUTHENTICATION")
    suppress(stack, OPTED_OUT)
    return stack


# --- the queue


def test_queue_a_suppressed_marketing_message_is_skipped_deleted_unsent_unclaimed_and_found(
    listed: Stack, capsys: pytest.CaptureFixture[str], captured_logs: io.StringIO
) -> None:
    listed.enqueue(named(OPTED_OUT), {"idempotency_key": "promo-1"})
    listed.enqueue(named(FREE), {"idempotency_key": "promo-2"})

    _, response = listed.run_batch()

    assert response == {"batchItemFailures": []}  # both deleted from the queue: the skip is not a failure
    assert sent_to(listed) == [FREE]
    assert listed.dlq_messages() == [] and listed.queue_depth() == 0
    assert claims(listed) == 1  # only the sent message's outcome: the skipped one was never claimed
    found = get(listed, "promo-1")
    assert found["statusCode"] == 200
    view = json.loads(found["body"])
    assert view["status"] == "skipped" and view["idempotency_key"] == "promo-1"
    assert view["skipped"] == {
        "reason": "suppressed",
        "suppression_reason": "opted_out",
        "scope": "marketing",
        "source": "Stop promotions",
    }
    assert view["to"] != OPTED_OUT and view["to"].endswith(OPTED_OUT[-4:])  # masked
    assert metrics(capsys.readouterr().out)["MessagesSkipped"] == 1
    [line] = [entry for entry in log_lines(captured_logs) if entry.get("outcome") == "skipped"]
    assert line["suppression_reason"] == "opted_out" and OPTED_OUT not in json.dumps(line)


def test_an_all_entry_skips_utility_and_a_marketing_one_does_not(listed: Stack) -> None:
    suppress(listed, FREE, Scope.ALL, Reason.UNDELIVERABLE)
    listed.enqueue(named(OPTED_OUT, "receipt"), {"idempotency_key": "receipt-1"})  # marketing entry: sent
    listed.enqueue(named(FREE, "otp"), {"idempotency_key": "otp-1"})  # all entry: skipped

    _, response = listed.run_batch()

    assert response == {"batchItemFailures": []}
    assert sent_to(listed) == [OPTED_OUT]
    assert json.loads(get(listed, "otp-1")["body"])["skipped"]["suppression_reason"] == "undeliverable"


def test_a_template_the_catalogue_does_not_know_is_treated_as_marketing(listed: Stack) -> None:
    listed.enqueue(named(OPTED_OUT, "not_in_the_catalogue"))

    _, response = listed.run_batch()

    assert response == {"batchItemFailures": []}
    assert sent_to(listed) == [] and listed.dlq_messages() == []


def test_with_getTemplate_down_the_category_is_unknown_so_marketing(listed: Stack) -> None:
    listed.simulator.clear_templates()
    listed.enqueue(named(OPTED_OUT, "receipt"))

    listed.run_batch()

    assert sent_to(listed) == []


def test_with_the_template_check_on_a_suppressed_message_is_skipped_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPLATE_CHECK", "enforce")
    stack.simulator.set_templates(*ACCOUNT, [ORDER_UPDATE])  # the page's example: category UTILITY
    suppress(stack, OPTED_OUT, Scope.ALL, Reason.MANUAL)
    from .test_template_check import order_update

    stack.enqueue(order_update(to=OPTED_OUT), {"idempotency_key": "fits-1"})
    stack.enqueue(order_update(to=FREE), {"idempotency_key": "fits-2"})
    _, response = stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert sent_to(stack) == [FREE]
    assert json.loads(get(stack, "fits-1")["body"])["status"] == "skipped"


def test_suppression_check_off_sends_to_a_suppressed_recipient(listed: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPPRESSION_CHECK", "off")
    listed.enqueue(named(OPTED_OUT))

    listed.run_batch()

    assert sent_to(listed) == [OPTED_OUT]


def test_one_read_of_the_list_per_batch(listed: Stack) -> None:
    rt = runtime.get()
    seen: Counter[str] = Counter()
    assert rt.delivery.screen is not None
    rt.delivery.screen.store.client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: seen.update([model.name])
    )
    for n in range(10):
        listed.enqueue(named(f"86138000001{n:02d}"))
    listed.enqueue(named(OPTED_OUT))  # an eleventh: the next batch

    listed.run_batch()
    assert seen["BatchGetItem"] == 1 and len(sent_to(listed)) == 10
    listed.run_batch()
    assert seen["BatchGetItem"] == 2 and len(sent_to(listed)) == 10


# --- the list cannot be read


def down(**_: Any) -> Any:
    from botocore.exceptions import ClientError

    raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchGetItem")


def test_an_unreadable_list_retries_marketing_and_sends_utility_and_authentication(
    listed: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = runtime.get()
    assert rt.delivery.screen is not None
    monkeypatch.setattr(rt.delivery.screen.store.client, "batch_get_item", down)
    promo = listed.enqueue(named(FREE, "promo"))
    listed.enqueue(named(OPTED_OUT, "receipt"))
    listed.enqueue(named(OPTED_OUT, "otp"))

    _, response = listed.run_batch()

    assert response == {"batchItemFailures": [{"itemIdentifier": promo}]}  # the queue redelivers it
    assert sent_to(listed) == [OPTED_OUT, OPTED_OUT]  # utility and authentication: sent unchecked
    found = metrics(capsys.readouterr().out)
    assert found["SuppressionCheckFailed"] == 3  # 2 sent, 1 retried (by Action)

    monkeypatch.undo()
    listed.run_batch()  # readable again: the marketing message goes out
    assert FREE in sent_to(listed)


def test_api_an_unreadable_list_answers_503_for_marketing(listed: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime.get()
    assert rt.delivery.screen is not None
    monkeypatch.setattr(rt.delivery.screen.store.client, "batch_get_item", down)

    answer = listed.call_api(named(FREE))

    assert answer["statusCode"] == 503
    assert json.loads(answer["body"])["error"] == "suppressions_unavailable"
    assert sent_to(listed) == []


# --- the API


def test_api_a_suppressed_recipient_is_answered_422_recipient_suppressed_and_found(listed: Stack) -> None:
    answer = listed.call_api(named(OPTED_OUT), {"Idempotency-Key": "api-promo-1"})

    assert answer["statusCode"] == 422
    body = json.loads(answer["body"])
    assert body["error"] == "recipient_suppressed" and body["code"] == "opted_out"
    assert OPTED_OUT not in answer["body"]
    assert sent_to(listed) == [] and listed.dlq_messages() == [] and claims(listed) == 0
    assert json.loads(get(listed, "api-promo-1")["body"])["status"] == "skipped"


def test_api_respond_async_skips_through_the_queue(listed: Stack) -> None:
    answer = listed.call_api(named(OPTED_OUT), {"Prefer": "respond-async", "Idempotency-Key": "async-1"})
    assert answer["statusCode"] == 202

    _, response = listed.run_batch()

    assert response == {"batchItemFailures": []} and sent_to(listed) == []
    assert json.loads(get(listed, "async-1")["body"])["status"] == "skipped"


# --- the race


def test_an_entry_stored_before_the_batch_stops_it_and_one_stored_after_the_claim_does_not(listed: Stack) -> None:
    """docs/audience.md: a message claimed before the entry was stored may still go out; nothing claimed after."""
    rt = runtime.get()
    late = "8613800000003"
    real_send = rt.sender.send

    def send_then_opt_out(request: Any, credentials: Any = None) -> Any:
        suppress(listed, late)  # the opt-out lands while this message is in flight
        return real_send(request, credentials)

    listed.enqueue(named(late), {"idempotency_key": "in-flight"})
    rt.sender.send = send_then_opt_out  # type: ignore[method-assign]
    try:
        listed.run_batch()
    finally:
        rt.sender.send = real_send  # type: ignore[method-assign]
    assert sent_to(listed) == [late]  # claimed before the entry: it went out

    listed.enqueue(named(late), {"idempotency_key": "next"})
    listed.run_batch()
    assert sent_to(listed) == [late]  # the next one, checked after the entry: skipped
    assert json.loads(get(listed, "next")["body"])["status"] == "skipped"


# --- the stream


def test_a_skipped_message_publishes_no_event(listed: Stack) -> None:
    """docs/lifecycle.md: the stream's filter (template.yaml's, applied as Lambda applies it) hands the publisher
    ``status#`` and ``click#`` items only: a ``skip#`` item never invokes it, so no event and no cost."""
    listed.enqueue(named(OPTED_OUT), {"idempotency_key": "promo-quiet"})
    listed.run_batch()
    assert json.loads(get(listed, "promo-quiet")["body"])["status"] == "skipped"  # on the table, so on its stream

    assert listed.publish() == 0  # no record passed the filter: the publisher was not invoked
    assert listed.events() == []
