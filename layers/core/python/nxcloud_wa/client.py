"""The HTTP client for NXCloud's ``POST /saas/wa/send``.

It serialises the body once, signs that exact text and sends that exact text, over one urllib3 pool that is reused
across calls (and across warm Lambda invocations). It resends only when a resend cannot cause a duplicate: the
connection never reached the server, or the server answered 503 without processing. Each attempt gets a fresh
``ts`` and signature. A failure after the request went out (read timeout, dropped or garbled answer) is an
:class:`UnknownOutcomeError` and is never resent here. A 429 is not resent either: it is raised at once as a
:class:`~nxcloud_wa.exceptions.ThrottledError` (with its ``Retry-After``), because resending it would spend the
business number's rate again; the delivery delays the message instead (docs/throughput.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from .config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_READ_TIMEOUT
from .credentials import Credentials
from .error_codes import (
    CONNECT_ERROR,
    CONNECTION_DROPPED,
    MALFORMED_RESPONSE,
    READ_TIMEOUT,
    RETRY_IN_CLIENT_STATUSES,
    THROTTLE_STATUS,
    classify_code,
    classify_http_status,
)
from .exceptions import RetryableSendError, SendError, UnknownOutcomeError, error_for_code, error_for_http_status
from .signing import sign

SEND_PATH: Final = "/saas/wa/send"
BIZ_TYPE: Final = "2"
ACTION: Final = "mt"
MAX_RESPONSE_BYTES: Final = 64 * 1024
IDLE_RECYCLE_SECONDS: Final = 20.0
"""Pooled connections idle longer than this are dropped before a send. A frozen Lambda's keep-alive connection may
have been closed silently by a load balancer; writing a request into it would turn a clean retry into an unknown
outcome. A fresh TLS connection costs one round trip; a lost or duplicated message costs more."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """NXCloud accepted the message."""

    message_id: str
    trace_id: str | None


def encode_body(body: Mapping[str, Any]) -> str:
    """The exact body text: compact, UTF-8 kept as is (not ``\\u`` escaped). Signed and sent unchanged."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def signed_headers(access_key: str, access_secret: str, body_text: str, now_ms: int) -> dict[str, str]:
    """The five NXCloud headers plus Content-Type for one attempt."""
    headers = {"accessKey": access_key, "ts": str(now_ms), "bizType": BIZ_TYPE, "action": ACTION}
    headers["sign"] = sign(headers, body_text, access_secret)
    headers["Content-Type"] = "application/json"
    return headers


class NXCloudClient:
    """Sends signed requests to one NXCloud base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff: float = 0.2,
        pool: urllib3.PoolManager | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + SEND_PATH
        self._path = urllib3.util.parse_url(self.url).request_uri
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.max_attempts = max(1, max_attempts)
        self.backoff = backoff
        self.pool = pool or urllib3.PoolManager(maxsize=16, block=False, retries=False)
        self._host: urllib3.HTTPConnectionPool | None = None
        self._clock = clock
        self._sleep = sleep
        self._last_used = time.monotonic()

    def host_pool(self) -> urllib3.HTTPConnectionPool:
        """The pool of NXCloud's host, looked up once rather than on every send (the PoolManager parses the URL and
        builds a pool key each time: about a sixth of the client's CPU per message). Looked up again after
        :meth:`reset`, or if the pool was closed (``PoolManager.clear`` closes it)."""
        host = self._host
        if host is None or host.pool is None:
            host = self._host = self.pool.connection_from_url(self.url)
        return host

    def reset(self) -> None:
        """Drop every pooled connection: the next send opens a new one (after an idle spell, or a SnapStart
        restore, when the sockets held may be dead)."""
        self.pool.clear()
        self._host = None
        self._last_used = time.monotonic()

    def send(self, body: Mapping[str, Any], credentials: Credentials) -> SendResult:
        """Send one message; return its ``message_id`` or raise a :class:`SendError` subclass."""
        body_text = encode_body(body)
        if time.monotonic() - self._last_used > IDLE_RECYCLE_SECONDS:
            self.reset()
        payload = body_text.encode("utf-8")
        for attempt in range(1, self.max_attempts + 1):
            headers = signed_headers(
                credentials.access_key, credentials.access_secret, body_text, int(self._clock() * 1000)
            )
            try:
                response = self.host_pool().urlopen(
                    "POST",
                    self._path,
                    body=payload,
                    headers=headers,
                    timeout=self.timeout,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                )
            except (NewConnectionError, ConnectTimeoutError, SSLError) as exc:
                error: SendError = RetryableSendError(
                    f"could not connect to NXCloud: {type(exc).__name__}", CONNECT_ERROR
                )
            except ReadTimeoutError:
                raise UnknownOutcomeError(
                    "NXCloud did not answer within the read timeout; the message may have been sent", READ_TIMEOUT
                ) from None
            except (ProtocolError, HTTPError) as exc:
                raise UnknownOutcomeError(
                    f"the connection failed after the request was sent ({type(exc).__name__}); "
                    "the message may have been sent",
                    CONNECTION_DROPPED,
                ) from None
            else:
                self._last_used = time.monotonic()
                status, raw = response.status, _read_capped(response)
                if status == THROTTLE_STATUS:
                    raise error_for_http_status(status, response.headers.get("Retry-After"))
                if status not in RETRY_IN_CLIENT_STATUSES:
                    return _interpret(status, raw)
                error = RetryableSendError(
                    f"NXCloud answered HTTP {status} (not processed)", classify_http_status(status), http_status=status
                )
            if attempt < self.max_attempts:
                self._sleep(self.backoff * 2 ** (attempt - 1))
        raise error


def _read_capped(response: urllib3.BaseHTTPResponse) -> bytes:
    """Read at most ``MAX_RESPONSE_BYTES`` of the answer (a runaway answer must not exhaust memory)."""
    try:
        data = response.read(MAX_RESPONSE_BYTES + 1)
    except (ReadTimeoutError, ProtocolError, HTTPError):
        raise UnknownOutcomeError(
            "NXCloud's answer was cut off; the message may have been sent", CONNECTION_DROPPED
        ) from None
    finally:
        response.release_conn()
    return data


def _interpret(status: int, raw: bytes) -> SendResult:
    """Turn an HTTP answer into a result or the right exception."""
    document = _decode_json(raw)
    code = document.get("code") if document is not None else None
    if document is not None and isinstance(code, int) and not isinstance(code, bool):
        trace_id = _text(document.get("traceId"))
        if code == 0 and 200 <= status < 300:
            data = document.get("data")
            message_id = _text(data.get("message_id")) if isinstance(data, dict) else None
            if message_id:
                return SendResult(message_id, trace_id)
            raise UnknownOutcomeError(
                "NXCloud answered code 0 without a message_id; the message may have been sent",
                MALFORMED_RESPONSE,
                code=0,
                trace_id=trace_id,
                http_status=status,
            )
        if code != 0:
            raise error_for_code(code, classify_code(code), (_text(document.get("message")) or "")[:500], trace_id)
    if 200 <= status < 300:
        raise UnknownOutcomeError(
            f"NXCloud answered HTTP {status} with a body that is not its JSON answer; the message may have been sent",
            MALFORMED_RESPONSE,
            http_status=status,
        )
    raise error_for_http_status(status)


def _text(value: object) -> str | None:
    """A string field of NXCloud's answer, or None when it is missing or of another type."""
    return value if isinstance(value, str) else None


def _decode_json(raw: bytes) -> dict[str, Any] | None:
    if len(raw) > MAX_RESPONSE_BYTES:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
