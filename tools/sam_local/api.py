"""The API and webhook samples over HTTP through ``sam local start-api``, and a short schemathesis run against it.

SAM's local gateway serves both APIs of the template on one port: the REST API (``SenderFunction``, payload 1.0) and
the webhook's HTTP API (``WebhookFunction``, ``AWS::Serverless::HttpApi``, payload 2.0, its ``{token}`` path
parameter). It runs each function in a warm container and answers as API Gateway's proxy integrations do. What
it does not do: it does not check API keys (``ApiKeyRequired`` is ignored by SAM CLI 1.170.0's local gateway,
so a request without ``x-api-key`` reaches the function; API Gateway would answer 403 and ``make run``'s emulation
does), and it has no SQS event source (a ``Prefer: respond-async`` request stays queued) nor the table's stream (a
stored callback publishes no event). Its own 403, ``Missing Authentication Token`` for a route the API does not have,
is API Gateway's and is checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from local_stack.aws import Resources
from local_stack.samples import HOP_BY_HOP, api_route
from sam_local.events import EVENTS, depth, manifest, stored_callbacks
from sam_local.hostnet import REFUSED_PREFIX
from sam_local.outcomes import (
    WEBHOOK_BODY_KEYS,
    repeat_problems,
    response_problems,
    stored_problems,
    summarize_response,
    webhook_text,
)

ROOT: Final = Path(__file__).resolve().parents[2]
# As in tests/fuzz: checks of what API Gateway decides rather than this API (see test_schemathesis.py's docstring),
# and ``ignored_auth``: SAM's local gateway does not check API keys (the start-api table shows a request without one
# reaching the function), so a request without the key is answered by the function here; tests/fuzz runs that check
# against make run's gateway emulation, which checks the key as API Gateway does.
EXCLUDED_CHECKS: Final = ("unsupported_method", "positive_data_acceptance", "missing_required_header", "ignored_auth")


@dataclass(frozen=True, slots=True)
class ApiRow:
    """One line of the start-api table."""

    request: str
    outcome: str
    seconds: str
    expected: str
    problems: tuple[str, ...]
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def post(url: str, body: str, headers: dict[str, str], method: str = "POST") -> tuple[dict[str, Any], float]:
    """One HTTP request; the answer in the shape of a proxy integration's response, and its wall time."""
    request = urllib.request.Request(url, data=body.encode() if body else None, headers=headers, method=method)  # noqa: S310
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:  # noqa: S310 - loopback
            status, raw, found = answer.status, answer.read(), dict(answer.headers.items())
    except urllib.error.HTTPError as error:
        status, raw, found = error.code, error.read(), dict(error.headers.items())
    return {"statusCode": status, "body": raw.decode("utf-8", "replace"), "headers": found}, time.monotonic() - started


def sample_rows(url: str) -> list[ApiRow]:
    """Every API sample of events/, sent as a client would, checked against its documented answer."""
    rows = []
    for name, spec in manifest().items():
        if spec["trigger"] != "api":
            continue
        event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in HOP_BY_HOP}
        headers["x-api-key"] = "any"  # SAM's gateway ignores it; API Gateway would check it
        times = int(spec.get("repeat", {}).get("invocations", 1))
        answers = [post(url + api_route(event), event.get("body") or "", headers) for _ in range(times)]
        summaries = [summarize_response(a) for a, _ in answers]
        bodies = [s.pop("raw_body") for s in summaries]
        found = response_problems(spec["response"], summaries[0])
        if "repeat" in spec:
            found += repeat_problems(spec["repeat"], summaries, all(b == bodies[0] for b in bodies))
        outcome = f"http {summaries[0]['statusCode']}" + (f" x{times}" if times > 1 else "")
        expected = f"http {spec['response']['statusCode']}" + (f" x{times}" if times > 1 else "")
        note = "stays queued: no SQS trigger under start-api" if "final" in spec else ""
        seconds = "+".join(f"{s:.1f}" for _, s in answers)
        rows.append(ApiRow(name, outcome, seconds, expected, tuple(found), note))
    return rows


def webhook_rows(url: str, resources: Resources) -> list[ApiRow]:
    """Every webhook sample POSTed to its path as NXCloud would, checked against its documented answer and against
    what reached the messages table and the kept-callbacks queue; a stored callback is then looked up through the
    REST API (``GET /messages/{id}``, SenderFunction reading the same table)."""
    rows = []
    for name, spec in manifest().items():
        if spec["trigger"] != "webhook":
            continue
        event = json.loads((EVENTS / name).read_text(encoding="utf-8"))
        headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in HOP_BY_HOP}
        before, kept_before = stored_callbacks(resources), depth(resources, resources.kept_callbacks_queue_url)
        answer, seconds = post(url + event["rawPath"], event.get("body") or "", headers)
        summary = summarize_response(answer, WEBHOOK_BODY_KEYS)
        added = {k: v for k, v in stored_callbacks(resources).items() if before.get(k) != v}
        kept = depth(resources, resources.kept_callbacks_queue_url) - kept_before
        found = response_problems(spec["response"], summary) + stored_problems(spec, added)
        if kept != spec["kept"]:
            found.append(f"{kept} callbacks kept for replay, not {spec['kept']}")
        route = f"POST {event['routeKey'].split(' ', 1)[1]} ({name})"
        outcome = webhook_text(summary["statusCode"], len(added), kept)
        expected = webhook_text(spec["response"]["statusCode"], len(spec["stored"]), spec["kept"])
        rows.append(ApiRow(route, outcome, f"{seconds:.1f}", expected, tuple(found), "WebhookFunction, HTTP API"))
        if "lookup" in spec:
            rows.append(lookup_row(url, spec["lookup"]))
    return rows


def lookup_row(url: str, lookup: dict[str, Any]) -> ApiRow:
    """``GET /messages/{id}`` of a message the webhook stored: its answer's status and fields as documented."""
    answer, seconds = post(f"{url}/messages/{lookup['message_id']}", "", {"x-api-key": "any"}, method="GET")
    try:
        body = json.loads(answer["body"])
    except ValueError:
        body = answer["body"]
    fields = body if isinstance(body, dict) else {}
    got = {k: fields.get(k) for k in lookup["body"]}
    found = [] if answer["statusCode"] == lookup["statusCode"] and got == lookup["body"] else [f"{answer}"[:500]]
    shown = ", ".join(f"{k} {v}" for k, v in got.items() if k != "message_id")
    outcome, expected = f"http {answer['statusCode']}: {shown}", f"http {lookup['statusCode']}"
    note = "SenderFunction reads the table"
    return ApiRow("GET /messages/{id} (the stored callback)", outcome, f"{seconds:.1f}", expected, tuple(found), note)


def gateway_rows(url: str) -> list[ApiRow]:
    """API Gateway's own answers: an undeclared route, a request without the API key, and the webhook API's path
    without a token (a route neither API has)."""
    answer, seconds = post(f"{url}/messages", "", {}, method="GET")
    body = answer["body"]
    missing = [] if answer["statusCode"] == 403 and "Missing Authentication Token" in body else [body[:200]]
    rows = [ApiRow("GET /messages (no such route)", f"http {answer['statusCode']}", f"{seconds:.1f}", "http 403",
                   tuple(missing), "Missing Authentication Token, as API Gateway")]  # fmt: skip
    sync = json.loads((EVENTS / "api-send-sync.json").read_text(encoding="utf-8"))
    answer, seconds = post(f"{url}/messages", sync["body"], {"Content-Type": "application/json"})
    status = answer["statusCode"]
    note = "reached the function: sam local does not check API keys (API Gateway: 403)" if status != 403 else ""
    rows.append(
        ApiRow("POST /messages without x-api-key", f"http {status}", f"{seconds:.1f}", "not emulated", (), note)
    )
    answer, seconds = post(f"{url}/webhooks/nxcloud", "{}", {"content-type": "application/json"})
    note = "SAM answers every unknown route as a REST API does; an HTTP API answers 404 {message: Not Found}"
    rows.append(
        ApiRow("POST /webhooks/nxcloud (no such route)", f"http {answer['statusCode']}", f"{seconds:.1f}",
               "not emulated", (), note)
    )  # fmt: skip
    return rows


def refused_row(log: Path) -> ApiRow:
    """What the start-api process tried to reach beyond loopback (hostnet.py refused and reported each)."""
    refused = [line for line in log.read_text(encoding="utf-8").splitlines() if line.startswith(REFUSED_PREFIX)]
    outcome = f"{len(refused)} refused" if refused else "none"
    return ApiRow("SAM's connections beyond 127.0.0.1", outcome, "-", "none", tuple(refused), "hostnet.py audit hook")


def schemathesis(url: str, work: Path, examples: int) -> ApiRow:
    """schemathesis over openapi.json against the running API: no check may fail."""
    report = work / "schemathesis-junit.xml"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(ROOT / "openapi.json"), "--url", url,
        "--header", "x-api-key: any", "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
        "--phases", "fuzzing", "--max-examples", str(examples), "--workers", "1", "--request-timeout", "60",
        "--generation-deterministic",
        "--report", "junit", "--report-junit-path", str(report), "--no-color",
    ]  # fmt: skip
    started = time.monotonic()
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "sam_local.schemathesis_hooks", "NO_PROXY": "*", "no_proxy": "*"}
    env["PYTHONPATH"] = str(ROOT / "tools")
    done = subprocess.run(command, capture_output=True, text=True, cwd=work, env=env, timeout=1800, check=False)
    seconds = time.monotonic() - started
    counts = junit_counts(report) if report.exists() else {}
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-25:])
    found = () if done.returncode == 0 and counts.get("failures") == counts.get("errors") == 0 else (tail,)
    outcome = f"{counts.get('tests', 0)} operations, {counts.get('failures', '?')} failures" if counts else "no report"
    return ApiRow(f"schemathesis, {examples} examples", outcome, f"{seconds:.0f}", "0 failures", found,
                  requests_line(done.stdout))  # fmt: skip


def requests_line(stdout: str) -> str:
    """schemathesis' own count of the test cases it generated (the line after "Test cases:" in its summary)."""
    lines = [line.strip() for line in stdout.splitlines()]
    for index, line in enumerate(lines[:-1]):
        if line == "Test cases:":
            return lines[index + 1]
    return ""


def junit_counts(report: Path) -> dict[str, int]:
    root = ET.parse(report).getroot()  # noqa: S314 - schemathesis' own report, written just now
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    return {key: sum(int(s.get(key, 0)) for s in suites) for key in ("tests", "failures", "errors", "skipped")}
