"""Properties of the real handler, driven against moto and the NXCloud simulator with arbitrary input.

SQS: every record of any batch ends sent, dead-lettered with its reason (``invalid_message`` for an invalid body,
which is kept unchanged on the DLQ), or retried; the handler never raises on a batch SQS could deliver; and an
invalid message never reaches NXCloud.

API: any body and headers get a documented status with a JSON body that matches its documented schema, never an
internal error, and an invalid request never reaches NXCloud.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st

from nxcloud_wa.models import InvalidMessageError, parse_message
from tests.stack import Stack

from .conftest import examples, sqs_record
from .strategies import any_char, any_json, json_bodies, sqs_bodies, sqs_can_carry, texts, unicode_char

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Received multipart/form-data without base64 encoding:UserWarning"),
]


def is_valid(body: Any) -> bool:
    if not isinstance(body, str):
        return False
    try:
        parse_message(body)
    except InvalidMessageError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------------------------
# SQS

sqs_text = texts(unicode_char, max_size=40).filter(sqs_can_carry)
attribute_values = st.one_of(
    st.fixed_dictionaries(
        {"stringValue": sqs_text, "dataType": st.sampled_from(["String", "Number", "String.custom"])},
        optional={
            "binaryValue": st.none() | st.binary(max_size=8).map(lambda b: base64.b64encode(b).decode()),
            "stringListValues": st.just([]),
            "binaryListValues": st.just([]),
        },
    ),
    any_json(6),
)
message_attributes = st.dictionaries(
    st.one_of(st.just("idempotency_key"), texts(unicode_char, min_size=1, max_size=12)), attribute_values, max_size=3
)
system_attributes = st.one_of(
    st.just({"ApproximateReceiveCount": "1"}),
    st.dictionaries(st.sampled_from(["ApproximateReceiveCount", "SentTimestamp", "MessageGroupId"]), any_json(3)),
    any_json(4),
)


@st.composite
def deliverable_records(draw: st.DrawFn) -> dict[str, Any]:
    """A record the event source mapping could hand over: SQS-valid body, any message and system attributes."""
    return sqs_record(
        draw(sqs_bodies()),
        messageAttributes=draw(st.one_of(st.just({}), message_attributes, any_json(4))),
        attributes=draw(system_attributes),
    )


@settings(max_examples=examples(40))
@given(st.lists(deliverable_records(), min_size=1, max_size=10))
def test_every_record_ends_sent_dead_lettered_or_retried(fuzz_stack: Stack, records: list[dict[str, Any]]) -> None:
    fuzz_stack.reset()
    response = fuzz_stack.invoke({"Records": records})
    assert isinstance(response, dict)
    assert set(response) == {"batchItemFailures"}
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    ids = {r["messageId"] for r in records}
    assert set(failed) <= ids
    dead = fuzz_stack.dead_letters()
    assert set(dead) <= ids
    valid = [r for r in records if is_valid(r["body"])]
    note(f"{len(valid)} valid of {len(records)}; retried {len(failed)}; dead-lettered {len(dead)}")
    for record in records:
        message_id = record["messageId"]
        assert not (message_id in failed and message_id in dead), "a record both retried and dead-lettered"
        if message_id in dead:
            assert dead[message_id]["attributes"].get("reason"), "dead-lettered without a reason"
        if record in valid:
            assert dead.get(message_id, {}).get("attributes", {}).get("reason") != "invalid_message"
            continue
        assert message_id not in failed, "an invalid message was retried instead of dead-lettered"
        assert message_id in dead, "an invalid message was dropped"
        assert dead[message_id]["body"] == record["body"]
        attrs = dead[message_id]["attributes"]
        assert attrs["reason"] == "invalid_message"
        assert attrs["error_class"] == "permanent"
        assert attrs["source"] == "sqs"
    assert len(fuzz_stack.simulator.requests) <= len(valid)
    if not valid:
        assert fuzz_stack.simulator.requests == []


# Records SQS could never produce (a handcrafted test event, a misrouted trigger): any key may be missing or of any
# type. The handler either answers a partial batch response or refuses the whole event with a ValueError that says
# what is wrong; nothing of an invalid record is sent.
odd_records = st.fixed_dictionaries(
    {},
    optional={
        "messageId": st.one_of(st.uuids().map(str), any_json(2)),
        "receiptHandle": st.one_of(st.just("rh"), any_json(2)),
        "body": st.one_of(json_bodies(), any_json(6)),
        "attributes": st.one_of(system_attributes, any_json(3)),
        "messageAttributes": st.one_of(message_attributes, any_json(4)),
        "md5OfBody": st.one_of(st.just("0" * 32), any_json(2)),
        "eventSource": st.one_of(st.just("aws:sqs"), any_json(2)),
        "eventSourceARN": st.one_of(st.just("arn:aws:sqs:us-east-1:123456789012:q"), any_json(2)),
        "awsRegion": st.one_of(st.just("us-east-1"), any_json(2)),
    },
)


@settings(max_examples=examples(40))
@given(st.lists(st.one_of(odd_records, st.builds(sqs_record, json_bodies()), any_json(3)), max_size=4))
def test_odd_records_get_a_clear_error_or_a_partial_batch_response(
    fuzz_stack: Stack, records: list[dict[str, Any]]
) -> None:
    fuzz_stack.reset()
    try:
        response = fuzz_stack.invoke({"Records": records})
    except ValueError as exc:
        note(str(exc))
        assert "event" in str(exc) or "record" in str(exc)
        assert fuzz_stack.simulator.requests == []
        return
    assert isinstance(response, dict)
    failures = response["batchItemFailures"]
    assert all(isinstance(f["itemIdentifier"], str) for f in failures)
    valid = [r for r in records if isinstance(r, dict) and is_valid(r.get("body"))]
    assert len(fuzz_stack.simulator.requests) <= len(valid)
    if not valid:
        assert fuzz_stack.simulator.requests == []


# ---------------------------------------------------------------------------------------------------------------------
# API

DOCUMENTED = {200, 202, 400, 409, 413, 415, 422, 500, 502, 503, 504}
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "text/plain",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "",
]
header_names = st.one_of(
    st.sampled_from(["X-Forwarded-For", "Accept", "User-Agent", "Content-Length", "Host", "Prefer"]),
    texts(st.characters(codec="ascii", exclude_categories=["Cc"]), min_size=1, max_size=20),
)


@st.composite
def api_headers(draw: st.DrawFn) -> dict[str, str]:
    headers = draw(st.dictionaries(header_names, texts(any_char, max_size=30), max_size=3))
    content_type = draw(st.one_of(st.none(), st.sampled_from(CONTENT_TYPES), texts(any_char, max_size=30)))
    if content_type is not None:
        headers[draw(st.sampled_from(["Content-Type", "content-type", "CONTENT-TYPE"]))] = content_type
    key = draw(st.one_of(st.none(), st.uuids().map(str), texts(any_char, max_size=200)))
    if key is not None:
        headers[draw(st.sampled_from(["Idempotency-Key", "idempotency-key"]))] = key
    prefer = draw(st.one_of(st.none(), st.sampled_from(["respond-async", "Respond-Async, wait=5"]), texts(any_char)))
    if prefer is not None:
        headers["Prefer"] = prefer
    return headers


api_bodies = st.one_of(
    json_bodies(),
    st.binary(max_size=200),
    st.builds(lambda text: text.encode("utf-8", "surrogatepass"), json_bodies()),
    st.none(),
)


def decoded(body: str | bytes | None) -> str | None:
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return body


def validate_answer(status: int, payload: Any) -> None:
    """The body matches the schema documented for its status (openapi.json, from the same models)."""
    from api import ErrorResponse, QueuedResponse, SentResponse

    model = {200: SentResponse, 202: QueuedResponse}.get(status, ErrorResponse)
    model.model_validate(payload)


@settings(max_examples=examples(100))
@given(api_bodies, api_headers())
def test_any_request_gets_a_documented_answer_and_invalid_ones_never_reach_nxcloud(
    fuzz_stack: Stack, body: str | bytes | None, headers: dict[str, str]
) -> None:
    fuzz_stack.reset()
    response = fuzz_stack.call_api_raw(body, headers)
    status = response["statusCode"]
    note(f"{status} {response['body'][:300]}")
    assert status in DOCUMENTED - {500}  # 500 is the misconfigured deployment, and this one is not
    payload = json.loads(response["body"])
    validate_answer(status, payload)
    if status >= 400:
        assert payload["error"] != "internal_error", "an unexpected exception answered as a dependency failure"
    upstream = fuzz_stack.simulator.requests
    queued = fuzz_stack.drain(fuzz_stack.resources.send_queue_url)
    if upstream or queued or status in (200, 202):
        text = decoded(body)
        assert text is not None
        assert is_valid(text), f"an invalid request got {status} / reached NXCloud or the queue"
        assert status in (200, 202)
        assert len(upstream) <= 1
    if queued:
        assert status == 202
        assert len(queued) == 1
        assert json.loads(queued[0]["Body"]) == json.loads(decoded(body) or "")
