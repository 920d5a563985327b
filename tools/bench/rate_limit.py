"""The rate limiter's cost when the business number is far from its rate: what every batch pays.

Measured on the code the delivery calls (``rate_limiter.RateLimiter.acquire``, one request for a batch of ten) against
moto's server over HTTP, with a boto3 client configured as the function's (``runtime``): CPU per message with
``time.process_time`` (this process: the limiter's Python and botocore's request), wall time per batch (moto's
answer; DynamoDB's is a few milliseconds), DynamoDB requests per batch and what they cost. The warm figures of
sections 2-5 include it already: the function runs with its limiter there, at a rate it never reaches.
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


@dataclass(frozen=True, slots=True)
class LimiterCost(BatchCost):
    @property
    def usd_per_million(self) -> float:
        """One write unit per request (the item is well under 1 KB), on-demand."""
        return costs.dynamodb_per_million(self.requests / self.messages)


def measure(moto_url: str, table: str, *, batches: int = 300) -> LimiterCost:
    """``batches`` acquisitions of ten slots at one number far from its rate, as a campaign's batches are; the first
    (a cold client) is not counted."""
    from rate_limiter import RateLimiter

    limiter = RateLimiter(moto_dynamodb(moto_url), table)
    number = f"bench{uuid.uuid4().hex[:8]}"
    limiter.acquire(number, BATCH, FAR_FROM_THE_RATE, 2.0)
    walls, requests = [], 0
    cpu_before = time.process_time()
    for _ in range(batches):
        started = time.perf_counter()
        grant = limiter.acquire(number, BATCH, FAR_FROM_THE_RATE, 2.0)
        walls.append(time.perf_counter() - started)
        requests += grant.requests
        if grant.granted != BATCH or grant.error is not None:
            raise RuntimeError(f"the bench's batches must never wait for the rate: {grant}")
    return LimiterCost(batches, time.process_time() - cpu_before, Spread.of(walls), requests)


def rows(cost: LimiterCost, warm: Throughput) -> list[tuple[str, str, str]]:
    handler_us = warm.cpu_s * 1e6 / warm.messages
    return [
        ("9. Rate limiter, far from the rate (the delivery's own call, moto over HTTP)", "", ""),
        (
            "  limiter CPU per message",
            f"{cost.cpu_us_per_message:.1f} us",
            f"{cost.share_of(warm):.1%} of the handler's {handler_us / 1000:.2f} ms (section 2, which includes it)",
        ),
        ("  DynamoDB requests per batch of 10", f"{cost.requests_per_batch:.2f}", "one conditional UpdateItem"),
        ("  limiter request, wall time (moto)", spread_ms(cost.walls), "the batch waits for it once"),
        (
            "  DynamoDB cost per million messages",
            f"${cost.usd_per_million:.4f}",
            f"1 write unit per batch ({costs.PRICES_AS_OF})",
        ),
    ]
