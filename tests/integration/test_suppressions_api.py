"""The REST API's /suppressions routes (docs/audience.md, "API and CLI"), through the real handler against moto: what
each stores and answers, the numbers' spellings, the precedence, expiry, paging, and the list failing.

Every answer's shape against openapi.json is tests/integration/test_api_answers.py's; the same entries read by the
send's check (``SuppressionStore.lookup``) are asserted here, so what the API stores is what enforcement finds.
"""

from __future__ import annotations

import io
import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from local_stack.lambda_events import api_event
from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore, key_of

from .conftest import Stack, message

BUSINESS = "8618512348399"
"""The secret's default business number (tests/stack.py)."""
OTHER_BUSINESS = "8618512340000"
RECIPIENT = "8613800138000"


def call(
    stack: Stack,
    method: str,
    number: str | None = None,
    body: dict[str, Any] | str | None = None,
    **query: str,
) -> tuple[int, Any]:
    """One request to /suppressions[/{number}] (the number percent-encoded as a client sends it); the status and the
    decoded body (None when there is none)."""
    path = "/suppressions" + (f"/{urllib.parse.quote(number, safe='')}" if number is not None else "")
    text = json.dumps(body) if isinstance(body, dict) else body
    headers = {"Content-Type": "application/json"} if text is not None else {}
    route = "/suppressions/{number}" if number is not None else "/suppressions"
    event = api_event(
        text, method=method, path=path, headers=headers, query={k: [v] for k, v in query.items()}, resource=route
    )
    answer = stack.invoke(event)
    return int(answer["statusCode"]), json.loads(answer["body"]) if answer.get("body") else None


def store(stack: Stack) -> SuppressionStore:
    return SuppressionStore(stack.resources.client("dynamodb"), stack.resources.suppressions_table)


def test_an_entry_is_stored_read_replaced_and_removed(stack: Stack) -> None:
    created = call(stack, "PUT", "+86 138-0013-8000")

    assert created == (
        201,
        {
            "number": RECIPIENT,
            "business_phone": BUSINESS,
            "scope": "marketing",
            "reason": "manual",
            "source": "api",
            "at": created[1]["at"],
            "expires_at": None,
        },
    )
    assert datetime.fromisoformat(created[1]["at"]).tzinfo is not None
    # What the send's check reads: the same key, whatever spelling the caller used.
    [found] = store(stack).lookup([key_of(BUSINESS, "008613800138000")]).values()
    assert (found.scope, found.reason, found.source) == (Scope.MARKETING, Reason.MANUAL, "api")

    assert call(stack, "GET", RECIPIENT) == (200, created[1])
    replaced = call(stack, "PUT", RECIPIENT, {"reason": "opted_out"})
    assert (replaced[0], replaced[1]["reason"]) == (200, "opted_out")
    assert call(stack, "DELETE", "+8613800138000") == (204, None)
    assert call(stack, "GET", RECIPIENT)[0] == 404
    assert call(stack, "DELETE", RECIPIENT)[1] == {
        "error": "not_found",
        "message": "no suppression entry for this number and business number",
    }


def test_a_weaker_entry_does_not_replace_a_stronger_one_and_the_answer_shows_the_one_kept(stack: Stack) -> None:
    assert call(stack, "PUT", RECIPIENT, {"scope": "all"})[0] == 201

    status, kept = call(stack, "PUT", RECIPIENT, {"scope": "marketing", "reason": "opted_out"})

    assert (status, kept["scope"], kept["reason"]) == (200, "all", "manual")
    assert store(stack).get(BUSINESS, RECIPIENT).scope is Scope.ALL  # type: ignore[union-attr]


def test_entries_are_per_business_number(stack: Stack) -> None:
    call(stack, "PUT", RECIPIENT, {"business_phone": "+86 185 1234 0000", "scope": "all"})

    assert call(stack, "GET", RECIPIENT)[0] == 404  # the default business number has none
    status, entry = call(stack, "GET", RECIPIENT, business_phone=OTHER_BUSINESS)
    assert (status, entry["business_phone"], entry["scope"]) == (200, OTHER_BUSINESS, "all")
    assert call(stack, "DELETE", RECIPIENT)[0] == 404
    assert call(stack, "DELETE", RECIPIENT, business_phone=OTHER_BUSINESS)[0] == 204


def test_expires_at_becomes_the_entrys_expiry(stack: Stack) -> None:
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    in_shanghai = later.astimezone(timezone(timedelta(hours=8))).isoformat()

    status, entry = call(stack, "PUT", RECIPIENT, {"expires_at": in_shanghai, "scope": "all"})

    assert status == 201
    assert datetime.fromisoformat(entry["expires_at"]) == later
    stored = store(stack).get(BUSINESS, RECIPIENT)
    assert stored is not None and stored.expiration == int(later.timestamp())


def test_an_expired_entry_is_absent(stack: Stack) -> None:
    now = time.time()
    gone = Suppression(BUSINESS, RECIPIENT, Scope.ALL, Reason.UNDELIVERABLE, "131026", "2026-01-01T00:00:00.000+00:00")
    store(stack).put(Suppression(*gone.key, gone.scope, gone.reason, gone.source, gone.at, int(now) - 1))

    assert call(stack, "GET", RECIPIENT)[0] == 404
    assert call(stack, "GET")[1]["items"] == []
    assert call(stack, "PUT", RECIPIENT)[0] == 201  # nothing was in force


@pytest.mark.parametrize(
    ("number", "body", "query", "loc"),
    [
        ("12", None, {}, ["path", "number"]),
        ("not a number", None, {}, ["path", "number"]),
        (RECIPIENT, {"reason": "undeliverable"}, {}, ["body", "reason"]),
        (RECIPIENT, {"reason": "marketing_stopped"}, {}, ["body", "reason"]),
        (RECIPIENT, {"scope": "utility"}, {}, ["body", "scope"]),
        (RECIPIENT, {"source": "131026"}, {}, ["body", "source"]),
        (RECIPIENT, {"recipient": RECIPIENT}, {}, ["body", "recipient"]),
        (RECIPIENT, {"business_phone": "123"}, {}, ["body", "business_phone"]),
        (RECIPIENT, {"expires_at": "2020-01-01T00:00:00Z"}, {}, ["body", "expires_at"]),
        (RECIPIENT, {"expires_at": "2999-01-01T00:00:00"}, {}, ["body", "expires_at"]),  # no offset
        (RECIPIENT, {"expires_at": "tomorrow"}, {}, ["body", "expires_at"]),
        (RECIPIENT, "[null, null]", {}, ["body"]),
        (RECIPIENT, '[{"scope": "all"}]', {}, ["body"]),
        (RECIPIENT, '"all"', {}, ["body"]),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field_and_stores_nothing(
    stack: Stack, number: str, body: dict[str, Any] | str | None, query: dict[str, str], loc: list[str]
) -> None:
    status, answer = call(stack, "PUT", number, body, **query)

    assert status == 400, answer
    assert answer["error"] == "invalid_message"
    assert [e["loc"][:2] for e in answer["errors"]] == [loc]
    assert call(stack, "GET")[1]["items"] == []


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_bad_business_number_in_the_query_is_a_400(stack: Stack, method: str) -> None:
    status, answer = call(stack, method, RECIPIENT, business_phone="12")

    assert status == 400
    assert answer["errors"][0]["loc"] == ["query", "business_phone"]


def test_the_list_is_paged_by_recipient_and_the_cursor_is_the_business_numbers_own(stack: Stack) -> None:
    recipients = [f"86138001380{i:02d}" for i in range(5)]
    for number in reversed(recipients):
        assert call(stack, "PUT", number)[0] == 201
    call(stack, "PUT", RECIPIENT, {"business_phone": OTHER_BUSINESS})

    seen: list[str] = []
    cursors: list[str] = []
    while True:
        status, page = call(stack, "GET", limit="2", **({"cursor": cursors[-1]} if cursors else {}))
        assert status == 200
        seen += [item["number"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        cursors.append(page["next_cursor"])

    assert seen == recipients
    assert len(cursors) >= 2
    other = call(stack, "GET", business_phone=OTHER_BUSINESS, cursor=cursors[0])
    assert other[0] == 400 and other[1]["errors"][0]["loc"] == ["query", "cursor"]
    assert call(stack, "GET", cursor="not-a-cursor")[0] == 400
    assert call(stack, "GET", limit="0")[0] == 400
    assert call(stack, "GET", limit="1001")[0] == 400


def test_an_unreadable_list_is_a_503_on_every_route(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.stack import reset_function_runtime

    monkeypatch.setenv("SUPPRESSIONS_TABLE", "no-such-table")
    reset_function_runtime()

    for method, number in (("PUT", RECIPIENT), ("GET", RECIPIENT), ("DELETE", RECIPIENT), ("GET", None)):
        status, answer = call(stack, method, number)
        assert (status, answer["error"]) == (503, "suppressions_unavailable"), method


def test_the_log_says_what_changed_with_the_number_masked(stack: Stack, captured_logs: io.StringIO) -> None:
    call(stack, "PUT", RECIPIENT, {"scope": "all"})
    call(stack, "PUT", RECIPIENT)
    call(stack, "DELETE", RECIPIENT)

    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines() if line.startswith("{")]
    changes = [(line["message"], line.get("to")) for line in lines if "suppression" in str(line.get("message"))]
    assert changes == [
        ("suppression stored", "+86*******8000"),
        ("suppression kept", "+86*******8000"),
        ("suppression removed", "+86*******8000"),
    ]
    assert RECIPIENT not in captured_logs.getvalue()


@pytest.mark.parametrize("body", [None, "", "null", "{}"])
def test_no_body_is_a_manual_marketing_entry_of_the_default_business_number(stack: Stack, body: str | None) -> None:
    status, entry = call(stack, "PUT", RECIPIENT, body)

    assert status == 201
    assert (entry["business_phone"], entry["scope"], entry["reason"]) == (BUSINESS, "marketing", "manual")


def test_a_deployment_without_the_list_is_misconfigured(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.stack import reset_function_runtime

    monkeypatch.delenv("SUPPRESSIONS_TABLE")
    reset_function_runtime()

    status, answer = call(stack, "GET", RECIPIENT)
    assert (status, answer["error"]) == (500, "misconfigured")
    assert stack.call_api(message())["statusCode"] == 200  # sending is not affected


@pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
def test_a_number_no_route_takes_is_a_400_not_a_404(stack: Stack, method: str) -> None:
    # API Gateway passes a decoded control character on; no route parameter takes it (schemathesis under sam local).
    event = api_event(None, method=method, path="/suppressions/\x8dI", resource="/suppressions/{number}")
    answer = stack.invoke(event)

    assert answer["statusCode"] == 400, answer
    assert json.loads(answer["body"])["errors"][0]["loc"] == ["path", "number"]
