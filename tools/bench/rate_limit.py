"""The rate limiter's cost when the business number is far from its rate: what every batch pays.

Measured on the code the delivery calls (``rate_limiter.RateLimiter.acquire`` for a batch of ten: from the container's
lease, or one request when it takes or extends one) against moto's server over HTTP, with a boto3 client configured
as the function's (``runtime``): CPU per message with ``time.process_time`` (this process: the limiter's Python and
botocore's requests), wall time per batch (moto's answer; DynamoDB's is a few milliseconds), DynamoDB requests per
batch and what they cost. One container sends a batch every ``BATCH_EVERY`` seconds of the limiter's clock (the clock
is moved on, nobody sleeps): a lease lasts at most ``rate_limiter.LEASE_SECONDS``, so how often a batch asks the table
depends on that spacing. The warm figures of sections 2-5 include the limiter already: the function runs with it
there, at a rate it never reaches, its batches back to back.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from bench import costs
from bench.batch_cost import BATCH, BatchCost, moto_dynamodb
from bench.stats import Spread, spread_ms
from bench.warm import Throughput

FAR_FROM_THE_RATE = 100_000
"""Messages per second: the bench sends a few hundred per second, so no batch ever waits for a slot."""
BATCH_EVERY = 0.25
"""Seconds between one container's batches: NXCloud answering in 0.2 s (section 3's latency), and the rest."""


@dataclass(frozen=True, slots=True)
class LimiterCost(BatchCost):
    @property
    def usd_per_million(self) -> float:
        """One write unit per request (the item is well under 1 KB), on-demand."""
        return costs.dynamodb_per_million(self.requests / self.messages)


def measure(moto_url: str, table: str, *, batches: int = 300) -> LimiterCost:
    """``batches`` acquisitions of ten slots at one number far from its rate, ``BATCH_EVERY`` apart, by one container;
    the first (a cold client) is not counted."""
    from rate_limiter import RateLimiter

    clock = _Spaced()
    limiter = RateLimiter(moto_dynamodb(moto_url), table, clock=clock)
    number = f"bench{uuid.uuid4().hex[:8]}"
    limiter.acquire(number, BATCH, FAR_FROM_THE_RATE, 2.0)
    walls, requests = [], 0
    cpu_before = time.process_time()
    for _ in range(batches):
        clock.skew += BATCH_EVERY
        started = time.perf_counter()
        grant = limiter.acquire(number, BATCH, FAR_FROM_THE_RATE, 2.0)
        walls.append(time.perf_counter() - started)
        requests += grant.requests
        if grant.granted != BATCH or grant.error is not None or max(grant.send_at) > clock():
            raise RuntimeError(f"the bench's batches must never wait for the rate: {grant}")
    return LimiterCost(batches, time.process_time() - cpu_before, Spread.of(walls), requests)


class _Spaced:
    """The wall clock, moved on by ``skew`` seconds: the batches' spacing without the wait."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return time.time() + self.skew


def rows(cost: LimiterCost, warm: Throughput) -> list[tuple[str, str, str]]:
    handler_us = warm.cpu_s * 1e6 / warm.messages
    return [
        ("9. Rate limiter, far from the rate (the delivery's own call, moto over HTTP)", "", ""),
        (
            "  limiter CPU per message",
            f"{cost.cpu_us_per_message:.1f} us",
            f"{cost.share_of(warm):.1%} of the handler's {handler_us / 1000:.2f} ms (section 2, which includes it)",
        ),
        (
            "  DynamoDB requests per batch of 10",
            f"{cost.requests_per_batch:.2f}",
            f"a conditional UpdateItem when the lease is taken or extended; a batch every {BATCH_EVERY} s",
        ),
        ("  limiter, wall time per batch (moto)", spread_ms(cost.walls), "a request's when it makes one"),
        (
            "  DynamoDB cost per million messages",
            f"${cost.usd_per_million:.4f}",
            f"1 write unit per request ({costs.PRICES_AS_OF})",
        ),
    ]
