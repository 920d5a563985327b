"""The marketing frequency cap in the real handler, both triggers, against moto's server and the simulator
(docs/audience.md, "The marketing frequency cap"): ``MARKETING_CAP_PER_RECIPIENT=1/24h``, the simulator's catalogue
says each template's category, and what reaches the simulator's send endpoint is what was sent.

A marketing message to a recipient at the cap is skipped (reason ``frequency_cap``): never sent, never claimed,
never dead-lettered, deleted from the queue, recorded so ``GET /messages/{key}`` says why, counted in
``MessagesSkipped``; the API answers 422 ``frequency_capped``. Utility and authentication templates are never capped.
The window's own arithmetic (rolling, to the second) is tests/unit/test_delivery_screen.py's, with a controlled clock.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest

from nxcloud_wa.suppressions import encode_sends

from .conftest import Stack
from .test_suppression_check import BUSINESS, FREE, catalogue, claims, get, named, sent_to
from .test_template_check import log_lines, metrics

DAY = 24 * 3600


@pytest.fixture
def capped(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with a cap of one marketing template a day, and a catalogue of one marketing, one utility and one
    authentication template."""
    monkeypatch.setenv("MARKETING_CAP_PER_RECIPIENT", "1/24h")
    catalogue(stack, promo="MARKETING", receipt="UTILITY", otp="AUTHENTICATION")
    return stack


def count_item(stack: Stack) -> dict[str, Any] | None:
    client = stack.resources.client("dynamodb")
    key = {"id": {"S": f"cap#{BUSINESS}#{FREE}"}}
    item: dict[str, Any] | None = client.get_item(TableName=stack.resources.suppressions_table, Key=key).get("Item")
    return item


def test_queue_the_second_marketing_message_of_the_day_is_skipped_unsent_unclaimed_and_found(
    capped: Stack, capsys: pytest.CaptureFixture[str], captured_logs: io.StringIO
) -> None:
    capped.enqueue(named(FREE), {"idempotency_key": "promo-1"})
    capped.run_batch()
    capped.enqueue(named(FREE), {"idempotency_key": "promo-2"})
    capped.enqueue(named(FREE, "receipt"), {"idempotency_key": "receipt-1"})  # utility: never capped

    _, response = capped.run_batch()

    assert response == {"batchItemFailures": []}  # deleted from the queue: the skip is not a failure
    assert sent_to(capped) == [FREE, FREE]  # the first promo and the receipt
    assert capped.dlq_messages() == [] and capped.queue_depth() == 0
    assert claims(capped) == 2  # the capped message was never claimed
    view = json.loads(get(capped, "promo-2")["body"])
    assert view["status"] == "skipped" and view["skipped"] == {"reason": "frequency_cap", "cap": "1/24h"}
    assert metrics(capsys.readouterr().out)["MessagesSkipped"] == 1
    [line] = [entry for entry in log_lines(captured_logs) if entry.get("outcome") == "skipped"]
    assert (line["reason"], line["cap"]) == ("frequency_cap", "1/24h") and FREE not in json.dumps(line)
    item = count_item(capped)
    assert item is not None and len(item["sent"]["M"]) == 1  # the receipt is not counted


def test_the_count_is_kept_with_delivery_tracking_off(capped: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESSAGES_TABLE", "")  # DeliveryTracking=disabled
    capped.enqueue(named(FREE))
    capped.enqueue(named(FREE))

    _, response = capped.run_batch()

    assert response == {"batchItemFailures": []}
    assert sent_to(capped) == [FREE]  # the batch's second message to the pair is over the cap
    assert count_item(capped) is not None


def test_a_send_older_than_the_window_no_longer_counts(capped: Stack) -> None:
    client = capped.resources.client("dynamodb")
    long_ago = int(time.time()) - DAY - 60
    item = encode_sends((BUSINESS, FREE), {"earlier": long_ago}, long_ago + DAY)  # expired, not yet deleted (TTL)
    client.put_item(TableName=capped.resources.suppressions_table, Item=item)
    capped.enqueue(named(FREE))

    capped.run_batch()

    assert sent_to(capped) == [FREE]
    stored = count_item(capped)
    assert stored is not None and "earlier" not in stored["sent"]["M"]  # trimmed


def test_api_a_call_repeated_with_its_key_is_answered_from_its_send_not_capped(capped: Stack) -> None:
    first = capped.call_api(named(FREE), {"Idempotency-Key": "api-promo-1"})

    again = capped.call_api(named(FREE), {"Idempotency-Key": "api-promo-1"})

    assert first["statusCode"] == again["statusCode"] == 200
    assert again["multiValueHeaders"].get("Idempotent-Replayed") == ["true"] and sent_to(capped) == [FREE]


def test_api_a_capped_recipient_is_answered_422_frequency_capped_and_found(capped: Stack) -> None:
    assert capped.call_api(named(FREE), {"Idempotency-Key": "api-promo-1"})["statusCode"] == 200

    answer = capped.call_api(named(FREE), {"Idempotency-Key": "api-promo-2"})

    assert answer["statusCode"] == 422
    body = json.loads(answer["body"])
    assert (body["error"], body["code"]) == ("frequency_capped", "1/24h")
    assert FREE not in answer["body"]
    assert sent_to(capped) == [FREE] and capped.dlq_messages() == [] and claims(capped) == 1
    assert json.loads(get(capped, "api-promo-2")["body"])["skipped"]["reason"] == "frequency_cap"
    assert capped.call_api(named(FREE, "otp"), {"Idempotency-Key": "api-otp-1"})["statusCode"] == 200
