"""The template check in the real handler, both triggers, against moto and the simulator with a catalogue (the
getTemplate page's order_update example and the send page's example 3 template, under the secret's account).

With ``enforce`` a message that does not fit never reaches the simulator's send endpoint: dead-lettered from the
queue, 422 on the API, never claimed. With ``warn`` and ``off`` it does. When the catalogue cannot be fetched the
send goes ahead, counted (``TemplateCheckSkipped``) and logged.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.page_templates import ORDER_UPDATE, TEN_BTN4

from .conftest import SECRET, Stack, message

ACCOUNT = (str(SECRET["appkey"]), str(SECRET["business_phone"]))
MISMATCH = "template order_update (en_US) takes 3 body parameters, got 2"


def order_update(body_count: int = 3, to: str = "8613800000000", *, header: bool = True, **top: Any) -> dict[str, Any]:
    """A message for the page's order_update: image header, ``body_count`` texts, the URL button's parameter."""
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": f"v{i}"} for i in range(body_count)]},
        {"type": "button", "sub_type": "URL", "index": 0, "parameters": [{"type": "text", "text": "A-42"}]},
    ]
    template = {"name": "order_update", "language": {"code": "en_US"}, "components": components[0 if header else 1 :]}
    return message(to, template=template, **top)


@pytest.fixture
def checked(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The stack with the default mode (enforce) and the account's catalogue on its simulator."""
    monkeypatch.delenv("TEMPLATE_CHECK")
    stack.simulator.set_templates(*ACCOUNT, [ORDER_UPDATE, TEN_BTN4])
    return stack


def metrics(out: str) -> dict[str, float]:
    """The EMF metrics the invocations printed, summed by name."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith("{") and "_aws" in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"]:
                for metric in definition["Metrics"]:
                    value = document[metric["Name"]]
                    found[metric["Name"]] = found.get(metric["Name"], 0) + sum(
                        value if isinstance(value, list) else [value]
                    )
    return found


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def idempotency_items(stack: Stack) -> int:
    return int(stack.resources.client("dynamodb").scan(TableName=stack.resources.table_name, Select="COUNT")["Count"])


# --- enforce (the default)


def test_queue_a_mismatch_is_dead_lettered_with_its_reason_unsent_and_unclaimed(checked: Stack) -> None:
    message_id = checked.enqueue(order_update(body_count=2))
    _, response = checked.run_batch()

    assert response == {"batchItemFailures": []}
    letter = checked.dead_letters()[message_id]
    assert letter["attributes"]["reason"] == "template_mismatch"
    assert letter["attributes"]["error_class"] == "permanent"
    assert letter["attributes"]["error_code"] == "body_parameters"
    assert letter["attributes"]["error_message"] == MISMATCH
    assert json.loads(letter["body"]) == order_update(body_count=2)  # the body unchanged, ready to fix and redrive
    assert checked.simulator.requests == []  # never reached NXCloud's send
    assert idempotency_items(checked) == 0  # never claimed


def test_api_a_mismatch_is_a_422_saying_what_to_change_and_its_key_stays_free(checked: Stack) -> None:
    refused = checked.call_api(order_update(body_count=2), {"Idempotency-Key": "order-42"})

    assert refused["statusCode"] == 422
    assert json.loads(refused["body"]) == {
        "error": "template_mismatch",
        "message": MISMATCH,
        "code": "body_parameters",
        "trace_id": None,
    }
    assert checked.simulator.requests == []
    fixed = checked.call_api(order_update(), {"Idempotency-Key": "order-42"})  # the same key, the message fixed
    assert fixed["statusCode"] == 200
    assert len(checked.simulator.accepted) == 1


def test_a_batch_refuses_only_what_does_not_fit(checked: Stack) -> None:
    ids = {
        "fits": checked.enqueue(order_update(to="8613800000001")),
        "missing": checked.enqueue(
            message("8613800000002", template={"name": "order_ready", "language": {"code": "en_US"}})
        ),
        "no_header": checked.enqueue(order_update(to="8613800000003", header=False)),
        "coupon": checked.enqueue(
            message(
                "8613800000004",
                template={
                    "name": "ten_btn4",
                    "language": {"code": "en_US"},
                    "components": [
                        {
                            "type": "button",
                            "sub_type": "COPY_CODE",
                            "index": 3,
                            "parameters": [{"type": "coupon_code", "coupon_code": "123123"}],
                        }
                    ],
                },
            )
        ),
    }
    _, response = checked.run_batch()

    assert response == {"batchItemFailures": []}
    dead = checked.dead_letters()
    assert {name for name, mid in ids.items() if mid in dead} == {"missing", "no_header"}
    assert dead[ids["missing"]]["attributes"]["error_code"] == "template_not_found"
    assert dead[ids["no_header"]]["attributes"]["error_code"] == "header"
    assert sorted(r.to for r in checked.simulator.accepted) == ["8613800000001", "8613800000004"]
    assert len(checked.simulator.template_requests) == 1  # one listing for the batch's one account


def test_the_catalogue_is_kept_across_invocations(checked: Stack) -> None:
    for n in range(3):
        assert checked.call_api(order_update(to=f"861380000001{n}"))["statusCode"] == 200

    assert len(checked.simulator.template_requests) == 1
    assert len(checked.simulator.accepted) == 3


def test_respond_async_is_queued_then_dead_lettered_by_the_queue_path(checked: Stack) -> None:
    queued = checked.call_api(order_update(body_count=1), {"Prefer": "respond-async"})
    assert queued["statusCode"] == 202
    checked.run_batch()

    (letter,) = checked.dead_letters().values()
    assert (letter["attributes"]["reason"], letter["attributes"]["error_code"]) == (
        "template_mismatch",
        "body_parameters",
    )
    assert checked.simulator.requests == []


# --- warn and off


def test_warn_sends_it_and_logs_and_counts_the_mismatch(
    checked: Stack, monkeypatch: pytest.MonkeyPatch, captured_logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TEMPLATE_CHECK", "warn")
    response = checked.call_api(order_update(body_count=2))

    assert response["statusCode"] == 200
    assert len(checked.simulator.accepted) == 1  # reached NXCloud: the simulator does not count parameters
    (warning,) = [line for line in log_lines(captured_logs) if line.get("template_check") == "warn"]
    assert (warning["error_code"], warning["error_message"]) == ("body_parameters", MISMATCH)
    assert metrics(capsys.readouterr().out).get("TemplateCheckWarnings") == 1


@pytest.mark.parametrize("retry_hours", ["0", "24"])
def test_off_checks_nothing_and_sends_anything(
    checked: Stack, monkeypatch: pytest.MonkeyPatch, retry_hours: str
) -> None:
    """Off: no check. The catalogue is read only for the audience rules' categories: here, with no entry on the list
    and no cap, only whether the send record keeps its request for a 131049 retry (retries on: one fetch, then the
    container's cache); with the retry off, not at all."""
    from tests.stack import reset_function_runtime

    monkeypatch.setenv("TEMPLATE_CHECK", "off")
    monkeypatch.setenv("MARKETING_LIMIT_RETRY_HOURS", retry_hours)
    reset_function_runtime()
    for _ in range(2):
        checked.enqueue(order_update(body_count=2))
        checked.run_batch()

    assert len(checked.simulator.accepted) == 2
    assert len(checked.simulator.template_requests) == (0 if retry_hours == "0" else 1)


# --- fail open on the catalogue, never on the message


@pytest.mark.parametrize(
    "fault",
    [{"kind": "http_status", "status": 503}, {"kind": "code", "code": 1005}, {"kind": "drop"}],
    ids=["nxcloud down", "auth error", "connection dropped"],
)
def test_an_unavailable_catalogue_lets_the_send_go_ahead_counted_and_logged(
    checked: Stack,
    captured_logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
    fault: dict[str, Any],
) -> None:
    checked.simulator.add_fault(endpoint="getTemplate", **fault)
    first = checked.enqueue(order_update())
    second = checked.enqueue(order_update(body_count=2, to="8613800000009"))  # unchecked: it goes ahead too
    _, response = checked.run_batch()

    assert response == {"batchItemFailures": []}
    assert checked.dead_letters() == {}
    assert len(checked.simulator.accepted) == 2 and first != second
    assert metrics(capsys.readouterr().out).get("TemplateCheckSkipped") == 2
    (skipped,) = [line for line in log_lines(captured_logs) if line.get("template_check") == "skipped"]
    assert skipped["reason"] and skipped["appkey"] == ACCOUNT[0]
    assert ACCOUNT[1] not in json.dumps(skipped)


def test_a_simulator_without_a_catalogue_is_an_unavailable_catalogue(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TEMPLATE_CHECK")
    response = stack.call_api(message())

    assert response["statusCode"] == 200
    assert metrics(capsys.readouterr().out).get("TemplateCheckSkipped") == 1


def test_a_wrong_template_url_is_an_unavailable_catalogue(checked: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NXCLOUD_TEMPLATE_BASE_URL", "http://127.0.0.1:9")

    assert checked.call_api(order_update(body_count=2))["statusCode"] == 200
