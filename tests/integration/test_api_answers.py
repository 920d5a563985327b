"""Every kind of answer the API gives matches what the committed ``openapi.json`` documents for its path, method and
status: each is produced by the real handler (moto and the simulator) and its body validated against the document's
schema for that answer, strictly: a field the schema does not name fails it too, so an answer that renames a field
without its model (or a model changed without ``make openapi``) cannot pass.

The statuses driven here are exactly the ones the document lists, less API Gateway's own answers (``GatewayError``:
403, and a query's 429), so a status added to the document without an answer here, or the reverse, fails as well.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from .conftest import SECRET, Stack, message

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT_URI = "urn:openapi.json"
SEND = ("post", "/messages")
QUERY = ("get", "/messages/{message_id}")
GATEWAY_ERROR = "#/components/schemas/GatewayError"
"""The schema of the answers only API Gateway gives (the function is never called): nothing here can produce them."""


def strict(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every object schema closed (``additionalProperties: false`` where it says nothing), so an
    answer's undocumented field is an error, not an extension."""
    closed = copy.deepcopy(document)

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for child in node.values():
                close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    close(closed["components"]["schemas"])
    return closed


DOCUMENT: dict[str, Any] = strict(json.loads((ROOT / "openapi.json").read_text(encoding="utf-8")))
REGISTRY: Registry[Any] = Registry().with_resource(DOCUMENT_URI, DRAFT202012.create_resource(DOCUMENT))
"""The document as a JSON Schema resource, so the answers' schemas resolve their ``$ref`` into its components."""


def validate(operation: tuple[str, str], answer: dict[str, Any]) -> dict[str, Any]:
    """Assert that ``answer`` (a REST proxy answer) is one the document describes for ``operation``; return its body."""
    method, path = operation
    status = str(answer["statusCode"])
    responses = DOCUMENT["paths"][path][method]["responses"]
    assert status in responses, f"{method.upper()} {path} answered {status}, which the document does not list"
    if "content" not in responses[status]:  # documented without a body (DELETE's 204)
        assert not answer.get("body"), f"{method.upper()} {path} {status} has a body the document does not describe"
        return {}
    assert content_type(answer) == "application/json"
    schema = {"$ref": DOCUMENT_URI + responses[status]["content"]["application/json"]["schema"]["$ref"]}
    body: dict[str, Any] = json.loads(answer["body"])
    errors = sorted(Draft202012Validator(schema, registry=REGISTRY).iter_errors(body), key=str)
    assert not errors, f"{method.upper()} {path} {status}: " + "; ".join(e.message for e in errors)
    return body


def content_type(answer: dict[str, Any]) -> str:
    """The answer's Content-Type, from the resolver's multi-value headers or app.py's plain ones."""
    multi = answer.get("multiValueHeaders") or {}
    if "Content-Type" in multi:
        return str(multi["Content-Type"][0])
    return str((answer.get("headers") or {}).get("Content-Type", ""))


# --- POST /messages ------------------------------------------------------------------------------------------------

Driver = Callable[[Stack, Any, pytest.MonkeyPatch], dict[str, Any]]


def fault(**kind: Any) -> Driver:
    """A send that meets this simulator fault."""

    def drive(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        simulator.add_fault(**kind)
        answer: dict[str, Any] = stack.call_api(message())
        return answer

    return drive


def sent(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answer: dict[str, Any] = stack.call_api(message())
    return answer


def queued(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answer: dict[str, Any] = stack.call_api(message(), {"Prefer": "respond-async"})
    return answer


def invalid(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Field errors: the 400 that carries ``errors``."""
    answer: dict[str, Any] = stack.call_api(message(to="12"))
    assert json.loads(answer["body"])["errors"]
    return answer


def in_progress(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The same key while its first send waits on NXCloud (as in test_api_trigger.py)."""
    simulator.add_fault(kind="latency", seconds=0.4, times=1)
    slow = threading.Thread(target=lambda: stack.call_api(message(), {"Idempotency-Key": "busy"}))
    slow.start()
    while not simulator.requests:
        threading.Event().wait(0.01)
    answer: dict[str, Any] = stack.call_api(message(), {"Idempotency-Key": "busy"})
    slow.join()
    return answer


def too_large(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answer: dict[str, Any] = stack.call_api(message(padding="x" * 70_000))
    return answer


def not_json(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answer: dict[str, Any] = stack.call_api_raw("to=1", {"Content-Type": "text/plain"})
    return answer


def misconfigured(stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    secrets = stack.resources.client("secretsmanager")
    secrets.put_secret_value(SecretId=stack.resources.secret_id, SecretString="not json")
    answer: dict[str, Any] = stack.call_api(message())
    return answer


SEND_ANSWERS: dict[str, Driver] = {
    "200": sent,
    "202": queued,
    "400": invalid,
    "409": in_progress,
    "413": too_large,
    "415": not_json,
    "422": fault(kind="code", code=22091),
    "429": fault(kind="http_status", status=429),
    "500": misconfigured,
    "502": fault(kind="http_status", status=500),
    "503": fault(kind="code", code=22125),
    "504": fault(kind="read_timeout_after_accept", times=1, hang=2),
}


@pytest.mark.parametrize("status", SEND_ANSWERS)
def test_every_send_answer_is_the_one_documented(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    answer = SEND_ANSWERS[status](stack, simulator, monkeypatch)

    assert str(answer["statusCode"]) == status, answer
    validate(SEND, answer)


def test_the_replayed_answer_and_a_header_refusal_are_documented_too(stack: Stack) -> None:
    first = validate(SEND, stack.call_api(message(), {"Idempotency-Key": "again"}))
    replayed = stack.call_api(message(), {"Idempotency-Key": "again"})

    assert validate(SEND, replayed) == first
    refused = stack.call_api(message(idempotency_key="one"), {"Idempotency-Key": "other"})
    assert validate(SEND, refused)["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert validate(SEND, stack.call_api('{"to": '))["errors"][0]["type"] == "json_invalid"


# --- GET /messages/{id} --------------------------------------------------------------------------------------------


def get(stack: Stack, message_id: str) -> dict[str, Any]:
    from local_stack.lambda_events import api_event

    answer: dict[str, Any] = stack.invoke(api_event(None, method="GET", path=f"/messages/{message_id}"))
    return answer


def callbacks(stack: Stack, message_id: str) -> None:
    """NXCloud reports the message delivered, then failed with an error, and a button click that answers it."""
    now = int(time.time()) + 60
    common = {"business_phone": "8618512348399", "messaging_product": "whatsapp"}
    for offset, status in ((1, "delivered"), (2, "failed")):
        entry: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(now + offset),
            "recipient_id": "8613800000000",
        }
        if status == "failed":
            entry["errors"] = [{"code": 131026, "title": "Message undeliverable"}]
        assert stack.call_webhook({"statuses": [entry], **common})["statusCode"] == 200
    click = {
        "from": "8613800000000",
        "id": "wamid.click-1",
        "timestamp": str(now + 3),
        "type": "button",
        "button": {"payload": "yes", "text": "Yes, confirm"},
        "context": {"from": "8618512348399", "id": message_id},
    }
    assert stack.call_webhook({"messages": [click], **common})["statusCode"] == 200


def status_with_everything(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A sent message's status with a timeline, an error and a button click: every nested model in one body."""
    first = json.loads(stack.call_api(message(), {"Idempotency-Key": "answers-1"})["body"])
    callbacks(stack, first["message_id"])
    answer = get(stack, "answers-1")
    found = json.loads(answer["body"])
    assert (found["status"], found["matched"]) == ("failed", True)
    assert found["errors"] and found["buttons"] and found["template"] and len(found["timeline"]) == 3
    return answer


def unreadable_table(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from tests.stack import reset_function_runtime

    monkeypatch.setenv("MESSAGES_TABLE", "no-such-table")
    reset_function_runtime()
    return get(stack, "answers-1")


QueryDriver = Callable[[Stack, pytest.MonkeyPatch], dict[str, Any]]
QUERY_ANSWERS: dict[str, QueryDriver] = {
    "200": status_with_everything,
    "400": lambda stack, _: get(stack, "x" * 129),  # longer than an id or a key can be
    "404": lambda stack, _: get(stack, "no-such-message"),
    "503": unreadable_table,
}


@pytest.mark.parametrize("status", QUERY_ANSWERS)
def test_every_query_answer_is_the_one_documented(stack: Stack, monkeypatch: pytest.MonkeyPatch, status: str) -> None:
    answer = QUERY_ANSWERS[status](stack, monkeypatch)

    assert str(answer["statusCode"]) == status, answer
    validate(QUERY, answer)


def test_a_callback_for_a_message_never_sent_and_an_id_no_route_takes_are_documented_too(stack: Stack) -> None:
    callbacks(stack, "wamid.never-sent-here")

    unmatched = validate(QUERY, get(stack, "wamid.never-sent-here"))
    assert (unmatched["matched"], unmatched["template"], unmatched["idempotency_key"]) == (False, None, None)
    assert validate(QUERY, get(stack, "a/b"))["error"] == "not_found"


def test_a_suppressed_recipients_422_and_its_skipped_status_are_documented_too(stack: Stack) -> None:
    from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore

    store = SuppressionStore(stack.resources.client("dynamodb"), stack.resources.suppressions_table)
    store.put(Suppression("8618512348399", "8613800000000", Scope.ALL, Reason.MANUAL, "api", "2026-12-06"))

    refused = validate(SEND, stack.call_api(message(), {"Idempotency-Key": "skipped-1"}))
    skipped = validate(QUERY, get(stack, "skipped-1"))

    assert (refused["error"], refused["code"]) == ("recipient_suppressed", "manual")
    assert skipped["status"] == "skipped" and skipped["skipped"]["suppression_reason"] == "manual"


def test_a_capped_recipients_422_and_its_skipped_status_are_documented_too(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MARKETING_CAP_PER_RECIPIENT", "1/24h")
    validate(SEND, stack.call_api(message(), {"Idempotency-Key": "sent-1"}))

    refused = validate(SEND, stack.call_api(message(), {"Idempotency-Key": "capped-1"}))
    skipped = validate(QUERY, get(stack, "capped-1"))

    assert (refused["error"], refused["code"]) == ("frequency_capped", "1/24h")
    assert skipped["skipped"] == {"reason": "frequency_cap", "cap": "1/24h"}


# --- /suppressions ---------------------------------------------------------------------------------------------------

PUT_ENTRY = ("put", "/suppressions/{number}")
DELETE_ENTRY = ("delete", "/suppressions/{number}")
GET_ENTRY = ("get", "/suppressions/{number}")
LIST_ENTRIES = ("get", "/suppressions")
RECIPIENT = "8613800138000"
EntryDriver = Callable[[Stack, pytest.MonkeyPatch], dict[str, Any]]


def suppressions(
    stack: Stack, method: str, number: str | None = None, body: dict[str, Any] | None = None, **query: str
) -> dict[str, Any]:
    from local_stack.lambda_events import api_event

    path = "/suppressions" + (f"/{number}" if number is not None else "")
    headers = {"Content-Type": "application/json"} if body is not None else None
    text = json.dumps(body) if body is not None else None
    event = api_event(text, method=method, path=path, headers=headers, query={k: [v] for k, v in query.items()})
    answer: dict[str, Any] = stack.invoke(event)
    return answer


def _stored(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """An entry with every field set (an expiry included), then the same one asked for again: 200."""
    body = {"scope": "all", "reason": "opted_out", "expires_at": "2999-01-01T00:00:00+08:00"}
    assert suppressions(stack, "PUT", RECIPIENT, body)["statusCode"] == 201
    return suppressions(stack, "PUT", RECIPIENT, body)


def _malformed_secret(call: EntryDriver) -> EntryDriver:
    """The request needs the default business number, and the secret that holds it is not JSON: a 500."""

    def drive(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        secrets = stack.resources.client("secretsmanager")
        secrets.put_secret_value(SecretId=stack.resources.secret_id, SecretString="not json")
        return call(stack, monkeypatch)

    return drive


def _unreadable_list(call: EntryDriver) -> EntryDriver:
    def drive(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        from tests.stack import reset_function_runtime

        monkeypatch.setenv("SUPPRESSIONS_TABLE", "no-such-table")
        reset_function_runtime()
        return call(stack, monkeypatch)

    return drive


def _then(first: EntryDriver, second: EntryDriver) -> EntryDriver:
    return lambda stack, monkeypatch: (first(stack, monkeypatch), second(stack, monkeypatch))[1]


def _put(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return suppressions(stack, "PUT", RECIPIENT)


def _delete(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return suppressions(stack, "DELETE", RECIPIENT)


def _get(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return suppressions(stack, "GET", RECIPIENT)


def _list(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    return suppressions(stack, "GET", limit="1")


PUT_ANSWERS: dict[str, EntryDriver] = {
    "200": _stored,
    "201": _put,
    "400": lambda stack, _: suppressions(stack, "PUT", RECIPIENT, {"reason": "undeliverable"}),
    "500": _malformed_secret(_put),
    "503": _unreadable_list(_put),
}
DELETE_ANSWERS: dict[str, EntryDriver] = {
    "204": _then(_put, _delete),
    "400": lambda stack, _: suppressions(stack, "DELETE", "12"),
    "404": _delete,
    "500": _malformed_secret(_delete),
    "503": _unreadable_list(_delete),
}
GET_ENTRY_ANSWERS: dict[str, EntryDriver] = {
    "200": _then(_stored, _get),
    "400": lambda stack, _: suppressions(stack, "GET", RECIPIENT, business_phone="12"),
    "404": _get,
    "500": _malformed_secret(_get),
    "503": _unreadable_list(_get),
}
LIST_ANSWERS: dict[str, EntryDriver] = {
    "200": lambda stack, mp: (_stored(stack, mp), suppressions(stack, "PUT", "8613800138001"), _list(stack, mp))[2],
    "400": lambda stack, _: suppressions(stack, "GET", cursor="not-one-of-ours"),
    "500": _malformed_secret(_list),
    "503": _unreadable_list(_list),
}
ENTRY_OPERATIONS: Final = {
    PUT_ENTRY: PUT_ANSWERS,
    DELETE_ENTRY: DELETE_ANSWERS,
    GET_ENTRY: GET_ENTRY_ANSWERS,
    LIST_ENTRIES: LIST_ANSWERS,
}


@pytest.mark.parametrize(
    ("operation", "status"),
    [(operation, status) for operation, driven in ENTRY_OPERATIONS.items() for status in driven],
)
def test_every_suppressions_answer_is_the_one_documented(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, operation: tuple[str, str], status: str
) -> None:
    answer = ENTRY_OPERATIONS[operation][status](stack, monkeypatch)

    assert str(answer["statusCode"]) == status, answer
    body = validate(operation, answer)
    if operation == LIST_ENTRIES and status == "200":
        assert len(body["items"]) == 1 and body["next_cursor"]  # a page with a next one: every field set


# --- /audiences and /campaigns (docs/campaigns.md) ------------------------------------------------------------------

CampaignDriver = Callable[[Stack, pytest.MonkeyPatch], dict[str, Any]]
PROMO = {
    "id": "9",
    "name": "promo",
    "language": "en_US",
    "category": "MARKETING",
    "status": "APPROVED",
    "components": [{"type": "BODY", "text": "Hi {{1}}."}],
}


def campaign_call(stack: Stack, method: str, path: str, body: Any = None, **query: str) -> dict[str, Any]:
    from local_stack.lambda_events import api_event

    stack.simulator.set_templates(str(SECRET["appkey"]), str(SECRET["business_phone"]), [PROMO])
    headers = {"Content-Type": "application/json"} if body is not None else None
    text = json.dumps(body) if body is not None else None
    event = api_event(text, method=method, path=path, headers=headers, query={k: [v] for k, v in query.items()})
    answer: dict[str, Any] = stack.invoke(event)
    return answer


def audience(stack: Stack, content: str = "to,body.1,ref\n8613800000001,Ann,r1\n12,Bob,r2\n") -> str:
    key = f"audiences/answers-{time.time_ns()}.csv"
    stack.resources.client("s3").put_object(Bucket=stack.resources.campaign_bucket, Key=key, Body=content.encode())
    return key


def new_campaign(stack: Stack, key: str | None = None, **fields: Any) -> dict[str, Any]:
    """A campaign with every optional field set."""
    body = {
        "name": "answers",
        "template": {"name": "promo", "language": {"code": "en_US"}},
        "audience": {"key": key or audience(stack)},
        "quiet_hours": {"start": "21:00", "end": "09:00"},
        "expires_at": "2999-01-01T00:00:00+08:00",
        **fields,
    }
    return campaign_call(stack, "POST", "/campaigns", body)


def created_id(stack: Stack) -> str:
    answer = new_campaign(stack)
    assert answer["statusCode"] == 201, answer
    return str(json.loads(answer["body"])["campaign_id"])


def _without_table(call: CampaignDriver, table: str = "") -> CampaignDriver:
    """``""``: a stack without campaigns (500); a table that does not exist: the table failing (503)."""

    def drive(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        from tests.stack import reset_function_runtime

        monkeypatch.setenv("CAMPAIGNS_TABLE", table)
        reset_function_runtime()
        return call(stack, monkeypatch)

    return drive


def _action(action: str, first: tuple[str, ...] = ()) -> CampaignDriver:
    """``action`` on a new campaign (after the actions ``first``); on no campaign when ``first`` is ``("none",)``."""

    def drive(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
        campaign_id = "c-none" if first == ("none",) else created_id(stack)
        for earlier in () if first == ("none",) else first:
            campaign_call(stack, "POST", f"/campaigns/{campaign_id}/{earlier}")
        return campaign_call(stack, "POST", f"/campaigns/{campaign_id}/{action}")

    return drive


def _get_campaign(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    campaign_id = created_id(stack)
    campaign_call(stack, "POST", f"/campaigns/{campaign_id}/pause")
    campaign_call(stack, "POST", f"/campaigns/{campaign_id}/resume")  # running: an ETA, started_at
    return campaign_call(stack, "GET", f"/campaigns/{campaign_id}")


def _no_catalogue(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    key = audience(stack)
    stack.simulator.add_fault(endpoint="getTemplate", kind="http_status", status=503)
    return new_campaign(stack, key)


AUDIENCE_ANSWERS: dict[str, CampaignDriver] = {
    "201": lambda stack, _: campaign_call(stack, "POST", "/audiences", {"format": "jsonl"}),
    "400": lambda stack, _: campaign_call(stack, "POST", "/audiences", {"format": "xls"}),
    "500": _without_table(lambda stack, _: campaign_call(stack, "POST", "/audiences")),
}
CREATE_ANSWERS: dict[str, CampaignDriver] = {
    "200": lambda stack, _: new_campaign(stack, dry_run=True),
    "201": lambda stack, _: new_campaign(stack),
    "400": lambda stack, _: new_campaign(stack, start_at="2030-01-01T09:00:00"),
    "404": lambda stack, _: new_campaign(stack, "audiences/none.csv"),
    "422": lambda stack, _: new_campaign(stack, rate=1000),
    "500": _without_table(lambda stack, _: new_campaign(stack)),
    "503": _no_catalogue,
}
LIST_CAMPAIGNS_ANSWERS: dict[str, CampaignDriver] = {
    "200": lambda stack, _: (
        created_id(stack),
        created_id(stack),
        campaign_call(stack, "GET", "/campaigns", limit="1"),
    )[2],
    "400": lambda stack, _: campaign_call(stack, "GET", "/campaigns", cursor="bm90LW91cnM"),
    "500": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns")),
    "503": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns"), "no-such-table"),
}
GET_CAMPAIGN_ANSWERS: dict[str, CampaignDriver] = {
    "200": _get_campaign,
    "404": lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none"),
    "500": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none")),
    "503": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none"), "no-such-table"),
}


def _built_report(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A campaign whose report the planner's report file built (as a report tick does), then asked for."""
    import planner

    campaign_id = created_id(stack)
    planner.reset()
    try:
        planner.planner().reports.request(campaign_id, time.time())
    finally:
        planner.reset()
    return campaign_call(stack, "GET", f"/campaigns/{campaign_id}/report")


def _retried(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A campaign the engine started and completed (as its last row settling does), then retried."""
    import planner
    from nxcloud_wa.campaigns import Action

    campaign_id = created_id(stack)
    planner.reset()
    try:
        store = planner.planner().store
        started = store.apply(store.get(campaign_id), Action.START, "2026-01-01T00:00:00+00:00")
        store.apply(started, Action.COMPLETE, "2026-01-01T00:00:01+00:00")
    finally:
        planner.reset()
    return campaign_call(stack, "POST", f"/campaigns/{campaign_id}/retry")


REPORT_ANSWERS: dict[str, CampaignDriver] = {
    "200": _built_report,
    "202": lambda stack, _: campaign_call(stack, "GET", f"/campaigns/{created_id(stack)}/report"),
    "404": lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none/report"),
    "500": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none/report")),
    "503": _without_table(lambda stack, _: campaign_call(stack, "GET", "/campaigns/c-none/report"), "no-such-table"),
}


def action_answers(action: str, refused_after: tuple[str, ...]) -> dict[str, CampaignDriver]:
    return {
        "200": _action(action, ("pause",) if action == "resume" else ()),
        "404": _action(action, ("none",)),
        "409": _action(action, refused_after),
        "500": _without_table(_action(action, ("none",))),
        "503": _without_table(_action(action, ("none",)), "no-such-table"),
    }


CAMPAIGN_OPERATIONS: Final = {
    ("post", "/audiences"): AUDIENCE_ANSWERS,
    ("post", "/campaigns"): CREATE_ANSWERS,
    ("get", "/campaigns"): LIST_CAMPAIGNS_ANSWERS,
    ("get", "/campaigns/{campaign_id}"): GET_CAMPAIGN_ANSWERS,
    ("post", "/campaigns/{campaign_id}/pause"): action_answers("pause", ("cancel",)),
    ("post", "/campaigns/{campaign_id}/resume"): action_answers("resume", ()),
    ("post", "/campaigns/{campaign_id}/cancel"): action_answers("cancel", ("cancel",)),
    ("post", "/campaigns/{campaign_id}/retry"): action_answers("retry", ()) | {"200": _retried},
    ("get", "/campaigns/{campaign_id}/report"): REPORT_ANSWERS,
}


@pytest.mark.parametrize(
    ("operation", "status"),
    [(operation, status) for operation, driven in CAMPAIGN_OPERATIONS.items() for status in driven],
)
def test_every_campaign_answer_is_the_one_documented(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, operation: tuple[str, str], status: str
) -> None:
    answer = CAMPAIGN_OPERATIONS[operation][status](stack, monkeypatch)

    assert str(answer["statusCode"]) == status, answer
    validate(operation, answer)


@pytest.mark.parametrize(
    ("operation", "driven"),
    [
        (SEND, SEND_ANSWERS),
        (QUERY, QUERY_ANSWERS),
        (PUT_ENTRY, PUT_ANSWERS),
        (DELETE_ENTRY, DELETE_ANSWERS),
        (GET_ENTRY, GET_ENTRY_ANSWERS),
        (LIST_ENTRIES, LIST_ANSWERS),
        *CAMPAIGN_OPERATIONS.items(),
    ],
)
def test_the_answers_driven_here_are_exactly_the_documented_ones(
    operation: tuple[str, str], driven: dict[str, Any]
) -> None:
    method, path = operation
    responses = DOCUMENT["paths"][path][method]["responses"]
    documented = {
        s
        for s, r in responses.items()
        if r.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref") != GATEWAY_ERROR
    }
    assert set(driven) == documented


def test_every_operation_of_the_document_is_driven_here() -> None:
    """A route added to the API (and so to the document) without its answers driven here fails."""
    operations = {(method, path) for path, methods in DOCUMENT["paths"].items() for method in methods}
    assert operations == {SEND, QUERY, PUT_ENTRY, DELETE_ENTRY, GET_ENTRY, LIST_ENTRIES, *CAMPAIGN_OPERATIONS}


def test_a_renamed_field_fails_the_validation() -> None:
    """The check itself can fail: a body with a field renamed, or one missing, is refused."""
    answer = {"statusCode": 200, "headers": {"Content-Type": "application/json"}}
    with pytest.raises(AssertionError, match="trace"):
        validate(SEND, answer | {"body": json.dumps({"message_id": "m", "traceId": "t"})})
    with pytest.raises(AssertionError, match="message_id"):
        validate(SEND, answer | {"body": json.dumps({"trace_id": "t"})})
