"""The sample events in events/: AWS's exact shapes, all listed in expected.json, and each producing what it documents.

Shape tests read the files only. Outcome tests invoke the real handler in-process against ONE local stack for the
module (moto's server and the NXCloud simulator with DEMO_FAULTS); every test gets its own queues, table and secret on
that server and a reset simulator, i.e. a fresh stack as far as the function can tell.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import io
import json
import re
import struct
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local_stack.aws import Resources, provision
from local_stack.invoke import FunctionSpec, function_for_event
from local_stack.lambda_events import LambdaContext, receive_sqs_event, settle_sqs_batch
from local_stack.stack import (
    DEMO_FAULTS,
    LOCAL_SECRET,
    LocalStack,
    QueueSettings,
    demo_templates,
    seed_audience,
    seed_suppressions,
)
from local_stack.streams import batch_size, filter_prefixes
from local_stack.template import load_template
from nxcloud_wa.callbacks import parse_callback
from nxcloud_wa.messages_table import STATUS_PREFIX

EVENTS = Path(__file__).resolve().parents[2] / "events"
PAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "page_examples"
NOT_EVENTS = frozenset(
    {
        "expected.json",
        "README.md",
        "env.local.example.json",
        "templates.json",
        "suppressions.json",
        "audience-sample.csv",
    }
)
MANIFEST: dict[str, Any] = json.loads((EVENTS / "expected.json").read_text(encoding="utf-8"))
EXPECTED: dict[str, dict[str, Any]] = MANIFEST["events"]
SQS_FILES = sorted(name for name, spec in EXPECTED.items() if spec["trigger"] == "sqs")
API_FILES = sorted(name for name, spec in EXPECTED.items() if spec["trigger"] == "api")
WEBHOOK_FILES = sorted(name for name, spec in EXPECTED.items() if spec["trigger"] == "webhook")
STREAM_FILES = sorted(name for name, spec in EXPECTED.items() if spec["trigger"] == "stream")
TICK_FILES = sorted(name for name, spec in EXPECTED.items() if spec["trigger"] == "tick")
KEYED_FILES = [
    name for name in SQS_FILES if any(mid != r["idempotency_key"] for mid, r in EXPECTED[name]["records"].items())
]

SQS_RECORD_KEYS = {
    "messageId",
    "receiptHandle",
    "body",
    "attributes",
    "messageAttributes",
    "md5OfBody",
    "eventSource",
    "eventSourceARN",
    "awsRegion",
}
SQS_SYSTEM_ATTRIBUTES = {"ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
API_KEYS = {
    "resource",
    "path",
    "httpMethod",
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "requestContext",
    "body",
    "isBase64Encoded",
}
HTTP_API_KEYS = {
    "version",
    "routeKey",
    "rawPath",
    "rawQueryString",
    "headers",
    "requestContext",
    "pathParameters",
    "body",
    "isBase64Encoded",
}
HTTP_API_CONTEXT_KEYS = {
    "accountId",
    "apiId",
    "domainName",
    "domainPrefix",
    "http",
    "requestId",
    "routeKey",
    "stage",
    "time",
    "timeEpoch",
}
STREAM_RECORD_KEYS = {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN"}
STREAM_DATA_KEYS = {
    "ApproximateCreationDateTime",
    "Keys",
    "NewImage",
    "OldImage",
    "SequenceNumber",
    "SizeBytes",
    "StreamViewType",
}
API_CONTEXT_KEYS = {
    "resourceId",
    "resourcePath",
    "httpMethod",
    "extendedRequestId",
    "requestTime",
    "path",
    "accountId",
    "protocol",
    "stage",
    "domainPrefix",
    "requestTimeEpoch",
    "requestId",
    "identity",
    "domainName",
    "apiId",
}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


def md5_of_message_attributes(attributes: dict[str, dict[str, Any]]) -> str:
    """SQS's digest of string message attributes: names sorted, each field length-prefixed (big-endian uint32)."""

    def field(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    digest = hashlib.md5()
    for name in sorted(attributes):
        value = attributes[name]
        digest.update(field(name.encode()) + field(value["dataType"].encode()))
        digest.update(b"\x01" + field(value["stringValue"].encode()))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------------
# The files themselves


def test_every_event_file_is_in_the_manifest_and_every_manifest_entry_is_a_file() -> None:
    files = {p.name for p in EVENTS.iterdir() if p.is_file() and p.name not in NOT_EVENTS}
    assert files == set(EXPECTED)
    prefixes = ("sqs-", "api-", "campaign-", "webhook-", "publisher-", "planner-")
    assert all(name.endswith(".json") and name.startswith(prefixes) for name in files)
    assert {spec["trigger"] for spec in EXPECTED.values()} == {"sqs", "api", "webhook", "stream", "tick"}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_make_invoke_picks_the_function_the_manifest_names(name: str) -> None:
    """make invoke (and make sam-local's `sam local invoke <Function>`) run the function template.yaml wires to the
    event's source; expected.json says which one each sample is for."""
    assert function_for_event(load(name)) == EXPECTED[name]["function"]


def test_the_three_functions_each_have_samples() -> None:
    from local_stack.template import serverless_functions

    assert {spec["function"] for spec in EXPECTED.values()} == set(serverless_functions())
    assert all((EVENTS / name).is_file() for name in NOT_EVENTS)


def test_manifest_max_receive_count_is_the_templates() -> None:
    assert MANIFEST["max_receive_count"] == QueueSettings.from_template().max_receive_count


@pytest.mark.parametrize("name", SQS_FILES)
def test_sqs_event_has_the_shape_lambda_sends(name: str) -> None:
    event = load(name)
    assert set(event) == {"Records"}
    assert 1 <= len(event["Records"]) <= QueueSettings.from_template().batch_size
    for record in event["Records"]:
        optional = {"md5OfMessageAttributes"} if record["messageAttributes"] else set()
        assert set(record) == SQS_RECORD_KEYS | optional
        assert str(uuid.UUID(record["messageId"])) == record["messageId"]
        assert isinstance(record["receiptHandle"], str) and record["receiptHandle"].startswith("AQEB")
        assert isinstance(record["body"], str)
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode("utf-8")).hexdigest()
        assert set(record["attributes"]) == SQS_SYSTEM_ATTRIBUTES
        assert all(isinstance(v, str) for v in record["attributes"].values())
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert record["attributes"]["SentTimestamp"].isdigit()
        assert int(record["attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(
            record["attributes"]["SentTimestamp"]
        )
        for value in record["messageAttributes"].values():
            assert value == {
                "stringValue": value["stringValue"],
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
        if optional:
            assert record["md5OfMessageAttributes"] == md5_of_message_attributes(record["messageAttributes"])
        assert record["eventSource"] == "aws:sqs"
        assert re.fullmatch(r"arn:aws:sqs:[a-z0-9-]+:\d{12}:[\w-]+", record["eventSourceARN"])
        assert record["eventSourceARN"].split(":")[3] == record["awsRegion"]


@pytest.mark.parametrize("name", API_FILES)
def test_api_event_has_the_shape_api_gateway_sends(name: str) -> None:
    event = load(name)
    assert set(event) == API_KEYS
    route = "/campaigns" if name.startswith("campaign-") else "/messages"  # POST /campaigns: campaign-create.json
    assert (event["httpMethod"], event["path"], event["resource"]) == ("POST", route, route)
    assert event["multiValueHeaders"] == {k: [v] for k, v in event["headers"].items()}
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["x-api-key"]
    assert isinstance(event["body"], str) and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert set(context) >= API_CONTEXT_KEYS
    assert str(uuid.UUID(context["requestId"])) == context["requestId"]
    assert (context["httpMethod"], context["resourcePath"]) == ("POST", route)
    assert context["path"] == f"/{context['stage']}{route}"
    assert context["identity"]["sourceIp"] and context["identity"]["apiKey"] == event["headers"]["x-api-key"]
    assert context["identity"]["userAgent"] == event["headers"]["User-Agent"]


@pytest.mark.parametrize("name", WEBHOOK_FILES)
def test_webhook_event_has_the_shape_an_http_api_sends(name: str) -> None:
    """API Gateway's HTTP API, payload format 2.0, on the route template.yaml gives WebhookFunction."""
    event = load(name)
    route = next(iter(FunctionSpec(load_template(), "WebhookFunction").properties["Events"].values()))["Properties"]
    assert set(event) == HTTP_API_KEYS
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == f"{route['Method'].upper()} {route['Path']}"
    token = event["pathParameters"]["token"]
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == route["Path"].replace("{token}", token)
    assert all(k == k.lower() for k in event["headers"])  # an HTTP API lower-cases header names
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["content-length"] == str(len(event["body"].encode("utf-8")))
    assert isinstance(event["body"], str) and event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert set(context) == HTTP_API_CONTEXT_KEYS
    assert context["http"]["method"] == "POST" and context["stage"] == "$default"
    assert context["http"]["userAgent"] == event["headers"]["user-agent"]
    assert context["http"]["sourceIp"] == event["headers"]["x-forwarded-for"]
    body = parse_callback(event["body"])  # NXCloud's shape, as the webhook reads it
    assert body.entries == 1


def test_webhook_tokens_are_the_local_secrets_and_a_wrong_one() -> None:
    """The callback carries the local stack's own webhook_token (a local-only value, LOCAL_SECRET); the wrong one is
    long enough to pass the length rule, so its 404 is for not matching."""
    right = load("webhook-callback.json")["pathParameters"]["token"]
    wrong = load("webhook-wrong-token.json")["pathParameters"]["token"]
    assert right == LOCAL_SECRET["webhook_token"]
    assert wrong != right and len(wrong) >= 32
    assert load("webhook-wrong-token.json")["body"] == load("webhook-callback.json")["body"]


@pytest.mark.parametrize("name", WEBHOOK_FILES)
def test_webhook_manifest_stores_what_the_body_reports(name: str) -> None:
    statuses = parse_callback(load(name)["body"]).statuses
    spec = EXPECTED[name]
    if spec["response"]["statusCode"] == 200:
        assert spec["stored"] == {STATUS_PREFIX + s.id: s.status for s in statuses}
        assert spec["response"]["body"] == {"received": len(statuses)}
    else:
        assert spec["stored"] == {}


@pytest.mark.parametrize("name", STREAM_FILES)
def test_stream_event_has_the_shape_lambda_sends(name: str) -> None:
    """A batch of the messages table's stream as the event source mapping hands it over: what passes the template's
    filter (status and click items), at most its batch size, with both images."""
    event = load(name)
    assert set(event) == {"Records"}
    assert 1 <= len(event["Records"]) <= batch_size()
    for record in event["Records"]:
        assert set(record) == STREAM_RECORD_KEYS
        assert record["eventSource"] == "aws:dynamodb" and record["eventVersion"] == "1.1"
        assert record["eventName"] in ("INSERT", "MODIFY", "REMOVE")
        assert re.fullmatch(
            r"arn:aws:dynamodb:[a-z0-9-]+:\d{12}:table/[\w.-]+/stream/[\w:.-]+", record["eventSourceARN"]
        )
        assert record["eventSourceARN"].split(":")[3] == record["awsRegion"]
        data = record["dynamodb"]
        assert set(data) == STREAM_DATA_KEYS and data["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(data["ApproximateCreationDateTime"], int) and data["SequenceNumber"].isdigit()
        assert data["Keys"] == {"id": data["NewImage"]["id"]} == {"id": data["OldImage"]["id"]}
        assert data["Keys"]["id"]["S"].startswith(filter_prefixes())
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in event["Records"]]
    assert sequence == sorted(sequence)
    assert list(EXPECTED[name]["records"]) == [r["dynamodb"]["SequenceNumber"] for r in event["Records"]]


def test_ids_and_idempotency_keys_are_unique_across_files() -> None:
    """A messageId or requestId is the default idempotency key: two files sharing one would replay each other."""
    ids = [r["messageId"] for name in SQS_FILES for r in load(name)["Records"]]
    ids += [load(name)["requestContext"]["requestId"] for name in API_FILES]
    keys = [spec["idempotency_key"] for name in SQS_FILES for spec in EXPECTED[name]["records"].values()]
    keys += [
        load(name)["headers"].get("Idempotency-Key") or load(name)["requestContext"]["requestId"] for name in API_FILES
    ]
    assert len(ids) == len(set(ids))
    assert len(keys) == len(set(keys))


def sample_messages() -> list[tuple[str, dict[str, Any]]]:
    """Every sample's message that is JSON, with the outcome it documents (``sent`` or the failure's reason)."""
    found = []
    for name, spec in EXPECTED.items():
        if spec["trigger"] == "sqs":
            for record in load(name)["Records"]:
                documented = spec["records"][record["messageId"]]["final"]
                found.append((documented.get("reason", documented["outcome"]), record["body"]))
        elif spec["trigger"] == "api":
            final = spec.get("final", {}).get("outcome")
            found.append((final or spec["response"]["body"].get("error") or "sent", load(name)["body"]))
    messages = []
    for outcome, body in found:
        try:
            messages.append((outcome, json.loads(body)))
        except ValueError:
            continue
    return messages


def test_the_catalogue_holds_every_template_a_sample_sends_under_its_account() -> None:
    """events/templates.json and the samples agree: what is documented as sent (or retried until the redrive policy
    moves it) names an approved template of its own account; what the check refuses names none."""
    catalogue = {
        account: {(t["name"], t["language"]) for t in templates if t["status"] == "APPROVED"}
        for account, templates in demo_templates().items()
    }
    checked = 0
    for outcome, message in sample_messages():
        template = message.get("template")
        if not isinstance(template, dict) or outcome in ("invalid_message",):
            continue
        account = (
            message.get("appkey", LOCAL_SECRET["appkey"]),
            message.get("business_phone", LOCAL_SECRET["business_phone"]),
        )
        key = (template["name"], template["language"]["code"])
        if template["name"] == "demo_missing_template":
            assert outcome == "template_mismatch" and all(key not in names for names in catalogue.values())
        elif outcome != "template_mismatch":
            assert key in catalogue[account], (account, key)
        checked += 1
    assert checked >= 12


def test_page_examples_are_in_the_batch_verbatim() -> None:
    bodies = [r["body"] for r in load("sqs-page-examples.json")["Records"]]
    examples = [p.read_text(encoding="utf-8") for p in sorted(PAGE_EXAMPLES.glob("*.json"))]
    assert bodies[: len(examples)] == examples


@pytest.mark.parametrize("name", SQS_FILES)
def test_manifest_describes_every_record_of_the_batch(name: str) -> None:
    records = load(name)["Records"]
    expected = EXPECTED[name]
    assert list(expected["records"]) == [r["messageId"] for r in records]
    retried = [mid for mid, spec in expected["records"].items() if spec["outcome"] == "retry"]
    assert expected["batchItemFailures"] == retried
    for record in records:
        spec = expected["records"][record["messageId"]]
        attribute = record["messageAttributes"].get("idempotency_key", {}).get("stringValue")
        assert spec["idempotency_key"] == (attribute or record["messageId"])
        assert spec["final"]["outcome"] in ("sent", "skipped", "dead_lettered")


# ---------------------------------------------------------------------------------------------------------------------
# Outcomes against the local stack


@pytest.fixture(scope="module")
def local_stack() -> Iterator[LocalStack]:
    with LocalStack() as stack:
        yield stack


@dataclass
class Fresh:
    """One test's view: the module's stack, with resources of its own and a reset simulator."""

    local: LocalStack
    res: Resources
    sqs: Any

    @property
    def simulator(self) -> Any:
        return self.local.simulator

    def invoke(self, event: dict[str, Any]) -> Any:
        import app

        return app.lambda_handler(copy.deepcopy(event), LambdaContext(timeout_seconds=30))

    def requests_for(self, spec: dict[str, Any]) -> tuple[int, int]:
        """(requests, accepted) the simulator saw for a record's recipient and template."""
        mine = [r for r in self.simulator.requests if r.to == spec["to"] and r.template == spec["template"]]
        return len(mine), sum(1 for r in mine if r.accepted)

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every message on a queue, consumed."""
        found: dict[str, dict[str, Any]] = {}
        while batch := self.sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", []):
            found.update({m["MessageId"]: m for m in batch})
            self.sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return list(found.values())

    def run_queue(self, rounds: int) -> dict[str, int]:
        """Play the event source mapping until the send queue is empty; return receives per queue message id."""
        receives: dict[str, int] = {}
        batch_size = self.local.queue.batch_size
        for _ in range(rounds):
            event = receive_sqs_event(self.sqs, self.res.send_queue_url, batch_size=batch_size, wait_seconds=0)
            if not event["Records"]:
                return receives
            for record in event["Records"]:
                receives[record["messageId"]] = receives.get(record["messageId"], 0) + 1
            settle_sqs_batch(self.sqs, self.res.send_queue_url, event, self.invoke(event), retry_delay=0)
        raise AssertionError(f"the send queue did not drain in {rounds} rounds")


def attributes_of(message: dict[str, Any]) -> dict[str, str]:
    return {k: v["StringValue"] for k, v in message.get("MessageAttributes", {}).items()}


@pytest.fixture
def fresh(local_stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fresh]:
    from aws_lambda_powertools.utilities import parameters

    import runtime

    res = provision(
        local_stack.moto.url,
        prefix=f"ev{uuid.uuid4().hex[:10]}",
        secret=LOCAL_SECRET,
        max_receive_count=local_stack.queue.max_receive_count,
        visibility_timeout=local_stack.retry_visibility,
    )
    seed_suppressions(res)
    seed_audience(res)
    for name, value in {**local_stack.function_env(), **res.function_env()}.items():
        monkeypatch.setenv(name, value)
    for name in ("DEFAULT_TENANT_ID", "DEFAULT_APPKEY", "DEFAULT_BUSINESS_PHONE", "UNKNOWN_OUTCOME_POLICY"):
        monkeypatch.delenv(name, raising=False)
    local_stack.simulator.reset()
    for fault in DEMO_FAULTS:
        local_stack.simulator.add_fault(**fault)
    runtime.reset()
    parameters.clear_caches()
    yield Fresh(local_stack, res, res.client("sqs"))
    runtime.reset()
    parameters.clear_caches()


def log_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def check_nxcloud_body(received: dict[str, Any], record_body: str, how: str) -> None:
    """What NXCloud got: the page's examples verbatim; otherwise the message's values, the secret's defaults for the
    fields it leaves out, and its text parameters (any script, emoji) unchanged."""
    message = json.loads(record_body)
    if how == "verbatim":
        assert received == message
        return
    assert how == "with_defaults"
    defaults = {k: LOCAL_SECRET[k] for k in ("tenant_id", "appkey", "business_phone") if k not in message}
    assert defaults, "with_defaults documents a message that relies on the secret's defaults"
    assert {k: received[k] for k in defaults} == defaults
    assert {k: received[k] for k in message if k != "template"} == {k: v for k, v in message.items() if k != "template"}
    template = message["template"]
    assert received["template"]["name"] == template["name"]
    assert received["template"]["language"]["code"] == template["language"]["code"]
    assert received["template"]["components"] == template["components"]


@pytest.mark.parametrize("name", SQS_FILES)
def test_sqs_event_one_invocation_has_the_documented_outcomes(
    name: str, fresh: Fresh, captured_logs: io.StringIO
) -> None:
    event = load(name)
    expected = EXPECTED[name]
    response = fresh.invoke(event)

    assert sorted(f["itemIdentifier"] for f in response["batchItemFailures"]) == sorted(expected["batchItemFailures"])
    dead = {attributes_of(m)["source_message_id"]: m for m in fresh.drain(fresh.res.dlq_url)}
    retried = {line["sqs_message_id"]: line for line in log_lines(captured_logs) if line.get("outcome") == "retry"}
    skipped = {line["sqs_message_id"]: line for line in log_lines(captured_logs) if line.get("outcome") == "skipped"}
    bodies = {r["messageId"]: r["body"] for r in event["Records"]}
    for message_id, spec in expected["records"].items():
        where = f"{name} {message_id} ({spec['label']})"
        assert fresh.requests_for(spec) == (spec["nxcloud_requests"], spec["nxcloud_accepted"]), where
        assert (message_id in dead) == (spec["outcome"] == "dead_lettered"), where
        assert (message_id in retried) == (spec["outcome"] == "retry"), where
        assert (message_id in skipped) == (spec["outcome"] == "skipped"), where
        failure = {k: spec[k] for k in ("reason", "error_class", "error_code") if k in spec}
        if spec["outcome"] == "sent":
            (accepted,) = [r for r in fresh.simulator.accepted if (r.to, r.template) == (spec["to"], spec["template"])]
            check_nxcloud_body(accepted.body, bodies[message_id], spec["nxcloud_body"])
        elif spec["outcome"] == "dead_lettered":
            attributes = attributes_of(dead[message_id])
            assert dead[message_id]["Body"] == bodies[message_id], where
            assert {k: attributes[k] for k in failure} == failure, where
            assert (attributes["source"], attributes["idempotency_key"]) == ("sqs", spec["idempotency_key"]), where
        elif spec["outcome"] == "skipped":
            line = skipped[message_id]
            assert (line["reason"], line["suppression_reason"]) == (spec["reason"], spec["suppression_reason"]), where
        else:
            assert {k: str(retried[message_id][k]) for k in failure} == failure, where
    assert len(dead) == sum(1 for spec in expected["records"].values() if spec["outcome"] == "dead_lettered")


@pytest.mark.parametrize("name", KEYED_FILES)
def test_sqs_event_key_from_the_message_attribute_stops_a_second_send(name: str, fresh: Fresh) -> None:
    """A record whose documented key is not its messageId: the same message under a new messageId is not resent."""
    event = load(name)
    keys = {mid: spec["idempotency_key"] for mid, spec in EXPECTED[name]["records"].items()}
    keyed = [r for r in event["Records"] if keys[r["messageId"]] != r["messageId"]]
    fresh.invoke(event)
    accepted_before = len(fresh.simulator.accepted)
    again = {"Records": [{**r, "messageId": str(uuid.uuid4())} for r in keyed]}

    assert fresh.invoke(again) == {"batchItemFailures": []}
    assert len(fresh.simulator.accepted) == accepted_before


@pytest.mark.parametrize("name", SQS_FILES)
def test_sqs_event_final_outcomes_after_redelivery(name: str, fresh: Fresh) -> None:
    """The batch's messages through the real send queue, redelivered until settled, as the event source mapping does."""
    expected = EXPECTED[name]
    by_queue_id: dict[str, dict[str, Any]] = {}
    records = {r["messageId"]: r for r in load(name)["Records"]}
    for message_id, spec in expected["records"].items():
        record = records[message_id]
        attributes = {
            k: {"DataType": v["dataType"], "StringValue": v["stringValue"]}
            for k, v in record["messageAttributes"].items()
        }
        sent = fresh.sqs.send_message(
            QueueUrl=fresh.res.send_queue_url, MessageBody=record["body"], MessageAttributes=attributes
        )
        assert sent["MD5OfMessageBody"] == record["md5OfBody"]
        assert sent.get("MD5OfMessageAttributes") == record.get("md5OfMessageAttributes")
        by_queue_id[sent["MessageId"]] = {**spec, "body": record["body"]}

    receives = fresh.run_queue(rounds=MANIFEST["max_receive_count"] + 3)

    dead = {m["Body"]: m for m in fresh.drain(fresh.res.dlq_url)}
    for queue_id, spec in by_queue_id.items():
        final, where = spec["final"], f"{name}: {spec['label']}"
        assert receives[queue_id] == final["receives"], where
        requests, accepted = fresh.requests_for(spec)
        assert accepted == final["nxcloud_accepted"], where
        if "nxcloud_requests" in final:
            assert requests == final["nxcloud_requests"], where
        assert (spec["body"] in dead) == (final["outcome"] == "dead_lettered"), where
        if final["outcome"] == "dead_lettered":
            attributes = attributes_of(dead[spec["body"]])
            if final["by"] == "handler":
                assert {k: attributes[k] for k in ("reason", "error_code")} == {
                    "reason": final["reason"],
                    "error_code": final["error_code"],
                }, where
            else:  # moved by the queue's redrive policy: SQS adds no reason
                assert final["by"] == "redrive_policy" and "reason" not in attributes, where
                assert final["receives"] == MANIFEST["max_receive_count"], where


def check_response(response: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    assert response["statusCode"] == expected["statusCode"]
    body = json.loads(response["body"])
    assert {k: body.get(k) for k in expected.get("body", {})} == expected.get("body", {})
    assert all(body.get(k) for k in expected.get("body_keys", ())), body
    for want in expected.get("body_errors", ()):
        assert any({k: e.get(k) for k in want} == want for e in body["errors"]), (want, body["errors"])
    for header, value in expected.get("headers", {}).items():
        assert response["multiValueHeaders"].get(header) == [value]
    return body


def queue_depth(fresh: Fresh, url: str) -> int:
    attributes = fresh.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.parametrize("name", API_FILES)
def test_api_event_has_the_documented_outcome(name: str, fresh: Fresh) -> None:
    event = load(name)
    expected = EXPECTED[name]
    first = check_response(fresh.invoke(event), expected["response"])

    assert len(fresh.simulator.requests) == expected["nxcloud_requests"]
    assert len(fresh.simulator.accepted) == expected["nxcloud_accepted"]
    assert queue_depth(fresh, fresh.res.send_queue_url) == expected["enqueued"]
    assert queue_depth(fresh, fresh.res.dlq_url) == expected["dead_lettered"]
    if "repeat" in expected:
        repeat = expected["repeat"]
        responses = [fresh.invoke(event) for _ in range(repeat["invocations"] - 1)]
        for response in responses:
            assert (json.loads(response["body"]) == first) is repeat["same_body"]
            assert all(response["multiValueHeaders"].get(k) == [v] for k, v in repeat["headers"].items())
        assert len(fresh.simulator.requests) == repeat["nxcloud_requests"]
        assert len(fresh.simulator.accepted) == repeat["nxcloud_accepted"]
    if "final" in expected:
        final = expected["final"]
        assert final["via"] == "send_queue"
        receives = fresh.run_queue(rounds=3)
        assert receives == {first["queue_message_id"]: final["receives"]}
        assert len(fresh.simulator.accepted) == final["nxcloud_accepted"]
        assert final["outcome"] == "sent" and queue_depth(fresh, fresh.res.dlq_url) == 0


@pytest.fixture
def function_handler() -> Iterator[Callable[[str], Any]]:
    """The handler of the function the manifest names for a sample, as template.yaml's ``Handler`` names it, with a
    fresh container's state (each test has its own table and queues), which it forgets again afterwards: the
    module's settings would otherwise point later tests (make run's in-process stack) at this test's resources."""
    used: list[Any] = []

    def handler_for(name: str) -> Any:
        module_name, _, handler = FunctionSpec(load_template(), EXPECTED[name]["function"]).handler.rpartition(".")
        module = importlib.import_module(module_name)
        module.reset()
        used.append(module)
        return getattr(module, handler)

    yield handler_for
    for module in used:
        module.reset()


@pytest.mark.parametrize("name", WEBHOOK_FILES)
def test_webhook_event_has_the_documented_outcome(
    name: str, fresh: Fresh, function_handler: Callable[[str], Any]
) -> None:
    expected = EXPECTED[name]
    response = function_handler(name)(load(name), LambdaContext(function_name="WebhookFunction", timeout_seconds=10))

    assert response["statusCode"] == expected["response"]["statusCode"]
    assert json.loads(response["body"]) == expected["response"]["body"]
    items = fresh.res.client("dynamodb").scan(TableName=fresh.res.messages_table)["Items"]
    assert {i["id"]["S"]: i["status"]["S"] for i in items} == expected["stored"]
    assert queue_depth(fresh, fresh.res.kept_callbacks_queue_url) == expected["kept"]
    for status in parse_callback(load(name)["body"]).statuses if expected["stored"] else []:
        (item,) = [i for i in items if i["id"]["S"] == STATUS_PREFIX + status.id]
        assert item[f"at_{status.status}"]["S"] == status.at and item["recipient"]["S"] == status.recipient_id


def test_a_stored_callback_is_found_by_get_messages(fresh: Fresh, function_handler: Callable[[str], Any]) -> None:
    """What make sam-local checks under start-api: after the callback, GET /messages/{id} (the sender, reading the
    same table) answers as expected.json's ``lookup`` says."""
    from local_stack.lambda_events import api_event

    lookup = EXPECTED["webhook-callback.json"]["lookup"]
    function_handler("webhook-callback.json")(load("webhook-callback.json"), LambdaContext(timeout_seconds=10))
    event = api_event(None, method="GET", path=f"/messages/{lookup['message_id']}")
    event["resource"] = event["requestContext"]["resourcePath"] = "/messages/{message_id}"
    event["pathParameters"] = {"message_id": lookup["message_id"]}
    response = fresh.invoke(event)

    assert response["statusCode"] == lookup["statusCode"]
    body = json.loads(response["body"])
    assert {k: body[k] for k in lookup["body"]} == lookup["body"]


@pytest.mark.parametrize("name", STREAM_FILES)
def test_stream_event_has_the_documented_outcome(
    name: str, fresh: Fresh, function_handler: Callable[[str], Any]
) -> None:
    expected = EXPECTED[name]
    event = load(name)
    response = function_handler(name)(event, LambdaContext(function_name="PublisherFunction", timeout_seconds=30))

    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in expected["batchItemFailures"]]}
    published = [json.loads(m["Body"]) for m in fresh.drain(fresh.res.events_queue_url)]
    images = {r["dynamodb"]["SequenceNumber"]: r["dynamodb"]["NewImage"] for r in event["Records"]}
    wanted = [(sequence, e) for sequence, r in expected["records"].items() for e in r["events"]]
    assert len(published) == len(wanted)
    for (sequence, want), got in zip(wanted, published, strict=True):
        assert got["source"] == "nxcloud.whatsapp" and got["detail-type"] == want["detail_type"]
        detail = got["detail"]
        assert {k: detail[k] for k in want if k != "detail_type"} == {
            k: v for k, v in want.items() if k != "detail_type"
        }
        assert detail["at"] == images[sequence][f"at_{want['status']}"]["S"]
        assert detail["recipient"] == images[sequence]["recipient"]["S"] and detail["errors"] == []


def test_env_vars_example_names_only_variables_sam_local_can_override() -> None:
    """`sam local invoke --env-vars` ignores variables the function does not declare: the example uses none of those."""
    from local_stack.invoke import FunctionSpec, load_env_vars
    from local_stack.template import load_template

    spec = FunctionSpec(load_template())
    variables = load_env_vars(EVENTS / "env.local.example.json", spec)

    assert set(variables) <= set(spec.environment)
    assert {"NXCLOUD_SECRET_ID", "NXCLOUD_BASE_URL", "DLQ_URL", "SEND_QUEUE_URL", "IDEMPOTENCY_TABLE"} <= set(variables)


def test_sam_local_env_vars_point_both_nxcloud_hosts_at_the_simulator(local_stack: LocalStack) -> None:
    """sam local's --env-vars sets only declared variables: the template check's getTemplate URL must be one of them,
    or a sam local run would ask api2.nxcloud.com for the catalogue."""
    variables = local_stack.sam_env_vars()["SenderFunction"]

    assert variables["NXCLOUD_BASE_URL"] == variables["NXCLOUD_TEMPLATE_BASE_URL"] == local_stack.simulator.url


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "api-permanent-rejection.json",
            "template demo_missing_template (en_US) does not exist for this business number",
        ),
        ("api-template-mismatch.json", "template order_update (en_US) takes 1 body parameter, got 2"),
    ],
)
def test_the_samples_the_template_check_refuses_say_what_is_wrong(name: str, text: str, fresh: Fresh) -> None:
    """The messages events/README.md quotes, word for word (expected.json only requires one)."""
    assert json.loads(fresh.invoke(load(name))["body"])["message"] == text


@pytest.mark.parametrize("name", TICK_FILES)
def test_tick_event_has_the_shape_lambda_sends_and_is_a_tick(name: str) -> None:
    from nxcloud_wa.campaigns import tick_campaign, tick_number

    [record] = load(name)["Records"]
    assert set(record) == SQS_RECORD_KEYS and set(record["attributes"]) == SQS_SYSTEM_ATTRIBUTES
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode("utf-8")).hexdigest()
    assert tick_campaign(record["body"]) and tick_number(record["body"]) == 0


@pytest.mark.parametrize("name", TICK_FILES)
def test_tick_event_has_the_documented_outcome(name: str, fresh: Fresh, function_handler: Callable[[str], Any]) -> None:
    expected = EXPECTED[name]
    response = function_handler(name)(load(name), LambdaContext(function_name="PlannerFunction", timeout_seconds=30))

    assert response == {"batchItemFailures": [{"itemIdentifier": i} for i in expected["batchItemFailures"]]}
    assert queue_depth(fresh, fresh.res.send_queue_url) == expected["queued"]
    assert queue_depth(fresh, fresh.res.campaign_tick_queue_url) == 0  # no next pass for a campaign that is not there
