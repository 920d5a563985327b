"""Campaign mode (``make soak MODE=campaign``): N messages at once (up to :data:`BACKLOG` waiting) to one or a few
business numbers, against a simulator that enforces the numbers' rate, under the usual faults. What it adds to the
ledger, and its goals:

* **dead-lettered for throttling: 0.** A message dead-lettered as ``retries_exhausted`` after it was throttled or
  held back. Before the limiter, every throttle spent one of a message's five receives: in a long campaign healthy
  messages ended there. Other dead letters after a throttle are counted beside it with their own cause.
* **drain time within 10 % of the ideal** N / (rate x numbers): from the first message put on the queue to the last
  one's end. Sends that NXCloud failed and that were retried need slots of their own: the share of the slots they
  took is shown, and the drain time against the ideal for every send NXCloud received (the limiter's own
  efficiency).
* **NXCloud's refusals for the rate: a small fraction of its requests** (the limiter paces; NXCloud refuses only what
  arrives out of step).
* **the limiter's DynamoDB requests per message** (``UpdateItem`` attempts on the rate-limit table at the fault port,
  botocore's retries and the slots given back included), to read against docs/throughput.md's cost.
* how many queued messages waited for their number's slot, and how long (the function's ``rate_wait_ms``, the
  ``RateLimitWait`` metric): the limiter at work.

Lost messages and avoidable duplicates are the soak's own rows: 0, as ever.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Final

from soak.mix import MessageShares

THROTTLE_REASONS: Final = frozenset({"throttled", "rate_limited"})
RATE_FAULT: Final = "rate_limit"
LIMITER_OPERATION: Final = "DynamoDB.UpdateItem"
"""The limiter's one operation (acquire and give back), counted on its table."""
BACKLOG: Final = 10_000
"""Messages a campaign keeps on the queue at most: up to this many are put there at once, and beyond it the producer
tops the queue up as it drains, so the number never waits for messages. moto's queue slows down as it grows (every
receive scans it: with some 15,000 messages queued, a 50,000-message run drained at half the rate), and SQS's does
not, so a bigger backlog would measure moto."""
DRAIN_GOAL: Final = 1.10
REFUSED_GOAL: Final = 0.05
"""NXCloud's refusals for the rate, as a share of its requests, that still counts as "a small fraction"."""
BUSINESS_NUMBERS: Final = ("8618512348399", "8618512348400", "8618512348401", "8618512348402")
"""The campaign's business numbers: the local secret's first, then others NXCloud's simulator knows nothing against."""


def shares(standard: MessageShares) -> MessageShares:
    """A campaign's messages: the mix's, without the outage template. That template fails every send until the
    redrive policy dead-letters the message, so its messages end one retry delay after another, long after the
    campaign drained: they measure the retry delay, not the rate. Invalid messages, bad recipients and missing
    templates stay (a campaign has them, and they end at once). No opt-outs either: they come from callbacks, which a
    campaign runs without."""
    return replace(standard, outage=0.0, opt_out=0.0)


@dataclass
class CampaignLedger:
    """The campaign's rows (one run)."""

    rate: int
    numbers: int
    messages: int
    drain_s: float = math.nan
    ideal_s: float = math.nan
    slots_used: int = 0
    """Requests NXCloud received and did not refuse for the rate: each took a slot of a number's rate."""
    put_back: Counter[str] = field(default_factory=Counter)
    """Copies put back, by reason and code (``rate_limited number_at_rate``, ``throttled http_429``...)."""
    held_messages: int = 0
    throttled_messages: int = 0
    api_429: int = 0
    throttle_dead_letters: int = 0
    other_dead_after_throttle: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    requests: int = 0
    limiter_requests: int = 0
    waits_ms: list[float] = field(default_factory=list)
    """Each queued message's wait for its slots, for those that waited."""

    @property
    def drain_ratio(self) -> float:
        return self.drain_s / self.ideal_s if self.ideal_s else math.nan

    @property
    def refused_share(self) -> float:
        return self.refused / self.requests if self.requests else 0.0

    @property
    def limiter_per_message(self) -> float:
        return self.limiter_requests / self.messages if self.messages else 0.0

    def wait_ms(self, q: float) -> float:
        """The ``q`` quantile of the waits (0 when nothing waited)."""
        waits = sorted(self.waits_ms)
        return waits[min(len(waits) - 1, int(q * len(waits)))] if waits else 0.0

    @property
    def slot_ratio(self) -> float:
        """Drain time against the time the sends NXCloud received would take at the rate: the limiter's efficiency,
        whatever the faults made it resend."""
        ideal = self.slots_used / (self.rate * self.numbers)
        return self.drain_s / ideal if ideal else math.nan

    @property
    def retry_slots(self) -> float:
        """The share of the rate's slots taken by sends beyond one per message (retries of NXCloud's failures)."""
        return max(0, self.slots_used - self.messages) / self.slots_used if self.slots_used else 0.0

    def failures(self) -> list[str]:
        problems = []
        if self.throttle_dead_letters:
            problems.append(f"{self.throttle_dead_letters} messages dead-lettered for throttling")
        if self.refused_share > REFUSED_GOAL:
            problems.append(f"NXCloud refused {self.refused_share:.1%} of its requests for the rate")
        return problems

    def verdicts(self) -> list[str]:
        """The goals that are read, not enforced (a loaded machine stretches time): drain time."""
        if self.drain_ratio <= DRAIN_GOAL:
            return []
        return [f"drain time {self.drain_ratio:.2f}x the ideal, over the {DRAIN_GOAL:.2f}x goal"]


def account(
    journeys: Any,
    *,
    rate: int,
    numbers: int,
    upstream_requests: int,
    upstream_faults: Counter[str],
    limiter_requests: int,
) -> CampaignLedger:
    """The campaign's rows from the tracker's journeys, the simulator's counts and the limiter's requests (moto's
    fault port counts them: ``UpdateItem`` on the rate-limit table, botocore's retries included)."""
    journeys = list(journeys)
    ledger = CampaignLedger(rate=rate, numbers=numbers, messages=len(journeys))
    refused = sum(n for kind, n in upstream_faults.items() if kind.startswith(RATE_FAULT))
    ledger.refused, ledger.requests = refused, upstream_requests
    ledger.slots_used = upstream_requests - refused
    ledger.limiter_requests = limiter_requests
    ledger.ideal_s = len(journeys) / (rate * numbers)
    starts, ends = [], []
    for journey in journeys:
        _throttles(ledger, journey)
        if journey.first_in is not None:
            starts.append(journey.first_in)
        end = _end(journey)
        if end is not None:
            ends.append(end)
    if starts and ends:
        ledger.drain_s = max(ends) - min(starts)
    return ledger


def _throttles(ledger: CampaignLedger, journey: Any) -> None:
    delays: Counter[str] = journey.delays
    ledger.put_back.update(delays)
    held = any(label.startswith("rate_limited") for label in delays)
    refused = any(label.startswith("throttled") for label in delays)
    api = sum(1 for status, _ in journey.api_answers if status == 429)
    ledger.api_429 += api
    if journey.waited_ms:
        ledger.waits_ms.append(journey.waited_ms)
    ledger.held_messages += held or any(e == "rate_limited" for s, e in journey.api_answers if s == 429)
    ledger.throttled_messages += refused or any(e == "throttled" for s, e in journey.api_answers if s == 429)
    if not (delays or api) or journey.sent_at is not None or not journey.dead:
        return
    reason = journey.dead[0][0]
    if reason.startswith("retries_exhausted"):
        ledger.throttle_dead_letters += 1
    else:
        ledger.other_dead_after_throttle[reason] += 1


def _end(journey: Any) -> float | None:
    if journey.sent_at is not None:
        return float(journey.sent_at)
    if journey.dead:
        return float(journey.dead[0][1])
    if journey.api_final is not None:
        return float(journey.api_final[2])
    return None


def rows(ledgers: list[CampaignLedger | None]) -> list[tuple[str, list[str]]]:
    """The ledger's campaign rows, one column per run (nothing when no run was a campaign)."""
    runs = [lg for lg in ledgers if lg is not None]
    if not runs or len(runs) != len(ledgers):
        return []

    def row(label: str, values: list[Any]) -> tuple[str, list[str]]:
        return label, [str(v) for v in values]

    return [
        row("campaign: business numbers x messages per second", [f"{lg.numbers} x {lg.rate}" for lg in runs]),
        row("  dead-lettered for throttling (goal 0)", [lg.throttle_dead_letters for lg in runs]),
        row(
            "  other dead letters after a throttle (own cause)", [_counts(lg.other_dead_after_throttle) for lg in runs]
        ),
        row("  drain time / ideal N / rate (s)", [f"{lg.drain_s:.1f} / {lg.ideal_s:.1f}" for lg in runs]),
        row(f"  drain time vs ideal (goal <= {DRAIN_GOAL:.2f}x)", [f"{lg.drain_ratio:.3f}x" for lg in runs]),
        row("  slots taken by retries of NXCloud's failures", [f"{lg.retry_slots:.1%}" for lg in runs]),
        row("  drain time vs every send received / rate", [f"{lg.slot_ratio:.3f}x" for lg in runs]),
        row("  NXCloud: refused for the rate / requests", [f"{lg.refused} / {lg.requests}" for lg in runs]),
        row(f"  refused share (goal <= {REFUSED_GOAL:.0%})", [f"{lg.refused_share:.2%}" for lg in runs]),
        row(
            "  messages held back by the limiter / throttled",
            [f"{lg.held_messages} / {lg.throttled_messages}" for lg in runs],
        ),
        row("  copies put back (no receive spent)", [sum(lg.put_back.values()) for lg in runs]),
        *[
            row(f"    {label}", [lg.put_back.get(label, 0) for lg in runs])
            for label in sorted({k for lg in runs for k in lg.put_back})
        ],
        row(
            "  queued messages that waited for a slot, p50 / p99 wait (ms)",
            [f"{len(lg.waits_ms)}, {lg.wait_ms(0.5):.0f} / {lg.wait_ms(0.99):.0f}" for lg in runs],
        ),
        row("  API answers 429 (Retry-After)", [lg.api_429 for lg in runs]),
        row("  limiter requests (UpdateItem) per message", [f"{lg.limiter_per_message:.3f}" for lg in runs]),
    ]


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items())) or "0"


def as_json(ledger: CampaignLedger | None) -> dict[str, Any] | None:
    if ledger is None:
        return None
    return {k: v for k, v in ledger.__dict__.items() if k != "waits_ms"} | {
        "waited_messages": len(ledger.waits_ms),
        "wait_ms_p50": ledger.wait_ms(0.5),
        "wait_ms_p99": ledger.wait_ms(0.99),
        "drain_ratio": ledger.drain_ratio,
        "refused_share": ledger.refused_share,
        "limiter_requests_per_message": ledger.limiter_per_message,
        "retry_slots": ledger.retry_slots,
        "slot_ratio": ledger.slot_ratio,
        "failures": ledger.failures(),
        "verdicts": ledger.verdicts(),
    }
