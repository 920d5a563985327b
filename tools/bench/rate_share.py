"""What a running campaign does to the API's messages on the same business number: how long they wait for a slot.

Every message, from the queue or the API, takes its send time from its number's limiter
(``functions/sender/rate_limiter.py``). The campaign engine feeds the queue at the campaign's rate, at most
``CampaignRateShare`` (0.8) of the number's, so the number keeps the rest for everything else (docs/campaigns.md).
Lambda containers share no CPU, so an API call's other costs (its checks, NXCloud's answer) are the same with or
without a campaign: its wait for a slot is what a campaign changes, and this section measures it.

The real limiter runs against moto's DynamoDB over HTTP on a simulated clock, so the figures are the limiter's
arithmetic, not this machine's speed: for :data:`SECONDS` simulated seconds at the default rate (80 per second),
the queue's messages arrive at the campaign's rate and are taken every :data:`POLL_S` seconds in batches of up to
ten, waiting at most ``CAMPAIGN_WAIT_SECONDS`` for a slot (a campaign's rows; the flooded queue's plain messages
wait as long as an API message), a message not granted within its wait coming back when the limiter says, while
API messages arrive at random (:data:`API_PER_S` a second, a fixed seed) and each asks for one slot. Plain messages
at twice the rate are what a queue flooded without the engine looks like; a campaign's rows at twice the rate, what
its backlog looks like when a resume makes the rows put back during the pause visible at once.
"""

from __future__ import annotations

import heapq
import random
import uuid
from dataclasses import dataclass
from typing import Any, Final

RATE: Final = 80
"""The number's rate: the stack's default ``MessagesPerSecond``."""
SECONDS: Final = 60.0
POLL_S: Final = 0.1
API_PER_S: Final = 2.0
API_SEED: Final = "api"
SCENARIOS: Final = (("no campaign", 0.0, True), ("campaign at 80 % (the default share)", 0.8, True),
                    ("campaign at 100 % (no share)", 1.0, True),
                    ("a campaign's backlog at 200 % (after a resume)", 2.0, True),
                    ("queue flooded at 200 % (no engine)", 2.0, False))  # fmt: skip
"""(name, the queue's messages as a share of the rate, whether they are a campaign's rows)."""


@dataclass(frozen=True, slots=True)
class ShareRun:
    """One scenario: the API messages' waits (seconds), how many the limiter could not place within the wait (the
    API's 429), and the queue's messages granted per simulated second."""

    name: str
    share: float
    waits: tuple[float, ...]
    refused: int
    queue_per_s: float

    def percentile(self, p: float) -> float:
        ordered = sorted(self.waits)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "campaign_share": self.share,
            "api_messages": len(self.waits) + self.refused,
            "api_wait_p50_ms": self.percentile(50) * 1000,
            "api_wait_p99_ms": self.percentile(99) * 1000,
            "api_wait_max_ms": max(self.waits, default=0.0) * 1000,
            "api_refused": self.refused,
            "queue_granted_per_second": self.queue_per_s,
        }


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def measure(dynamodb: Any, table: str) -> list[ShareRun]:
    """Every scenario of :data:`SCENARIOS`, each on a number of its own (``dynamodb``: a client of the limiter's
    table's DynamoDB)."""
    return [_run(dynamodb, table, name, share, campaign) for name, share, campaign in SCENARIOS]


def _run(dynamodb: Any, table: str, name: str, share: float, campaign: bool) -> ShareRun:
    from delivery import CAMPAIGN_WAIT_SECONDS
    from rate_limiter import RateLimiter
    from settings import DEFAULT_RATE_WAIT_SECONDS

    clock = _Clock()
    limiter = RateLimiter(dynamodb, table, clock=clock)
    number = f"share{uuid.uuid4().hex[:8]}"
    start = clock.now
    arrivals = _queue_arrivals(start, share)
    api = _api_arrivals(start, random.Random(API_SEED))  # the same arrivals in every scenario
    events = sorted([(t, "api") for t in api] + [(start + k * POLL_S, "poll") for k in range(int(SECONDS / POLL_S))])
    waits: list[float] = []
    refused = granted = 0
    for at, kind in events:
        clock.now = at
        if kind == "api":
            grant = limiter.acquire(number, 1, RATE, DEFAULT_RATE_WAIT_SECONDS)
            if grant.granted:
                waits.append(max(0.0, grant.send_at[0] - at))
            else:
                refused += 1
            continue
        granted += _poll(
            limiter, number, arrivals, at, CAMPAIGN_WAIT_SECONDS if campaign else DEFAULT_RATE_WAIT_SECONDS
        )
    return ShareRun(name, share, tuple(waits), refused, granted / SECONDS)


def _queue_arrivals(start: float, share: float) -> list[float]:
    """When each queued message becomes visible (a heap): evenly at ``share`` x the rate."""
    count = int(SECONDS * RATE * share)
    return [start + i / (RATE * share) for i in range(count)] if share else []


def _api_arrivals(start: float, rng: random.Random) -> list[float]:
    found, at = [], start
    while True:
        at += rng.expovariate(API_PER_S)
        if at >= start + SECONDS:
            return found
        found.append(at)


def _poll(limiter: Any, number: str, arrivals: list[float], now: float, wait: float) -> int:
    """Take the visible messages in batches of ten; those not granted come back when the limiter says (the sender
    puts them back delayed, at least a second: here at least one poll, a kinder queue). Returns how many were
    granted."""
    granted = 0
    while arrivals and arrivals[0] <= now:
        batch = []
        while arrivals and arrivals[0] <= now and len(batch) < 10:
            batch.append(heapq.heappop(arrivals))
        grant = limiter.acquire(number, len(batch), RATE, wait)
        granted += grant.granted
        for _ in batch[grant.granted :]:
            heapq.heappush(arrivals, now + max(grant.retry_in, POLL_S))
    return granted


def rows(runs: list[ShareRun]) -> list[tuple[str, str, str]]:
    found = [("12. The number shared: API messages' slot wait during a campaign (the limiter, moto, simulated clock)",
              "", "")]  # fmt: skip
    for run in runs:
        found.append(
            (
                f"  {run.name}",
                f"p50 {run.percentile(50) * 1000:.0f} ms, p99 {run.percentile(99) * 1000:.0f} ms",
                f"{len(run.waits) + run.refused} API messages at {API_PER_S:g}/s, {run.refused} refused (429); "
                f"queue granted {run.queue_per_s:.1f}/s of {RATE}/s",
            )
        )
    return found
