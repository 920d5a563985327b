"""The HTTP client for NXCloud's ``POST /saas/wa/send``, and the signed POST it shares with getTemplate.

It serialises the body once, signs that exact text and sends that exact text, over one urllib3 pool that is reused
across calls (and across warm Lambda invocations). It resends only when a resend cannot cause a duplicate: the
connection never reached the server, or the server answered 503 without processing. Each attempt gets a fresh
``ts`` and signature. A failure after the request went out (read timeout, dropped or garbled answer) is an
:class:`UnknownOutcomeError` and is never resent here. A 429 is not resent either: it is raised at once as a
:class:`~nxcloud_wa.exceptions.ThrottledError` (with its ``Retry-After``), because resending it would spend the
business number's rate again; the delivery delays the message instead (docs/throughput.md).
:meth:`NXCloudClient.post` is that signed exchange, with its resend rule, for any of NXCloud's actions
(``nxcloud_wa.template_client`` uses it for getTemplate).
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
from .exceptions import error_for_code, error_for_http_status, send_error
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


def signed_headers(
    access_key: str, access_secret: str, body_text: str, now_ms: int, action: str = ACTION
) -> dict[str, str]:
    """The five NXCloud headers plus Content-Type for one attempt of ``action`` (``mt``: send)."""
    headers = {"accessKey": access_key, "ts": str(now_ms), "bizType": BIZ_TYPE, "action": action}
    headers["sign"] = sign(headers, body_text, access_secret)
    headers["Content-Type"] = "application/json"
    return headers


class NXCloudClient:
    """Sends signed requests to one NXCloud base URL (``url`` is its send endpoint)."""

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
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + SEND_PATH
        self._prefix = (urllib3.util.parse_url(self.base_url).path or "").rstrip("/")
        """The base URL's own path, if any: every request path is under it, on the one host pool."""
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
        status, raw = self.post(SEND_PATH, ACTION, encode_body(body), credentials)
        return _interpret(status, raw)

    def post(
        self, path: str, action: str, body_text: str, credentials: Credentials, *, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> tuple[int, bytes]:
        """POST ``body_text`` to ``path``, signed for ``action``; return the HTTP status and the answer, of which at
        most ``max_bytes`` + 1 bytes are read (more means "too long": see :func:`decode_answer`).

        Resends only what the server never processed (a failed connect, HTTP 503), each time freshly signed; raises
        :class:`RetryableSendError` when those persist, :class:`~nxcloud_wa.exceptions.ThrottledError` at once for a
        429, and :class:`UnknownOutcomeError` once the request went out and no answer could be read.
        """
        if time.monotonic() - self._last_used > IDLE_RECYCLE_SECONDS:
            self.reset()
        request_path = self._prefix + path
        payload = body_text.encode("utf-8")
        for attempt in range(1, self.max_attempts + 1):
            headers = signed_headers(
                credentials.access_key, credentials.access_secret, body_text, int(self._clock() * 1000), action
            )
            try:
                response = self.host_pool().urlopen(
                    "POST",
                    request_path,
                    body=payload,
                    headers=headers,
                    timeout=self.timeout,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    preload_content=False,
                )
            except (NewConnectionError, ConnectTimeoutError, SSLError) as exc:
                error = send_error(f"could not connect to NXCloud: {type(exc).__name__}", CONNECT_ERROR)
            except ReadTimeoutError:
                raise send_error(
                    "NXCloud did not answer within the read timeout; the message may have been sent", READ_TIMEOUT
                ) from None
            except (ProtocolError, HTTPError) as exc:
                raise send_error(
                    f"the connection failed after the request was sent ({type(exc).__name__}); "
                    "the message may have been sent",
                    CONNECTION_DROPPED,
                ) from None
            else:
                self._last_used = time.monotonic()
                status, raw = response.status, _read_capped(response, max_bytes)
                if status == THROTTLE_STATUS:
                    raise error_for_http_status(status, response.headers.get("Retry-After"))
                if status not in RETRY_IN_CLIENT_STATUSES:
                    return status, raw
                error = send_error(
                    f"NXCloud answered HTTP {status} (not processed)", classify_http_status(status), http_status=status
                )
            if attempt < self.max_attempts:
                self._sleep(self.backoff * 2 ** (attempt - 1))
        raise error


def _read_capped(response: urllib3.BaseHTTPResponse, max_bytes: int) -> bytes:
    """Read at most ``max_bytes`` + 1 bytes of the answer (a runaway answer must not exhaust memory)."""
    try:
        data = response.read(max_bytes + 1)
    except (ReadTimeoutError, ProtocolError, HTTPError):
        raise send_error("NXCloud's answer was cut off; the message may have been sent", CONNECTION_DROPPED) from None
    finally:
        response.release_conn()
    return data


def _interpret(status: int, raw: bytes) -> SendResult:
    """Turn an HTTP answer into a result or the right exception."""
    document = decode_answer(raw)
    code = document.get("code") if document is not None else None
    if document is not None and isinstance(code, int) and not isinstance(code, bool):
        trace_id = _text(document.get("traceId"))
        if code == 0 and 200 <= status < 300:
            data = document.get("data")
            message_id = _text(data.get("message_id")) if isinstance(data, dict) else None
            if message_id:
                return SendResult(message_id, trace_id)
            raise send_error(
                "NXCloud answered code 0 without a message_id; the message may have been sent",
                MALFORMED_RESPONSE,
                code=0,
                trace_id=trace_id,
                http_status=status,
            )
        if code != 0:
            raise error_for_code(code, classify_code(code), (_text(document.get("message")) or "")[:500], trace_id)
    if 200 <= status < 300:
        raise send_error(
            f"NXCloud answered HTTP {status} with a body that is not its JSON answer; the message may have been sent",
            MALFORMED_RESPONSE,
            http_status=status,
        )
    raise error_for_http_status(status)


def _text(value: object) -> str | None:
    """A string field of NXCloud's answer, or None when it is missing or of another type."""
    return value if isinstance(value, str) else None


def decode_answer(raw: bytes, max_bytes: int = MAX_RESPONSE_BYTES) -> dict[str, Any] | None:
    """NXCloud's JSON answer as an object, or None when it is not one (over ``max_bytes``, not JSON, not an object)."""
    if len(raw) > max_bytes:
        return None
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None
