"""Lambda's front doors, emulated in-process: the SQS and DynamoDB-stream event source mappings and API Gateway.

* :class:`QueuePoller` long-polls the send queue in batches of the template's size, invokes the real handler,
  deletes what succeeded and leaves ``batchItemFailures`` for redelivery (after ``retry_delay`` seconds rather than
  the full visibility timeout); the queue's redrive policy (applied by moto) moves exhausted messages to the DLQ.
* :class:`StreamPoller` hands the messages table's stream to the publisher function (``local_stack.streams``).
* :class:`ApiServer` serves, on 127.0.0.1, the REST API (the routes template.yaml declares for the sender,
  checking the ``x-api-key`` header as API Gateway does: ``403 {"message": "Forbidden"}`` without it) and the
  webhook's HTTP API (``POST /webhooks/nxcloud/{token}``, no key), turns each request into its proxy event, invokes
  the function and turns its answer back into HTTP.

Each function invokes through its own :class:`Invoker`, which runs one invocation at a time, as one Lambda container
does.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local_stack.lambda_events import LambdaContext, api_event, http_api_event, receive_sqs_event, settle_sqs_batch
from local_stack.streams import StreamReader
from local_stack.template import api_routes

Handler = Callable[[dict[str, Any], Any], Any]
MAX_REQUEST_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class Invoker:
    """Calls the handler with a fresh context and a deadline, one invocation at a time."""

    def __init__(self, handler: Handler | None = None, *, timeout: float = 30.0) -> None:
        if handler is None:
            import app

            handler = app.lambda_handler
        self.handler = handler
        self.timeout = timeout
        self._lock = threading.Lock()
        self.invocations = 0

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._lock:
            self.invocations += 1
            return self.handler(event, LambdaContext(timeout_seconds=self.timeout))


class QueuePoller:
    """The SQS event source mapping for one queue, on a daemon thread."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        invoke: Invoker,
        *,
        batch_size: int = 10,
        retry_delay: int = 1,
        on_batch: Callable[[dict[str, Any], dict[str, Any] | None], None] | None = None,
    ) -> None:
        self.sqs, self.queue_url, self.invoke = sqs, queue_url, invoke
        self.batch_size, self.retry_delay = batch_size, retry_delay
        self.on_batch = on_batch
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)
        self.errors: list[BaseException] = []

    def start(self) -> QueuePoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receive one batch and process it; return how many records it had."""
        event = receive_sqs_event(self.sqs, self.queue_url, batch_size=self.batch_size, wait_seconds=wait_seconds)
        if not event["Records"]:
            return 0
        try:
            response = self.invoke(event)
        except Exception as exc:  # an invocation error: Lambda retries the whole batch
            self.errors.append(exc)
            response = None
        settle_sqs_batch(self.sqs, self.queue_url, event, response, retry_delay=self.retry_delay)
        if self.on_batch is not None:
            self.on_batch(event, response)
        return len(event["Records"])

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # keep polling, as the managed poller does; the error is kept for the report
                self.errors.append(exc)
                self._stop.wait(1)


class StreamPoller:
    """The publisher's DynamoDB stream event source mapping, on a daemon thread."""

    def __init__(self, reader: StreamReader, invoke: Invoker, *, interval: float = 0.2) -> None:
        self.reader, self.invoke, self.interval = reader, invoke, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)
        self.errors: list[BaseException] = []
        self.records = 0

    def start(self) -> StreamPoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def poll_once(self) -> int:
        handed = self.reader.deliver(self.invoke)
        self.records += handed
        return handed

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if not self.poll_once():
                    self._stop.wait(self.interval)
            except Exception as exc:  # Lambda retries the batch; the error is kept for the report
                self.errors.append(exc)
                self._stop.wait(1)


WEBHOOK_ROUTE = "/webhooks/nxcloud/{token}"


class ApiServer:
    """API Gateway in front of the functions, on 127.0.0.1: the REST API (stage ``v1``) and the webhook's HTTP API."""

    def __init__(
        self,
        invoke: Invoker,
        *,
        port: int = 0,
        api_key: str | None = None,
        stage: str = "v1",
        webhook: Invoker | None = None,
    ) -> None:
        self.invoke = invoke
        self.webhook = webhook
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.stage = stage
        self.routes = api_routes("SenderFunction")
        """The REST API's routes, as template.yaml declares them."""
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="api", daemon=True)

    @property
    def url(self) -> str:
        return f"{self.root}/{self.stage}"

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def webhook_url(self) -> str:
        """The webhook's URL without the token (the template's ``WebhookUrl`` output)."""
        return f"{self.root}{WEBHOOK_ROUTE.removesuffix('{token}')}"

    def start(self) -> ApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """What API Gateway answers for one request."""
        route = path.split("?", 1)[0]
        webhook_prefix = WEBHOOK_ROUTE.removesuffix("{token}")
        if self.webhook is not None and route.startswith(webhook_prefix) and method == "POST":
            return self._webhook(route, headers, body)
        stage = f"/{self.stage}"
        resource = self._resource(method, route.removeprefix(stage)) if route.startswith(stage + "/") else None
        if resource is None:
            return 403, {"Content-Type": "application/json"}, b'{"message":"Missing Authentication Token"}'
        lowered = {k.lower(): v for k, v in headers.items()}
        if not secrets.compare_digest(lowered.get("x-api-key", ""), self.api_key):
            return 403, {"Content-Type": "application/json"}, b'{"message":"Forbidden"}'
        event = api_event(
            _text(body),
            method=method,
            path=route.removeprefix(stage),
            headers=headers,
            query=_query(path),
            resource=resource,
        )
        return self._call(self.invoke, event)

    def _resource(self, method: str, path: str) -> str | None:
        """The template's route (``/suppressions/{number}``) that serves ``method`` on ``path``, or None: API Gateway
        answers a route the template does not declare 403 ``Missing Authentication Token``. A ``{param}`` takes one
        non-empty path segment."""
        for route_method, route in self.routes:
            parts = re.split(r"(\{\w+\})", route)
            pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
            if method == route_method and re.fullmatch(pattern, path):
                return route
        return None

    def _webhook(self, route: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        token = urllib.parse.unquote(route.removeprefix(WEBHOOK_ROUTE.removesuffix("{token}")))
        if not token or "/" in token:
            return 404, {"Content-Type": "application/json"}, b'{"message":"Not Found"}'
        event = http_api_event(
            _text(body), route=WEBHOOK_ROUTE, path=route, path_parameters={"token": token}, headers=headers
        )
        assert self.webhook is not None
        return self._call(self.webhook, event)

    @staticmethod
    def _call(invoke: Invoker, event: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        try:
            response = invoke(event)
        except Exception:
            return 502, {"Content-Type": "application/json"}, b'{"message":"Internal server error"}'
        return _http_response(response)


def _query(path: str) -> dict[str, list[str]]:
    """The request's query string, decoded as API Gateway decodes it for the proxy event."""
    return urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)


def _text(body: bytes) -> str | bytes:
    """The body as text, or as bytes when it is not UTF-8 (API Gateway then passes it base64-encoded)."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body


def _http_response(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    headers = dict(response.get("headers") or {})
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(values)
    body = response.get("body") or ""
    raw = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode("utf-8")
    return int(response.get("statusCode", 502)), headers, raw


def _make_handler(api: ApiServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self._reply(413, {"Content-Type": "application/json"}, b'{"message":"Request Too Long"}')
                return
            body = self.rfile.read(length) if length else b""
            status, headers, raw = api.answer(self.command, self.path, dict(self.headers.items()), body)
            self._reply(status, headers, raw)

        def _reply(self, status: int, headers: dict[str, str], raw: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_POST = do_GET = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the function's own logs say what happened."""

    return _Handler


def json_body(raw: bytes) -> Any:
    """Decode an answer's JSON body, or return the text when it is not JSON."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
