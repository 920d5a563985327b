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

**With the marketing frequency cap** (``measure(..., cap="1/24h")``) every message is marketing (no catalogue: the
category is unknown) and counted: the same one request reads two keys a message (its entry and its pair's count: two
read units), and the count each message adds is built for the settlement (``Screen.counts``), whose request writes it
(one write unit a message; the write rides on the settlement's BatchWriteItem, so no request is made for it here).
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
    cap: str = ""
    """The frequency cap measured with (``1/24h``); empty: the list alone."""

    @property
    def read_units_per_message(self) -> float:
        """One per key read: the entry's, and with the cap the pair's count's."""
        return READ_UNITS_PER_MESSAGE * (2 if self.cap else 1)

    @property
    def write_units_per_message(self) -> float:
        """With the cap, each counted message's pair is written once (a Put under 1 KB, in no index)."""
        return 1.0 if self.cap else 0.0

    @property
    def usd_per_million(self) -> float:
        """On-demand request units: the reads (strongly consistent, per key) and the counts' writes."""
        return costs.dynamodb_per_million(self.write_units_per_message, self.read_units_per_message)

    def as_dict(self, warm: Throughput | None = None) -> dict[str, Any]:
        document = BatchCost.as_dict(self, warm)
        document |= {"cpu_us_per_batch": self.cpu_us_per_batch, "read_units_per_message": self.read_units_per_message}
        if self.cap:
            document |= {"cap": self.cap, "write_units_per_message": self.write_units_per_message}
        return document


def measure(moto_url: str, table: str, *, batches: int = 300, cap: str = "") -> ScreenCost:
    """``batches`` checks of ten messages whose recipients have no entry; the first (a cold client) is not counted.
    With ``cap``, every message is also counted (its pair's new count built for the settlement)."""
    from fate import Counted
    from local_stack.stack import LOCAL_SECRET
    from nxcloud_wa.audience import FrequencyCap
    from nxcloud_wa.credentials import Credentials
    from nxcloud_wa.models import parse_message
    from nxcloud_wa.suppressions import SuppressionStore
    from screen import Screen

    credentials = Credentials.from_secret(LOCAL_SECRET)
    store = SuppressionStore(moto_dynamodb(moto_url), table)
    screen = Screen(store, None, cap=FrequencyCap.parse(cap))  # no entry is found: no category asked for
    prepared = [
        [(parse_message(message_body(n * BATCH + i)), f"bench-{n}-{i}") for i in range(BATCH)]
        for n in range(DISTINCT_BATCHES)
    ]
    screen.verdicts(prepared[0], credentials.defaults, credentials)
    walls, requests_before = [], store.requests
    cpu_before = time.process_time()
    for n in range(batches):
        started = time.perf_counter()
        verdicts = screen.verdicts(prepared[n % DISTINCT_BATCHES], credentials.defaults, credentials)
        counted = [v for v in verdicts if isinstance(v, Counted)]
        screen.counts(counted)
        walls.append(time.perf_counter() - started)
        if any(v is not None for v in verdicts) and len(counted) != (BATCH if cap else 0):
            raise RuntimeError(f"the bench's recipients must not be suppressed or capped: {verdicts}")
    cpu_s = time.process_time() - cpu_before
    return ScreenCost(batches, cpu_s, Spread.of(walls), store.requests - requests_before, cap)


def rows(cost: ScreenCost, warm: Throughput) -> list[tuple[str, str, str]]:
    handler_us = warm.cpu_s * 1e6 / warm.messages
    title = (
        f"10b. The same with MarketingCapPerRecipient={cost.cap}, every message marketing and counted"
        if cost.cap
        else "10. Suppression check, no recipient on the list (the delivery's own call, moto over HTTP)"
    )
    units = (
        f"{cost.read_units_per_message:g} read units (entry, count) and {cost.write_units_per_message:g} write unit "
        "(the count, in the settlement's request) per message"
        if cost.cap
        else f"{cost.read_units_per_message:g} read unit per message, absent keys too"
    )
    return [
        (title, "", ""),
        (
            "  check CPU per message",
            f"{cost.cpu_us_per_message:.1f} us",
            f"{cost.share_of(warm):.1%} of the handler's {handler_us / 1000:.2f} ms (section 2, which includes it)",
        ),
        (
            "  check CPU per batch of 10",
            f"{cost.cpu_us_per_batch:.0f} us",
            "one BatchGetItem, ten verdicts" + (", the counts built" if cost.cap else ""),
        ),
        (
            "  DynamoDB requests per batch of 10",
            f"{cost.requests_per_batch:.2f}",
            "one strongly consistent BatchGetItem",
        ),
        ("  check, wall time per batch (moto)", spread_ms(cost.walls), "the batch waits for it once"),
        (
            "  DynamoDB cost per million messages",
            f"${cost.usd_per_million:.4f}",
            f"{units} ({costs.PRICES_AS_OF})",
        ),
    ]
