"""No path leaks the access secret, a request signature or a full phone number.

Every test drives the real handler (moto + the NXCloud simulator) with every logger at DEBUG, then searches all that
the function exposed: logs, stdout/stderr, responses, dead-letter attributes, idempotency records (conftest.py).
Each path: sent, invalid, permanently rejected (including NXCloud's 22049, whose message quotes the business
number), retryable 5xx, auth error with a secret refresh, unknown outcome under both policies, dead-letter write
failure, idempotency in progress and key reused, a malformed secret; the template check's refusals and its failing
open (getTemplate refused, auth error, an answer quoting the business number); the suppression check's skip (its log
line, the 422, the skipped status), the frequency cap's, and an unreadable list; and the API's
200/202/400/409/415/422/5xx bodies.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from tests.stack import message, reset_function_runtime

from .conftest import ACCESS_KEY, BUSINESS_PHONE, ROTATED_CANARY, SECRET_CANARY, Exposure, secret_document


def number(i: int) -> str:
    """A valid recipient number (China mobile), distinct per ``i``."""
    return f"86138001380{i:02d}"


def _attrs(dead: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in dead.get("MessageAttributes", {}).items()}


def _body(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


def _reasons(exposure: Exposure) -> list[str]:
    return sorted(_attrs(m)["reason"] for m in exposure.dlq())


BUSINESS_NUMBER_QUOTED = {"kind": "code", "code": 22049, "message": f"business_phone={BUSINESS_PHONE}的商户不存在"}
"""NXCloud's 22049 answer, whose message names the business number (the page: ``business_phone={0}的商户不存在``)."""


# ---------------------------------------------------------------------------------------------------------------------
# SQS trigger


def test_sqs_sent_invalid_and_permanently_rejected(exposure: Exposure, simulator: Any) -> None:
    simulator.add_fault(kind="code", code=22093, to=number(3))
    simulator.add_fault(to=number(4), **BUSINESS_NUMBER_QUOTED)
    written = "+86 138-0013-8011"  # a human spelling: neither it nor its digits may appear
    exposure.enqueue(message(to=written), written, number(11))
    exposure.enqueue(message(to=number(1)), number(1))
    exposure.enqueue(f'{{"to": "{number(2)}"}}', number(2))  # invalid: no template
    exposure.enqueue(message(to="86139001390011234"), "86139001390011234")  # invalid: 17 digits
    exposure.enqueue(message(to=number(3)), number(3))
    exposure.enqueue(message(to=number(4)), number(4))

    assert exposure.run_batch() == {"batchItemFailures": []}
    assert len(simulator.accepted) == 2
    assert _reasons(exposure) == ["invalid_message", "invalid_message", "nxcloud_code", "nxcloud_code"]
    exposure.assert_clean()


def test_sqs_retryable_5xx(exposure: Exposure, simulator: Any) -> None:
    simulator.add_fault(kind="http_status", status=500)
    source_id = exposure.enqueue(message(to=number(1)), number(1))

    assert exposure.run_batch() == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert exposure.run_batch() == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert len(simulator.requests) == 2  # each attempt freshly signed: two sign values searched
    exposure.assert_clean()


def test_sqs_auth_error_refreshes_the_secret(exposure: Exposure, simulator: Any) -> None:
    exposure.enqueue(message(to=number(1)), number(1))
    exposure.run_batch()  # caches the first secret
    exposure.stack.resources.client("secretsmanager").put_secret_value(
        SecretId=exposure.stack.resources.secret_id, SecretString=secret_document(ROTATED_CANARY)
    )
    simulator.set_account(ACCESS_KEY, ROTATED_CANARY)
    exposure.secrets.add(ROTATED_CANARY)
    exposure.enqueue(message(to=number(2)), number(2))

    assert exposure.run_batch() == {"batchItemFailures": []}
    assert [r.code for r in simulator.requests] == [0, 1003, 0]
    exposure.assert_clean()


@pytest.mark.parametrize("policy", ["dead_letter", "retry"])
def test_sqs_unknown_outcome(exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    import runtime

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    source_id = exposure.enqueue(message(to=number(1)), number(1))

    response = exposure.run_batch()
    if policy == "retry":
        assert response == {"batchItemFailures": [{"itemIdentifier": source_id}]}
        assert exposure.run_batch() == {"batchItemFailures": []}
        assert exposure.dlq() == []
    else:
        assert response == {"batchItemFailures": []}
        assert _reasons(exposure) == ["unknown_outcome"]
    exposure.assert_clean()


def test_sqs_dead_letter_write_failure(exposure: Exposure, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime

    monkeypatch.setenv("DLQ_URL", exposure.stack.resources.dlq_url + "-missing")
    runtime.reset()
    source_id = exposure.enqueue(f'{{"to": "{number(1)}"}}', number(1))

    assert exposure.run_batch() == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert any("could not write to the dead-letter queue" in line for line in exposure.function_log)
    exposure.assert_clean()


def test_sqs_idempotency_in_progress_then_key_reused(exposure: Exposure, simulator: Any) -> None:
    simulator.add_fault(kind="latency", seconds=0.3, times=1)  # the first holds the key while the second arrives
    exposure.enqueue(message(to=number(1), idempotency_key="order-1"), number(1))
    exposure.enqueue(message(to=number(1), idempotency_key="order-1"), number(1))

    assert len(exposure.run_batch()["batchItemFailures"]) == 1  # in progress: retried
    assert exposure.run_batch() == {"batchItemFailures": []}  # replayed from the idempotency record
    exposure.enqueue(message(to=number(2), idempotency_key="order-1"), number(2))
    assert exposure.run_batch() == {"batchItemFailures": []}

    assert len(simulator.accepted) == 1
    assert _reasons(exposure) == ["idempotency_key_reused"]
    exposure.assert_clean()


@pytest.mark.parametrize(
    "secret_string",
    [SECRET_CANARY, json.dumps({"accessSecret": SECRET_CANARY}), json.dumps({"accessKey": SECRET_CANARY})],
    ids=["not-json", "no-access-key", "secret-in-the-wrong-field"],
)
def test_sqs_malformed_secret(exposure: Exposure, simulator: Any, secret_string: str) -> None:
    exposure.stack.resources.client("secretsmanager").put_secret_value(
        SecretId=exposure.stack.resources.secret_id, SecretString=secret_string
    )
    source_id = exposure.enqueue(message(to=number(1)), number(1))

    assert exposure.run_batch() == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert simulator.requests == []
    exposure.assert_clean()


# ---------------------------------------------------------------------------------------------------------------------
# API trigger


def test_api_sent_replayed_and_queued(exposure: Exposure, simulator: Any) -> None:
    first = exposure.call_api(message(to=number(1)), number(1), headers={"Idempotency-Key": "k-1"})
    again = exposure.call_api(message(to=number(1)), number(1), headers={"Idempotency-Key": "k-1"})
    queued = exposure.call_api(message(to=number(2)), number(2), headers={"Prefer": "respond-async"})

    assert (first["statusCode"], again["statusCode"], queued["statusCode"]) == (200, 200, 202)
    assert exposure.run_batch() == {"batchItemFailures": []}  # the queued one, through the send queue
    assert len(simulator.accepted) == 2
    exposure.assert_clean()


@pytest.mark.parametrize(
    ("fault", "status"),
    [
        ({"kind": "code", "code": 22093}, 422),
        (BUSINESS_NUMBER_QUOTED, 422),
        ({"kind": "http_status", "status": 500}, 502),
        ({"kind": "http_status", "status": 429}, 429),
        ({"kind": "code", "code": 22125}, 503),
        ({"kind": "code", "code": -1}, 502),
    ],
    ids=["422-template", "422-business-number-quoted", "502", "429", "503-22125", "502-unknown-code"],
)
def test_api_upstream_error_bodies(exposure: Exposure, simulator: Any, fault: dict[str, Any], status: int) -> None:
    simulator.add_fault(**fault)
    response = exposure.call_api(message(to=number(1)), number(1))

    assert response["statusCode"] == status
    assert simulator.requests
    exposure.assert_clean()


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (json.dumps(message(to="86139001390011234")), "application/json", 400),
        (json.dumps({"to": number(1), "template": {"name": "t", "language": {"code": "xx"}}}), "application/json", 400),
        (json.dumps({**message(to=number(1)), "recipient": number(2)}), "application/json", 400),
        (f'{{"to": "{number(1)}", "template": ', "application/json", 400),
        (json.dumps(message(to=number(1))), "text/plain", 415),
    ],
    ids=["invalid-number", "invalid-language", "unknown-field-holding-a-number", "malformed-json", "not-json"],
)
def test_api_invalid_request_bodies(
    exposure: Exposure, simulator: Any, body: str, content_type: str, status: int
) -> None:
    response = exposure.call_api(
        body, "86139001390011234", number(1), number(2), headers={"Content-Type": content_type}
    )

    assert response["statusCode"] == status, response["body"]
    assert simulator.requests == []
    exposure.assert_clean()


def test_api_key_reused_answers_422(exposure: Exposure, simulator: Any) -> None:
    exposure.call_api(message(to=number(1)), number(1), headers={"Idempotency-Key": "k"})
    response = exposure.call_api(message(to=number(2)), number(2), headers={"Idempotency-Key": "k"})

    assert response["statusCode"] == 422
    assert _body(response)["error"] == "idempotency_key_reused"
    exposure.assert_clean()


def test_api_in_progress_answers_409(exposure: Exposure, simulator: Any) -> None:
    simulator.add_fault(kind="latency", seconds=0.4, times=1)
    results: list[dict[str, Any]] = []
    headers = {"Idempotency-Key": "busy"}
    slow = threading.Thread(target=lambda: results.append(exposure.call_api(message(to=number(1)), headers=headers)))
    slow.start()
    while not simulator.requests:
        threading.Event().wait(0.01)
    concurrent = exposure.call_api(message(to=number(1)), number(1), headers=headers)
    slow.join()

    assert (concurrent["statusCode"], results[0]["statusCode"]) == (409, 200)
    exposure.assert_clean()


def test_api_auth_error_refreshes_the_secret(exposure: Exposure, simulator: Any) -> None:
    exposure.call_api(message(to=number(1)), number(1))  # caches the first secret
    exposure.stack.resources.client("secretsmanager").put_secret_value(
        SecretId=exposure.stack.resources.secret_id, SecretString=secret_document(ROTATED_CANARY)
    )
    simulator.set_account(ACCESS_KEY, ROTATED_CANARY)
    exposure.secrets.add(ROTATED_CANARY)
    response = exposure.call_api(message(to=number(2)), number(2))

    assert response["statusCode"] == 200
    assert [r.code for r in simulator.requests] == [0, 1003, 0]
    exposure.assert_clean()


@pytest.mark.parametrize("policy", ["dead_letter", "retry"])
def test_api_unknown_outcome_answers_504(
    exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    import runtime

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    response = exposure.call_api(message(to=number(1)), number(1), headers={"Idempotency-Key": "maybe"})

    assert response["statusCode"] == 504
    assert _reasons(exposure) == (["unknown_outcome"] if policy == "dead_letter" else [])
    exposure.assert_clean()


def test_api_dead_letter_write_failure_answers_503(
    exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    monkeypatch.setenv("DLQ_URL", exposure.stack.resources.dlq_url + "-missing")
    runtime.reset()
    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=2)
    response = exposure.call_api(message(to=number(1)), number(1))

    assert response["statusCode"] == 503
    assert any("Traceback" in line for line in exposure.function_log)  # logger.exception: the traceback is searched
    exposure.assert_clean()


def test_api_malformed_secret_answers_500(exposure: Exposure, simulator: Any) -> None:
    exposure.stack.resources.client("secretsmanager").put_secret_value(
        SecretId=exposure.stack.resources.secret_id, SecretString=SECRET_CANARY
    )
    response = exposure.call_api(message(to=number(1)), number(1))

    assert response["statusCode"] == 500
    exposure.assert_clean()


def _suppressions(exposure: Exposure, method: str, path: str, body: dict[str, Any] | None = None, **query: str) -> Any:
    from local_stack.lambda_events import api_event

    text = json.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else None
    event = api_event(text, method=method, path=path, headers=headers, query={k: [v] for k, v in query.items()})
    return exposure.invoke(event)


def test_the_suppression_routes_log_no_number(exposure: Exposure, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every /suppressions answer kind, the numbers in the path, the query and the body: the logs never hold one. The
    answers do, by design (the caller's own list, docs/audience.md), so they are the one place not searched."""
    other_business = "8618512340000"
    exposure.numbers |= {number(1), number(2), other_business}
    statuses = [
        _suppressions(exposure, "PUT", f"/suppressions/%2B{number(1)}", {"scope": "all"})["statusCode"],
        _suppressions(exposure, "PUT", f"/suppressions/{number(1)}")["statusCode"],  # kept
        _suppressions(exposure, "PUT", f"/suppressions/{number(2)}", {"business_phone": other_business})["statusCode"],
        _suppressions(exposure, "GET", f"/suppressions/{number(1)}")["statusCode"],
        _suppressions(exposure, "GET", "/suppressions", limit="1")["statusCode"],
        _suppressions(exposure, "GET", f"/suppressions/{number(2)}", business_phone="12")["statusCode"],
        _suppressions(exposure, "PUT", f"/suppressions/{number(2)}0000000")["statusCode"],  # too long: a 400
        _suppressions(exposure, "DELETE", f"/suppressions/{number(1)}")["statusCode"],
    ]
    monkeypatch.setenv("SUPPRESSIONS_TABLE", "no-such-table")
    reset_function_runtime()
    statuses.append(_suppressions(exposure, "PUT", f"/suppressions/{number(2)}")["statusCode"])

    assert statuses == [201, 200, 201, 200, 200, 400, 400, 204, 503]
    sources = exposure.sources()
    assert number(1) in sources.pop("responses")  # the search would find one
    leaks = [label for name, text in sources.items() for label, value in exposure.forbidden().items() if value in text]
    assert not leaks, leaks


# ---------------------------------------------------------------------------------------------------------------------
# The harness itself, and the botocore rule


def test_the_search_finds_botocore_wire_logging_when_it_is_turned_on(exposure: Exposure) -> None:
    """Not vacuous: with botocore's DEBUG asked for by name, the secret does show up where the tests look."""
    botocore_logger = logging.getLogger("botocore")
    level = botocore_logger.level
    botocore_logger.setLevel(logging.DEBUG)
    try:
        exposure.enqueue(message(to=number(1)), number(1))
        exposure.run_batch()
    finally:
        botocore_logger.setLevel(level)

    with pytest.raises(AssertionError, match="access secret #0 found in root logger"):
        exposure.assert_clean()


def test_botocore_does_not_inherit_debug_from_the_root_logger(exposure: Exposure) -> None:
    import observability  # noqa: F401 - importing it applies the rule

    assert logging.getLogger().level == logging.DEBUG
    for name in ("botocore", "botocore.parsers", "botocore.endpoint", "botocore.hooks"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.INFO, name


def test_the_searched_secret_is_the_one_that_signs(exposure: Exposure, simulator: Any) -> None:
    """Not vacuous either: the simulator accepted a request signed with the canary, and DEBUG records were seen."""
    exposure.call_api(message(to=number(1)), number(1))

    assert simulator.accepted[0].headers["accessKey"] == ACCESS_KEY
    assert SECRET_CANARY not in json.dumps([r.headers for r in simulator.requests])
    sources = exposure.assert_clean()
    assert any(line.startswith("DEBUG ") for line in exposure.root.lines), "nothing was captured at DEBUG"
    assert sources["function log"]


# ---------------------------------------------------------------------------------------------------------------------
# The template check (TEMPLATE_CHECK=enforce, the catalogue fetched with the secret)


def _order_update(to: str, body_count: int) -> dict[str, Any]:
    components = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]},
        {"type": "body", "parameters": [{"type": "text", "text": f"v{i}"} for i in range(body_count)]},
        {"type": "button", "sub_type": "URL", "index": 0, "parameters": [{"type": "text", "text": "A-42"}]},
    ]
    return message(to=to, template={"name": "order_update", "language": {"code": "en_US"}, "components": components})


@pytest.fixture
def checked(exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Exposure:
    from tests.page_templates import ORDER_UPDATE

    monkeypatch.setenv("TEMPLATE_CHECK", "enforce")
    simulator.set_templates("leak-app", BUSINESS_PHONE, [ORDER_UPDATE])
    return exposure


def test_template_check_refusals_on_both_triggers(checked: Exposure, simulator: Any) -> None:
    checked.enqueue(_order_update(number(1), 3), number(1))
    checked.enqueue(_order_update(number(2), 2), number(2))

    assert checked.run_batch() == {"batchItemFailures": []}
    assert checked.call_api(_order_update(number(3), 1), number(3))["statusCode"] == 422
    assert _reasons(checked) == ["template_mismatch"]
    assert len(simulator.accepted) == 1 and len(simulator.template_requests) == 1
    checked.assert_clean()


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "code", "code": 1003},
        {"kind": "code", "code": 9002, "message": f"business_phone={BUSINESS_PHONE} is not a WhatsApp number"},
        {"kind": "http_status", "status": 503},
    ],
    ids=["auth error", "a code quoting the business number", "unavailable"],
)
def test_template_check_failing_open(checked: Exposure, simulator: Any, fault: dict[str, Any]) -> None:
    simulator.add_fault(endpoint="getTemplate", **fault)
    checked.enqueue(_order_update(number(1), 2), number(1))

    assert checked.run_batch() == {"batchItemFailures": []}
    assert len(simulator.accepted) == 1
    assert "template check skipped" in checked.assert_clean()["function log"]


# ---------------------------------------------------------------------------------------------------------------------
# The suppression check (docs/audience.md): a skipped message's log line, its 422, an unreadable list's line


def _suppress(exposure: Exposure, recipient: str) -> None:
    from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore

    resources = exposure.stack.resources
    store = SuppressionStore(resources.client("dynamodb"), resources.suppressions_table)
    # The source quotes a number too (a hand-written entry could): it must be redacted where it is shown.
    store.put(Suppression(BUSINESS_PHONE, recipient, Scope.ALL, Reason.MANUAL, f"api {recipient}", "2026-12-06"))


def test_suppressed_recipients_on_both_triggers(exposure: Exposure, simulator: Any) -> None:
    from local_stack.lambda_events import api_event

    _suppress(exposure, number(1))
    exposure.enqueue(message(to=number(1)), number(1))

    assert exposure.run_batch() == {"batchItemFailures": []}
    answer = exposure.call_api(message(to=number(1)), number(1), headers={"Idempotency-Key": "skipped-1"})
    assert answer["statusCode"] == 422 and _body(answer)["error"] == "recipient_suppressed"
    found = exposure.invoke(api_event(None, method="GET", path="/messages/skipped-1"))  # searched with the rest
    assert _body(found)["status"] == "skipped"
    assert not simulator.requests and not exposure.dlq()
    assert "message skipped" in exposure.assert_clean()["function log"]


def test_a_recipient_at_the_frequency_cap_on_both_triggers(
    exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from local_stack.lambda_events import api_event

    monkeypatch.setenv("MARKETING_CAP_PER_RECIPIENT", "1/24h")
    sent = exposure.call_api(message(to=number(3)), number(3), headers={"Idempotency-Key": "first-3"})
    assert sent["statusCode"] == 200
    exposure.enqueue(message(to=number(3)), number(3))

    assert exposure.run_batch() == {"batchItemFailures": []}
    answer = exposure.call_api(message(to=number(3)), number(3), headers={"Idempotency-Key": "capped-3"})
    assert answer["statusCode"] == 422 and _body(answer)["error"] == "frequency_capped"
    found = exposure.invoke(api_event(None, method="GET", path="/messages/capped-3"))  # searched with the rest
    assert _body(found)["skipped"] == {"reason": "frequency_cap", "cap": "1/24h"}
    assert len(simulator.requests) == 1 and not exposure.dlq()
    assert "marketing frequency cap" in exposure.assert_clean()["function log"]


def test_an_unreadable_suppression_list(exposure: Exposure, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    import runtime

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": f"no {number(2)}"}}, "BatchGetItem")

    screen = runtime.get().delivery.screen
    assert screen is not None
    monkeypatch.setattr(screen.store.client, "batch_get_item", down)
    source_id = exposure.enqueue(message(to=number(2)), number(2))

    assert exposure.run_batch() == {"batchItemFailures": [{"itemIdentifier": source_id}]}
    assert "the suppression list could not be read" in exposure.assert_clean()["function log"]
