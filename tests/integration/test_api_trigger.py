"""The REST API trigger: Powertools' resolver, the real handler, moto and the simulator."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from .conftest import Stack, message


def _body(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


def test_sent_answers_200_with_message_id_and_trace_id(stack: Stack, simulator: Any) -> None:
    response = stack.call_api(message())

    assert response["statusCode"] == 200
    body = _body(response)
    (accepted,) = simulator.accepted
    assert body == {"message_id": accepted.message_id, "trace_id": body["trace_id"]}
    assert len(body["trace_id"]) == 32


def test_repeated_idempotency_key_returns_first_answer_without_sending(stack: Stack, simulator: Any) -> None:
    first = stack.call_api(message(), {"Idempotency-Key": "abc-1"})
    second = stack.call_api(message(), {"idempotency-key": "abc-1"})
    third = stack.call_api(message(idempotency_key="abc-1"))

    assert first["statusCode"] == second["statusCode"] == third["statusCode"] == 200
    assert _body(first) == _body(second) == _body(third)
    assert len(simulator.accepted) == 1
    assert second["multiValueHeaders"].get("Idempotent-Replayed") == ["true"]
    assert "Idempotent-Replayed" not in first["multiValueHeaders"]


def test_invalid_message_answers_400_with_field_errors(stack: Stack, simulator: Any) -> None:
    bad = message(to="12", template={"name": "t", "language": {"code": "en_US"}, "components": [{"type": "body"}]})
    response = stack.call_api(bad)

    assert response["statusCode"] == 400
    body = _body(response)
    locations = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "to") in locations
    assert any(loc[:3] == ("body", "template", "components") for loc in locations)
    assert "12" not in json.dumps([e.get("input") for e in body["errors"]])
    assert simulator.requests == []


def test_malformed_json_answers_400(stack: Stack, simulator: Any) -> None:
    response = stack.call_api('{"to": ')

    assert response["statusCode"] == 400
    assert _body(response)["errors"][0]["type"] == "json_invalid"


def test_missing_default_answers_400_naming_the_field(stack: Stack, simulator: Any) -> None:
    secrets = stack.resources.client("secretsmanager")
    secrets.put_secret_value(
        SecretId=stack.resources.secret_id, SecretString=json.dumps({"accessKey": "AK", "accessSecret": "SK"})
    )
    simulator.set_account("AK", "SK")
    response = stack.call_api(message())

    assert response["statusCode"] == 400
    assert {e["loc"][0] for e in _body(response)["errors"]} == {"tenant_id", "appkey", "business_phone"}


def test_oversized_body_answers_413(stack: Stack) -> None:
    big = message(template={"name": "t", "language": {"code": "en_US"}, "padding": "x" * 70_000})
    response = stack.call_api(big)

    assert response["statusCode"] == 413


def test_permanent_rejection_answers_422_with_nxcloud_code(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="code", code=22091)
    response = stack.call_api(message())

    assert response["statusCode"] == 422
    body = _body(response)
    assert body["code"] == "22091"
    assert body["error"] == "nxcloud_code"
    assert len(body["trace_id"]) == 32


def test_key_reused_for_other_message_answers_422(stack: Stack, simulator: Any) -> None:
    stack.call_api(message(), {"Idempotency-Key": "k"})
    response = stack.call_api(message(to="8613800000001"), {"Idempotency-Key": "k"})

    assert response["statusCode"] == 422
    assert _body(response)["error"] == "idempotency_key_reused"
    assert len(simulator.accepted) == 1


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"kind": "http_status", "status": 500}, 502),
        ({"kind": "code", "code": 22125}, 503),
        ({"kind": "code", "code": -1}, 502),
    ],
)
def test_retryable_upstream_trouble_answers_5xx(
    stack: Stack, simulator: Any, fault: dict[str, Any], status: int
) -> None:
    simulator.add_fault(**fault)
    response = stack.call_api(message())

    assert response["statusCode"] == status
    assert simulator.accepted == []


def test_retry_after_transient_failure_with_same_key_sends_once(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="http_status", status=500, times=1)
    first = stack.call_api(message(), {"Idempotency-Key": "retry-me"})
    second = stack.call_api(message(), {"Idempotency-Key": "retry-me"})

    assert (first["statusCode"], second["statusCode"]) == (502, 200)
    assert len(simulator.accepted) == 1


def test_unknown_outcome_answers_504_is_dead_lettered_once_and_never_resent(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    first = stack.call_api(message(), {"Idempotency-Key": "maybe"})
    second = stack.call_api(message(), {"Idempotency-Key": "maybe"})

    assert first["statusCode"] == second["statusCode"] == 504
    assert _body(first)["error"] == "unknown_outcome"
    assert len(simulator.accepted) == 1
    dead = stack.dlq_messages()
    assert len(dead) == 1
    assert dead[0]["MessageAttributes"]["source"]["StringValue"] == "api"


def test_same_key_in_progress_answers_409(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="latency", seconds=0.4, times=1)
    results: list[dict[str, Any]] = []
    slow = threading.Thread(target=lambda: results.append(stack.call_api(message(), {"Idempotency-Key": "busy"})))
    slow.start()
    while not simulator.requests:
        threading.Event().wait(0.01)
    concurrent = stack.call_api(message(), {"Idempotency-Key": "busy"})
    slow.join()

    assert concurrent["statusCode"] == 409
    assert results[0]["statusCode"] == 200
    assert len(simulator.accepted) == 1


def test_respond_async_enqueues_and_the_queue_delivers_it(stack: Stack, simulator: Any) -> None:
    response = stack.call_api(message(), {"Prefer": "respond-async", "Idempotency-Key": "async-1"})

    assert response["statusCode"] == 202
    body = _body(response)
    assert body["status"] == "queued"
    assert simulator.requests == []
    event, batch = stack.run_batch()
    assert event["Records"][0]["messageId"] == body["queue_message_id"]
    assert event["Records"][0]["messageAttributes"]["idempotency_key"]["stringValue"] == "async-1"
    assert batch == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1


def test_async_request_is_validated_before_enqueueing(stack: Stack) -> None:
    response = stack.call_api({"to": "x"}, {"Prefer": "respond-async"})

    assert response["statusCode"] == 400
    assert stack.queue_depth() == 0


def test_unsupported_event_is_refused(stack: Stack) -> None:
    with pytest.raises(ValueError, match="unsupported event"):
        stack.invoke({"hello": "world"})
