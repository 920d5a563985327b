"""NXCloud's webhook, simulated: after each accepted send, the simulator POSTs status and button-click callbacks.

NXCloud pushes two JSON bodies to the one URL a customer configures (no signature, no documented retries):

* a **status** body: ``{"statuses": [{"id", "status", "timestamp", "recipient_id", "conversation"?, "errors"?}],
  "business_phone", "messaging_product": "whatsapp"}``, ``status`` one of sent, delivered, read, failed, deleted,
  ``timestamp`` Unix seconds as a string, ``errors`` ``[{"code": int, "title": str}]`` on ``failed``;
* a **template button click**: ``{"contacts": [{"wa_id", "profile": {"name"}}], "messages": [{"from", "id",
  "timestamp", "type": "button", "button": {"payload", "text"}, "context": {"from", "id"}, "wa_ext"}],
  "business_phone", "messaging_product": "whatsapp"}``, where ``wa_ext`` is a JSON *string* (decode it again) with
  ``templateId`` (a number), ``templateName`` and ``components`` (the parameters sent).

What happens to each message is decided once, when the send is accepted, with a seeded RNG (so a run replays):

* by default it is ``sent``, ``delivered``, ``read``; an :class:`OutcomeRule` matched by recipient and/or template
  makes it end elsewhere: ``failed`` with a WhatsApp error code and title (alone, or after ``sent``), ``deleted``
  after ``read``, or stop at ``sent`` or ``delivered`` (never read);
* a :class:`ButtonRule` (template name -> buttons) makes a message that was read get one button click after ``read``;
* timestamps are one second apart in the true order of events, starting one second after the acceptance (the
  simulator's ``clock``), whatever order the callbacks are then posted in.

How the callbacks travel is :class:`CallbackConfig`: a delay before each POST, duplicates (a body posted again
later), reordering (the message's callbacks posted out of their true order), batching (all its statuses in one
body's ``statuses`` array), the id the callbacks carry (the send's ``message_id``, or a ``wamid.…`` id unrelated to
it, as NXCloud's pages leave that open) and retries (NXCloud documents none: 0 by default).

A message's callbacks are posted one after the other (each waits for the previous one's POST and retries), while
different messages' callbacks travel in parallel on a few worker threads. Only loopback URLs are accepted.

:class:`WebhookPusher` keeps the ledger of truth: every callback posted with the receiver's answer, per message
the true statuses and the current status they give (``nxcloud_wa.statuses.current_status``, the project's one rule),
and counts; ``drain()`` waits until every scheduled callback has been posted.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import heapq
import http.client
import itertools
import json
import random
import secrets
import socket
import sys
import threading
import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Generic, TypeVar
from urllib.parse import urlsplit

from nxcloud_simulator.control import build, check_fields
from nxcloud_wa.statuses import CALLBACK_STATUSES, current_status

HAPPY_PATH: Final = ("sent", "delivered", "read")
"""What a message goes through when no outcome rule says otherwise."""
ID_MODES: Final = ("message_id", "wamid")
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost"})
"""The only hosts a webhook URL may name; both are reached at 127.0.0.1."""
MAX_ANSWER_BYTES: Final = 1 << 16
"""How much of a receiver's answer is read (and thrown away) before the connection is closed."""
FAILURE_TITLES: Final = MappingProxyType(
    {
        131026: "Message undeliverable",
        131049: "This message was not delivered to maintain healthy ecosystem engagement.",
        131050: (
            "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp"
            " from your business."
        ),
    }
)
"""WhatsApp's titles of the failures the audience rules act on (docs/audience.md): the title an outcome rule
carries when it gives a code and no title. Any other code gets :data:`DEFAULT_FAILURE_TITLE`."""
DEFAULT_FAILURE_TITLE: Final = "Message undeliverable"
STOP_PROMOTIONS: Final = MappingProxyType({"payload": "Stop promotions", "text": "Stop promotions"})
"""Meta's marketing opt-out quick-reply button, as a click on it arrives: its label is its payload. A button rule
with it (``buttons=[dict(STOP_PROMOTIONS)], click="Stop promotions"``) makes recipients opt out."""


# ---------------------------------------------------------------------------------------------------------------------
# Rules: which messages end elsewhere than ``read``, and which templates get button clicks


@dataclass(kw_only=True)
class _Rule:
    """What every rule shares with the fault rules: filters, ``times``, ``probability``, and its counters."""

    to: str | None = None
    template: str | None = None
    times: int | None = None
    probability: float = 1.0
    id: int = 0
    applied: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        _require(self.to is None or isinstance(self.to, str), "to must be a string")
        _require(self.template is None or isinstance(self.template, str), "template must be a string")
        _require(self.times is None or (_is_int(self.times) and self.times >= 1), "times must be None or an int >= 1")
        _require(_is_number(self.probability) and 0 <= self.probability <= 1, "probability must be within [0, 1]")

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        """Build a rule from JSON data (the control API); raise ``ValueError`` naming what is wrong."""
        check_fields(cls, data, what="a rule", fields="field(s)", ignored=frozenset({"id", "applied"}))
        return build(cls, data)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def matches(self, to: str | None, template: str | None) -> bool:
        return (self.to is None or self.to == to) and (self.template is None or self.template == template)

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.applied >= self.times


R = TypeVar("R", bound=_Rule)


@dataclass(kw_only=True)
class OutcomeRule(_Rule):
    """Where a matching message ends: ``final`` is ``failed`` (with ``code`` and ``title``; after ``sent`` when
    ``after_sent``), ``deleted`` (after ``read``), ``sent`` or ``delivered`` (never read), or ``read``. Without a
    ``title``, a code of :data:`FAILURE_TITLES` gets WhatsApp's title, any other :data:`DEFAULT_FAILURE_TITLE`."""

    final: str = "failed"
    code: int = 131026
    title: str | None = None
    after_sent: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.final in CALLBACK_STATUSES, f"final must be one of: {', '.join(sorted(CALLBACK_STATUSES))}")
        _require(_is_int(self.code), "code must be an int")
        _require(self.title is None or isinstance(self.title, str), "title must be a string")
        if self.title is None:
            self.title = FAILURE_TITLES.get(self.code, DEFAULT_FAILURE_TITLE)
        _require(isinstance(self.after_sent, bool), "after_sent must be true or false")

    def statuses(self) -> list[str]:
        """The statuses a matching message goes through, in their true order."""
        if self.final == "failed":
            return ["sent", "failed"] if self.after_sent else ["failed"]
        if self.final == "deleted":
            return [*HAPPY_PATH, "deleted"]
        return list(HAPPY_PATH[: HAPPY_PATH.index(self.final) + 1])


@dataclass(kw_only=True)
class ButtonRule(_Rule):
    """A template with quick-reply ``buttons`` (``[{"payload", "text"}]``): a matching message that was read gets a
    click on one of them: the one whose payload is ``click``, else one picked by the seeded RNG. ``name`` is the
    clicker's profile name; ``template_id`` the number ``wa_ext`` carries (default: a stable number derived from the
    template name)."""

    buttons: list[dict[str, str]] = field(default_factory=list)
    name: str = "Simulated User"
    template_id: int | None = None
    click: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(bool(self.template), "template is required: the name of the template that has the buttons")
        _require(
            isinstance(self.buttons, list)
            and bool(self.buttons)
            and all(
                isinstance(b, dict)
                and set(b) == {"payload", "text"}
                and all(isinstance(v, str) and v for v in b.values())
                for b in self.buttons
            ),
            "buttons must be a non-empty list of {payload, text} with non-empty strings",
        )
        _require(isinstance(self.name, str), "name must be a string")
        _require(self.template_id is None or _is_int(self.template_id), "template_id must be an int")
        _require(
            self.click is None or self.click in {b["payload"] for b in self.buttons},
            "click must be the payload of one of the buttons",
        )

    def clicked(self, rng: random.Random) -> dict[str, str]:
        """The button a matching message's recipient clicks (the RNG is drawn only when ``click`` is not set)."""
        if self.click is not None:
            return next(button for button in self.buttons if button["payload"] == self.click)
        return rng.choice(self.buttons)

    @property
    def wa_template_id(self) -> int:
        return self.template_id if self.template_id is not None else zlib.crc32((self.template or "").encode())


class RuleBook(Generic[R]):
    """Rules of one kind, safe to change from any thread; the first matching rule (in the order added) applies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[R] = []
        self._next_id = 1

    def add(self, rule: R) -> R:
        with self._lock:
            rule.id, rule.applied = self._next_id, 0
            self._next_id += 1
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != rule_id]
            removed, self._rules = len(kept) != len(self._rules), kept
        return removed

    def clear(self) -> int:
        with self._lock:
            count, self._rules = len(self._rules), []
        return count

    def rules(self) -> list[R]:
        with self._lock:
            return [dataclasses.replace(rule) for rule in self._rules]

    def pick(self, to: str | None, template: str | None, rng: random.Random) -> R | None:
        """The first rule that matches and fires (counted as applied), as a snapshot; None when none does."""
        with self._lock:
            for rule in self._rules:
                if rule.exhausted or not rule.matches(to, template) or not _fires(rng, rule.probability):
                    continue
                rule.applied += 1
                return dataclasses.replace(rule)
        return None


# ---------------------------------------------------------------------------------------------------------------------
# How callbacks travel


@dataclass(frozen=True)
class CallbackConfig:
    """Where callbacks go and how imperfectly. ``delay`` is a ``(min, max)`` range of seconds waited before each POST
    (the first counted from the send's answer); ``duplicate``, ``reorder`` and ``batch`` are probabilities (per
    body, per message, per message); ``ids`` is ``message_id`` or ``wamid``; a POST answered non-2xx or failing to
    connect is tried again ``retries`` times, ``backoff`` seconds later, doubling; ``timeout`` bounds each POST."""

    webhook_url: str | None = None
    delay: tuple[float, float] = (0.05, 0.2)
    duplicate: float = 0.0
    reorder: float = 0.0
    batch: float = 0.0
    ids: str = "message_id"
    retries: int = 0
    backoff: float = 0.2
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if self.webhook_url is not None:
            check_webhook_url(self.webhook_url)
        delay = self.delay
        _require(
            isinstance(delay, tuple | list)
            and len(delay) == 2
            and all(_is_number(d) and d >= 0 for d in delay)
            and delay[0] <= delay[1],
            "delay must be [min, max] seconds with 0 <= min <= max",
        )
        object.__setattr__(self, "delay", (float(delay[0]), float(delay[1])))
        for name in ("duplicate", "reorder", "batch"):
            value = getattr(self, name)
            _require(_is_number(value) and 0 <= value <= 1, f"{name} must be a probability within [0, 1]")
        _require(self.ids in ID_MODES, f"ids must be one of: {', '.join(ID_MODES)}")
        _require(_is_int(self.retries) and self.retries >= 0, "retries must be an int >= 0")
        _require(_is_number(self.backoff) and self.backoff >= 0, "backoff must be a number >= 0")
        _require(_is_number(self.timeout) and self.timeout > 0, "timeout must be a number > 0")

    def updated(self, changes: Mapping[str, Any]) -> CallbackConfig:
        """A copy with ``changes`` applied; ``ValueError`` for unknown fields or bad values (the control API)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown callback setting(s): {', '.join(unknown)}")
        try:
            return dataclasses.replace(self, **changes)
        except TypeError as exc:
            raise ValueError(str(exc)) from None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"delay": list(self.delay)}


def check_webhook_url(url: Any) -> str:
    """The URL when it is ``http://127.0.0.1[:port]/...`` or ``http://localhost...``; else ``ValueError``: the
    simulator never posts anywhere but the local machine."""
    _require(isinstance(url, str), "webhook_url must be a string")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"webhook_url is not a URL: {exc}") from None
    _require(parts.scheme == "http", "webhook_url must start with http:// (a local receiver)")
    _require(parts.hostname in LOOPBACK_HOSTS, "webhook_url must name 127.0.0.1 or localhost: loopback only")
    _require(port is None or port > 0, "webhook_url has no valid port")
    return url


# ---------------------------------------------------------------------------------------------------------------------
# The ledger's records


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """One callback (a status report or a button click) as posted, and what the receiver answered.

    ``message_id`` is the send's ``message_id`` (the truth's key), whatever id the body carried: ``callback_id`` is
    the status's ``id`` or the click's ``context.id``, and ``event_id`` the click's own ``id``. ``delivery`` numbers
    the POST body: the statuses of one batched body share it. ``duplicate`` is set on a body posted again.
    ``http_status`` is the receiver's last answer (None when it never answered: then ``error`` says why), after
    ``attempts`` tries. ``seq`` is the order in which callbacks finished.
    """

    seq: int
    delivery: int
    message_id: str
    callback_id: str
    event_id: str | None
    kind: str
    status: str | None
    timestamp: str
    duplicate: bool
    batched: int
    attempts: int
    http_status: int | None
    error: str | None
    posted_at: float

    @property
    def ok(self) -> bool:
        """The receiver answered 2xx."""
        return self.http_status is not None and 200 <= self.http_status < 300

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}


@dataclass
class MessageTruth:
    """What really happened to one accepted message, decided when it was accepted (posting cannot change it).

    ``timeline`` is every status in true order with its timestamp; ``final`` the current status they give by the
    project's rule. ``acknowledged`` holds the statuses whose callback some receiver answered 2xx, so a test can
    tell "the receiver lost it" from "it never got it" (``acknowledged_final`` is what the receiver can know).
    """

    message_id: str
    callback_id: str
    to: str
    template: str
    business_phone: str
    timeline: list[dict[str, str]]
    errors: list[dict[str, Any]]
    buttons: list[dict[str, str]]
    acknowledged: set[str] = field(default_factory=set)
    buttons_acknowledged: int = 0

    @property
    def statuses(self) -> list[str]:
        return [event["status"] for event in self.timeline]

    @property
    def final(self) -> str | None:
        return current_status(self.statuses)

    @property
    def acknowledged_final(self) -> str | None:
        return current_status(self.acknowledged)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "callback_id": self.callback_id,
            "to": self.to,
            "template": self.template,
            "business_phone": self.business_phone,
            "statuses": self.statuses,
            "final": self.final,
            "timeline": self.timeline,
            "errors": self.errors,
            "buttons": self.buttons,
            "acknowledged": sorted(self.acknowledged, key=self.statuses.index),
            "acknowledged_final": self.acknowledged_final,
            "buttons_acknowledged": self.buttons_acknowledged,
        }


# ---------------------------------------------------------------------------------------------------------------------
# NXCloud's bodies


def new_wamid(recipient: str) -> str:
    """A WhatsApp-style id: ``wamid.`` and base64 of the recipient and random hex, the shape of the page's examples
    (``wamid.HBgNODYxMzgwMDAwMDAwMRUCABEYEjQ2QTlFRDQ4``)."""
    digits = recipient.encode("ascii", "replace")[:255]
    suffix = secrets.token_hex(9).upper().encode("ascii")
    raw = b"\x1c\x18" + bytes([len(digits)]) + digits + b"\x15\x02\x00\x11\x18\x12" + suffix
    return "wamid." + base64.b64encode(raw).decode("ascii")


def status_object(  # noqa: PLR0917 - the fields of one status, in the page's order
    callback_id: str,
    status: str,
    timestamp: str,
    recipient_id: str,
    conversation: dict[str, Any] | None,
    errors: list[dict[str, Any]] | None,
) -> dict[str, Any]:
    """One entry of a status body's ``statuses``; ``deleted`` also says what was deleted, as the page shows."""
    entry: dict[str, Any] = {"id": callback_id, "status": status, "timestamp": timestamp, "recipient_id": recipient_id}
    if conversation is not None:
        entry["conversation"] = conversation
    if errors:
        entry["errors"] = errors
    if status == "deleted":
        entry |= {"type": "message", "message": {"recipient_id": recipient_id}}
    return entry


def status_body(statuses: list[dict[str, Any]], business_phone: str) -> dict[str, Any]:
    return {"statuses": statuses, "business_phone": business_phone, "messaging_product": "whatsapp"}


def button_body(
    *,
    recipient: str,
    name: str,
    event_id: str,
    timestamp: str,
    button: Mapping[str, str],
    business_phone: str,
    callback_id: str,
    template_id: int,
    template_name: str,
    components: Any,
) -> dict[str, Any]:
    """A template button click; ``wa_ext`` is JSON text inside the JSON, as NXCloud sends it."""
    wa_ext = {"templateId": template_id, "templateName": template_name, "components": components}
    message = {
        "from": recipient,
        "id": event_id,
        "timestamp": timestamp,
        "type": "button",
        "button": {"payload": button["payload"], "text": button["text"]},
        "context": {"from": business_phone, "id": callback_id},
        "wa_ext": json.dumps(wa_ext, ensure_ascii=False, separators=(",", ":")),
    }
    return {
        "contacts": [{"wa_id": recipient, "profile": {"name": name}}],
        "messages": [message],
        "business_phone": business_phone,
        "messaging_product": "whatsapp",
    }


def _encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# ---------------------------------------------------------------------------------------------------------------------
# Planning and posting


@dataclass(frozen=True, slots=True)
class _Item:
    """One callback inside a body, as the ledger will record it."""

    kind: str
    status: str | None
    timestamp: str
    event_id: str | None = None


@dataclass(frozen=True, slots=True)
class _Unit:
    """One POST: its body, the callbacks in it, and the delay before it."""

    body: bytes
    items: tuple[_Item, ...]
    delay: float
    duplicate: bool = False


@dataclass(eq=False)
class _Chain:
    """One message's POSTs, in posting order; ``pos`` is the next to post, ``attempts`` its tries so far."""

    truth: MessageTruth
    units: list[_Unit]
    generation: int
    pos: int = 0
    attempts: int = 0


_COUNT_NAMES: Final = (
    "messages",
    "scheduled",
    "posted",
    "answered_2xx",
    "failed",
    "pending",
    "duplicates",
    "requests",
    "retries",
    "abandoned",
)


class WebhookPusher:
    """Plans callbacks for accepted messages and posts them from worker threads; keeps the ledger of truth.

    Counts are of callbacks (a status report or a button click; a batched body carries several), except
    ``messages`` (messages given callbacks), ``requests`` (HTTP attempts, retries included) and ``retries``.
    ``posted`` = ``answered_2xx`` + ``failed``; ``pending`` are scheduled and not yet posted; ``abandoned`` were
    pending when the simulator stopped.
    """

    def __init__(
        self,
        config: CallbackConfig | None = None,
        *,
        seed: int | None = 0,
        workers: int = 8,
        max_records: int | None = 100_000,
        verbose: bool = False,
    ) -> None:
        self._config = config or CallbackConfig()
        self.workers = workers
        self.verbose = verbose
        self.outcome_rules: RuleBook[OutcomeRule] = RuleBook()
        self.button_rules: RuleBook[ButtonRule] = RuleBook()
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Chain]] = []
        self._tick = itertools.count()
        self._deliveries = itertools.count(1)
        self._generation = 0
        self._records: deque[CallbackRecord] = deque(maxlen=max_records)
        self._seq = 0
        self._truth: dict[str, MessageTruth] = {}
        self._counts = dict.fromkeys(_COUNT_NAMES, 0)
        self._threads: list[threading.Thread] = []
        self._running = False
        self._sockets: set[socket.socket] = set()

    # settings

    @property
    def config(self) -> CallbackConfig:
        return self._config

    def configure(self, **changes: Any) -> CallbackConfig:
        """Change settings (validated, all or nothing); they apply to messages accepted from now on, and the URL,
        ``retries``, ``backoff`` and ``timeout`` to every POST from now on."""
        with self._cond:
            self._config = self._config.updated(changes)
            return self._config

    # lifecycle (the simulator's start and stop)

    def start(self) -> None:
        """Accept messages from now on; the worker threads start with the first message that has callbacks, so a
        simulator without a webhook (most tests, the benchmarks) runs no extra threads."""
        with self._cond:
            self._running = True

    def _start_workers_locked(self) -> None:
        if self._threads:
            return
        self._threads = [
            threading.Thread(target=self._work, name=f"nxcloud-sim-webhook-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop posting: callbacks not yet posted are abandoned (counted), POSTs in flight are cut, workers joined."""
        with self._cond:
            if not self._running:
                return
            self._running = False
            self._abandon_locked()
            self._cond.notify_all()
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._cond:
            threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout=self._config.timeout + 1)

    def reset(self) -> None:
        """Forget the ledger, the truth and the rules, and drop callbacks not yet posted (settings are kept)."""
        with self._cond:
            self._abandon_locked()
            self._records.clear()
            self._truth.clear()
            self._counts = dict.fromkeys(_COUNT_NAMES, 0)
            self._cond.notify_all()
        self.outcome_rules.clear()
        self.button_rules.clear()

    def _abandon_locked(self) -> None:
        """Drop what is scheduled; a POST in flight finishes unrecorded (its generation is gone)."""
        self._counts["abandoned"] += self._counts["pending"]
        self._counts["pending"] = 0
        self._heap.clear()
        self._generation += 1

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every scheduled callback has been posted (retries included); False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._counts["pending"]:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    # the ledger

    @property
    def records(self) -> list[CallbackRecord]:
        """Every callback posted, in the order their POSTs finished (a copy; the oldest go beyond max_records)."""
        with self._cond:
            return list(self._records)

    def counts(self) -> dict[str, int]:
        with self._cond:
            return dict(self._counts)

    def truth(self) -> dict[str, MessageTruth]:
        """Per accepted message with callbacks (by the send's ``message_id``): what really happened (copies)."""
        with self._cond:
            return {key: dataclasses.replace(t, acknowledged=set(t.acknowledged)) for key, t in self._truth.items()}

    # planning

    def accept(self, message_id: str, send_body: Mapping[str, Any], now: float) -> object | None:
        """A send was accepted at ``now`` (the simulator's clock): decide its fate and count its callbacks as
        pending. Returns a handle for :meth:`release`, which starts posting them (None: no webhook, nothing to do)."""
        with self._cond:
            if not self._running or self._config.webhook_url is None:
                return None
            truth, units = self._plan(message_id, send_body, now)
            self._truth[message_id] = truth
            callbacks = sum(len(unit.items) for unit in units)
            self._counts["messages"] += 1
            self._counts["scheduled"] += callbacks
            self._counts["pending"] += callbacks
            self._counts["duplicates"] += sum(len(unit.items) for unit in units if unit.duplicate)
            self._start_workers_locked()
            return _Chain(truth, units, self._generation)

    def release(self, handle: object | None) -> None:
        """Start the delay before the first callback of a message :meth:`accept` planned (once its answer is out)."""
        with self._cond:
            if isinstance(handle, _Chain) and handle.generation == self._generation and self._running:
                self._push_locked(handle, handle.units[0].delay)

    def _plan(self, message_id: str, send_body: Mapping[str, Any], now: float) -> tuple[MessageTruth, list[_Unit]]:
        """The message's true events, then the POSTs that carry them (order, batches, duplicates, delays)."""
        config, rng = self._config, self._rng
        to, phone = str(send_body.get("to", "")), str(send_body.get("business_phone", ""))
        template = send_body.get("template") if isinstance(send_body.get("template"), dict) else {}
        name = str(template.get("name", ""))
        outcome = self.outcome_rules.pick(to, name, rng)
        statuses = outcome.statuses() if outcome else list(HAPPY_PATH)
        click_rule = self.button_rules.pick(to, name, rng) if "read" in statuses else None
        callback_id = message_id if config.ids == "message_id" else new_wamid(to)
        errors = [{"code": outcome.code, "title": outcome.title}] if outcome and outcome.final == "failed" else []
        conversation = {"id": secrets.token_hex(16), "origin": {"type": "business_initiated"}}

        events_in_order: list[str | None] = list(statuses)  # None: the button click
        if click_rule is not None:
            events_in_order.insert(statuses.index("read") + 1, None)
        base = int(now)
        events: list[tuple[_Item, dict[str, Any]]] = []  # each callback and its body part, in true order
        truth = MessageTruth(message_id, callback_id, to, name, phone, [], errors, [])
        for n, status in enumerate(events_in_order, 1):
            timestamp = str(base + n)
            if status is not None:
                convo = None if status in {"failed", "deleted"} else conversation
                if status == "sent":  # the conversation's expiry rides on its first status, as in the page's order
                    convo = {"id": conversation["id"], "expiration_timestamp": str(base + n + 86_400)} | conversation
                part = status_object(callback_id, status, timestamp, to, convo, errors if status == "failed" else None)
                events.append((_Item("status", status, timestamp), part))
                truth.timeline.append({"status": status, "timestamp": timestamp})
            else:
                assert click_rule is not None
                button = click_rule.clicked(rng)
                event_id = new_wamid(to)
                part = button_body(
                    recipient=to,
                    name=click_rule.name,
                    event_id=event_id,
                    timestamp=timestamp,
                    button=button,
                    business_phone=phone,
                    callback_id=callback_id,
                    template_id=click_rule.wa_template_id,
                    template_name=name,
                    components=template.get("components", []),
                )
                events.append((_Item("button", None, timestamp, event_id), part))
                truth.buttons.append(button | {"timestamp": timestamp})
        return truth, self._units(events, phone, config, rng)

    @staticmethod
    def _units(
        events: list[tuple[_Item, dict[str, Any]]], phone: str, config: CallbackConfig, rng: random.Random
    ) -> list[_Unit]:
        """Turn true-order events into POSTs: maybe reorder, maybe batch the statuses, maybe duplicate, add delays."""
        if len(events) > 1 and _fires(rng, config.reorder):
            shuffled = rng.sample(events, len(events))
            events = shuffled if shuffled != events else events[::-1]
        groups: list[list[tuple[_Item, dict[str, Any]]]] = [[event] for event in events]
        if _fires(rng, config.batch):
            statuses = [event for event in events if event[0].kind == "status"]
            first = next(n for n, event in enumerate(events) if event[0].kind == "status")
            groups = [[event] for event in events if event[0].kind != "status"]
            groups.insert(sum(1 for event in events[:first] if event[0].kind != "status"), statuses)
        units = [_unit(group, phone) for group in groups]
        posted = list(units)
        for unit in units:
            if _fires(rng, config.duplicate):
                after = next(n for n, u in enumerate(posted) if u is unit) + 1
                posted.insert(rng.randint(after, len(posted)), dataclasses.replace(unit, duplicate=True))
        low, high = config.delay
        return [dataclasses.replace(unit, delay=rng.uniform(low, high) if high > low else low) for unit in posted]

    # posting (worker threads)

    def _push_locked(self, chain: _Chain, delay: float) -> None:
        heapq.heappush(self._heap, (time.monotonic() + delay, next(self._tick), chain))
        self._cond.notify_all()  # not notify(): it could wake a drain() waiter instead of a worker

    def _work(self) -> None:
        while True:
            with self._cond:
                chain = self._next_due_locked()
                if chain is None:
                    return
                unit, config = chain.units[chain.pos], self._config
                chain.attempts += 1
            status, error = self._post(config.webhook_url, unit.body, config.timeout)
            with self._cond:
                self._finish_locked(chain, unit, status, error)

    def _next_due_locked(self) -> _Chain | None:
        while self._running:
            now = time.monotonic()
            if self._heap and self._heap[0][0] <= now:
                return heapq.heappop(self._heap)[2]
            self._cond.wait(self._heap[0][0] - now if self._heap else None)
        return None

    def _finish_locked(self, chain: _Chain, unit: _Unit, status: int | None, error: str | None) -> None:
        if chain.generation != self._generation:
            return
        self._counts["requests"] += 1
        ok = status is not None and 200 <= status < 300
        if not ok and chain.attempts <= self._config.retries:
            self._counts["retries"] += 1
            self._push_locked(chain, self._config.backoff * 2 ** (chain.attempts - 1))
            return
        delivery, now, truth = next(self._deliveries), time.time(), chain.truth
        for item in unit.items:
            self._seq += 1
            self._records.append(
                CallbackRecord(
                    seq=self._seq,
                    delivery=delivery,
                    message_id=truth.message_id,
                    callback_id=truth.callback_id,
                    event_id=item.event_id,
                    kind=item.kind,
                    status=item.status,
                    timestamp=item.timestamp,
                    duplicate=unit.duplicate,
                    batched=len(unit.items),
                    attempts=chain.attempts,
                    http_status=status,
                    error=error,
                    posted_at=now,
                )
            )
            if ok and item.status is not None:
                truth.acknowledged.add(item.status)
            elif ok:
                truth.buttons_acknowledged += 1
        count = len(unit.items)
        self._counts["posted"] += count
        self._counts["answered_2xx" if ok else "failed"] += count
        self._counts["pending"] -= count
        if self.verbose:
            what = ",".join(item.status or item.kind for item in unit.items)
            print(f"callback {truth.message_id} {what} -> {status or error}", file=sys.stderr)
        chain.pos, chain.attempts = chain.pos + 1, 0
        if chain.pos < len(chain.units):
            self._push_locked(chain, chain.units[chain.pos].delay)
        self._cond.notify_all()

    def _post(self, url: str | None, body: bytes, timeout: float) -> tuple[int | None, str | None]:
        """POST one body to the receiver at 127.0.0.1: its HTTP status, or None and why not."""
        if url is None:
            return None, "no webhook_url"
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection = http.client.HTTPConnection("127.0.0.1", parts.port or 80, timeout=timeout)
        sock: socket.socket | None = None
        try:
            connection.connect()
            sock = connection.sock
            self._track(sock, True)
            headers = {"Content-Type": "application/json", "Host": parts.netloc, "User-Agent": "nxcloud-simulator"}
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(MAX_ANSWER_BYTES)
            return response.status, None
        except (OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        finally:
            if sock is not None:
                self._track(sock, False)
            connection.close()

    def _track(self, sock: socket.socket | None, is_open: bool) -> None:
        """Remember sockets in flight so ``stop()`` can cut them instead of waiting for a slow receiver."""
        if sock is None:
            return
        with self._cond:
            (self._sockets.add if is_open else self._sockets.discard)(sock)


def _unit(group: list[tuple[_Item, dict[str, Any]]], phone: str) -> _Unit:
    """One POST carrying a group of callbacks: a click alone, or one or more statuses in one ``statuses`` array."""
    items = tuple(item for item, _ in group)
    if items[0].kind == "button":
        return _Unit(_encode(group[0][1]), items, 0.0)
    return _Unit(_encode(status_body([part for _, part in group], phone)), items, 0.0)


def _fires(rng: random.Random, probability: float) -> bool:
    """Whether a probability fires; 0 and 1 draw nothing, so adding a rule that never fires changes no replay."""
    return probability >= 1 or (probability > 0 and rng.random() < probability)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
