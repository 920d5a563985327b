"""What the NXCloud simulator saw, reduced per message as it happens, so a 10 000-message soak keeps flat memory.

The simulator keeps every request in its journal (``max_records`` long). The soak swaps that journal for this one:
same methods (``next_seq``, ``add``, ``snapshot``, ``clear``), but each request is folded into a small tally for its
message, found by the unique token the soak writes into the message's body parameter, and only the last
``keep`` records are kept whole (for debugging).
"""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Final

from nxcloud_simulator.server import RequestRecord

TOKEN: Final = re.compile(r"sk[0-9a-f]{6}-\d{6}")
AFTER_ACCEPT_UNKNOWN: Final = frozenset({"read_timeout_after_accept", "garbage"})
"""Fault kinds that accept the message and then lose or garble the answer: the client cannot know it was sent."""


def token_in(text: str | None) -> str | None:
    match = TOKEN.search(text or "")
    return match.group(0) if match else None


@dataclass(slots=True)
class Upstream:
    """One message's requests to NXCloud."""

    requests: int = 0
    accepted: int = 0
    first_accepted_at: float | None = None
    accepted_at: list[float] = field(default_factory=list)
    """When NXCloud accepted each of its sends (the simulator's clock, ``time.time()``)."""
    unknown_after_accept: int = 0
    """Accepted requests whose answer the client cannot have read: a lost/garbled answer, or latency past the read
    timeout."""


class TallyJournal:
    """Drop-in for the simulator's ``_Journal``: per-token tallies plus the last ``keep`` records."""

    def __init__(self, *, read_timeout: float, keep: int = 500) -> None:
        self.read_timeout = read_timeout
        self._lock = threading.Lock()
        self._seq = 0
        self._recent: deque[RequestRecord] = deque(maxlen=keep)
        self.by_token: dict[str, Upstream] = {}
        self.faults: Counter[str] = Counter()
        """Answers decided by a fault, by kind (and code or status)."""
        self.requests = 0
        self.accepted = 0
        self.untracked = 0
        self.answer_lost: set[str] = set()
        """NXCloud's message_id of every accepted send whose answer the client cannot have read: the sender never
        learned these ids, so it never recorded them, and their callbacks stay unmatched."""

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def add(self, record: RequestRecord) -> None:
        token = token_in(record.body_text)
        lost_answer = record.fault in AFTER_ACCEPT_UNKNOWN or record.latency >= self.read_timeout
        with self._lock:
            self._recent.append(record)
            self.requests += 1
            if record.fault:
                detail = record.code if record.fault == "code" else record.http_status
                self.faults[f"{record.fault} {detail}" if detail is not None else record.fault] += 1
            if record.latency:
                self.faults["latency >= read timeout" if record.latency >= self.read_timeout else "latency"] += 1
            if token is None:
                self.untracked += 1
                return
            tally = self.by_token.get(token)
            if tally is None:
                tally = self.by_token[token] = Upstream()
            tally.requests += 1
            if record.accepted and lost_answer and record.message_id:
                self.answer_lost.add(record.message_id)
            if record.accepted:
                self.accepted += 1
                tally.accepted += 1
                if tally.first_accepted_at is None:
                    tally.first_accepted_at = record.received_at
                tally.accepted_at.append(record.received_at)
                if lost_answer:
                    tally.unknown_after_accept += 1

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._recent)

    def clear(self) -> None:
        with self._lock:
            self._recent.clear()
            self.by_token.clear()
            self.faults.clear()
            self.answer_lost.clear()

    def get(self, token: str) -> Upstream:
        with self._lock:
            found = self.by_token.get(token)
            if found is None:
                return Upstream()
            copy = Upstream(**{k: getattr(found, k) for k in Upstream.__slots__})  # type: ignore[attr-defined]
            copy.accepted_at = list(found.accepted_at)
            return copy

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"requests": self.requests, "accepted": self.accepted, "untracked": self.untracked}
