"""Hostile input, case by case: oversized bodies, deep nesting, invalid UTF-8, SQS records of shapes SQS never sends.

Each ends in a clear error or a dead letter with its reason, and never costs an upstream request. Memory and time are
measured (tracemalloc, perf_counter) and printed (``-s`` shows them); only memory has an assertion, with a generous
bound, where it is a real safety property: the handler must not make many copies of a body it is about to refuse.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import tracemalloc
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from local_stack.emulators import MAX_REQUEST_BYTES, ApiServer
from nxcloud_wa.models import MAX_MESSAGE_BYTES, InvalidMessageError, parse_message
from tests.stack import Stack
from tests.stack import message as valid_message

from .conftest import sqs_record

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding:UserWarning"),
]

MB = 1024 * 1024


def padded(size: int) -> str:
    """A valid message's JSON padded with spaces (JSON whitespace) to exactly ``size`` bytes."""
    text = json.dumps(valid_message())
    return text + " " * (size - len(text))


def nested(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


def measured(label: str, fn: Callable[[], Any], *, memory: bool = True) -> tuple[Any, float, float]:
    """Run ``fn``; print and return its result, peak traced allocation (MB) and wall time (s).

    Tracing allocations slows everything down: where only the time is of interest, pass ``memory=False``.
    """
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        result = fn()
    finally:
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / MB if memory else float("nan")
        tracemalloc.stop()
    print(f"\n{label}: peak {peak:.1f} MB allocated, {elapsed * 1000:.0f} ms")
    return result, peak, elapsed


def api_status(response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return response["statusCode"], json.loads(response["body"])


@pytest.fixture
def stack(fuzz_stack: Stack) -> Stack:
    fuzz_stack.reset()
    return fuzz_stack


JSON = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------------------------------------------------
# Oversized bodies


def test_api_body_at_the_limit_is_sent_and_one_byte_over_is_413(stack: Stack) -> None:
    status, body = api_status(stack.call_api(padded(MAX_MESSAGE_BYTES), JSON))
    assert status == 200, body
    assert len(stack.simulator.accepted) == 1

    stack.reset()
    status, body = api_status(stack.call_api(padded(MAX_MESSAGE_BYTES + 1), JSON))
    assert status == 413
    assert body["error"] == "too_large"
    assert stack.simulator.requests == []


def test_api_base64_body_over_the_limit_is_413(stack: Stack) -> None:
    status, _ = api_status(stack.call_api(padded(MAX_MESSAGE_BYTES + 64).encode("utf-8") + b"\xff", JSON))
    assert status == 413
    assert stack.simulator.requests == []


def test_api_ten_megabyte_body_is_refused_without_copying_it_many_times(stack: Stack) -> None:
    text = padded(10 * MB)
    response, peak, _ = measured("API, 10 MB body (in-process event)", lambda: stack.call_api(text, JSON))
    assert api_status(response)[0] == 413
    assert stack.simulator.requests == []
    assert peak < 25, "the handler copies a body it refuses more than twice"


def test_parse_message_refuses_ten_megabytes_of_nesting_by_size_in_bounded_memory() -> None:
    body = nested(5 * MB)
    error, peak, _ = measured("parse_message, 10 MB of nesting", lambda: rejection(body))
    assert [e["type"] for e in error.errors] == ["too_large"]
    assert peak < 25, "more than two copies of a body that is refused by its size"


def test_a_record_at_the_send_queues_maximum_size_is_dead_lettered_with_its_reason(stack: Stack) -> None:
    """The send queue's maximum leaves room on the DLQ for the body plus the reason's attributes (template.yaml)."""
    from local_stack.template import resource_properties

    size = int(resource_properties("SendQueue")["MaximumMessageSize"])
    body = nested(size // 2)
    assert len(body) == size
    record = sqs_record(body)
    response, _, _ = measured(
        "SQS handler, body at the send queue's maximum", lambda: stack.invoke({"Records": [record]}), memory=False
    )
    assert response == {"batchItemFailures": []}
    (dead,) = stack.dead_letters().values()
    assert dead["attributes"]["reason"] == "invalid_message"
    assert dead["body"] == body
    assert stack.simulator.requests == []


def test_http_body_over_api_gateways_ten_megabytes_is_refused_by_the_gateway(api_server: ApiServer) -> None:
    before = api_server.invoke.invocations
    status, _, body = http_post(api_server, b" " * (MAX_REQUEST_BYTES + 1), {"x-api-key": api_server.api_key})
    assert status == 413
    assert json.loads(body) == {"message": "Request Too Long"}
    assert api_server.invoke.invocations == before


def test_http_body_just_under_ten_megabytes_reaches_the_function_and_gets_its_413(api_server: ApiServer) -> None:
    status, _, body = http_post(api_server, b" " * (MAX_REQUEST_BYTES - 1), {"x-api-key": api_server.api_key})
    assert status == 413
    assert json.loads(body)["error"] == "too_large"


# ---------------------------------------------------------------------------------------------------------------------
# Deep nesting


def rejection(raw: Any) -> InvalidMessageError:
    with pytest.raises(InvalidMessageError) as excinfo:
        parse_message(raw)
    return excinfo.value


@pytest.mark.parametrize("kind", ["list", "object"])
def test_nesting_as_deep_as_the_limit_allows_is_malformed_json_not_a_crash(stack: Stack, kind: str) -> None:
    depth = (MAX_MESSAGE_BYTES - 2) // (2 if kind == "list" else 6)
    text = nested(depth, kind)
    assert len(text.encode()) <= MAX_MESSAGE_BYTES

    error, _, _ = measured(f"parse_message, {depth} levels of {kind}", lambda: rejection(text))
    assert error.errors[0]["type"] == "json_invalid"

    status, body = api_status(stack.call_api(text, JSON))
    assert status == 400, body
    assert body["errors"][0]["type"] == "json_invalid"

    record = sqs_record(text)
    assert stack.invoke({"Records": [record]}) == {"batchItemFailures": []}
    dead = stack.dead_letters()[record["messageId"]]
    assert dead["attributes"]["reason"] == "invalid_message"
    assert dead["body"] == text
    assert stack.simulator.requests == []


def test_one_hundred_thousand_levels_are_refused_by_size_before_parsing(stack: Stack) -> None:
    text = nested(100_000)
    error, _, _ = measured("parse_message, 100 000 levels", lambda: rejection(text))
    assert [e["type"] for e in error.errors] == ["too_large"]
    status, _ = api_status(stack.call_api(text, JSON))
    assert status == 413
    record = sqs_record(text)
    assert stack.invoke({"Records": [record]}) == {"batchItemFailures": []}
    assert stack.dead_letters()[record["messageId"]]["attributes"]["reason"] == "invalid_message"
    assert stack.simulator.requests == []


def test_deeply_nested_data_in_a_field_is_a_field_error_without_recursing() -> None:
    """Already-decoded data (the API path) nested 100 000 levels: the model stops at the first wrong type."""
    deep: Any = "x"
    for _ in range(100_000):
        deep = [deep]
    components: Any = {}
    for _ in range(100_000):
        components = {"a": components}
    for message in (valid_message(to=deep), valid_message(template=components), {"idempotency_key": deep}):
        error, _, elapsed = measured("parse_message, 100 000 levels in a field", lambda m=message: rejection(m))
        assert error.errors
        assert elapsed < 5  # generous: it is a few ms; minutes would mean it walks the whole depth


# ---------------------------------------------------------------------------------------------------------------------
# Invalid UTF-8 and other bad text


INVALID_UTF8 = [
    b"\xff",
    b'{"to": "\xc0\x80"}',  # overlong NUL
    b'{"to": "\xed\xa0\x80"}',  # an encoded surrogate
    b'{"to": "\xf4\x90\x80\x80"}',  # beyond U+10FFFF
    b'{"to": "\xe2\x82"}',  # truncated sequence
    json.dumps(valid_message()).encode("utf-8")[:-3] + b"\x80}}",
]


@pytest.mark.parametrize("raw", INVALID_UTF8, ids=range(len(INVALID_UTF8)))
def test_invalid_utf8_is_a_400_on_the_api_and_a_field_error_in_the_model(stack: Stack, raw: bytes) -> None:
    status, body = api_status(stack.call_api(raw, JSON))
    assert status == 400, body
    assert body["errors"] == [{"loc": ["body"], "msg": "the body is not UTF-8 text", "type": "unicode_decode"}]
    # json.loads decodes bytes with surrogatepass: an encoded surrogate becomes a string the model refuses.
    assert rejection(raw).errors[0]["type"] in ("json_invalid", "string_unicode")
    assert stack.simulator.requests == []


def test_invalid_utf8_over_http_is_a_400(api_server: ApiServer) -> None:
    status, _, body = http_post(api_server, b'{"to": "\xff"}', {"x-api-key": api_server.api_key, **JSON})
    assert status == 400
    assert json.loads(body)["errors"][0]["type"] == "unicode_decode"


@pytest.mark.parametrize(
    "text",
    ['{"to": "\ud800"}', "\udc00", json.dumps(valid_message(idempotency_key="k\ud83d"), ensure_ascii=False)],
    ids=["surrogate-in-field", "surrogate-alone", "surrogate-in-key"],
)
def test_lone_surrogates_in_the_event_body_are_a_400(stack: Stack, text: str) -> None:
    status, body = api_status(stack.call_api(text, JSON))
    assert status == 400, body
    assert stack.simulator.requests == []


def test_a_valid_message_with_characters_sqs_refuses_is_queued_as_the_same_message(stack: Stack) -> None:
    """U+FFFE is valid in JSON and in a template text, but SQS refuses it: it is queued as a JSON escape."""
    message = valid_message()
    message["template"]["components"][0]["parameters"][0]["text"] = "a\ufffeb\uffff"
    text = json.dumps(message, ensure_ascii=False)
    status, body = api_status(stack.call_api(text, {**JSON, "Prefer": "respond-async"}))
    assert status == 202, body
    [queued] = stack.drain(stack.resources.send_queue_url)
    assert json.loads(queued["Body"]) == message


def test_a_body_idempotency_key_with_a_control_character_is_queued_under_the_same_key(stack: Stack) -> None:
    """JSON allows "\\b" in the key; SQS refuses it in the attribute, so the attribute is escaped, the body kept."""
    message = valid_message(idempotency_key="key\b\x00\ufffe")
    status, body = api_status(stack.call_api(json.dumps(message), {**JSON, "Prefer": "respond-async"}))
    assert status == 202, body
    [queued] = stack.drain(stack.resources.send_queue_url)
    assert json.loads(queued["Body"])["idempotency_key"] == "key\b\x00\ufffe"
    assert queued["MessageAttributes"]["idempotency_key"]["StringValue"] == "key\\u0008\\u0000\\ufffe"


CONTENT_TYPES = {
    "multipart/form-data": 415,  # no boundary: Powertools' parser raised ValueError (was 503)
    "multipart/form-data; boundary=x": 415,  # a JSON text that is not Latin-1: UnicodeEncodeError (was 503)
    "text/plain": 415,
    "application/xml": 415,
    "APPLICATION/JSON": 415,  # Powertools compares case-sensitively: refused, clearly
    "application/x-www-form-urlencoded": 400,  # parsed as a form, which never has the fields: field errors
    "application/json; charset=utf-8": 200,
}


@pytest.mark.parametrize("content_type", CONTENT_TYPES, ids=list(CONTENT_TYPES))
def test_content_types_get_their_answer_and_only_json_is_sent(stack: Stack, content_type: str) -> None:
    text = json.dumps(valid_message(template={"name": "订单", "language": {"code": "zh_CN"}}), ensure_ascii=False)
    status, body = api_status(stack.call_api(text, {"Content-Type": content_type}))
    assert status == CONTENT_TYPES[content_type], body
    assert body.get("error") != "internal_error"
    assert len(stack.simulator.requests) == (1 if status == 200 else 0)


def test_a_field_name_with_a_control_character_is_dead_lettered_with_its_reason(stack: Stack) -> None:
    """The reason quotes the field name; SQS refuses control characters in attributes, so they are escaped."""
    body = json.dumps(valid_message(**{"\b\x00\ufffe": 1}))
    record = sqs_record(body)
    assert stack.invoke({"Records": [record]}) == {"batchItemFailures": []}
    dead = stack.dead_letters()[record["messageId"]]
    assert dead["body"] == body
    assert dead["attributes"]["reason"] == "invalid_message"
    assert "\\u0008\\u0000\\ufffe" in dead["attributes"]["error_message"]


# ---------------------------------------------------------------------------------------------------------------------
# SQS records of shapes SQS never sends


def without(key: str) -> dict[str, Any]:
    record = sqs_record(json.dumps(valid_message()))
    del record[key]
    return record


MALFORMED_RECORDS = {
    "missing body": without("body"),
    "body null": sqs_record(None),
    "body a number": sqs_record(5),
    "body an object": sqs_record(valid_message()),
    "body empty": sqs_record(""),
    "missing messageId": without("messageId"),
    "messageId a number": sqs_record(json.dumps(valid_message()), messageId=7),
}


@pytest.mark.parametrize("record", MALFORMED_RECORDS.values(), ids=MALFORMED_RECORDS.keys())
def test_a_record_sqs_cannot_send_fails_the_event_with_a_clear_error_before_anything_is_sent(
    stack: Stack, record: dict[str, Any]
) -> None:
    good = sqs_record(json.dumps(valid_message()))
    with pytest.raises(ValueError, match=r"malformed SQS event: record 1's (body|messageId) is"):
        stack.invoke({"Records": [good, record]})
    assert stack.simulator.requests == []
    assert stack.dead_letters() == {}


ODD_ATTRIBUTES = {
    "messageAttributes a list": {"messageAttributes": [1, 2]},
    "messageAttributes a string": {"messageAttributes": "idempotency_key"},
    "messageAttributes null": {"messageAttributes": None},
    "idempotency_key attribute a string": {"messageAttributes": {"idempotency_key": "k"}},
    "idempotency_key stringValue a number": {"messageAttributes": {"idempotency_key": {"stringValue": 5}}},
    "attributes a string": {"attributes": "x"},
    "attributes a list": {"attributes": [None]},
    "ApproximateReceiveCount superscript": {"attributes": {"ApproximateReceiveCount": "\u00b2"}},
    "ApproximateReceiveCount a list": {"attributes": {"ApproximateReceiveCount": ["1"]}},
}


@pytest.mark.parametrize("overrides", ODD_ATTRIBUTES.values(), ids=ODD_ATTRIBUTES.keys())
def test_attributes_of_the_wrong_type_do_not_stop_a_valid_message_or_an_invalid_ones_dead_letter(
    stack: Stack, overrides: dict[str, Any]
) -> None:
    valid = sqs_record(json.dumps(valid_message(to="8613800000001")), **overrides)
    invalid = sqs_record(json.dumps({"to": "nope"}), **overrides)
    assert stack.invoke({"Records": [valid, invalid]}) == {"batchItemFailures": []}
    assert stack.simulator.accepted_count_for(to="8613800000001") == 1
    assert len(stack.simulator.requests) == 1
    dead = stack.dead_letters()
    assert list(dead) == [invalid["messageId"]]
    assert dead[invalid["messageId"]]["attributes"]["reason"] == "invalid_message"


UNSUPPORTED_EVENTS = {
    "empty Records": {"Records": []},
    "Records not a list": {"Records": {"0": sqs_record()}},
    "a record not an object": {"Records": ["x"]},
    "eventSource aws:sns": {"Records": [sqs_record(eventSource="aws:sns")]},
    "eventSource missing": {"Records": [without("eventSource")]},
    "mixed sources": {"Records": [sqs_record(), sqs_record(eventSource="aws:kinesis")]},
    "null": None,
    "a list": [sqs_record()],
    "a string": "Records",
    "a number": 42,
    "an empty object": {},
}


@pytest.mark.parametrize("event", UNSUPPORTED_EVENTS.values(), ids=UNSUPPORTED_EVENTS.keys())
def test_an_event_that_is_no_sqs_batch_nor_api_request_is_refused_clearly(stack: Stack, event: Any) -> None:
    with pytest.raises(ValueError, match="unsupported event"):
        stack.invoke(event)
    assert stack.simulator.requests == []


# ---------------------------------------------------------------------------------------------------------------------
# The local API over HTTP (API Gateway emulation)


def http_post(server: ApiServer, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """POST to the local API; a refusal before the whole body is sent (the gateway's 413) still gives its answer."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.putrequest("POST", f"{url.path}/messages")
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            connection.putheader(name, value)
        connection.endheaders()
        # The gateway may answer and close before reading it all: then read that answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            connection.send(body)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "headers",
    [{}, {"x-api-key": ""}, {"x-api-key": "wrong"}, {"X-Api-Key": "wrong "}, {"authorization": "Bearer x"}],
    ids=["none", "empty", "wrong", "wrong-case-and-space", "other-scheme"],
)
def test_requests_without_the_api_key_are_refused_and_never_reach_the_function(
    api_server: ApiServer, stack: Stack, headers: dict[str, str]
) -> None:
    before = api_server.invoke.invocations
    status, _, body = http_post(api_server, json.dumps(valid_message()).encode(), {**JSON, **headers})
    assert status == 403
    assert json.loads(body) == {"message": "Forbidden"}
    assert api_server.invoke.invocations == before
    assert stack.simulator.requests == []


def test_the_right_key_in_any_header_case_is_let_through(api_server: ApiServer, stack: Stack) -> None:
    headers = {**JSON, "X-API-Key": api_server.api_key}
    status, _, body = http_post(api_server, json.dumps(valid_message()).encode(), headers)
    assert status == 200, body
    assert len(stack.simulator.accepted) == 1


def test_base64_event_of_valid_utf8_is_decoded_like_text(stack: Stack) -> None:
    """API Gateway base64-encodes a binary body (the harness does it for bytes): valid UTF-8 in it is sent as text."""
    raw = json.dumps(valid_message(template={"name": "订单", "language": {"code": "zh_CN"}}), ensure_ascii=False)
    status, body = api_status(stack.call_api(raw.encode("utf-8"), JSON))
    assert status == 200, body
