"""moto in its own process, behind a small keep-alive HTTP front end, with a second port that injects AWS faults.

Why not moto's own server in the soak's process:

* speed: moto's werkzeug server closes the connection after every request and then waits up to 10 ms for stray
  bytes; in the soak's process it also competes for the interpreter lock with the simulator, the pollers and the API.
  Under the soak's load a DynamoDB call that moto handles in ~1.5 ms took ~200 ms to answer.
* safety: moto's SQS backend is not thread-safe. With several pollers receiving from one queue while the function
  sends to it, its threaded server raised from inside ``receive_message`` (``list.remove(x): x not in list``, ``Set
  changed size during iteration``) after marking messages received: those only came back after the visibility
  timeout, and one message could go to two receivers at once.

So here requests are read by a ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, ``TCP_NODELAY``) and handed to moto's
WSGI application one at a time under a lock. A long poll (``WaitTimeSeconds`` > 0) becomes short receives retried
outside the lock until a message arrives or the wait is over, so a waiting poller does not block anyone. Two ports
serve the same moto: the clean one (the soak's own clients, the emulated event source) and the fault one (the
function's ``AWS_ENDPOINT_URL``), where :class:`soak.aws_faults.FaultDecider` may answer an error instead of moto, or
let moto act and then drop the connection.

moto's EventBridge builds a JSONPath parser (a yacc table) for each of the eight paths of its default input
template, for every event and target it delivers: about 27 ms per event, which would make moto spend minutes per
10 000 messages on the publisher's events alone. The parsed paths are immutable, so :func:`speed_up_moto` memoizes
``jsonpath_ng.ext.parse``, which moto imports at each call.

moto's SQS is also slow in two spots a soak hits all the time: ``receive_message`` computes ALL the queue's
attributes (three scans of every message) for each message it returns, to read the retention period (receiving 10
from a queue of 300 took 300 ms), and every visibility check builds datetimes to read the clock; and its request
router lists its own package directory (``os.listdir`` plus ~200 ``isdir``) on every request.
:func:`speed_up_moto` replaces those with the same arithmetic done directly: same answers, a fraction of the time.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts
from soak import aws_faults
from soak.aws_faults import AwsFault, FaultDecider

POLL_INTERVAL: Final = 0.1
"""How often a waiting receive looks again when nothing was sent meanwhile (visibility timeouts end by the clock)."""
WAKES_RECEIVERS: Final = frozenset(
    {
        "AmazonSQS.SendMessage",
        "AmazonSQS.SendMessageBatch",
        "AmazonSQS.ChangeMessageVisibility",
        "AmazonSQS.ChangeMessageVisibilityBatch",
    }
)
"""Requests after which a waiting receive looks again at once. (A receive that moves messages to the DLQ does not wake
the DLQ's receivers: they look again within ``POLL_INTERVAL``; waking every receiver on every receive would have them
wake each other for ever.)"""
MAX_WAIT: Final = 20.0
START_TIMEOUT: Final = 60.0
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


def speed_up_moto() -> None:
    """Patch moto in this process (idempotent); see the module docstring."""
    import functools

    import jsonpath_ng.ext
    from moto import backends
    from moto.sqs import models

    if getattr(models, "_soak_fast", False):
        return
    jsonpath_ng.ext.parse = functools.lru_cache(maxsize=256)(jsonpath_ng.ext.parse)
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original_unix_time = models.unix_time

    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original_unix_time(dt)

    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original_unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > time.time())

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
    models._soak_fast = True  # type: ignore[attr-defined]


class SerializedApp:
    """One request at a time into a WSGI ``app``; SQS long polls as repeated short receives outside the lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()
        self._changed = threading.Condition()

    def handle(self, environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET")
        answer = self._long_poll(environ, body) if target == "AmazonSQS.ReceiveMessage" else self._once(environ, body)
        if target in WAKES_RECEIVERS:
            with self._changed:
                self._changed.notify_all()
        return answer

    def _once(self, environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}
        chunks: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return chunks.append

        environ = dict(environ, CONTENT_LENGTH=str(len(body)))
        environ["wsgi.input"] = io.BytesIO(body)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return captured["status"], captured["headers"], b"".join(chunks)

    def _long_poll(self, environ: dict[str, Any], body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
        try:
            request = json.loads(body)
            wait = float(request.get("WaitTimeSeconds") or 0)
            request["WaitTimeSeconds"] = 0
            body = json.dumps(request).encode()
        except (ValueError, AttributeError):
            wait = 0.0
        deadline = time.monotonic() + min(wait, MAX_WAIT)
        while True:
            status, headers, answer = self._once(environ, body)
            left = deadline - time.monotonic()
            if not status.startswith("200") or left <= 0 or _has_messages(answer):
                return status, headers, answer
            with self._changed:
                self._changed.wait(min(left, POLL_INTERVAL))


def _has_messages(body: bytes) -> bool:
    try:
        return bool(json.loads(body).get("Messages"))
    except (ValueError, AttributeError):
        return True  # not the answer expected: hand it back as it is


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, app: SerializedApp, decider: FaultDecider | None) -> None:
        self.app, self.decider = app, decider
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when a client (a killed container) goes away mid-answer."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client went away mid-request (a killed container): nothing reaches moto
            self.close_connection = True
            return
        decider = self.server.decider
        rule: AwsFault | None = decider.decide(self.headers, body) if decider is not None else None
        if rule is not None and decider is not None and rule.kind == "partial":
            self._partial(decider, rule, body)
            return
        if rule is not None and rule.kind != "lost_response":
            status, document = rule.error_answer()
            self._reply(status, [("Content-Type", "application/x-amz-json-1.0")], document)
            return
        status_line, headers, answer = self.server.app.handle(self._environ(), body)
        if rule is not None:  # lost_response: moto acted, the answer never arrives
            self.close_connection = True
            return
        self._reply(int(status_line.split()[0]), headers, answer)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def _partial(self, decider: FaultDecider, rule: AwsFault, body: bytes) -> None:
        """A batch call with some entries failed: only the others reach moto; the answer says which failed."""
        count = aws_faults.entry_count(rule.operation, body)
        failing = decider.failing_entries(rule, count)
        forwarded = aws_faults.request_without(rule.operation, body, failing)
        headers = [("Content-Type", self.headers.get("Content-Type") or "application/x-amz-json-1.1")]
        delivered = None
        if forwarded is not None:
            status_line, headers, delivered = self.server.app.handle(self._environ(), forwarded)
            if not status_line.startswith("200"):  # moto refused the request itself: hand that back as it is
                self._reply(int(status_line.split()[0]), headers, delivered)
                return
        self._reply(200, headers, aws_faults.partial_answer(rule.operation, count, failing, delivered))

    def _environ(self) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            "PATH_INFO": urllib.parse.unquote(path, "latin-1"),
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                continue
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def service_main(conn: Any, rules: list[AwsFault], seed: int) -> None:
    """The moto process: serve both ports until told to stop; answer ``stats`` with the faults injected."""
    import logging

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    speed_up_moto()
    refuse_duplicate_partiql_inserts()
    app = SerializedApp(DomainDispatcherApplication(create_backend_app))
    decider = FaultDecider(rules, seed)
    servers = [_Server(app, None), _Server(app, decider)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(tuple(s.server_address[1] for s in servers))
    while True:
        try:
            command = conn.recv()
        except (EOFError, OSError):
            return
        if command == "stats":
            conn.send({**decider.stats(), "cpu_s": time.process_time()})
        else:
            for server in servers:
                server.shutdown()
                server.server_close()
            conn.send("stopped")
            return


class AwsService:
    """The parent's handle. Quacks like :class:`local_stack.aws.MotoServer` (``start``, ``stop``, ``url``), so
    :class:`local_stack.stack.LocalStack` provisions the template's resources through the clean port."""

    def __init__(self, rules: list[AwsFault], *, seed: int) -> None:
        self.rules, self.seed = list(rules), seed
        self.url = ""
        self.fault_url = ""
        self._process: Any = None
        self._conn: Any = None
        self._stats: dict[str, Any] = {"injected": {}, "calls": {}, "table_calls": {}, "cpu_s": 0.0}

    def start(self) -> AwsService:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=service_main, args=(child, self.rules, self.seed), name="soak-moto", daemon=True
        )
        self._process.start()
        child.close()
        if not self._conn.poll(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError(f"moto did not start within {START_TIMEOUT} s")
        clean, faulty = self._conn.recv()
        self.url, self.fault_url = f"http://127.0.0.1:{clean}", f"http://127.0.0.1:{faulty}"
        return self

    def stats(self) -> dict[str, Any]:
        """Faults injected (by rule), attempts seen (by operation, and DynamoDB's by table) on the fault port, and
        moto's CPU seconds; the last figures are kept after stop."""
        if self._process is not None and self._process.is_alive():
            self._conn.send("stats")
            if self._conn.poll(10):
                self._stats = self._conn.recv()
        return self._stats

    def stop(self) -> None:
        if self._process is None:
            return
        self.stats()
        try:
            self._conn.send("stop")
            self._conn.poll(10)
        except OSError:
            pass
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process = None
