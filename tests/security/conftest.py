"""The leak tests' harness: the shared stack of tests/stack.py (real handler, moto, the NXCloud simulator) with a
distinctive secret, every logger at DEBUG, and everything the function emits gathered in one place to be searched.

What is searched ("exposed"): the function's Powertools log lines at DEBUG (POWERTOOLS_LOG_LEVEL=DEBUG), as its handler
writes them and as a handler of ours formats them; every record of every other logger through the root logger at DEBUG
(botocore, urllib3, asyncio) and Powertools' internal loggers at DEBUG (as POWERTOOLS_DEBUG=true sets them), tracebacks
included; whatever reached stdout/stderr (EMF metrics included); the handler's responses (API bodies and headers, SQS
batch responses); the dead-letter messages' attributes; the idempotency table's items. What is looked for: the access
secret(s), every ``sign`` header the simulator received (sends and getTemplate), and every full phone number in play
(recipients as normalised and as written, the business number). A dead-letter message's body is the message as
received, numbers included, on purpose (it must be redrivable unchanged): it is checked to be exactly an original body
and is not searched.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from local_stack.lambda_events import api_event, settle_sqs_batch
from tests.stack import Stack, reset_function_runtime

ACCESS_KEY = "AK-leak-test"
SECRET_CANARY = "LeakCanary-7Qz2xW9v-accessSecret"
"""Distinctive, and letters, digits and hyphens only, so that no JSON or repr escaping can hide a copy of it."""
ROTATED_CANARY = "LeakCanary-R0tated-accessSecret"
BUSINESS_PHONE = "8615987654321"
READ_TIMEOUT = 1.0


def secret_document(access_secret: str = SECRET_CANARY) -> str:
    return json.dumps(
        {
            "accessKey": ACCESS_KEY,
            "accessSecret": access_secret,
            "tenant_id": 7,
            "appkey": "leak-app",
            "business_phone": BUSINESS_PHONE,
        }
    )


SERVER_SIDE_LOGGERS = ("moto", "werkzeug")
"""moto's server runs in this process: its own logs are the fake AWS's, not the function's, and are not searched."""


class _Records(logging.Handler):
    """Keeps every record the function's process emits while ``active``, with its logger's name and any traceback.

    Inactive while the test itself talks to moto (enqueueing, receiving, settling a batch), whose boto3 calls carry
    the messages' bodies and are not the function's doing.
    """

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.active = False
        self.lines: list[str] = []
        self.loggers: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if self.active and not record.name.startswith(SERVER_SIDE_LOGGERS):
            self.loggers.add(record.name)
            self.lines.append(self.format(record))


@dataclass
class Exposure:
    """Drives the stack and collects what it exposes; :meth:`assert_clean` searches it."""

    stack: Stack
    simulator: Any
    capfd: pytest.CaptureFixture[str]
    root: _Records
    function_log: list[str]
    function_stdout: io.StringIO
    responses: list[Any] = field(default_factory=list)
    originals: list[str] = field(default_factory=list)
    numbers: set[str] = field(default_factory=lambda: {BUSINESS_PHONE})
    secrets: set[str] = field(default_factory=lambda: {SECRET_CANARY})
    captured: list[str] = field(default_factory=list)

    def enqueue(self, body: str | dict[str, Any], *numbers: str, **kwargs: Any) -> str:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        self.originals.append(text)
        self.numbers.update(numbers)
        return self.stack.enqueue(text, **kwargs)

    def run_batch(self) -> Any:
        """Receive a batch, invoke the handler on it, settle it as the event source mapping would."""
        event = self.stack.receive()
        assert event["Records"], "nothing to receive"
        response = self.invoke(event)
        settle_sqs_batch(self.stack.sqs, self.stack.resources.send_queue_url, event, response, retry_delay=0)
        return response

    def invoke(self, event: dict[str, Any]) -> Any:
        self.root.active = True
        try:
            response = self.stack.invoke(event)
        finally:
            self.root.active = False
        self.responses.append(response)
        return response

    def call_api(self, body: str | dict[str, Any], *numbers: str, headers: dict[str, str] | None = None) -> Any:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        self.originals.append(text)
        self.numbers.update(numbers)
        return self.invoke(api_event(text, headers={"Content-Type": "application/json", **(headers or {})}))

    def dlq(self) -> list[dict[str, Any]]:
        return self.stack.dlq_messages()

    def sources(self) -> dict[str, str]:
        """Every place searched, by name."""
        out, err = self.capfd.readouterr()
        self.captured += [out, err]
        with self.capfd.disabled():
            dead = self.dlq()
            table = self.stack.resources.client("dynamodb").scan(TableName=self.stack.resources.table_name)
        for message in dead:
            assert message["Body"] in self.originals, "a dead-letter body is not exactly a message as received"
        return {
            "function log": "\n".join(self.function_log),
            "function stdout": self.function_stdout.getvalue(),
            "root logger (DEBUG)": "\n".join(self.root.lines),
            "stdout/stderr": "\n".join(self.captured),
            "responses": json.dumps(self.responses, ensure_ascii=False, default=str),
            "DLQ attributes": json.dumps([m.get("MessageAttributes", {}) for m in dead], ensure_ascii=False),
            "idempotency table": json.dumps(table.get("Items", []), ensure_ascii=False),
        }

    def forbidden(self) -> dict[str, str]:
        """What must appear nowhere, with a label for the failure message (the value itself is not repeated)."""
        values = {f"access secret #{i}": s for i, s in enumerate(sorted(self.secrets))}
        signs = {r.headers["sign"] for r in self.simulator.requests if r.headers.get("sign")}
        signs |= {r.headers["sign"] for r in self.simulator.template_requests if r.headers.get("sign")}  # getTemplate
        values |= {f"sign header #{i}": s for i, s in enumerate(sorted(signs))}
        values |= {f"phone number {n[:3]}...{n[-2:]}": n for n in self.numbers}
        return values

    def assert_clean(self) -> dict[str, str]:
        sources = self.sources()
        leaks = [
            f"{label} found in {name}: {_around(text, value)}"
            for name, text in sources.items()
            for label, value in self.forbidden().items()
            if value in text
        ]
        assert not leaks, "\n".join(leaks)
        return sources


def _around(text: str, value: str, width: int = 80) -> str:
    """Where ``value`` first occurs: the start of its line (a log line names its logger) and its surroundings."""
    at = text.index(value)
    line_start = text.rfind("\n", 0, at) + 1
    head = text[line_start : min(line_start + 60, at)]
    return f"[{head}] ...{text[max(line_start, at - width) : at + len(value) + width]}...".replace(value, "<LEAK>")


@pytest.fixture
def exposure(
    stack: Stack,
    simulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> Iterator[Exposure]:
    from observability import logger

    secrets = stack.resources.client("secretsmanager")
    secrets.put_secret_value(SecretId=stack.resources.secret_id, SecretString=secret_document())
    simulator.set_account(ACCESS_KEY, SECRET_CANARY)
    # More than the stack fixture's 0.5 s: DEBUG everywhere slows a loaded machine, and a late answer would turn a
    # sent message into an unknown outcome. The simulator's hangs (read_timeout_after_accept) are longer still.
    monkeypatch.setenv("NXCLOUD_READ_TIMEOUT", str(READ_TIMEOUT))
    reset_function_runtime()

    # POWERTOOLS_LOG_LEVEL=DEBUG: the logger exists already (module import), so its level is set as the variable would.
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    function_lines: list[str] = []

    class _FunctionLog(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            function_lines.append(self.format(record))

    function_handler = _FunctionLog(logging.DEBUG)
    function_handler.setFormatter(logger.registered_formatter)
    old_function_level = logger.log_level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(function_handler)
    # The logger's own stdout handler keeps the stream of whichever test imported it first, maybe closed by now:
    # give it one of ours, searched as "function stdout". (Assigned, not setStream(), which flushes the old one.)
    function_stdout = io.StringIO()
    stdout_handler = logger.registered_handler
    old_stream, stdout_handler.stream = stdout_handler.stream, function_stdout

    # The root logger at DEBUG, as Lambda sets it when the application log level is DEBUG (or code calls basicConfig).
    root_logger = logging.getLogger()
    root = _Records()
    old_root_level = root_logger.level
    root_logger.setLevel(logging.DEBUG)
    root_logger.addHandler(root)
    # Powertools' own loggers do not propagate unless POWERTOOLS_DEBUG is set; then they log at DEBUG, as here.
    package_logger = logging.getLogger("aws_lambda_powertools")
    old_package = (package_logger.level, package_logger.propagate)
    package_logger.setLevel(logging.DEBUG)
    package_logger.addHandler(root)
    try:
        yield Exposure(stack, simulator, capfd, root, function_lines, function_stdout)
    finally:
        package_logger.removeHandler(root)
        package_logger.setLevel(old_package[0])
        package_logger.propagate = old_package[1]
        root_logger.removeHandler(root)
        root_logger.setLevel(old_root_level)
        logger.removeHandler(function_handler)
        logger.setLevel(old_function_level)
        stdout_handler.stream = old_stream
