"""Properties of the request model under any input: a valid send request or field errors, never anything else.

``parse_message`` is what both triggers trust to keep junk away from NXCloud. For any JSON, any text, any bytes and
any one-field mutation of a valid message it must return a :class:`SendRequest` or raise
:class:`InvalidMessageError` whose errors each have a ``loc`` list (of str and int), a ``msg`` and a ``type``. A valid
result must survive the trip to NXCloud's body and back, and never alter the caller's text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given, note, settings
from hypothesis import strategies as st

from nxcloud_wa.models import MAX_MESSAGE_BYTES, Defaults, InvalidMessageError, SendRequest, parse_message

from .conftest import examples
from .strategies import (
    any_char,
    any_json,
    big_valid_messages,
    dumps,
    mutations,
    texts,
    utf8_size,
    valid_messages,
)

DEFAULTS = Defaults(tenant_id=1, appkey="app1", business_phone="8618512348399")
TAGS = frozenset({"header", "body", "button", "text", "coupon_code", "image"})
TEXT_FIELDS = ("text", "coupon_code", "link", "name", "code")


def outcome(raw: Any) -> SendRequest | InvalidMessageError:
    """``parse_message``'s result or its InvalidMessageError; any other exception fails the test as it is raised."""
    try:
        request = parse_message(raw)
    except InvalidMessageError as exc:
        assert_well_formed(exc)
        return exc
    assert isinstance(request, SendRequest)
    return request


def assert_well_formed(exc: InvalidMessageError) -> None:
    assert isinstance(exc.errors, list)
    assert exc.errors, "an InvalidMessageError without errors"
    for error in exc.errors:
        assert set(error) == {"loc", "msg", "type"}, error
        assert isinstance(error["loc"], list)
        assert all(isinstance(p, str | int) and not isinstance(p, bool) for p in error["loc"]), error
        assert isinstance(error["msg"], str)
        assert error["msg"]
        assert isinstance(error["type"], str)
        assert error["type"]
    # The errors travel as JSON (API bodies) and as text (logs, dead-letter attributes): both must work.
    json.dumps(exc.errors)
    assert isinstance(str(exc), str)


def assert_round_trips(request: SendRequest) -> dict[str, Any]:
    """``to_upstream`` -> JSON -> ``parse_message`` -> ``to_upstream`` is the identity, in both JSON encodings."""
    upstream = request.to_upstream(DEFAULTS)
    for ascii_only in (False, True):
        text = json.dumps(upstream, ensure_ascii=ascii_only)
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:  # the limit counts the bytes received: \uXXXX costs 6
            note(f"not re-parsed: {len(text.encode())} bytes as {'ASCII' if ascii_only else 'UTF-8'} JSON")
            continue
        again = parse_message(text).to_upstream(DEFAULTS)
        assert again == upstream
        assert json.dumps(again, ensure_ascii=False) == json.dumps(upstream, ensure_ascii=False)  # key order too
    if len(json.dumps(upstream)) <= MAX_MESSAGE_BYTES:
        assert parse_message(json.dumps(upstream).encode("utf-8")).to_upstream(DEFAULTS) == upstream
    return upstream


def strings_at(value: Any, fields: tuple[str, ...] = TEXT_FIELDS, path: tuple[Any, ...] = ()) -> dict[Any, str]:
    """The caller's free text in a message, by path (types and tags aside)."""
    found: dict[Any, str] = {}
    if isinstance(value, dict):
        for key, child in value.items():
            if key in fields and isinstance(child, str):
                found[(*path, key)] = child
            found.update(strings_at(child, fields, (*path, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.update(strings_at(child, fields, (*path, index)))
    return found


def near(loc: list[Any], path: tuple[Any, ...]) -> bool:
    """Whether an error location is on the way to the changed path or below it.

    pydantic puts a discriminated union's tag after the list index (``components, 0, "body", parameters``): a tag
    that the path does not have is skipped there, and only there (``image`` is also a field name).
    """
    i = j = 0
    while i < len(loc) and j < len(path):
        if loc[i] == path[j]:
            i, j = i + 1, j + 1
        elif i > 0 and isinstance(loc[i - 1], int) and loc[i] in TAGS:
            i += 1
        else:
            return False
    return True


# ---------------------------------------------------------------------------------------------------------------------
# Anything at all


@given(any_json())
def test_any_json_value_is_a_request_or_field_errors(value: Any) -> None:
    for raw in (dumps(value), dumps(value, ascii_only=True)):
        outcome(raw)
    if isinstance(value, dict):
        outcome(value)


@given(texts(any_char, max_size=300))
@example("\ud800")
@example('{"to": "\\ud800"}')
@example('"\\udc00\\ud800"')
@example("\x00")
@example("\ufeff{}")
@example("NaN")
@example("-Infinity")
@example("1" * 5000)
@example("9" * 4301)  # past Python's int-from-string digit limit
@example('{"to": ' + "9" * 4301 + "}")
@example('{"tenant_id": ' + "9" * 4301 + "}")
@example('{"tenant_id": 1e400}')
def test_any_text_is_a_request_or_field_errors(text: str) -> None:
    outcome(text)


@given(st.binary(max_size=300))
@example(b"\xff\xfe{\x00}\x00")  # UTF-16 with a BOM: json.loads detects it
@example(b"\xc0\x80")  # overlong NUL
@example(b"\xed\xa0\x80")  # an encoded surrogate
@example(b'{"to": "\xf4\x90\x80\x80"}')  # past U+10FFFF
def test_any_bytes_are_a_request_or_field_errors(raw: bytes) -> None:
    outcome(raw)


@settings(max_examples=examples(50))
@given(st.dictionaries(texts(any_char, max_size=15), any_json(10), max_size=10))
def test_any_object_is_a_request_or_field_errors(value: dict[str, Any]) -> None:
    outcome(value)
    outcome(dumps(value))


# ---------------------------------------------------------------------------------------------------------------------
# Valid messages, and one change away from valid


@given(valid_messages())
def test_valid_message_is_accepted_round_trips_and_keeps_its_text(message: dict[str, Any]) -> None:
    for raw in (message, dumps(message), dumps(message, ascii_only=True), dumps(message).encode("utf-8")):
        result = outcome(raw)
        assert isinstance(result, SendRequest), f"a valid message was rejected: {result}"
    upstream = assert_round_trips(result)
    sent_texts = strings_at(upstream["template"])
    for path, text in strings_at(message["template"]).items():
        assert sent_texts[path] == text, f"text at template.{path} was altered"
    if "idempotency_key" in message:
        assert result.idempotency_key == message["idempotency_key"]
        assert "idempotency_key" not in upstream


@given(mutations())
def test_one_change_gives_a_request_or_an_error_at_that_field(mutated: tuple[dict[str, Any], tuple[Any, ...]]) -> None:
    message, path = mutated
    note(f"changed at {path}")
    for raw in (message, dumps(message)):
        result = outcome(raw)
        if isinstance(result, SendRequest):
            assert_round_trips(result)
        else:
            assert any(near(e["loc"], path) for e in result.errors), (path, result.errors)


@settings(max_examples=examples(30))
@given(big_valid_messages)
def test_any_size_up_to_the_limit_is_accepted_and_over_it_refused(message: dict[str, Any]) -> None:
    size = utf8_size(message)
    note(f"{size} bytes")
    result = outcome(dumps(message))
    if size > MAX_MESSAGE_BYTES:
        assert isinstance(result, InvalidMessageError)
        assert [e["type"] for e in result.errors] == ["too_large"]
    else:
        assert isinstance(result, SendRequest), result
        assert_round_trips(result)
    # Given as already-decoded data (the API path), the size limit is the caller's, the field limits still hold.
    assert isinstance(outcome(message), SendRequest)


@given(valid_messages(), st.integers(0, 64))
def test_the_byte_limit_is_exact(message: dict[str, Any], slack: int) -> None:
    """Padded with spaces (valid JSON whitespace) to the limit minus ``slack``, plus one past it: in, then out."""
    text = dumps(message)
    size = len(text.encode("utf-8"))
    if size > MAX_MESSAGE_BYTES - slack:
        return
    at_limit = text + " " * (MAX_MESSAGE_BYTES - slack - size)
    assert isinstance(outcome(at_limit), SendRequest)
    over = text + " " * (MAX_MESSAGE_BYTES - size + 1)
    result = outcome(over)
    assert isinstance(result, InvalidMessageError)
    assert result.errors[0]["type"] == "too_large"


def test_a_failing_property_reports_its_example() -> None:
    """The harness itself: Hypothesis shows the failing example (schemathesis' plugin would print it empty)."""

    @settings(max_examples=100, derandomize=True, database=None)
    @given(st.integers(min_value=0))
    def below_five(n: int) -> None:
        assert n < 5

    with pytest.raises(AssertionError) as excinfo:
        below_five()
    assert "n=5" in "\n".join(getattr(excinfo.value, "__notes__", []))
