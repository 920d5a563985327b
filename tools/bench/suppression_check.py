"""The suppression check's cost: what every batch pays when none of its recipients is on the list.

Measured on the code the delivery calls (``screen.Screen.verdicts``: the batch's pairs in one strongly consistent
BatchGetItem through :class:`nxcloud_wa.suppressions.SuppressionStore`, then a verdict per message) against moto's
server over HTTP, with a boto3 client configured as the function's (``runtime``: the claim's client, no client-side
validation): CPU per message and per batch of ten with ``time.process_time`` (this process: the check's Python and
botocore's request), wall time per batch (moto's answer; DynamoDB's is a few milliseconds), DynamoDB requests per
batch (``SuppressionStore.requests``) and what they cost. No recipient has an entry, the common case: the catalogue is
then never asked for a category (an entry found costs one cached catalogue lookup more, for that message only).

**How the read is billed.** DynamoDB's developer guide ("DynamoDB read and write operations", capacity unit consumption
for reads) bills BatchGetItem as one GetItem per key, each item's size rounded up to the next 4 KB: a strongly
consistent read of a key costs one read unit whether the item is there (an entry is well under 4 KB) or not. So the
check costs one read request unit per message, not one per batch: ten per batch of ten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from bench import costs
from bench.batch_cost import BATCH, BatchCost, moto_dynamodb
from bench.events import message_body
from bench.stats import Spread, spread_ms
from bench.warm import Throughput

READ_UNITS_PER_MESSAGE: Final = 1.0
"""A strongly consistent read of one key, item absent or under 4 KB (see the module's docstring)."""
DISTINCT_BATCHES: Final = 50
"""Batches of different recipients the bench cycles through (built before the clock starts)."""


@dataclass(frozen=True, slots=True)
class ScreenCost(BatchCost):
    @property
    def usd_per_million(self) -> float:
        """On-demand read request units: one per message (strongly consistent, per key)."""
        return costs.dynamodb_per_million(0.0, READ_UNITS_PER_MESSAGE)

    def as_dict(self, warm: Throughput | None = None) -> dict[str, Any]:
        document = BatchCost.as_dict(self, warm)
        document |= {"cpu_us_per_batch": self.cpu_us_per_batch, "read_units_per_message": READ_UNITS_PER_MESSAGE}
        return document


def measure(moto_url: str, table: str, *, batches: int = 300) -> ScreenCost:
    """``batches`` checks of ten messages whose recipients have no entry; the first (a cold client) is not counted."""
    from local_stack.stack import LOCAL_SECRET
    from nxcloud_wa.credentials import Credentials
    from nxcloud_wa.models import parse_message
    from nxcloud_wa.suppressions import SuppressionStore
    from screen import Screen

    credentials = Credentials.from_secret(LOCAL_SECRET)
    store = SuppressionStore(moto_dynamodb(moto_url), table)
    screen = Screen(store, None)  # no entry is found, so no category is asked for
    prepared = [[parse_message(message_body(n * BATCH + i)) for i in range(BATCH)] for n in range(DISTINCT_BATCHES)]
    screen.verdicts(prepared[0], credentials.defaults, credentials)
    walls, requests_before = [], store.requests
    cpu_before = time.process_time()
    for n in range(batches):
        started = time.perf_counter()
        verdicts = screen.verdicts(prepared[n % DISTINCT_BATCHES], credentials.defaults, credentials)
        walls.append(time.perf_counter() - started)
        if any(v is not None for v in verdicts):
            raise RuntimeError(f"the bench's recipients must not be suppressed: {verdicts}")
    cpu_s = time.process_time() - cpu_before
    return ScreenCost(batches, cpu_s, Spread.of(walls), store.requests - requests_before)


def rows(cost: ScreenCost, warm: Throughput) -> list[tuple[str, str, str]]:
    handler_us = warm.cpu_s * 1e6 / warm.messages
    return [
        ("10. Suppression check, no recipient on the list (the delivery's own call, moto over HTTP)", "", ""),
        (
            "  check CPU per message",
            f"{cost.cpu_us_per_message:.1f} us",
            f"{cost.share_of(warm):.1%} of the handler's {handler_us / 1000:.2f} ms (section 2, which includes it)",
        ),
        ("  check CPU per batch of 10", f"{cost.cpu_us_per_batch:.0f} us", "one BatchGetItem, ten verdicts"),
        (
            "  DynamoDB requests per batch of 10",
            f"{cost.requests_per_batch:.2f}",
            "one strongly consistent BatchGetItem",
        ),
        ("  check, wall time per batch (moto)", spread_ms(cost.walls), "the batch waits for it once"),
        (
            "  DynamoDB cost per million messages",
            f"${cost.usd_per_million:.4f}",
            f"{READ_UNITS_PER_MESSAGE:g} read unit per message, absent keys too ({costs.PRICES_AS_OF})",
        ),
    ]
