"""The 131049 retries of a soak run (docs/audience.md, "Meta's marketing limit"): injected, fired, accounted for.

* **injected**: :data:`LIMIT_OUTCOME` makes the simulator fail a share of the marketing template's messages with
  131049 (ahead of the random outcomes; the opt-out groups' own failures still come first, so it meets the
  ``stop_click`` recipients' marketing messages), the retries too: a retry that meets the limit again is final;
* **fired**: :class:`RetryFirer` runs the local due-schedules runner (``local_stack.schedules``) every
  :data:`FIRE_EVERY_S` seconds with the clock a day ahead, so every schedule the webhook creates is fired at once, and
  once more at the end (:meth:`RetryFirer.settle`) until none is left and the send queue is quiet;
* **accounted for** (:func:`tally`, read from the messages table at the end): the failures marked with a retry
  (scheduled), the retries' send records (sent), their skip records (skipped: the recipient opted out meanwhile),
  and what is neither: **lost** (goal 0). The ledger's duplicate count leaves the retries out
  (:attr:`RetryTally.resent`): a message sent again after 131049 is sent twice by design.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final

from local_stack.stack import LocalStack
from nxcloud_wa.dynamo import plain
from nxcloud_wa.idempotency_keys import COMPLETED, record_id
from nxcloud_wa.messages_table import SendRecord
from nxcloud_wa.retries import retry_key, root_key
from soak.journal import token_in
from soak.mix import PROMO_TEMPLATE

LIMIT_OUTCOME: Final = {"final": "failed", "code": 131049, "template": PROMO_TEMPLATE, "probability": 0.3}
"""Meta's per-user marketing limit for about a third of the marketing messages that reach the random outcomes."""
FIRE_EVERY_S: Final = 1.0
AHEAD_S: Final = 25 * 3600
"""How far ahead the runner's clock is: past the default delay (24 hours), so a schedule is due when it exists."""


class RetryFirer:
    """Fires the stack's due retry schedules in a thread of its own (the deployed path is Scheduler itself)."""

    def __init__(self, stack: LocalStack) -> None:
        self.schedules = stack.schedules(clock=lambda: time.time() + AHEAD_S)
        self.fired = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retry-firer", daemon=True)

    def start(self) -> RetryFirer:
        self._thread.start()
        return self

    def fire(self) -> int:
        """Fire what is due now; how many."""
        with self._lock:
            fired = len(self.schedules.fire_due())
            self.fired += fired
            return fired

    def pending(self) -> int:
        with self._lock:
            return len(self.schedules.pending())

    def _loop(self) -> None:
        while not self._stop.wait(FIRE_EVERY_S):
            try:
                self.fire()
            except Exception:  # an injected AWS fault on moto's side: the next round fires it  # noqa: S112
                continue

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class RetryTally:
    """What the messages table says of the run's 131049 retries."""

    scheduled: int = 0
    sent: int = 0
    skipped: int = 0
    final: int = 0
    """131049 failures left final (no retry left, or not marketing)."""
    resent: Counter[str] = field(default_factory=Counter)
    """Retries sent, by the soak's message token."""

    ended: int = 0
    """Retries that ended otherwise: found in the dead-letter queue (the redrive policy's dead letters included, after
    kills), or sent and settled without a send record (an unknown outcome, a failure: their keys' idempotency records
    say so)."""

    @property
    def lost(self) -> int:
        return max(0, self.scheduled - self.sent - self.skipped - self.ended)


def tally(
    dynamodb: Any, table: str, idempotency_table: str = "", dead: frozenset[tuple[str, int]] = frozenset()
) -> RetryTally:
    """Read the whole messages table (a local one: a scan is fine here) and count. A retry with neither a send record
    nor a skip record ended otherwise when it is in ``dead`` (the dead letters drained, as (original message id,
    attempt)) or its key's idempotency record is settled (``idempotency_table``): dead-lettered, an unknown outcome
    among them (NXCloud may have accepted it, so its token counts as resent too)."""
    found = RetryTally()
    scheduled: dict[tuple[str, int], dict[str, Any]] = {}
    sent: set[tuple[str, int]] = set()
    sends: dict[str, dict[str, Any]] = {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page.get("Items", []):
            item_id = item["id"]["S"]
            if item_id.startswith("status#") and _is_131049(item):
                if "retry_attempt" in item:
                    scheduled[(item_id.removeprefix("status#"), int(item["retry_attempt"]["N"]))] = item
                else:
                    found.final += 1
            elif item.get("kind", {}).get("S") == "send":
                sends[item_id] = item
                if "retry_of" in item:
                    sent.add((item["retry_of"]["S"], int(item["attempt"]["N"])))
                    token = token_in(item.get("retry_request", {}).get("S"))
                    if token:
                        found.resent[token] += 1
            elif item_id.startswith("skip#") and "#retry" in item_id:
                found.skipped += 1
    # A retry's mark is on the attempt it follows; its send names the original: count each retry once, by attempt.
    found.scheduled, found.sent = len(scheduled), len(sent)
    if idempotency_table:
        _count_ended(found, dynamodb, idempotency_table, [(sends.get(a), n) for a, n in scheduled], sent, dead=dead)
    return found


def _count_ended(
    found: RetryTally,
    dynamodb: Any,
    idempotency_table: str,
    scheduled: list[tuple[dict[str, Any] | None, int]],
    sent: set[tuple[str, int]],
    *,
    dead: frozenset[tuple[str, int]],
) -> None:
    """The retries (the failed attempt's send item, the attempt) without a send record that were dead-lettered or
    whose key's idempotency record is settled: ended otherwise."""
    for failed, attempt in scheduled:
        if failed is None:
            continue
        record = SendRecord.from_image(plain(failed))
        retry = (record.retry_of or record.message_id, attempt)
        if retry in sent:
            continue
        key = record_id(retry_key(root_key(record), attempt))
        stored = dynamodb.get_item(TableName=idempotency_table, Key={"id": {"S": key}}, ConsistentRead=True)
        if retry in dead or stored.get("Item", {}).get("status", {}).get("S") == COMPLETED:
            found.ended += 1
            token = token_in(record.retry_request)
            if token:
                found.resent[token] += 1


def _is_131049(item: dict[str, Any]) -> bool:
    errors = item.get("errors", {}).get("L", [])
    return item.get("status", {}).get("S") == "failed" and any(
        e.get("M", {}).get("code", {}).get("N") == "131049" for e in errors
    )
