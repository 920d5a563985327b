"""A local stand-in for NXCloud's ``POST /saas/wa/send``, strict where NXCloud is, with faults on demand.

Stdlib only (``http.server``), so tests, the local whole-stack runner and benchmarks can start it in-process in a few
milliseconds. It answers like NXCloud's send page describes (docs/nxcloud.md): HTTP 200 with
``{"code": N, "message": "...", "data": ..., "traceId": "<32 hex>"}`` for every business answer, and
``data.message_id`` (27 URL-safe characters, like the page's example) when the message is accepted.

Checks, in this order; the first failure answers (messages come from ``nxcloud_wa.error_codes.NXCLOUD_CODES``):

1. the five headers ``accessKey``, ``ts``, ``bizType``, ``action``, ``sign`` are present and non-empty, else 1001;
2. ``bizType`` is ``"2"`` and ``action`` is ``"mt"``, else 1002;
3. ``ts`` is ASCII digits (milliseconds) within 60 000 ms of the simulator's ``clock``, else 1004 (a ts in seconds
   is 1.6e12 ms in the past, so it fails here too);
4. ``accessKey`` is a known account, else 1005;
5. ``Content-Type`` is ``application/json`` (parameters such as ``charset`` allowed), else 1003: the signing
   convention lists a wrong Content-Type among the causes of 1003, because the server then reads another body text
   than the one that was signed;
6. the body is UTF-8, else 1002 (malformed body);
7. ``sign`` equals ``nxcloud_wa.signing.sign`` over the EXACT received body text, else 1003;
8. the body is a JSON object, else 1002;
9. body fields: ``tenant_id`` an integer (21058), ``appkey`` (21059), ``business_phone`` (21060) and ``to`` (21061)
   non-empty strings, ``type`` = ``"template"`` (21062), ``messaging_product`` = ``"whatsapp"`` and
   ``recipient_type`` = ``"individual"`` (21062 too: the page has no code of its own for them, and 21062 is the
   parameter-error code for the other fixed-value field; a permanent code is right, as resending cannot fix it),
   ``template`` an object with a non-empty ``name`` (21063);
10. what NXCloud itself would refuse: ``business_phone`` not all digits (22123, merchant phone wrong), ``to`` not all
    digits (22090, illegal number), ``template.language.code`` not one of the page's template languages (22092);
11. with a template catalogue (``templates``): the account has the template in that language, ``APPROVED``, else 22093.

Anything else (component shapes, parameter counts) is the client's business: the simulator accepts it, as NXCloud
decides it later. With a catalogue the simulator also serves getTemplate (``POST /api/wa/getTemplate``, paged, signed
like the send; see ``templates``); without one that path is unknown (404) and any template name is accepted, as before.

Given a rate (``rate_limit``, ``POST /__sim/rate``, :mod:`.rates`), it enforces each business number's messages per
second before any of these checks: a request over the rate is refused unprocessed (HTTP 429 by default, or an NXCloud
code quoting Meta's 130429) and counted.
Requests with ``Transfer-Encoding`` (chunked) get HTTP 411 and bodies over ``max_body_bytes`` HTTP 413.

Given a webhook URL (loopback only), the simulator also plays NXCloud's webhook: after each accepted send it posts
status callbacks (``sent``, ``delivered``, ``read`` by default; ``failed`` or ``deleted`` for messages told so) and
button clicks, with delays, duplicates, reordering and batching on demand, and keeps the truth to compare a receiver
against (see ``callbacks``).

A small control API on the same port lets a person inject faults and steer callbacks with curl (see ``__main__``
and docs/simulator.md): ``GET/POST/DELETE /__sim/faults``, ``DELETE /__sim/faults/<id>``, ``GET /__sim/requests``,
``POST /__sim/reset``; ``GET/POST/DELETE /__sim/templates``, ``GET /__sim/template-requests``;
``GET/POST /__sim/callbacks/config``, ``GET/POST/DELETE /__sim/outcomes``, ``DELETE /__sim/outcomes/<id>``,
``GET/POST/DELETE /__sim/buttons``, ``DELETE /__sim/buttons/<id>``, ``GET /__sim/callbacks``, ``GET /__sim/truth``,
``POST /__sim/drain``; ``GET/POST/DELETE /__sim/rate``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import socket
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from nxcloud_wa.error_codes import classify_code
from nxcloud_wa.languages import TEMPLATE_LANGUAGES
from nxcloud_wa.signing import sign

from .callbacks import ButtonRule, CallbackConfig, CallbackRecord, MessageTruth, OutcomeRule, RuleBook, WebhookPusher
from .faults import GET_TEMPLATE, UNPROCESSED_KINDS, Fault, FaultBook, FaultKind
from .rates import RateBook, RateLimit, Refusal
from .templates import TEMPLATE_ACTION, TEMPLATE_PATH, Account, TemplateBook, TemplateRequestRecord, answer_bytes

SEND_PATH: Final = "/saas/wa/send"
CONTROL_PREFIX: Final = "/__sim/"
REQUIRED_HEADERS: Final = ("accessKey", "ts", "bizType", "action", "sign")
MAX_SKEW_MS: Final = 60_000
DEFAULT_ACCOUNTS: Final = {"AK": "SK"}
RATE_LIMIT_FAULT: Final = "rate_limit"
"""The ``fault`` of a request the business number's rate refused (:mod:`.rates`)."""
GATEWAY_KINDS: Final = frozenset({FaultKind.HTTP_STATUS, FaultKind.DROP})
"""Faults of the way in (a gateway's error, a dropped connection): such a request never reaches NXCloud's rate."""


# ---------------------------------------------------------------------------------------------------------------------
# The checks: pure functions of what was received, so they are easy to read against the docstring above.


def check_request(headers: Mapping[str, str], text: str | None, accounts: Mapping[str, str], now_ms: int) -> int:
    """NXCloud's answer code for a request: 0 when it would be accepted. ``text`` is None when not UTF-8."""
    code = _auth_code(headers, text, accounts, now_ms)
    if code:
        return code
    body = parse_object(text)
    return 1002 if body is None else body_code(body)


def check_template_request(
    headers: Mapping[str, str], text: str | None, accounts: Mapping[str, str], now_ms: int
) -> int:
    """getTemplate's signing checks (``action`` ``getTemplate``): 0 when they pass, else the auth code."""
    return _auth_code(headers, text, accounts, now_ms, TEMPLATE_ACTION)


def _auth_code(
    headers: Mapping[str, str], text: str | None, accounts: Mapping[str, str], now_ms: int, action: str = "mt"
) -> int:
    """Steps 1-7: the signing convention's checks (codes 1001-1005), as an ordered table: first failure wins."""
    values = {name: headers.get(name) or "" for name in REQUIRED_HEADERS}
    secret = accounts.get(values["accessKey"])
    checks: tuple[tuple[Callable[[], bool], int], ...] = (
        (lambda: all(values.values()), 1001),
        (lambda: values["bizType"] == "2" and values["action"] == action, 1002),
        (lambda: _fresh(values["ts"], now_ms), 1004),
        (lambda: secret is not None, 1005),
        (lambda: _is_json_content_type(headers.get("Content-Type")), 1003),
        (lambda: text is not None, 1002),
        (lambda: _signature_matches(values, text or "", secret or ""), 1003),
    )
    return next((code for passes, code in checks if not passes()), 0)


def body_code(body: Mapping[str, Any]) -> int:
    """Steps 9-10: the body's fields, in the page's code order; first failure wins."""
    template = body.get("template")
    language = template.get("language") if isinstance(template, dict) else None
    checks: tuple[tuple[Callable[[], bool], int], ...] = (
        (lambda: _is_int(body.get("tenant_id")), 21058),
        (lambda: _non_empty_str(body.get("appkey")), 21059),
        (lambda: _non_empty_str(body.get("business_phone")), 21060),
        (lambda: _non_empty_str(body.get("to")), 21061),
        (lambda: body.get("type") == "template", 21062),
        (lambda: (body.get("messaging_product"), body.get("recipient_type")) == ("whatsapp", "individual"), 21062),
        (lambda: isinstance(template, dict) and _non_empty_str(template.get("name")), 21063),
        (lambda: _digits(body["business_phone"]), 22123),
        (lambda: _digits(body["to"]), 22090),
        (lambda: isinstance(language, dict) and language.get("code") in TEMPLATE_LANGUAGES, 22092),
    )
    return next((code for passes, code in checks if not passes()), 0)


def _fresh(ts: str, now_ms: int) -> bool:
    """``ts`` is milliseconds (digits only) within NXCloud's 60 s of the server clock."""
    return ts.isascii() and ts.isdigit() and len(ts) <= 16 and abs(int(ts) - now_ms) <= MAX_SKEW_MS


def _signature_matches(values: Mapping[str, str], text: str, secret: str) -> bool:
    expected = sign(values, text, secret).encode("ascii")
    return secrets.compare_digest(expected, values["sign"].encode("utf-8", "replace"))


def parse_object(text: str | None) -> dict[str, Any] | None:
    """The body as a JSON object, or None when it is not one."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _is_json_content_type(value: str | None) -> bool:
    return (value or "").split(";", 1)[0].strip().lower() == "application/json"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _digits(value: str) -> bool:
    return value.isascii() and value.isdigit()


def new_message_id() -> str:
    """27 URL-safe characters (160 random bits), the shape of the page's example ``gBGGhSNXV1dfAglVQ0RRuE3YWhc``."""
    return secrets.token_urlsafe(20)


def new_trace_id() -> str:
    """32 lower-case hex characters, the shape of the page's ``traceId``."""
    return uuid.uuid4().hex


def answer_document(code: int, trace_id: str, message_id: str | None = None, message: str | None = None) -> bytes:
    """NXCloud's JSON answer, as bytes (UTF-8, not escaped, like a Java service would write it)."""
    data = {"message_id": message_id} if message_id else None
    text = "" if code == 0 else (message if message is not None else classify_code(code).message)
    document = {"code": code, "message": text, "data": data, "traceId": trace_id}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request to the send path, as received, and what the simulator did with it.

    ``http_status`` is None when no answer was written (``drop``, ``read_timeout_after_accept``). ``code`` is what
    NXCloud decided: the code answered, or, when a ``garbage``/``read_timeout_after_accept`` fault garbled or lost the
    answer, the code the checks gave; None when an ``http_status`` or ``drop`` fault kept the request unprocessed.
    ``fault`` is the kind of the rule that decided the answer, and ``latency`` the seconds latency rules added.
    ``message_id`` is set exactly when the message was accepted.
    Headers are kept in full, ``sign`` included: these are test records of test credentials.
    """

    seq: int
    received_at: float
    client: tuple[str, int]
    headers: dict[str, str]
    body_text: str | None
    body: dict[str, Any] | None
    http_status: int | None
    code: int | None
    fault: str | None
    latency: float
    message_id: str | None
    trace_id: str | None

    @property
    def accepted(self) -> bool:
        return self.message_id is not None

    @property
    def to(self) -> str | None:
        return _field(self.body, "to")

    @property
    def template(self) -> str | None:
        return _field(self.body, "template", "name")

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"accepted": self.accepted}


def _field(body: Any, *path: str) -> str | None:
    """A string found at ``path`` in a decoded body, else None (the fault filters and records use it)."""
    for name in path:
        body = body.get(name) if isinstance(body, dict) else None
    return body if isinstance(body, str) else None


class _Journal:
    """The thread-safe request log. Bounded by ``max_records`` (oldest dropped) so soak runs keep flat memory."""

    def __init__(self, max_records: int | None) -> None:
        self._lock = threading.Lock()
        self._records: deque[RequestRecord] = deque(maxlen=max_records)
        self._seq = 0

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, record: RequestRecord) -> None:
        with self._lock:
            self._records.append(record)

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


# ---------------------------------------------------------------------------------------------------------------------
# The simulator


class NXCloudSimulator:
    """The server, its accounts, its fault rules and its records. Start it, point the client at ``url``.

    ``accounts`` maps accessKey to accessSecret. ``clock`` (seconds, like ``time.time``) is what ``ts`` is checked
    against. ``seed`` makes probabilistic faults reproducible. ``idle_timeout`` closes keep-alive connections nobody
    uses (a real server does too); it is long so a pooled client connection is not closed under a test.
    ``max_records`` bounds the request log (oldest dropped first; None keeps all) so soak runs keep flat memory.

    Callbacks: ``webhook_url`` (or ``set_webhook_url``) turns them on; ``callback_config`` sets how they travel
    (:class:`CallbackConfig`); ``callback_workers`` threads post them; ``max_callback_records`` bounds their ledger
    (the counts and the per-message truth stay complete). ``seed`` also seeds the callbacks' RNG (a separate one,
    so turning callbacks on does not change which requests the fault rules pick).

    Templates: ``templates`` (or ``set_templates``) gives accounts, (appkey, business_phone) pairs, their catalogue of
    NXCloud template objects: getTemplate is then served from it, and a send naming a template its account lacks (or
    has in another status than ``APPROVED``) is answered 22093 (see ``templates``).
    ``rate_limit`` enforces each business number's rate (:class:`~.rates.RateLimit`); ``rate_counts`` says how many
    requests it let through and refused, per number.
    """

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        seed: int | None = 0,
        max_records: int | None = 100_000,
        max_body_bytes: int = 1 << 20,
        idle_timeout: float = 120.0,
        verbose: bool = False,
        webhook_url: str | None = None,
        callback_config: CallbackConfig | None = None,
        callback_workers: int = 8,
        max_callback_records: int | None = 100_000,
        templates: Mapping[Account, Iterable[Mapping[str, Any]]] | None = None,
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.accounts: dict[str, str] = dict(DEFAULT_ACCOUNTS if accounts is None else accounts)
        self.template_book = TemplateBook(templates)
        self._template_records: deque[TemplateRequestRecord] = deque(maxlen=max_records)
        self._template_lock = threading.Lock()
        self.host, self.port = host, port
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.idle_timeout = idle_timeout
        self.verbose = verbose
        self.fault_book = FaultBook(seed)
        self.rates = RateBook()
        self.rates.configure(rate_limit)
        self._journal = _Journal(max_records)
        config = callback_config or CallbackConfig()
        if webhook_url is not None:
            config = config.updated({"webhook_url": webhook_url})
        self.webhook = WebhookPusher(
            config, seed=seed, workers=callback_workers, max_records=max_callback_records, verbose=verbose
        )
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        """The base URL (the client appends ``/saas/wa/send``)."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        return f"http://{self.host}:{self.port}"

    def start(self) -> NXCloudSimulator:
        """Bind and serve in a daemon thread; returns self so ``sim = NXCloudSimulator().start()`` reads well."""
        if self._server is not None:
            raise RuntimeError("the simulator is already started")
        self._stopping = threading.Event()
        server = _Server((self.host, self.port), _Handler)
        server.simulator = self
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=f"nxcloud-sim:{self.port}", daemon=True
        )
        self._thread.start()
        self.webhook.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; wakes handlers that hang or sleep, so it returns at once."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.webhook.stop()

    def __enter__(self) -> NXCloudSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pause(self, seconds: float) -> bool:
        """Sleep in a handler, cut short by ``stop()``; True when it was cut short."""
        return self._stopping.wait(seconds)

    # accounts, faults, records

    def set_account(self, access_key: str, access_secret: str) -> None:
        """Add an account or rotate its secret (a rotated-secret scenario)."""
        self.accounts = {**self.accounts, access_key: access_secret}

    def add_fault(self, fault: Fault | None = None, /, **fields: Any) -> Fault:
        """Add a rule, given as a :class:`Fault` or as its fields (``add_fault(kind="drop", to="86...")``)."""
        rule = fault if fault is not None else Fault(**fields)
        return self.fault_book.add(rule)

    def clear_faults(self) -> int:
        return self.fault_book.clear()

    @property
    def faults(self) -> list[Fault]:
        return self.fault_book.rules()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request received on the send path, oldest first (a copy)."""
        return self._journal.snapshot()

    @property
    def accepted(self) -> list[RequestRecord]:
        """The requests whose message was accepted (given a message_id), oldest first."""
        return [record for record in self._journal.snapshot() if record.accepted]

    def accepted_count_for(self, to: str | None = None, template: str | None = None) -> int:
        """How many messages were accepted for this recipient and/or template name (None matches any)."""
        return sum(
            1
            for record in self.accepted
            if (to is None or record.to == to) and (template is None or record.template == template)
        )

    def reset(self) -> None:
        """Forget every record and every rule, and drop callbacks not yet posted: a clean slate between tests sharing
        one simulator. Settings (accounts, the template catalogue, the webhook URL, the callback settings, the rate)
        are kept; the rate's buckets are full again and its counts zero."""
        self._journal.clear()
        with self._template_lock:
            self._template_records.clear()
        self.fault_book.clear()
        self.rates.clear_counts()
        self.webhook.reset()

    # templates (getTemplate and the send's 22093; see ``templates``)

    def set_templates(self, appkey: str, business_phone: str, templates: Iterable[Mapping[str, Any]]) -> int:
        """Give an account its catalogue of NXCloud template objects (replacing any); return how many."""
        return self.template_book.set(appkey, business_phone, templates)

    def clear_templates(self) -> int:
        """Forget every catalogue: getTemplate is not served any more and sends are not checked against one."""
        return self.template_book.clear()

    @property
    def template_requests(self) -> list[TemplateRequestRecord]:
        """Every request to getTemplate, oldest first (a copy)."""
        with self._template_lock:
            return list(self._template_records)

    # the business numbers' rate (see ``rates``)

    def set_rate_limit(self, limit: RateLimit | None = None, /, **fields: Any) -> RateLimit | None:
        """Enforce a rate per business number (``set_rate_limit(per_second=50)``), or none (no argument)."""
        rule = limit if limit is not None or not fields else RateLimit(**fields)
        self.rates.configure(rule)
        return rule

    @property
    def rate_counts(self) -> dict[str, Any]:
        """Requests the rate let through and refused, by business number, and the refusals in all."""
        return self.rates.counts()

    # callbacks (NXCloud's webhook; see ``callbacks``)

    def set_webhook_url(self, url: str | None) -> None:
        """Post callbacks for messages accepted from now on to ``url`` (loopback only), or stop with None."""
        self.webhook.configure(webhook_url=url)

    def configure_callbacks(self, **settings: Any) -> CallbackConfig:
        """Change how callbacks travel (fields of :class:`CallbackConfig`); returns the new settings."""
        return self.webhook.configure(**settings)

    @property
    def callback_config(self) -> CallbackConfig:
        return self.webhook.config

    def add_outcome(self, rule: OutcomeRule | None = None, /, **fields: Any) -> OutcomeRule:
        """Make matching messages end elsewhere than ``read`` (``add_outcome(to="86...", final="failed")``)."""
        return self.webhook.outcome_rules.add(rule if rule is not None else OutcomeRule(**fields))

    def add_button(self, rule: ButtonRule | None = None, /, **fields: Any) -> ButtonRule:
        """Give a template buttons that recipients click after reading (``add_button(template=..., buttons=[...])``)."""
        return self.webhook.button_rules.add(rule if rule is not None else ButtonRule(**fields))

    @property
    def outcomes(self) -> list[OutcomeRule]:
        return self.webhook.outcome_rules.rules()

    @property
    def buttons(self) -> list[ButtonRule]:
        return self.webhook.button_rules.rules()

    @property
    def callbacks(self) -> list[CallbackRecord]:
        """Every callback posted, with the receiver's answer, in the order the POSTs finished."""
        return self.webhook.records

    @property
    def callback_counts(self) -> dict[str, int]:
        return self.webhook.counts()

    @property
    def truth(self) -> dict[str, MessageTruth]:
        """What really happened to each message given callbacks, by the send's ``message_id``."""
        return self.webhook.truth()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled callback has been posted; False when ``timeout`` seconds ran out first."""
        return self.webhook.drain(timeout)

    # request handling (called from handler threads)

    def handle_send(self, exchange: _Exchange) -> None:
        """Apply faults and checks to one send request, record it, then answer (or not)."""
        body = parse_object(exchange.text)
        plan = self.fault_book.plan(_field(body, "to"), _field(body, "template", "name"))
        fault = plan.answer
        number = _field(body, "business_phone")
        if fault is None or fault.kind not in GATEWAY_KINDS:
            refusal = self.rates.take(number, time.monotonic())
            if refusal is not None:
                self._refuse_for_rate(exchange, refusal, body, plan.latency)
                return
        if fault is not None and fault.kind in UNPROCESSED_KINDS:
            if fault.kind is FaultKind.CODE:
                self.rates.give_back(number)  # NXCloud answered with an error: WhatsApp sent nothing
            self._answer_unprocessed(exchange, fault, body, plan.latency)
        else:
            self._process(exchange, fault, body, plan.latency)

    def _refuse_for_rate(
        self, exchange: _Exchange, refusal: Refusal, body: dict[str, Any] | None, latency: float
    ) -> None:
        """Over the business number's rate: refused unprocessed, as HTTP 429 or as NXCloud's code quoting Meta's."""
        limit = refusal.limit
        if limit.answer == "code":
            trace_id = new_trace_id()
            self._record(exchange, body, 200, limit.code, RATE_LIMIT_FAULT, latency, None, trace_id)
            self.pause(latency)
            exchange.reply(200, answer_document(limit.code, trace_id, message=limit.message))
            return
        self._record(exchange, body, 429, None, RATE_LIMIT_FAULT, latency, None, None)
        self.pause(latency)
        extra = {"Retry-After": str(refusal.retry_after)}
        exchange.reply(429, _phrase(429).encode(), "text/plain; charset=utf-8", extra)

    def _process(self, exchange: _Exchange, fault: Fault | None, body: dict[str, Any] | None, latency: float) -> None:
        """Check the request and accept it when valid; then answer, unless a fault loses or garbles the answer."""
        code = check_request(exchange.headers, exchange.text, self.accounts, int(self.clock() * 1000))
        if code == 0 and body is not None and self.template_book.configured and not self.template_book.sendable(body):
            code = 22093
        message_id = new_message_id() if code == 0 else None
        if message_id is None:
            self.rates.give_back(_field(body, "business_phone"))
        trace_id = new_trace_id()
        kind = fault.kind if fault is not None else None
        status = None if kind is FaultKind.READ_TIMEOUT_AFTER_ACCEPT else 200
        self._record(exchange, body, status, code, kind, latency, message_id, trace_id)
        # Callbacks are planned (pending, in the truth) before the answer, so drain() right after the send returns
        # sees them, and released after it, as NXCloud's callbacks follow its answer.
        callbacks = self.webhook.accept(message_id, body, self.clock()) if message_id and body else None
        self.pause(latency)
        if fault is not None and fault.kind is FaultKind.READ_TIMEOUT_AFTER_ACCEPT:
            self.webhook.release(callbacks)  # the answer never comes, but the message goes out
            self.pause(fault.hang)
            exchange.close()
            return
        try:
            if fault is None:
                exchange.reply(200, answer_document(code, trace_id, message_id))
            else:  # garbage
                exchange.reply(200, fault.body.encode("utf-8"), "text/html; charset=utf-8")
        finally:  # even when the client went away: the message was accepted
            self.webhook.release(callbacks)

    def handle_templates(self, exchange: _Exchange) -> None:
        """One getTemplate request: faults (rules with ``endpoint`` ``getTemplate``), checks, the page; recorded."""
        body = parse_object(exchange.text)
        plan = self.fault_book.plan(None, _field(body, "name"), GET_TEMPLATE)
        fault = plan.answer
        if fault is not None and fault.kind is not FaultKind.GARBAGE:
            self._template_fault(exchange, body, fault, plan.latency)
            return
        code = check_template_request(exchange.headers, exchange.text, self.accounts, int(self.clock() * 1000))
        code, data = (code, None) if code else self.template_book.answer(body)
        self._record_template(exchange, body, 200, code if fault is None else None, fault, data)
        self.pause(plan.latency)
        if fault is None:
            exchange.reply(200, answer_bytes(code, new_trace_id(), data))
        else:  # garbage
            exchange.reply(200, fault.body.encode("utf-8"), "text/html; charset=utf-8")

    def _template_fault(self, exchange: _Exchange, body: dict[str, Any] | None, fault: Fault, latency: float) -> None:
        """getTemplate answered in NXCloud's place (``code``, ``http_status``), or not at all (``drop``,
        ``read_timeout_after_accept``: the connection closes after ``hang`` seconds)."""
        is_code = fault.kind is FaultKind.CODE
        status = 200 if is_code else fault.status if fault.kind is FaultKind.HTTP_STATUS else None
        self._record_template(exchange, body, status, fault.code if is_code else None, fault, None)
        self.pause(latency)
        if is_code:
            exchange.reply(200, answer_bytes(fault.code, new_trace_id(), None, fault.message))
        elif status is not None:
            exchange.reply(status, _phrase(status).encode(), "text/plain; charset=utf-8")
        else:
            if fault.kind is FaultKind.READ_TIMEOUT_AFTER_ACCEPT:
                self.pause(fault.hang)
            exchange.close()

    def _record_template(  # noqa: PLR0917 - one call per outcome, all fields of the record
        self,
        exchange: _Exchange,
        body: dict[str, Any] | None,
        status: int | None,
        code: int | None,
        fault: Fault | None,
        data: dict[str, Any] | None,
    ) -> None:
        record = TemplateRequestRecord(
            received_at=exchange.received_at,
            headers=dict(exchange.headers.items()),
            body=body,
            http_status=status,
            code=code,
            fault=str(fault.kind) if fault is not None else None,
            templates=len(data["data"]) if data else 0,
        )
        with self._template_lock:
            self._template_records.append(record)
        if self.verbose:
            print(f"getTemplate {record.body and record.body.get('appkey')} code={code} http={status}", file=sys.stderr)

    def _answer_unprocessed(
        self, exchange: _Exchange, fault: Fault, body: dict[str, Any] | None, latency: float
    ) -> None:
        """The kinds that answer in NXCloud's place without processing: nothing is accepted."""
        is_code = fault.kind is FaultKind.CODE
        trace_id = new_trace_id() if is_code else None
        status = {FaultKind.DROP: None, FaultKind.CODE: 200}.get(fault.kind, fault.status)
        self._record(exchange, body, status, fault.code if is_code else None, fault.kind, latency, None, trace_id)
        self.pause(latency)
        if fault.kind is FaultKind.DROP:
            exchange.close()
        elif is_code:
            exchange.reply(200, answer_document(fault.code, trace_id or "", message=fault.message))
        else:
            extra = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            exchange.reply(fault.status, _phrase(fault.status).encode(), "text/plain; charset=utf-8", extra)

    def _record(  # noqa: PLR0917 - one call per outcome, all fields of the record
        self,
        exchange: _Exchange,
        body: dict[str, Any] | None,
        status: int | None,
        code: int | None,
        fault: FaultKind | str | None,
        latency: float,
        message_id: str | None,
        trace_id: str | None,
    ) -> None:
        record = RequestRecord(
            seq=self._journal.next_seq(),
            received_at=exchange.received_at,
            client=exchange.client,
            headers=dict(exchange.headers.items()),
            body_text=exchange.text,
            body=body,
            http_status=status,
            code=code,
            fault=str(fault) if fault is not None else None,
            latency=latency,
            message_id=message_id,
            trace_id=trace_id,
        )
        self._journal.add(record)
        if self.verbose:
            outcome = f"code={code}" if code is not None else f"http={status}"
            print(f"#{record.seq} to={record.to} {outcome} fault={record.fault} id={message_id}", file=sys.stderr)

    def handle_control(self, method: str, path: str, payload: Any) -> tuple[int, Any]:
        """The control API; returns the HTTP status and the JSON answer."""
        route = path[len(CONTROL_PREFIX) :].rstrip("/")
        if method == "DELETE" and route.startswith("faults/"):
            return self._remove_fault(route.removeprefix("faults/"))
        if method == "DELETE" and route.partition("/")[0] in {"outcomes", "buttons"} and "/" in route:
            name, _, rule_id = route.partition("/")
            book = self.webhook.outcome_rules if name == "outcomes" else self.webhook.button_rules
            return _remove_rule(book, rule_id)
        webhook = self.webhook
        action = {
            ("GET", "faults"): lambda: (200, {"faults": [rule.as_dict() for rule in self.faults]}),
            ("POST", "faults"): lambda: self._add_fault_from(payload),
            ("DELETE", "faults"): lambda: (200, {"cleared": self.clear_faults()}),
            ("GET", "requests"): lambda: (200, {"requests": [record.as_dict() for record in self.requests]}),
            ("POST", "reset"): self._reset_from_control,
            ("GET", "callbacks/config"): lambda: (200, {"config": webhook.config.as_dict()}),
            ("POST", "callbacks/config"): lambda: self._configure_from(payload),
            ("GET", "outcomes"): lambda: (200, {"outcomes": [rule.as_dict() for rule in self.outcomes]}),
            ("POST", "outcomes"): lambda: _add_rule(webhook.outcome_rules, OutcomeRule, "outcome", payload),
            ("DELETE", "outcomes"): lambda: (200, {"cleared": webhook.outcome_rules.clear()}),
            ("GET", "buttons"): lambda: (200, {"buttons": [rule.as_dict() for rule in self.buttons]}),
            ("POST", "buttons"): lambda: _add_rule(webhook.button_rules, ButtonRule, "button", payload),
            ("DELETE", "buttons"): lambda: (200, {"cleared": webhook.button_rules.clear()}),
            ("GET", "callbacks"): lambda: (
                200,
                {"counts": webhook.counts(), "callbacks": [record.as_dict() for record in webhook.records]},
            ),
            ("GET", "truth"): lambda: (
                200,
                {"messages": {key: truth.as_dict() for key, truth in webhook.truth().items()}},
            ),
            ("POST", "drain"): lambda: self._drain_from(payload),
            ("GET", "templates"): lambda: (200, {"accounts": self.template_book.as_dict()}),
            ("POST", "templates"): lambda: self._set_templates_from(payload),
            ("DELETE", "templates"): lambda: (200, {"cleared": self.clear_templates()}),
            ("GET", "template-requests"): lambda: (
                200,
                {"requests": [record.as_dict() for record in self.template_requests]},
            ),
            ("GET", "rate"): self._rate_answer,
            ("POST", "rate"): lambda: self._set_rate_from(payload),
            ("DELETE", "rate"): lambda: (self.set_rate_limit(), self._rate_answer())[1],
        }.get((method, route))
        return action() if action else (404, {"error": f"no control route {method} {path}"})

    def _add_fault_from(self, payload: Any) -> tuple[int, Any]:
        try:
            return 201, {"fault": self.add_fault(Fault.from_dict(payload)).as_dict()}
        except ValueError as exc:
            return 400, {"error": str(exc)}

    def _set_templates_from(self, payload: Any) -> tuple[int, Any]:
        """``{"appkey", "business_phone", "templates": [...]}``: that account's catalogue, replacing any."""
        if not isinstance(payload, dict) or set(payload) != {"appkey", "business_phone", "templates"}:
            return 400, {"error": "give exactly appkey, business_phone and templates (a list of template objects)"}
        if not isinstance(payload["templates"], list) or not all(isinstance(t, dict) for t in payload["templates"]):
            return 400, {"error": "templates must be a list of template objects"}
        try:
            count = self.set_templates(payload["appkey"], payload["business_phone"], payload["templates"])
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return 201, {"appkey": payload["appkey"], "business_phone": payload["business_phone"], "templates": count}

    def _rate_answer(self) -> tuple[int, Any]:
        limit = self.rates.limit
        return 200, {"rate": limit.as_dict() if limit is not None else None, "counts": self.rate_counts}

    def _set_rate_from(self, payload: Any) -> tuple[int, Any]:
        try:
            self.set_rate_limit(RateLimit.from_dict(payload))
        except ValueError as exc:
            return 400, {"error": str(exc)}
        return self._rate_answer()

    def _configure_from(self, payload: Any) -> tuple[int, Any]:
        if not isinstance(payload, dict):
            return 400, {"error": "callback settings must be a JSON object"}
        try:
            return 200, {"config": self.webhook.configure(**payload).as_dict()}
        except ValueError as exc:
            return 400, {"error": str(exc)}

    def _drain_from(self, payload: Any) -> tuple[int, Any]:
        """``{"timeout": seconds}`` (default 10, at most 600): blocks this request until drained or timed out."""
        timeout = payload.get("timeout", 10.0) if isinstance(payload, dict) else 10.0
        if not (isinstance(timeout, int | float) and not isinstance(timeout, bool) and 0 <= timeout <= 600):
            return 400, {"error": "timeout must be a number of seconds within [0, 600]"}
        drained = self.webhook.drain(timeout)
        return 200, {"drained": drained, "counts": self.webhook.counts()}

    def _reset_from_control(self) -> tuple[int, Any]:
        self.reset()
        return 200, {"reset": True}

    def _remove_fault(self, fault_id: str) -> tuple[int, Any]:
        if fault_id.isdigit() and self.fault_book.remove(int(fault_id)):
            return 200, {"removed": int(fault_id)}
        return 404, {"error": f"no fault {fault_id}"}


def _add_rule(book: RuleBook[Any], kind: type[OutcomeRule | ButtonRule], name: str, payload: Any) -> tuple[int, Any]:
    try:
        return 201, {name: book.add(kind.from_dict(payload)).as_dict()}
    except ValueError as exc:
        return 400, {"error": str(exc)}


def _remove_rule(book: RuleBook[Any], rule_id: str) -> tuple[int, Any]:
    if rule_id.isdigit() and book.remove(int(rule_id)):
        return 200, {"removed": int(rule_id)}
    return 404, {"error": f"no rule {rule_id}"}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


# ---------------------------------------------------------------------------------------------------------------------
# HTTP plumbing


class _Server(ThreadingHTTPServer):
    """Threads per connection (daemon: a hanging handler never blocks exit), with its open sockets tracked so
    ``stop()`` can close idle keep-alive connections instead of leaving their threads reading for ever."""

    daemon_threads = True
    request_queue_size = 256
    simulator: NXCloudSimulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, is_open: bool) -> None:
        with self._open_lock:
            (self._open.add if is_open else self._open.discard)(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet for connections the client or ``stop()`` closed mid-answer; loud for anything else (a bug here)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


@dataclass
class _Exchange:
    """One request as the simulator sees it, with the two ways to end it: reply, or close without answering."""

    handler: _Handler
    headers: Message
    text: str | None
    client: tuple[str, int]
    received_at: float

    def reply(
        self, status: int, body: bytes, content_type: str = "application/json", extra: Mapping[str, str] | None = None
    ) -> None:
        self.handler.reply(status, body, content_type, extra)

    def close(self) -> None:
        self.handler.close_connection = True


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive (the client's pool reuses connections), quiet logs, Nagle off (two small writes)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    server_version = "nxcloud-simulator"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.simulator.idle_timeout
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        raw = self._read_body()
        if raw is None:
            return
        simulator = self.server.simulator
        served = {SEND_PATH: simulator.handle_send}
        if simulator.template_book.configured:  # without a catalogue, getTemplate is not simulated: 404 as before
            served[TEMPLATE_PATH] = simulator.handle_templates
        if path.startswith(CONTROL_PREFIX):
            status, document = simulator.handle_control(method, path, parse_json(raw))
            self.reply_json(status, document)
        elif path not in served:
            self.reply_json(404, {"error": f"no route {path}"})
        elif method != "POST":
            self.reply(405, b"Method Not Allowed", "text/plain", {"Allow": "POST"})
        else:
            served[path](_Exchange(self, self.headers, _utf8(raw), self.client_address[:2], time.time()))

    def _read_body(self) -> bytes | None:
        """The request body per Content-Length; answers 411/413/400 itself (and closes) when it cannot be read.

        Chunked bodies are not supported (411): the project's client and curl send Content-Length."""
        length_text = self.headers.get("Content-Length")
        if length_text is None:  # HTTP/1.1: no Content-Length and no Transfer-Encoding means no body
            return self._refuse(411) if "Transfer-Encoding" in self.headers else b""
        if not (length_text.isascii() and length_text.isdigit()):
            return self._refuse(400)
        length = int(length_text)
        if length > self.server.simulator.max_body_bytes:
            return self._refuse(413)
        return self.rfile.read(length)

    def _refuse(self, status: int) -> None:
        self.close_connection = True
        self.reply(status, _phrase(status).encode(), "text/plain", {"Connection": "close"})

    def reply_json(self, status: int, document: Any) -> None:
        self.reply(status, json.dumps(document, ensure_ascii=False, default=str).encode("utf-8"))

    def reply(
        self, status: int, body: bytes, content_type: str = "application/json", extra: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Silent: the simulator's own records say more, and tests and benchmarks want no noise."""

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.simulator.verbose:
            super().log_message(format, *args)


def parse_json(raw: bytes) -> Any:
    """A control request's JSON payload, or None."""
    try:
        return json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None


def _utf8(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
