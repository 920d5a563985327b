"""What one sample event did, summarised the same way whichever path ran it, and checked against expected.json.

A summary keeps what two correct runs share and nothing that differs between them (no message ids, trace ids or
times): the handler's answer (an SQS or stream batch's ``batchItemFailures``; an API response's status, body shape,
stable body fields and headers), each record's outcome as the dead-letter queue and the function's log lines show it,
what the NXCloud simulator received, what was queued, the callbacks stored in the messages table and kept on the
kept-callbacks queue (webhook), the events put on the bus (publisher), and which AWS calls the function made.
``sam local invoke`` and ``make invoke`` on the same event must give equal summaries (parity); :func:`problems` says
how a summary departs from the manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from local_stack.aws import AwsCall
from local_stack.samples import expected_api_outcome

FAILURE_KEYS: Final = ("reason", "error_class", "error_code")
CONTEXT_KEYS: Final = ("function_name", "function_memory_size", "function_arn", "function_request_id", "cold_start")
"""What Powertools' logger copies from the Lambda context into every line: the context object's own types."""
STABLE_BODY_KEYS: Final = ("error", "code", "status", "received")
WEBHOOK_BODY_KEYS: Final = (*STABLE_BODY_KEYS, "message")
"""The webhook's answers are fixed texts (its 404 is API Gateway's own ``{"message": "Not Found"}``)."""
EVENT_DETAIL_KEYS: Final = ("message_id", "status", "previous_status", "unmatched", "payload")
"""What an event on the bus is compared on: the change it reports, not its ids or times."""
HEADERS: Final = ("Content-Type", "Preference-Applied", "Idempotent-Replayed")


@dataclass
class Observation:
    """Everything a path produced for one sample event, and what the local stack saw meanwhile."""

    results: list[Any]
    """The handler's return value per invocation (Lambda's error document when it raised)."""
    logs: list[dict[str, Any]]
    """The function's JSON log lines, all invocations."""
    nxcloud: list[tuple[str | None, str | None, bool]]
    """(to, template, accepted) of every request the simulator received."""
    dead_letters: list[dict[str, str]]
    """The message attributes of every message the dead-letter queue holds."""
    queued: int
    aws_calls: list[AwsCall]
    final: Observation | None = None
    """For a queued API request: its delivery from the send queue, through the same path."""
    seconds: list[float] = field(default_factory=list)
    stored: dict[str, str] = field(default_factory=dict)
    """The messages table's callback items (``status#``, ``click#``): id to current status (or kind)."""
    kept: int = 0
    """Messages on the kept-callbacks queue (what the webhook could not store, or refused as not NXCloud's)."""
    published: list[dict[str, Any]] = field(default_factory=list)
    """Every event put on the bus: its detail-type and :data:`EVENT_DETAIL_KEYS` of its detail."""


def shape(value: Any) -> Any:
    """A JSON value's structure: objects by key, arrays item by item, scalars by type."""
    if isinstance(value, dict):
        return {key: shape(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return "null" if value is None else type(value).__name__


def aws_call_counts(calls: list[AwsCall]) -> dict[str, int]:
    return dict(sorted(Counter(f"{c.service} {c.action}" for c in calls).items()))


def nxcloud_counts(seen: list[tuple[str | None, str | None, bool]], to: str | None = None, template: str | None = None):
    """(requests, accepted), for one recipient and template or for all."""
    mine = [ok for t, name, ok in seen if (to is None or t == to) and (template is None or name == template)]
    return [len(mine), sum(mine)]


# ---------------------------------------------------------------------------------------------------------------------
# Summaries


def log_context(logs: list[dict[str, Any]]) -> dict[str, Any]:
    """The Lambda context's fields as the function's first structured log line shows them: names and types."""
    first = next((line for line in logs if "level" in line and "function_name" in line), {})
    return {key: shape(first[key]) for key in CONTEXT_KEYS if key in first}


def summarize(spec: dict[str, Any], seen: Observation) -> dict[str, Any]:
    common = {
        "aws_calls": aws_call_counts(seen.aws_calls),
        "queued": seen.queued,
        "log_context": log_context(seen.logs),
    }
    if spec["trigger"] == "sqs":
        return {**summarize_sqs(spec, seen), **common}
    if spec["trigger"] == "webhook":
        return {**summarize_webhook(seen), **common}
    if spec["trigger"] == "stream":
        return {**summarize_stream(seen), **common}
    if spec["trigger"] == "tick":
        return {**summarize_tick(seen), **common}
    return {**summarize_api(seen), **common}


def summarize_sqs(spec: dict[str, Any], seen: Observation) -> dict[str, Any]:
    result = seen.results[0] if isinstance(seen.results[0], dict) else {}
    failures = sorted(str(f.get("itemIdentifier")) for f in result.get("batchItemFailures", []))
    dead = {a.get("source_message_id"): a for a in seen.dead_letters}
    logged = {line["sqs_message_id"]: line for line in seen.logs if line.get("outcome") and "sqs_message_id" in line}
    records = {}
    for message_id, record in spec["records"].items():
        if message_id in dead:
            outcome = {"outcome": "dead_lettered", **{k: dead[message_id].get(k) for k in FAILURE_KEYS}}
        elif message_id in failures:
            outcome = {"outcome": "retry", **{k: str(logged.get(message_id, {}).get(k)) for k in FAILURE_KEYS}}
        elif logged.get(message_id, {}).get("outcome") == "sent":
            outcome = {"outcome": "sent"}
        elif logged.get(message_id, {}).get("outcome") == "skipped":  # not sent, not a failure: the log says why
            outcome = {"outcome": "skipped", "reason": str(logged[message_id].get("reason"))}
        else:
            outcome = {"outcome": "unknown"}
        records[message_id] = {**outcome, "nxcloud": nxcloud_counts(seen.nxcloud, record["to"], record["template"])}
    keys = sorted(result) if isinstance(seen.results[0], dict) else ["(not an object)"]
    return {"result_keys": keys, "batchItemFailures": failures, "records": records, "dead_letters": len(dead)}


def summarize_webhook(seen: Observation) -> dict[str, Any]:
    responses = [summarize_response(r, WEBHOOK_BODY_KEYS) for r in seen.results]
    for response in responses:
        response.pop("raw_body", None)
    return {"responses": responses, "stored": seen.stored, "kept": seen.kept}


def summarize_stream(seen: Observation) -> dict[str, Any]:
    result = seen.results[0] if isinstance(seen.results[0], dict) else {}
    failures = sorted(str(f.get("itemIdentifier")) for f in result.get("batchItemFailures", []))
    keys = sorted(result) if isinstance(seen.results[0], dict) else ["(not an object)"]
    return {"result_keys": keys, "batchItemFailures": failures, "published": sorted_events(seen.published)}


def summarize_tick(seen: Observation) -> dict[str, Any]:
    """A planner tick's answer: which ticks it reports for another try."""
    result = seen.results[0] if isinstance(seen.results[0], dict) else {}
    return {"batchItemFailures": sorted(str(f.get("itemIdentifier")) for f in result.get("batchItemFailures", []))}


def sorted_events(events: Any) -> list[dict[str, Any]]:
    return sorted(events, key=lambda e: json.dumps(e, sort_keys=True))


def event_summary(event: dict[str, Any]) -> dict[str, Any]:
    """An EventBridge event as the summary keeps it: ``detail_type`` and the stable keys of its detail."""
    detail = event.get("detail") or {}
    return {"detail_type": event.get("detail-type"), **{k: detail[k] for k in EVENT_DETAIL_KEYS if k in detail}}


def summarize_response(response: Any, stable: tuple[str, ...] = STABLE_BODY_KEYS) -> dict[str, Any]:
    if not isinstance(response, dict) or "statusCode" not in response:
        empty = {"body": {}, "filled": [], "errors": [], "headers": {}, "raw_body": response}
        return {"statusCode": None, "body_shape": shape(response), **empty}
    try:
        body = json.loads(response.get("body") or "null")
    except ValueError:
        body = response.get("body")
    headers = {k: ", ".join(v) for k, v in (response.get("multiValueHeaders") or {}).items()}
    headers.update(response.get("headers") or {})
    fields = body if isinstance(body, dict) else {}
    return {
        "statusCode": response["statusCode"],
        "body_shape": shape(body),
        "body": {k: fields[k] for k in stable if k in fields},
        "filled": sorted(k for k, v in fields.items() if v),
        "errors": [{"loc": e.get("loc"), "type": e.get("type")} for e in fields.get("errors") or []],
        "headers": {k: headers[k] for k in HEADERS if k in headers},
        "raw_body": body,
    }


def summarize_api(seen: Observation) -> dict[str, Any]:
    responses = [summarize_response(r) for r in seen.results]
    bodies = [r.pop("raw_body", None) for r in responses]
    final = None
    if seen.final is not None:
        result = seen.final.results[0] if seen.final.results and isinstance(seen.final.results[0], dict) else {}
        sent = [line for line in seen.final.logs if line.get("outcome") == "sent"]
        final = {
            "batchItemFailures": result.get("batchItemFailures"),
            "sent": len(sent),
            "nxcloud": nxcloud_counts(seen.final.nxcloud),
            "aws_calls": aws_call_counts(seen.final.aws_calls),
        }
    return {
        "responses": responses,
        "same_body": all(b == bodies[0] for b in bodies),
        "nxcloud": nxcloud_counts(seen.nxcloud),
        "dead_letters": len(seen.dead_letters),
        "final": final,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Against the manifest


def problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    """Every way the summary departs from the event's entry in expected.json (empty: as documented)."""
    check = {"sqs": sqs_problems, "webhook": webhook_problems, "stream": stream_problems, "tick": tick_problems}.get(
        spec["trigger"]
    )
    return (check or api_problems)(spec, summary)


def sqs_problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    found = []
    if summary["batchItemFailures"] != sorted(spec["batchItemFailures"]):
        found.append(f"batchItemFailures {summary['batchItemFailures']} != {sorted(spec['batchItemFailures'])}")
    for message_id, record in spec["records"].items():
        got = summary["records"][message_id]
        want = {"outcome": record["outcome"], **{k: record[k] for k in FAILURE_KEYS if k in record}}
        want["nxcloud"] = [record["nxcloud_requests"], record["nxcloud_accepted"]]
        if {k: got.get(k) for k in want} != want:
            found.append(f"{record['label']}: {got} != {want}")
    dead = sum(1 for r in spec["records"].values() if r["outcome"] == "dead_lettered")
    if summary["dead_letters"] != dead:
        found.append(f"{summary['dead_letters']} dead letters, not {dead}")
    return found


def api_problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    found = response_problems(spec["response"], summary["responses"][0])
    repeat = spec.get("repeat")
    counts = repeat or spec
    if summary["nxcloud"] != [counts["nxcloud_requests"], counts["nxcloud_accepted"]]:
        found.append(f"NXCloud (requests, accepted) {summary['nxcloud']}")
    if summary["queued"] != spec["enqueued"] and "final" not in spec:
        found.append(f"{summary['queued']} queued, not {spec['enqueued']}")
    if summary["dead_letters"] != spec["dead_lettered"]:
        found.append(f"{summary['dead_letters']} dead letters, not {spec['dead_lettered']}")
    if repeat:
        found += repeat_problems(repeat, summary["responses"], summary["same_body"])
    if "final" in spec:
        final = summary["final"] or {}
        if final.get("batchItemFailures") != [] or final.get("sent") != 1:
            found.append(f"the queued message was not sent on delivery: {final}")
        elif final["nxcloud"][1] != spec["final"]["nxcloud_accepted"]:
            found.append(f"NXCloud accepted {final['nxcloud'][1]} on delivery")
    return found


def webhook_problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    found = response_problems(spec["response"], summary["responses"][0])
    found += stored_problems(spec, summary["stored"])
    if summary["kept"] != spec["kept"]:
        found.append(f"{summary['kept']} callbacks kept for replay, not {spec['kept']}")
    return found


def stored_problems(spec: dict[str, Any], stored: dict[str, str]) -> list[str]:
    """The messages table's callback items against the manifest's ``stored`` (item id to status)."""
    return [] if stored == spec["stored"] else [f"stored {stored}, not {spec['stored']}"]


def stream_problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    found = []
    if summary["batchItemFailures"] != sorted(spec["batchItemFailures"]):
        found.append(f"batchItemFailures {summary['batchItemFailures']} != {sorted(spec['batchItemFailures'])}")
    expected = expected_events(spec)
    if summary["published"] != expected:
        found.append(f"published {summary['published']}, not {expected}")
    return found


def tick_problems(spec: dict[str, Any], summary: dict[str, Any]) -> list[str]:
    found = []
    if summary["batchItemFailures"] != sorted(spec["batchItemFailures"]):
        found.append(f"batchItemFailures {summary['batchItemFailures']} != {sorted(spec['batchItemFailures'])}")
    if summary["queued"] != spec["queued"]:
        found.append(f"{summary['queued']} messages queued, not {spec['queued']}")
    return found


def expected_events(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event the manifest says a stream batch publishes, in the summary's order."""
    return sorted_events([event for record in spec["records"].values() for event in record["events"]])


def response_problems(expected: dict[str, Any], first: dict[str, Any]) -> list[str]:
    """The first answer against the manifest's ``response``: status, body fields and errors, headers."""
    if first["statusCode"] != expected["statusCode"]:
        return [f"HTTP {first['statusCode']}, not {expected['statusCode']}: {first}"]
    found = []
    for key, value in expected.get("body", {}).items():
        if first["body"].get(key) != value:
            found.append(f"body {key}={first['body'].get(key)!r}, not {value!r}")
    found += [f"body has no {key}" for key in expected.get("body_keys", ()) if key not in first["filled"]]
    for want in expected.get("body_errors", ()):
        if not any({k: e.get(k) for k in want} == want for e in first["errors"]):
            found.append(f"no error like {want} in {first['errors']}")
    for header, value in expected.get("headers", {}).items():
        if first["headers"].get(header) != value:
            found.append(f"header {header}={first['headers'].get(header)!r}, not {value!r}")
    return found


def repeat_problems(repeat: dict[str, Any], responses: list[dict[str, Any]], same_body: bool) -> list[str]:
    found = []
    if len(responses) != repeat["invocations"]:
        found.append(f"{len(responses)} invocations, not {repeat['invocations']}")
    if same_body is not repeat["same_body"]:
        found.append("the answers' bodies differ" if repeat["same_body"] else "the answers' bodies are the same")
    for header, value in repeat.get("headers", {}).items():
        if any(r["headers"].get(header) != value for r in responses[1:]):
            found.append(f"a repeated answer lacks {header}: {value}")
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Table cells


def describe(spec: dict[str, Any], summary: dict[str, Any]) -> str:
    """The outcome as the table shows it, in the same words as :func:`expected_text`."""
    if spec["trigger"] == "sqs":
        return count_outcomes(r["outcome"] for r in summary["records"].values())
    if spec["trigger"] == "webhook":
        return webhook_text(summary["responses"][0]["statusCode"], len(summary["stored"]), summary["kept"])
    if spec["trigger"] == "stream":
        return stream_text(summary["published"], len(summary["batchItemFailures"]))
    if spec["trigger"] == "tick":
        return tick_text(summary["queued"], len(summary["batchItemFailures"]))
    responses = summary["responses"]
    text = f"http {responses[0]['statusCode']}"
    if len(responses) > 1:
        text += f" x{len(responses)}, same answer" if summary["same_body"] else f" x{len(responses)}"
    if summary["final"] is not None:
        text += ", then sent" if summary["final"]["sent"] == 1 else ", then NOT sent"
    return text


def expected_text(spec: dict[str, Any]) -> str:
    if spec["trigger"] == "sqs":
        return count_outcomes(r["outcome"] for r in spec["records"].values())
    if spec["trigger"] == "webhook":
        return webhook_text(spec["response"]["statusCode"], len(spec["stored"]), spec["kept"])
    if spec["trigger"] == "stream":
        return stream_text(expected_events(spec), len(spec["batchItemFailures"]))
    if spec["trigger"] == "tick":
        return tick_text(spec["queued"], len(spec["batchItemFailures"]))
    return expected_api_outcome(spec, int(spec.get("repeat", {}).get("invocations", 1)))


def count_outcomes(outcomes: Any) -> str:
    counts = Counter(outcomes)
    order = ["sent", "dead_lettered", "retry", *sorted(set(counts) - {"sent", "dead_lettered", "retry"})]
    return ", ".join(f"{name} {counts[name]}" for name in order if counts[name])


def webhook_text(status: int | None, stored: int, kept: int) -> str:
    """``http 200, 1 stored``, ``http 404, nothing stored``."""
    text = f"http {status}, {f'{stored} stored' if stored else 'nothing stored'}"
    return f"{text}, {kept} kept" if kept else text


def tick_text(queued: int, failures: int) -> str:
    """``0 queued``; ``, 1 failed`` when the tick was reported for another try."""
    return f"{queued} queued" + (f", {failures} failed" if failures else "")


def stream_text(events: list[dict[str, Any]], failures: int) -> str:
    """``1 event (delivered)``, ``no event``; ``, 1 failed`` when records were reported for another try."""
    statuses = [str(e.get("status") or e.get("payload")) for e in events]
    text = f"{len(events)} event{'s' if len(events) > 1 else ''} ({', '.join(statuses)})" if events else "no event"
    return f"{text}, {failures} failed" if failures else text
