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
``tat`` it saw per number to pick the likely case first: at the rate a batch costs usually one request (at most three).

**The rule, and its worst case.** The number's capacity is a timeline of slots ``1 / rate`` apart; ``tat`` is its
frontier, and a conditional update moves it past the slots a container takes, so no slot is ever taken twice. A
message goes in a slot ``v`` of its own, at a time ``t`` with ``v - (burst - 1) / rate <= t <= v``: never more than
``burst - 1`` slots early, never after its slot (a slot not used by its time is gone). So the messages that start in
any window of ``W`` seconds use distinct slots within ``W + (burst - 1) / rate`` seconds of each other: **at most
``burst + rate x W`` in any window, across every container**, ``burst = min(10, rate)``. A give-back (below) is the
one exception, as it always was: a slot whose request NXCloud answered without sending goes to a later message.

**Leases: no request far from the rate.** A block of slots may be taken ahead of need, and spent by the container that
took it under the same rule, batch after batch, without a request (:class:`_Lease`): the timeline is the same, only
who holds which slot changes, so the bound above holds unchanged. A lease is taken by the idle case, or extended by a
third update (``SET tat = new end`` on condition that ``tat`` is still the lease's end: nobody took slots since),
only while the number is far from its rate as this container sees it: every slot of the batch goes at once, this
container used at most a third of the rate since it last asked, and nobody else took slots since (it found ``tat``
where it left it). Its reach past now starts at an eighth of ``LEASE_SECONDS`` and doubles each time, up to
``LEASE_SECONDS``; once another container takes slots, or the number nears its rate, each batch takes its own slots
again, as without leases (the reach goes back to none, and the busy case appends behind the frontier). The price of a
lease is its reach: slots a container leased and did not use are lost (the number goes slower, never faster) until
the lease ends, at most ``LEASE_SECONDS`` after it was taken or extended, also when the container is frozen or
killed; and another container that arrives meanwhile finds the number busy and waits for the lease's end, at most
``LEASE_SECONDS``, once (both then take their own slots). Unused slots are not returned with a request (it would cost
what the lease saves); slots given back go into the lease.

A slot is given back (:meth:`RateLimiter.give_back`: into the container's lease while it has room, else
``ADD tat -k / rate``) when no message went out in it: no request was made (the claim failed, or found the message
sent already or in progress), or NXCloud answered without sending (a retryable or permanent failure other than a
throttle: the error table's "nothing was sent"). WhatsApp
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
"""Conditional updates one request may take before it gives up (the number's state changed under it each time)."""
LEASE_SECONDS: Final = 1.0
"""The farthest past now a lease reaches: a container that dies holding one, or stops sending, leaves the number's
slots unused for at most this long, and a container that finds the number leased waits at most this long."""
LEASE_MICROS: Final = round(LEASE_SECONDS * 1_000_000)
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
    """Grants send times per business number from one DynamoDB table (key ``id``: the number; TTL ``expiration``),
    and from the block of the number's slots this container holds (its lease), when it holds one."""

    def __init__(
        self, client: Any, table: str, *, max_burst: int = MAX_BURST, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.table = table
        self.max_burst = max_burst
        self._clock = clock
        self._seen: dict[str, int] = {}
        """The last ``tat`` seen per number, so the likely case is asked first."""
        self._leases: dict[str, _Lease] = {}
        """The block of slots this container holds per number (from its last idle take or extension)."""
        self._spans: dict[str, int] = {}
        """How far past now the next lease reaches, per number (microseconds): doubled each time the container finds
        the number as it left it, 0 once another container took slots in between."""

    def acquire(self, number: str, wanted: int, rate: int, horizon: float) -> Grant:
        """Send times for up to ``wanted`` messages through ``number`` at ``rate`` per second, none more than
        ``horizon`` seconds from now. Never raises: a DynamoDB failure grants everything now, with the error."""
        try:
            return self._acquire(number, wanted, _Pace(rate, min(self.max_burst, rate)), horizon)
        except (ClientError, BotoCoreError) as exc:
            now = self._clock()
            return Grant((now,) * wanted, 0.0, 1, error=exc)

    def give_back(self, number: str, count: int, rate: int) -> BaseException | None:
        """Give ``count`` slots back to ``number`` (sends NXCloud answered without sending): into this container's
        lease while it runs with room left (no request), else one unconditional ``ADD`` on the table. Returns the
        error when DynamoDB failed (the slots stay spent: slower, never faster)."""
        cost = count * _Pace(rate, min(self.max_burst, rate)).interval
        lease = self._leases.pop(number, None)
        if lease is not None and lease.tat < lease.end and lease.end > _micros(self._clock()):
            lease.give_back(cost)  # a lease with room left: the number's tat is its end, this container's to spend
            self._leases[number] = lease
            return None
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
        if number in self._seen:
            self._seen[number] -= cost
        return None

    def _acquire(self, number: str, wanted: int, pace: _Pace, horizon: float) -> Grant:
        now = _micros(self._clock())
        limit = now + round(horizon * MICROS) + pace.tolerance
        lease = self._leases.get(number)
        grant = lease.spend(wanted, pace, now, limit) if lease is not None else None
        return grant if grant is not None else self._ask(number, wanted, pace, now, limit)

    def _ask(self, number: str, wanted: int, pace: _Pace, now: int, limit: int) -> Grant:
        """Up to ``ROUNDS`` conditional updates (:meth:`_take`), each after the ``tat`` the last one found."""
        tat = self._seen.get(number, 0)
        reach = self._spans.get(number, 0)
        requests, contended = 0, False
        while requests < ROUNDS:
            held = self._leases.get(number)
            mine = held is not None and held.end == tat > now and (reach > 0 or held.tat < held.end)
            start = max(held.tat if held is not None and mine else tat, now)
            count = min(wanted, pace.fitting(start, limit))
            if count <= 0:
                break
            requests += 1
            # mine: a lease still the number's frontier, worth extending (growing, or room left in it)
            taken = self._take(
                number, held if mine else None, tat, _Ask(now, start, count * pace.interval, reach, limit), pace
            )
            if isinstance(taken, int):  # another container moved the tat (a lease held stays this container's)
                tat = self._seen[number] = taken
                contended = True
                continue
            self._seen[number] = taken.end
            needed = taken.start + count * pace.interval
            far = needed - pace.interval - pace.tolerance <= now
            quiet = held is not None and held.quiet(now)
            self._grow(number, far and quiet and taken.alone and not contended, count * pace.interval)
            if far:  # the block is this container's to spend until its end, and to extend while it is the number's
                self._leases[number] = _Lease(taken.origin, taken.end, needed, now, count * pace.interval)
            else:
                self._leases.pop(number, None)
            rest_in = 0.0 if count == wanted else max(0.0, (needed - pace.tolerance - now) / MICROS)
            return Grant(pace.send_times(taken.start, count, now), rest_in, requests)
        return Grant((), max(0.0, (tat - pace.tolerance - now) / MICROS), requests)

    def _take(self, number: str, mine: _Lease | None, tat: int, ask: _Ask, pace: _Pace) -> _Block | int:
        """One conditional update: extend this container's lease while the number's ``tat`` is still its end, take a
        new block when the number is idle, or take the batch's slots behind the frontier (busy: as without leases).
        A block reaches past the batch (a lease) only while every slot of the batch goes at once. Returns the block
        taken, or the ``tat`` found."""
        needed = ask.start + ask.cost
        far = needed - pace.interval - pace.tolerance <= ask.now
        end = max(needed, ask.now + ask.reach) if far else needed
        if mine is not None:
            taken, found = self._extend(number, mine.end, end)
            return _Block(ask.start, end, mine.start, alone=True) if taken else found
        if tat <= ask.now:
            taken, found = self._take_idle(number, ask.now, end)
            alone = number in self._seen and found == self._seen[number]  # nobody took since this container looked
            return _Block(ask.now, end, ask.now, alone) if taken else found
        latest = ask.limit - ask.cost + pace.interval  # the last slot then starts within the horizon
        taken, found = self._take_busy(number, ask.now, ask.cost, latest)
        if not taken:
            return found
        start, held = found - ask.cost, self._leases.get(number)
        return _Block(start, found, start, alone=held is not None and start == held.end)

    def _grow(self, number: str, alone: bool, batch: int) -> None:
        """Double the next lease's reach while this container finds the number as it left it, from an eighth of
        ``LEASE_SECONDS`` (or two batches' worth) up to ``LEASE_SECONDS``; back to none (each batch its own slots) once
        another container took some."""
        reach = self._spans.get(number, 0)
        self._spans[number] = min(max(2 * reach, 2 * batch, LEASE_MICROS // 8), LEASE_MICROS) if alone else 0

    def _extend(self, number: str, end: int, new_end: int) -> tuple[bool, int]:
        """``tat = new_end`` if it is still ``end``, the end of this container's lease (nobody took slots since)."""
        return self._update(
            number,
            "SET #tat = :tat, #exp = :exp",
            "#tat = :end",
            {":tat": new_end, ":end": end, ":exp": _expiry(new_end)},
        )

    def _take_idle(self, number: str, now: int, end: int) -> tuple[bool, int]:
        """``tat = end`` if the number is idle. Returns whether it was taken, and the ``tat`` it found (the old one)."""
        return self._update(
            number,
            "SET #tat = :tat, #exp = :exp",
            "attribute_not_exists(#tat) OR #tat <= :now",
            {":tat": end, ":now": now, ":exp": _expiry(end)},
            returns="UPDATED_OLD",
        )

    def _take_busy(self, number: str, now: int, cost: int, latest_start: int) -> tuple[bool, int]:
        """``tat += cost`` if the number is busy and its ``tat`` is at most ``latest_start`` (the last slot then starts
        within the horizon). Returns whether it was taken, and the ``tat`` now known."""
        return self._update(
            number,
            "SET #exp = :exp ADD #tat :cost",
            "#tat > :now AND #tat <= :latest",
            {":cost": cost, ":now": now, ":latest": latest_start, ":exp": _expiry(latest_start + cost)},
        )

    def _update(
        self, number: str, expression: str, condition: str, values: dict[str, int], returns: str = "UPDATED_NEW"
    ) -> tuple[bool, int]:
        """One conditional update: (True, the ``tat`` ``returns`` names), or (False, the ``tat`` found); 0 for none."""
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": number}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames={"#tat": "tat", "#exp": "expiration"},
                ExpressionAttributeValues={name: {"N": str(value)} for name, value in values.items()},
                ReturnValues=returns,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            return False, _tat(exc.response.get("Item"))
        return True, _tat(answer.get("Attributes"))


@dataclass(frozen=True, slots=True)
class _Ask:
    """One request's terms: at ``now``, ``cost`` of the number's time (microseconds) from ``start``, a lease's
    ``reach`` past now, the last slot starting by ``limit``."""

    now: int
    start: int
    cost: int
    reach: int
    limit: int


@dataclass(frozen=True, slots=True)
class _Block:
    """What a successful request took: the batch's slots from ``start``, this container's up to ``end``; ``origin``:
    where its lease begins; ``alone``: nobody else took slots since this container last asked."""

    start: int
    end: int
    origin: int
    alone: bool


@dataclass(slots=True)
class _Lease:
    """A block of the number's slots this container took ahead, ``[start, end)``, spent up to ``tat`` by the same
    rule as the table's (each message at a slot of its own, never after it), by this container alone."""

    start: int
    end: int
    tat: int
    taken_at: int
    """When the table was last asked (microseconds)."""
    spent: int
    """Slots spent since, as the number's time they take (microseconds): what this container uses of the rate."""

    def quiet(self, now: int) -> bool:
        """This container used at most a third of the number's rate since it last asked the table: far from the rate, a
        lease costs the number nothing this container would not leave unused anyway."""
        return 3 * self.spent <= now - self.taken_at

    def spend(self, wanted: int, pace: _Pace, now: int, limit: int) -> Grant | None:
        """Send times from the block, no request: for as many of ``wanted`` as start by ``limit``, or None when
        those do not all fit in the block (the table is asked)."""
        start = max(self.tat, now)
        count = min(wanted, pace.fitting(start, limit))
        if start + count * pace.interval > self.end:
            return None
        self.tat = start + count * pace.interval
        self.spent += count * pace.interval
        rest_in = 0.0 if count == wanted else max(0.0, (self.tat - pace.tolerance - now) / MICROS)
        return Grant(pace.send_times(start, count, now), rest_in, 0)

    def give_back(self, cost: int) -> None:
        self.tat = max(self.start, self.tat - cost)
        self.spent = max(0, self.spent - cost)


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


def _tat(item: dict[str, Any] | None) -> int:
    found = (item or {}).get("tat", {}).get("N")
    return int(found) if found is not None else 0
