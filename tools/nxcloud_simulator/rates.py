"""The business number's rate, as NXCloud (and WhatsApp behind it) enforces it: a token bucket per business number.

WhatsApp allows each business number a rate (80 messages per second by default) and refuses a faster sender. The
simulator enforces one when told to (:class:`RateLimit`): a ``business_phone``'s bucket holds ``burst`` tokens and
refills at ``per_second``. Every send request that reaches NXCloud (past the gateway faults, ``http_status`` and
``drop``, which never do) needs a token: one that finds the bucket empty is refused unprocessed, nothing is accepted,
and it is counted. The token is spent only when the message is accepted: WhatsApp counts the messages it sends, not
the requests NXCloud answered with an error (:meth:`RateBook.give_back`). How it is refused is configurable, as
NXCloud's own answer is not documented:

* ``http_429`` (default): HTTP 429 with ``Retry-After`` (whole seconds until a token, at least 1), a text body;
* ``code``: HTTP 200 with NXCloud's JSON and ``code`` (22141 "see message" by default) whose ``message`` quotes
  Meta's ``(#130429) Rate limit hit``: how NXCloud may pass WhatsApp's refusal on.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from nxcloud_simulator.control import build, check_fields

ANSWERS: Final = ("http_429", "code")
META_MESSAGE: Final = "(#130429) Rate limit hit: Cloud API message throughput has been reached."


@dataclass
class RateLimit:
    """The rate every business number gets (``numbers`` gives some another), and how a refusal is answered."""

    per_second: float
    burst: float | None = None
    """Tokens the bucket holds; None: a second's worth (``per_second``)."""
    answer: str = "http_429"
    code: int = 22141
    message: str = META_MESSAGE
    numbers: dict[str, float] = field(default_factory=dict)
    """Business number -> its own messages per second."""

    def __post_init__(self) -> None:
        rates = [self.per_second, *self.numbers.values()]
        if not all(_is_number(r) and r > 0 for r in rates):
            raise ValueError("per_second (and every number's rate) must be a number > 0")
        if self.burst is not None and not (_is_number(self.burst) and self.burst >= 1):
            raise ValueError("burst must be None or a number >= 1")
        if self.answer not in ANSWERS:
            raise ValueError(f"answer must be one of {', '.join(ANSWERS)}")
        if not (isinstance(self.code, int) and not isinstance(self.code, bool)) or not isinstance(self.message, str):
            raise ValueError("code must be an int and message a string")

    @classmethod
    def from_dict(cls, data: Any) -> RateLimit:
        """From the control API's JSON; ``ValueError`` naming what is wrong."""
        check_fields(cls, data, what="a rate limit", fields="rate field(s)")
        return build(cls, data)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def rate_of(self, number: str) -> float:
        return self.numbers.get(number, self.per_second)

    def burst_of(self, number: str) -> float:
        return self.burst if self.burst is not None else max(1.0, self.rate_of(number))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the bucket refused: how to answer it."""

    limit: RateLimit
    retry_after: int
    """Whole seconds until the number's bucket has a token again (at least 1)."""


class RateBook:
    """The buckets, thread-safe; off until :meth:`configure` gives it a :class:`RateLimit`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limit: RateLimit | None = None
        self._buckets: dict[str, tuple[float, float]] = {}
        self.admitted: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def configure(self, limit: RateLimit | None) -> None:
        """Enforce ``limit`` from now on (None: no limit), every bucket full."""
        with self._lock:
            self.limit = limit
            self._buckets.clear()

    def clear_counts(self) -> None:
        with self._lock:
            self._buckets.clear()
            self.admitted.clear()
            self.refused.clear()

    def take(self, number: str | None, now: float) -> Refusal | None:
        """Take a token for ``number`` at ``now`` (monotonic seconds); the refusal when its bucket is empty.

        A request without a business number is not counted (NXCloud refuses it for its fields)."""
        with self._lock:
            limit = self.limit
            if limit is None or not number:
                return None
            rate, burst = limit.rate_of(number), limit.burst_of(number)
            tokens, last = self._buckets.get(number, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens >= 1:
                self._buckets[number] = (tokens - 1, now)
                self.admitted[number] += 1
                return None
            self._buckets[number] = (tokens, now)
            self.refused[number] += 1
            return Refusal(limit, max(1, math.ceil((1 - tokens) / rate)))

    def give_back(self, number: str | None) -> None:
        """The request that took a token was not accepted: the token is back (WhatsApp sent nothing)."""
        with self._lock:
            if self.limit is None or not number or number not in self._buckets:
                return
            tokens, last = self._buckets[number]
            self._buckets[number] = (min(self.limit.burst_of(number), tokens + 1), last)
            self.admitted[number] -= 1

    def counts(self) -> dict[str, Any]:
        with self._lock:
            return {
                "admitted": dict(self.admitted),
                "refused": dict(self.refused),
                "refused_total": sum(self.refused.values()),
            }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
