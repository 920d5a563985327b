"""The suppression list's rows of the ledger: entries stored, and whether anything was sent after its entry was.

Sources:

* the list itself (:class:`EntryWatch`): polled while the run goes on and read once more at the end, keeping, per
  recipient, every stored version seen (``at``, ``scope``, ``reason``). An entry stored again later (a second
  131050 for a message claimed before the first was stored) gets a new ``at``; the earliest one seen is when the
  recipient became suppressed. A version replaced between two polls is not seen, which can only make ``stored`` later
  than it was: the check below is then more lenient by at most one poll interval, never stricter;
* the simulator's truth: when NXCloud accepted each send (:class:`~soak.journal.Upstream`'s ``accepted_at``), of
  which message, so its recipient and its template's category;
* the soak's own record of when each invocation began (:meth:`~soak.ledger.Tracker.started`).

**When was a send claimed?** The function reads the list and claims a batch's messages after its invocation began
and before it calls NXCloud. So the invocation that sent a message began at or before its claim: its start (the
latest start of an invocation that had the message, at or before NXCloud accepted it) is a lower bound of the claim
time, and the check is read strongly consistent. A send whose invocation began **after** the recipient's entry was
stored, for a category the entry covers, read the list after the entry was there: it was claimed after it and must not
have gone out (goal 0). A send NXCloud accepted after the entry was stored but whose invocation began before is the
documented race (docs/audience.md: a message claimed before the entry was stored may still go out): counted, allowed.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from nxcloud_wa.suppressions import Suppression
from soak.frequency_cap import CAPPED
from soak.mix import OPT_OUT_GROUPS
from soak.retries import RetryTally

POLL_S: Final = 0.5
MARKETING: Final = "MARKETING"
UNKNOWN: Final = "unknown"
"""A skip line's ``category`` when the product's catalogue could not say (functions/sender/outcomes.py)."""


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a recipient's entry."""

    at: float
    scope: str
    reason: str


def covers(scope: str, category: str) -> bool:
    """Whether an entry of ``scope`` stops a template of ``category`` (docs/audience.md: ``all`` stops every category,
    ``marketing`` only ``MARKETING``)."""
    return scope == "all" or category == MARKETING


class EntryWatch:
    """Every version of the list's entries seen, by recipient, polled every :data:`POLL_S` seconds."""

    def __init__(self, read: Callable[[], Iterable[Suppression]]) -> None:
        self.read = read
        self.versions: defaultdict[str, set[Version]] = defaultdict(set)
        self.final: list[Suppression] = []
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> EntryWatch:
        self._thread = threading.Thread(target=self._loop, name="suppression-watch", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            with contextlib.suppress(Exception):  # a moto hiccup: the next poll and the last read catch up
                self.poll()

    def poll(self) -> list[Suppression]:
        entries = list(self.read())
        with self._lock:
            self.polls += 1
            for entry in entries:
                self.versions[entry.recipient].add(Version(_epoch(entry.at), str(entry.scope), str(entry.reason)))
        return entries

    def stop(self) -> None:
        """Stop polling, then read the list one last time (its final entries)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.final = self.poll()

    def stored(self, recipient: str, category: str) -> float | None:
        """When the recipient first had an entry stopping ``category`` (epoch seconds), or None."""
        with self._lock:
            times = [v.at for v in self.versions.get(recipient, ()) if covers(v.scope, category)]
        return min(times) if times else None


@dataclass
class AudienceLedger:
    opt_out_recipients: dict[str, int] = field(default_factory=dict)
    entries: Counter[str] = field(default_factory=Counter)
    """The list's entries at the end, by reason."""
    entries_stored_again: int = 0
    """Entries seen with more than one ``at`` (stored again)."""
    sends_after: int = 0
    """Sends NXCloud accepted after their recipient's entry (covering their category) was stored."""
    sends_raced: int = 0
    """Of those, claimed before it was stored: the documented race (allowed)."""
    sends_claimed_after: int = 0
    """Of those, claimed after it was stored (goal 0)."""
    skipped: Counter[str] = field(default_factory=Counter)
    """Messages the function reported skipped (the queue's path), by the entry's reason, or ``frequency_cap`` (the
    cap's rows, :mod:`soak.frequency_cap`, judge those)."""
    suppressed_rejected_api: int = 0
    suppressed_without_entry: int = 0
    """Skipped (or answered 422) though the recipient never had an entry covering the template's category (goal 0)."""
    list_reads: int = 0
    """The functions' BatchGetItem requests on the list (attempts, as the fault port saw them)."""
    polls: int = 0
    retries: RetryTally = field(default_factory=RetryTally)
    """The 131049 retries (:mod:`soak.retries`): scheduled, sent, skipped, lost (goal 0)."""
    examples: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        problems = []
        if self.retries.lost:
            problems.append(f"{self.retries.lost} 131049 retries scheduled and neither sent nor skipped")
        if self.sends_claimed_after:
            problems.append(f"{self.sends_claimed_after} sent to a recipient after its suppression was stored")
        if self.suppressed_without_entry:
            problems.append(f"{self.suppressed_without_entry} skipped though their recipient had no entry")
        return problems


def judged_category(category: str, skipped_category: str) -> str:
    """The category the product judged a message by: its template's, unless the check could not learn it (a
    getTemplate fault, whose error the catalogue keeps for a while), which its skip line says as ``unknown``; the
    documented fail-safe then counts it as marketing (docs/audience.md), so a marketing entry rightly stops it."""
    return MARKETING if skipped_category == UNKNOWN else category


def account(
    journeys: Iterable[Any],
    upstream: Callable[[str], Any],
    watch: EntryWatch,
    *,
    opt_out_recipients: dict[str, int],
    list_reads: int,
) -> AudienceLedger:
    """The rows, from every message's journey (:class:`~soak.ledger.Journey`), the simulator's tallies by token and
    the watched list."""
    ledger = AudienceLedger(opt_out_recipients=dict(opt_out_recipients), list_reads=list_reads, polls=watch.polls)
    ledger.entries = Counter(str(entry.reason) for entry in watch.final)
    ledger.entries_stored_again = sum(1 for versions in watch.versions.values() if len({v.at for v in versions}) > 1)
    for journey in journeys:
        message = journey.message
        stored = (
            watch.stored(message.to, judged_category(message.category, journey.skipped_category))
            if message.to
            else None
        )
        rejected = journey.api_final is not None and journey.api_final[1] == "recipient_suppressed"
        if journey.skipped is not None:
            ledger.skipped[journey.skipped] += 1
        ledger.suppressed_rejected_api += rejected
        suppressed = journey.skipped is not None and journey.skipped != CAPPED
        if (suppressed or rejected) and stored is None:
            ledger.suppressed_without_entry += 1
            judged = journey.skipped_category or "not said"
            _example(ledger, f"{message.token} template={message.template} (judged {judged}) skipped without an entry")
        if stored is None:
            continue
        for accepted in upstream(message.token).accepted_at:
            if accepted <= stored:
                continue
            ledger.sends_after += 1
            claimed = max((s for s in journey.starts if s <= accepted), default=accepted)
            if claimed <= stored:
                ledger.sends_raced += 1
                continue
            ledger.sends_claimed_after += 1
            _example(
                ledger,
                f"{message.token} template={message.template} to=...{message.to[-4:]} stored={stored:.3f} "
                f"invocation began={claimed:.3f} accepted={accepted:.3f}",
            )
    return ledger


def _example(ledger: AudienceLedger, text: str) -> None:
    if len(ledger.examples) < 10:
        ledger.examples.append(text)


def rows(ledgers: list[AudienceLedger | None]) -> list[tuple[str, list[str]]]:
    """The printed rows, one column per run ("-" where a run had none)."""
    found: list[tuple[str, list[str]]] = []

    def row(label: str, value: Callable[[AudienceLedger], Any]) -> None:
        found.append((label, [str(value(lg)) if lg is not None else "-" for lg in ledgers]))

    present = [lg for lg in ledgers if lg is not None]
    row(
        "opt-out recipients: click / 131050 / 131026",
        lambda lg: " / ".join(str(lg.opt_out_recipients.get(g, 0)) for g in OPT_OUT_GROUPS),
    )
    row("suppression entries stored (at the end)", lambda lg: sum(lg.entries.values()))
    for reason in sorted({r for lg in present for r in lg.entries}):
        row(f"  {reason}", lambda lg, r=reason: lg.entries.get(r, 0))
    row("  of which stored again (a later `at`)", lambda lg: lg.entries_stored_again)
    row("skipped (queue), by reason", lambda lg: sum(lg.skipped.values()))
    for reason in sorted({r for lg in present for r in lg.skipped}):
        label = "  over the frequency cap" if reason == CAPPED else f"  suppressed, {reason}"
        row(label, lambda lg, r=reason: lg.skipped.get(r, 0))
    row("  and via the API: 422 recipient_suppressed", lambda lg: lg.suppressed_rejected_api)
    row("  of which the recipient had no entry", lambda lg: lg.suppressed_without_entry)
    row("sends accepted after their recipient's entry was stored", lambda lg: lg.sends_after)
    row("  claimed before it was stored (the documented race)", lambda lg: lg.sends_raced)
    row("sent to a recipient after its suppression was stored", lambda lg: lg.sends_claimed_after)
    row("suppression list reads (BatchGetItem attempts)", lambda lg: lg.list_reads)
    row(
        "131049 retries scheduled / sent / lost",
        lambda lg: f"{lg.retries.scheduled} / {lg.retries.sent} / {lg.retries.lost}",
    )
    row(
        "  skipped (opted out, or capped, meanwhile) / 131049 final",
        lambda lg: f"{lg.retries.skipped} / {lg.retries.final}",
    )
    return found


def as_json(ledger: AudienceLedger | None) -> dict[str, Any] | None:
    if ledger is None:
        return None
    return {k: v for k, v in ledger.__dict__.items() if k != "retries"} | {
        "retries": {**ledger.retries.__dict__, "lost": ledger.retries.lost},
        "failures": ledger.failures(),
    }


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()
