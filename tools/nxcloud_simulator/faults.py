"""Fault rules for the NXCloud simulator: what can go wrong between the client and NXCloud, on demand.

A rule is a plain dataclass. It matches a request of its ``endpoint`` (``send``, the default, or ``getTemplate``) by
recipient (``to``), by template name (a getTemplate request's ``name`` filter), or (neither given) any request of that
endpoint; it applies ``times`` times (``None``: for ever) and, below ``probability`` 1, only when a seeded RNG says so,
so a flaky run can be replayed exactly. The kinds, and what each one tells the client:

* ``latency``: ``seconds`` are added before the answer; the request is otherwise processed normally. Latency rules
  add up and combine with at most one of the kinds below.
* ``http_status``: a gateway-style answer with ``status`` (500, 502, 503, 429 with an optional ``retry_after``...) and
  a non-JSON body. The request is NOT processed, so nothing is accepted.
* ``drop``: the request is read, then the socket is closed without an answer. Nothing is accepted.
* ``code``: an NXCloud JSON answer with ``code`` (any code from the page, or an unknown one) and HTTP 200. Nothing is
  accepted.
* ``read_timeout_after_accept``: the request is processed and, when valid, ACCEPTED (recorded with a message_id,
  exactly as if sent), then the answer never comes: the handler hangs for ``hang`` seconds (longer than any client
  read timeout) or until the simulator stops. This is the "unknown outcome" case a client must not resend blindly.
* ``garbage``: the request is processed and accepted when valid, then answered HTTP 200 with ``body`` that is not
  JSON. Another unknown-outcome case.

The first matching non-latency rule, in the order the rules were added, decides the answer.
"""

from __future__ import annotations

import dataclasses
import random
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from nxcloud_simulator.control import build, check_fields

SEND: Final = "send"
GET_TEMPLATE: Final = "getTemplate"
ENDPOINTS: Final = (SEND, GET_TEMPLATE)


class FaultKind(StrEnum):
    """What a rule does to a request it matches (see the module docstring)."""

    LATENCY = "latency"
    HTTP_STATUS = "http_status"
    DROP = "drop"
    CODE = "code"
    READ_TIMEOUT_AFTER_ACCEPT = "read_timeout_after_accept"
    GARBAGE = "garbage"


UNPROCESSED_KINDS = frozenset({FaultKind.HTTP_STATUS, FaultKind.DROP, FaultKind.CODE})
"""Kinds that answer in place of NXCloud: the request's checks never run and nothing can be accepted."""

_COUNTERS = frozenset({"id", "applied"})


@dataclass
class Fault:
    """One rule. Only the fields of its ``kind`` matter; ``id`` and ``applied`` are filled in by the simulator."""

    kind: FaultKind
    to: str | None = None
    template: str | None = None
    times: int | None = None
    probability: float = 1.0
    seconds: float = 0.0
    status: int = 503
    retry_after: str | None = None
    code: int = -1
    message: str | None = None
    hang: float = 60.0
    body: str = "<html><body>502 Bad Gateway</body></html>"
    endpoint: str = SEND
    id: int = 0
    applied: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        self.kind = FaultKind(self.kind)
        _require(self.times is None or (_is_int(self.times) and self.times >= 1), "times must be None or an int >= 1")
        _require(_is_number(self.probability) and 0 <= self.probability <= 1, "probability must be within [0, 1]")
        _require(_is_number(self.seconds) and self.seconds >= 0, "seconds must be a number >= 0")
        _require(_is_number(self.hang) and self.hang >= 0, "hang must be a number >= 0")
        _require(_is_int(self.status) and 100 <= self.status <= 599, "status must be an HTTP status (100-599)")
        _require(_is_int(self.code), "code must be an int")
        _require(self.to is None or isinstance(self.to, str), "to must be a string")
        _require(self.template is None or isinstance(self.template, str), "template must be a string")
        _require(self.endpoint in ENDPOINTS, f"endpoint must be one of {', '.join(ENDPOINTS)}")

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        """Build a rule from JSON data (the control API); raise ``ValueError`` naming what is wrong."""
        check_fields(cls, data, what="a fault", fields="fault field(s)", internal=_COUNTERS)
        if "kind" not in data:
            raise ValueError(f"kind is required, one of: {', '.join(FaultKind)}")
        return build(cls, data)

    def as_dict(self) -> dict[str, Any]:
        """The rule as JSON-ready data."""
        return dataclasses.asdict(self)

    def matches(self, to: str | None, template: str | None, endpoint: str = SEND) -> bool:
        """Whether this rule's filters select a request to ``endpoint`` with this recipient and template name."""
        return (
            self.endpoint == endpoint
            and (self.to is None or self.to == to)
            and (self.template is None or self.template == template)
        )

    @property
    def exhausted(self) -> bool:
        """True once the rule has been applied ``times`` times."""
        return self.times is not None and self.applied >= self.times


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """What to do with one request: extra latency, and the rule (a snapshot) that decides the answer, if any."""

    latency: float = 0.0
    answer: Fault | None = None


class FaultBook:
    """The simulator's rules, safe to change from any thread while requests are being served."""

    def __init__(self, seed: int | None = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._rng = random.Random(seed)
        self._next_id = 1

    def add(self, fault: Fault) -> Fault:
        """Register a rule; it is given an id and applies from the next request on."""
        with self._lock:
            fault.id, fault.applied = self._next_id, 0
            self._next_id += 1
            self._rules.append(fault)
        return fault

    def remove(self, fault_id: int) -> bool:
        """Drop one rule by id; False when there is none."""
        with self._lock:
            kept = [rule for rule in self._rules if rule.id != fault_id]
            removed = len(kept) != len(self._rules)
            self._rules = kept
        return removed

    def clear(self) -> int:
        """Drop every rule; return how many there were."""
        with self._lock:
            count, self._rules = len(self._rules), []
        return count

    def rules(self) -> list[Fault]:
        """Snapshots of the rules, in the order they apply."""
        with self._lock:
            return [dataclasses.replace(rule, applied=rule.applied) for rule in self._rules]

    def plan(self, to: str | None, template: str | None, endpoint: str = SEND) -> FaultPlan:
        """Pick the rules for one request to ``endpoint`` and count them as applied (``times`` is consumed here)."""
        latency, answer = 0.0, None
        with self._lock:
            for rule in self._rules:
                is_latency = rule.kind is FaultKind.LATENCY
                if (answer is not None and not is_latency) or not self._fires(rule, to, template, endpoint):
                    continue
                rule.applied += 1
                if is_latency:
                    latency += rule.seconds
                else:
                    answer = dataclasses.replace(rule, applied=rule.applied)
        return FaultPlan(latency, answer)

    def _fires(self, rule: Fault, to: str | None, template: str | None, endpoint: str) -> bool:
        if rule.exhausted or not rule.matches(to, template, endpoint):
            return False
        return rule.probability >= 1 or self._rng.random() < rule.probability


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
