"""The marketing frequency cap's rows of the ledger (``--cap 1/24h``; docs/audience.md, "The marketing frequency cap").

Source: the simulator's truth (when NXCloud accepted each send, of which message, so its recipient and its template's
category), the soak's record of when each invocation that had a message began and ended, and which sends' settlements
could not store the count (the sender's ``frequency_cap=unrecorded`` warning, per invocation).

**Over the cap**: the pair's sends beyond ``N`` inside the window, counted in the order NXCloud accepted them (a run
is far shorter than a window; a message accepted twice with one key is one send, as the cap counts it; a 131049
retry is another). docs/audience.md promises the cap for batches that **follow one another**, not for batches in
flight together, and not when a count could not be written. So a send over the cap is **documented** when fewer than
``N`` of the pair's earlier sends were surely in the count its check read; one earlier send surely was when it was
sent by the same invocation (one batch: the check counts the batch's own messages), or when its invocation ended
before this send's invocation began, its settlement stored the count (no ``unrecorded`` warning, not
killed), and no other invocation sent to the pair while it ran (the later settlement's Put replaces the earlier's).
Any other send over the cap broke the promise: **sent over the frequency cap** (goal 0).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nxcloud_wa.audience import FrequencyCap

MARKETING: Final = "MARKETING"
CAPPED: Final = "frequency_cap"
"""The sender's skip reason (its outcome line's ``reason``) and the ledger's skip label for a capped message."""
CAPPED_API: Final = "frequency_capped"
"""The API's error for a capped message (422)."""


@dataclass(frozen=True, slots=True)
class _Send:
    """One marketing send NXCloud accepted, and the invocation that sent it."""

    token: str
    accepted: float
    began: float
    ended: float | None
    """When the sending invocation ended (None: no end seen, e.g. still running at the end of the run)."""
    settled: bool
    """Its settlement stored the pair's count: not killed, no ``frequency_cap=unrecorded`` warning."""


@dataclass
class CapLedger:
    cap: str
    pairs: int = 0
    """(business number, recipient) pairs NXCloud accepted a marketing template for."""
    sends: int = 0
    """Marketing sends NXCloud accepted (a message accepted twice with one key is one)."""
    capped_queue: int = 0
    capped_api: int = 0
    over: int = 0
    """Sends beyond N to a pair inside the window (simulator's truth)."""
    over_documented: int = 0
    """Of those, allowed by docs/audience.md: batches in flight together, or a count not written."""
    over_promised: int = 0
    """Of those, after N sends were surely in the count the check read (goal 0)."""
    examples: list[str] = field(default_factory=list)

    def failures(self) -> list[str]:
        if self.over_promised:
            return [f"{self.over_promised} sent over the frequency cap after the count held {self.cap}"]
        return []


def account(
    cap_text: str,
    journeys: Iterable[Any],
    upstream: Callable[[str], Any],
    *,
    business_phone: str,
    resent: Mapping[str, int] | None = None,
) -> CapLedger:
    """The rows, from every message's journey (:class:`~soak.ledger.Journey`) and the simulator's tallies by token."""
    cap = FrequencyCap.parse(cap_text)
    ledger = CapLedger(cap=str(cap) if cap else "off")
    by_pair: defaultdict[tuple[str, str], list[_Send]] = defaultdict(list)
    for journey in journeys:
        ledger.capped_queue += journey.skipped == CAPPED
        ledger.capped_api += journey.api_final is not None and journey.api_final[1] == CAPPED_API
        message = journey.message
        if message.category != MARKETING or not message.to:
            continue
        for at in _distinct(sorted(upstream(message.token).accepted_at), (resent or {}).get(message.token, 0)):
            by_pair[(business_phone, message.to)].append(_sent(journey, at))
    ledger.pairs = len(by_pair)
    for sends in by_pair.values():
        ledger.sends += len(sends)
        if cap is not None:
            _judge(ledger, cap, sorted(sends, key=lambda s: s.accepted))
    return ledger


def _distinct(accepted: list[float], retries: int) -> list[float]:
    """The message's sends as the cap counts them: its first acceptance, and its ``retries`` 131049 retries (new
    keys: the last acceptances); any other acceptance repeated the first send's key (a duplicate: one send)."""
    later = min(retries, max(0, len(accepted) - 1))
    return accepted[:1] + (accepted[-later:] if later else [])


def _sent(journey: Any, accepted: float) -> _Send:
    began = max((s for s in journey.starts if s <= accepted), default=accepted)
    ended = min((e for e in journey.ends if e >= accepted), default=None)
    settled = not journey.interrupted and not journey.count_unrecorded
    return _Send(journey.message.token, accepted, began, ended, settled)


def _judge(ledger: CapLedger, cap: FrequencyCap, sends: list[_Send]) -> None:
    """Count the sends over the cap of one pair's sends (in acceptance order), documented or not."""
    for index, send in enumerate(sends):
        earlier = [e for e in sends[:index] if e.accepted > send.accepted - cap.window]
        if len(earlier) < cap.count:
            continue
        ledger.over += 1
        counted = [e for e in earlier if _surely_counted(e, send, sends[:index])]
        if len(counted) < cap.count:
            ledger.over_documented += 1
            continue
        ledger.over_promised += 1
        if len(ledger.examples) < 10:
            ledger.examples.append(
                f"{send.token} over the cap {cap}: invocation began={send.began:.3f} accepted={send.accepted:.3f} "
                f"after {[e.token for e in counted]}"
            )


def _surely_counted(earlier: _Send, send: _Send, before: list[_Send]) -> bool:
    """Whether ``earlier`` was in the count ``send``'s check read: settled before that check could begin, and no
    other invocation that sent to the pair before ``send`` ran alongside its own (whose settlement could have
    replaced its count). A send of the same invocation (one batch) surely was: the batch's check counts its own
    messages to a pair against each other."""
    if earlier.began == send.began:
        return True
    if not earlier.settled or earlier.ended is None or earlier.ended >= send.began:
        return False
    return not any(
        other.began != earlier.began and other.began < earlier.ended and (other.ended or send.began) > earlier.began
        for other in before
        if other is not earlier
    )


def rows(ledgers: list[CapLedger | None]) -> list[tuple[str, list[str]]]:
    """The printed rows, one column per run ("-" where a run had no cap)."""
    if all(lg is None for lg in ledgers):
        return []
    found: list[tuple[str, list[str]]] = []

    def row(label: str, value: Callable[[CapLedger], Any]) -> None:
        found.append((label, [str(value(lg)) if lg is not None else "-" for lg in ledgers]))

    row("marketing frequency cap (MARKETING_CAP_PER_RECIPIENT)", lambda lg: lg.cap)
    row("  marketing sends accepted / pairs", lambda lg: f"{lg.sends} / {lg.pairs}")
    row("  capped: skipped (queue) / 422 frequency_capped (API)", lambda lg: f"{lg.capped_queue} / {lg.capped_api}")
    row("  sends beyond the cap inside the window", lambda lg: lg.over)
    row("    batches in flight together, or count unwritten (documented)", lambda lg: lg.over_documented)
    row("sent over the frequency cap", lambda lg: lg.over_promised)
    return found


def as_json(ledger: CapLedger | None) -> dict[str, Any] | None:
    if ledger is None:
        return None
    return dict(ledger.__dict__) | {"failures": ledger.failures()}
