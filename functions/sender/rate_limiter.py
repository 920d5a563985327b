"""The business number's rate, shared by every invocation of every container: one DynamoDB item per number.

Why a shared limiter: WhatsApp allows a business number a rate (80 messages per second by default, more after an
upgrade) and answers a faster sender with throttles. Sizing the queue's concurrency cannot express that rate: one
queue carries messages for several numbers with different rates, several stacks (or the API beside the queue) may send
through the same number, and what an invocation offers per second depends on NXCloud's latency. So every delivery
asks this limiter, per number, before it sends.

The algorithm is GCRA (the generic cell rate algorithm): a token bucket of ``burst`` messages refilled at ``rate``
per second, kept as a single number, the bucket's *theoretical arrival time* ``tat`` (microseconds since the epoch):
the time at which the bucket would be full again. Taking ``k`` messages at time ``now`` moves it to
``max(tat, now) + k / rate``; message ``j`` of them may go at ``max(tat, now) + j / rate - (burst - 1) / rate`` (never
before ``now``). A batch of ten at a number far from its rate therefore goes at once, and at a busy number each
message gets its own slot, spread ``1 / rate`` apart, in the order the requests reached DynamoDB: no herd at the top
of each second, and NXCloud sees a steady stream. A slot is only taken when it starts within ``horizon`` seconds (the
time the invocation can afford to wait); the rest of a batch is left for later, with the time at which the number will
have capacity again.

DynamoDB cannot compute ``max(tat, now)``, so a request is one of two conditional updates:

* the number is idle (``tat <= now``): ``SET tat = now + k / rate``, on condition that it is still idle;
* the number is busy (``tat > now``): ``ADD tat k / rate``, on condition that it is still busy and that the last of
  the ``k`` slots starts within the horizon; ``UPDATED_NEW`` gives the new ``tat``, so the slots are known.

A failed condition returns the item (``ALL_OLD``), which says which case holds now. The container remembers the last
``tat`` it saw per number to pick the likely case first, so a batch costs one request when far from the rate and
usually one (at most three) at it: one write unit per batch of ten, against the idempotency table's 3 per message.

At a number on the edge of its rate, several containers' takes and give-backs can switch it between the two cases
under each request, so the third request (``ROUNDS``) asks for neither: ``ADD tat k / rate`` on the horizon's
condition alone. It cannot lose to that switching, so a message the number has room for is never refused (an API
message answered ``429`` beside a campaign was, when the rounds ran out). Had the number gone idle, its ``tat`` was in
the past: the slots start there, so they go at once, and the number may send one burst more than the rate allows,
once.

A slot is given back (:meth:`RateLimiter.give_back`, ``ADD tat -k / rate``) when no message went out in it: no
request was made (the claim failed, or found the message sent already or in progress), or NXCloud answered without
sending (a retryable or permanent failure other than a throttle: the error table's "nothing was sent"). WhatsApp
counts the messages it sends, so a slot nothing went out in must not be lost, or every retry would slow the campaign
down by its share (a tenth of the slots under the soak's faults). ``max(tat, now)`` makes the give-back safe whatever
the time: a ``tat`` given back into the past only means the number is idle. A slot is never given back for a throttle
(the number was too fast already) or an unknown outcome (it may have been sent); an invocation killed after taking
slots leaves them unused (the number goes slower for a moment, never faster). When DynamoDB fails, the limiter fails
open (the grant says so): NXCloud's own throttle is the backstop, and its refusals are delayed like the limiter's,
never dead-lettered.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from nxcloud_wa.dynamo import CONDITION_FAILED, error_code

MICROS: Final = 1_000_000
MAX_BURST: Final = 10
"""Most messages sent back to back when the number has capacity: an SQS batch, so a number far from its rate never
waits. (NXCloud's own bucket is a second's worth or more, so ten at once stay within it.)"""
ROUNDS: Final = 3
"""Conditional updates one request may take; the last one fails only when no slot fits the horizon."""
TTL_SECONDS: Final = 86_400
"""A number's item expires a day after its last slot: numbers no longer used leave no item behind."""


@dataclass(frozen=True, slots=True)
class Grant:
    """What the limiter gave: a send time for each of the first ``granted`` messages asked for."""

    send_at: tuple[float, ...]
    """Epoch seconds, one per granted message, in the order they were asked for."""
    retry_in: float
    """Seconds until the number has capacity again: when the messages not granted may be tried."""
    requests: int
    """DynamoDB requests this took (what the soak and the bench count)."""
    error: BaseException | None = None
    """The limiter could not reach DynamoDB: everything was granted at once (fail open)."""

    @property
    def granted(self) -> int:
        return len(self.send_at)


class RateLimiter:
    """Grants send times per business number from one DynamoDB table (key ``id``: the number; TTL ``expiration``)."""

    def __init__(
        self, client: Any, table: str, *, max_burst: int = MAX_BURST, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.max_burst = max_burst
        self._clock = clock
        self._last_tat: dict[str, int] = {}
        """The last ``tat`` seen per number, so the likely case is asked first."""

    def acquire(self, number: str, wanted: int, rate: int, horizon: float) -> Grant:
        """Send times for up to ``wanted`` messages through ``number`` at ``rate`` per second, none more than
        ``horizon`` seconds from now. Never raises: a DynamoDB failure grants everything now, with the error."""
        try:
            return self._acquire(number, wanted, _Pace(rate, min(self.max_burst, rate)), horizon)
        except (ClientError, BotoCoreError) as exc:
            now = self._clock()
            return Grant((now,) * wanted, 0.0, 1, error=exc)

    def give_back(self, number: str, count: int, rate: int) -> BaseException | None:
        """Give ``count`` slots back to ``number`` (sends NXCloud answered without sending): one unconditional
        ``ADD``. Returns the error when DynamoDB failed (the slots stay spent: slower, never faster)."""
        cost = count * _Pace(rate, min(self.max_burst, rate)).interval
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": number}},
                UpdateExpression="ADD #tat :back",
                ConditionExpression="attribute_exists(#tat)",  # never an item without its expiry
                ExpressionAttributeNames={"#tat": "tat"},
                ExpressionAttributeValues={":back": {"N": str(-cost)}},
            )
        except (ClientError, BotoCoreError) as exc:
            error: BaseException = exc
            if isinstance(exc, ClientError) and error_code(exc) == CONDITION_FAILED:
                return None
            return error
        if number in self._last_tat:
            self._last_tat[number] -= cost
        return None

    def _acquire(self, number: str, wanted: int, pace: _Pace, horizon: float) -> Grant:
        now = _micros(self._clock())
        limit = now + round(horizon * MICROS) + pace.tolerance
        tat = self._last_tat.get(number, 0)
        requests = 0
        while requests < ROUNDS:
            start = max(tat, now)
            count = min(wanted, pace.fitting(start, limit))
            if count <= 0:
                break
            requests += 1
            cost = count * pace.interval
            latest_start = limit - (count - 1) * pace.interval
            if requests == ROUNDS:
                taken, tat = self._take_either(number, cost, latest_start)
            elif tat <= now:
                taken, tat = self._take_idle(number, now, cost)
            else:
                taken, tat = self._take_busy(number, now, cost, latest_start)
            self._last_tat[number] = tat
            if taken:
                rest_in = 0.0 if count == wanted else max(0.0, (tat - pace.tolerance - now) / MICROS)
                return Grant(pace.send_times(tat - cost, count, now), rest_in, requests)
        return Grant((), max(0.0, (tat - pace.tolerance - now) / MICROS), requests)

    def _take_idle(self, number: str, now: int, cost: int) -> tuple[bool, int]:
        """``tat = now + cost`` if the number is idle. Returns whether it was taken, and the ``tat`` now known."""
        return self._update(
            number,
            "SET #tat = :tat, #exp = :exp",
            "attribute_not_exists(#tat) OR #tat <= :now",
            {":tat": now + cost, ":now": now, ":exp": _expiry(now + cost)},
        )

    def _take_busy(self, number: str, now: int, cost: int, latest_start: int) -> tuple[bool, int]:
        """``tat += cost`` if the number is busy and its ``tat`` is at most ``latest_start`` (the last slot then starts
        within the horizon). As ``_take_idle``."""
        return self._update(
            number,
            "SET #exp = :exp ADD #tat :cost",
            "#tat > :now AND #tat <= :latest",
            {":cost": cost, ":now": now, ":latest": latest_start, ":exp": _expiry(latest_start + cost)},
        )

    def _take_either(self, number: str, cost: int, latest_start: int) -> tuple[bool, int]:
        """The last round: ``tat += cost`` if the last slot starts within the horizon, busy or idle. It fails only
        for the horizon, never for a number switching case under it. As ``_take_idle``."""
        return self._update(
            number,
            "SET #exp = :exp ADD #tat :cost",
            "#tat <= :latest",
            {":cost": cost, ":latest": latest_start, ":exp": _expiry(latest_start + cost)},
        )

    def _update(self, number: str, expression: str, condition: str, values: dict[str, int]) -> tuple[bool, int]:
        """One conditional update: (True, the new ``tat``), or (False, the ``tat`` found; 0 when there is no item)."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": number}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#tat": "tat", "#exp": "expiration"},
                ExpressionAttributeValues={name: {"N": str(value)} for name, value in values.items()},
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            old = (exc.response.get("Item") or {}).get("tat", {}).get("N")
            return False, int(old) if old is not None else 0
        return True, int(answer["Attributes"]["tat"]["N"])


@dataclass(frozen=True, slots=True)
class _Pace:
    """A rate as GCRA needs it, in microseconds."""

    rate: int
    burst: int

    @property
    def interval(self) -> int:
        """Microseconds between two messages at the rate."""
        return max(1, round(MICROS / self.rate))

    @property
    def tolerance(self) -> int:
        """How far ahead of its slot a message may go: ``burst - 1`` intervals."""
        return (max(1, self.burst) - 1) * self.interval

    def fitting(self, start: int, limit: int) -> int:
        """How many slots from ``start`` begin by ``limit`` (message ``j`` begins at ``start + j * interval -
        tolerance``; ``limit`` already includes the tolerance)."""
        return max(0, math.floor((limit - start) / self.interval) + 1) if start <= limit else 0

    def send_times(self, start: int, count: int, now: int) -> tuple[float, ...]:
        return tuple(max(now, start + j * self.interval - self.tolerance) / MICROS for j in range(count))


def _micros(seconds: float) -> int:
    return round(seconds * MICROS)


def _expiry(tat: int) -> int:
    return tat // MICROS + TTL_SECONDS
