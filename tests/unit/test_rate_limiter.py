"""The business numbers' limiter (GCRA in one DynamoDB item per number) against moto's DynamoDB, with a clock of the
test's own: what it grants, when, and what it never grants."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from rate_limiter import MAX_BURST, RateLimiter

TABLE = "rate"
NUMBER = "8618512348399"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def offsets(grant: Any, clock: Clock) -> list[float]:
    return [round(at - clock.now, 4) for at in grant.send_at]


def test_a_batch_at_an_idle_number_goes_at_once_for_one_request(dynamodb: Any) -> None:
    clock = Clock()
    grant = RateLimiter(dynamodb, TABLE, clock=clock).acquire(NUMBER, 10, 80, horizon=2.0)

    assert offsets(grant, clock) == [0.0] * 10
    assert (grant.requests, grant.retry_in, grant.error) == (1, 0.0, None)
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": NUMBER}})["Item"]
    assert int(item["tat"]["N"]) == round((clock.now + 10 / 80) * 1_000_000)  # the bucket refills in 10 intervals
    assert int(item["expiration"]["N"]) > clock.now + 86_000


def test_a_busy_number_gives_each_message_its_slot_one_interval_apart(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    limiter.acquire(NUMBER, 10, 50, horizon=2.0)  # the burst: the bucket is empty now

    grant = limiter.acquire(NUMBER, 10, 50, horizon=2.0)

    assert offsets(grant, clock) == [round(0.02 * (j + 1), 4) for j in range(10)]
    assert grant.requests == 1  # it knew the number was busy: straight to the busy case


def test_slots_are_only_taken_within_the_horizon_and_the_rest_learn_when_to_come_back(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    granted = [limiter.acquire(NUMBER, 10, 10, horizon=1.0) for _ in range(3)]

    # 10 per second, a burst of 10: ten at once, then a slot every 0.1 s up to 1.0 s, then nothing.
    assert [g.granted for g in granted] == [10, 10, 0]
    assert offsets(granted[1], clock) == [round(0.1 * (j + 1), 4) for j in range(10)]
    assert granted[2].send_at == ()
    assert granted[2].retry_in == pytest.approx(1.1)  # when the next slot starts


def test_part_of_a_batch_is_granted_when_only_part_fits(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    limiter.acquire(NUMBER, 10, 10, horizon=0.5)

    grant = limiter.acquire(NUMBER, 10, 10, horizon=0.5)

    assert offsets(grant, clock) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert grant.retry_in == pytest.approx(0.6)  # the other five: the slot after the last one granted


def test_the_number_is_idle_again_once_its_slots_are_past(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    limiter.acquire(NUMBER, 10, 10, horizon=1.0)
    limiter.acquire(NUMBER, 10, 10, horizon=1.0)
    clock.now += 5

    grant = limiter.acquire(NUMBER, 10, 10, horizon=1.0)

    assert offsets(grant, clock) == [0.0] * 10
    assert grant.requests == 1


def test_containers_with_stale_views_never_share_a_slot(dynamodb: Any) -> None:
    """Two containers, each with its own memory of the number: the conditions keep their slots apart."""
    clock = Clock()
    first, second = RateLimiter(dynamodb, TABLE, clock=clock), RateLimiter(dynamodb, TABLE, clock=clock)
    slots: list[float] = []
    for turn in range(8):
        grant = (first if turn % 2 else second).acquire(NUMBER, 10, 50, horizon=2.0)
        assert grant.requests <= 2
        slots += grant.send_at

    assert len(slots) == 80
    assert_within_rate(slots, rate=50, burst=MAX_BURST)


def test_a_number_switching_case_under_every_round_still_grants_what_fits(dynamodb: Any) -> None:
    """Another container's takes and give-backs turn the number busy, idle, busy again just before each of this
    container's requests (what the campaign-file soak met: an API message refused 429 beside a campaign). The last
    round asks for neither case, so the slots are granted, and still apart from the other container's."""
    clock = Clock()
    rival = RateLimiter(dynamodb, TABLE, clock=clock)
    rival_slots: list[float] = []
    moves = [
        lambda: rival_slots.extend(rival.acquire(NUMBER, 10, 80, horizon=2.0).send_at),  # busy
        lambda: (rival.give_back(NUMBER, 10, 80), rival_slots.clear()),  # idle again: nothing went out
        lambda: rival_slots.extend(rival.acquire(NUMBER, 10, 80, horizon=2.0).send_at),  # busy again
    ]

    class Interleaved:
        """This container's DynamoDB: the rival moves before each of its requests."""

        def update_item(self, **request: Any) -> Any:
            if moves:
                moves.pop(0)()
            return dynamodb.update_item(**request)

    grant = RateLimiter(Interleaved(), TABLE, clock=clock).acquire(NUMBER, 5, 80, horizon=2.0)

    assert (grant.granted, grant.requests) == (5, 3)
    assert len(rival_slots) == 10
    assert_within_rate(rival_slots + list(grant.send_at), rate=80, burst=MAX_BURST)


def test_numbers_have_clocks_of_their_own_and_their_own_rates(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    limiter.acquire(NUMBER, 10, 5, horizon=0.0)

    other = limiter.acquire("85291234867", 10, 1000, horizon=0.0)
    slow = limiter.acquire(NUMBER, 10, 5, horizon=0.0)

    assert other.granted == 10
    assert slow.granted == 0
    # 5 per second, a burst of 5: five went at once, the bucket is full again 1 s later, the next one may go at 0.2 s.
    assert slow.retry_in == pytest.approx(0.2)


def test_a_rate_below_the_batch_size_bursts_no_more_than_its_rate(dynamodb: Any) -> None:
    clock = Clock()
    grant = RateLimiter(dynamodb, TABLE, clock=clock).acquire(NUMBER, 10, 2, horizon=10.0)

    assert offsets(grant, clock) == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def test_slots_given_back_go_to_the_next_messages(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    limiter.acquire(NUMBER, 10, 10, horizon=2.0)

    assert limiter.give_back(NUMBER, 4, 10) is None  # four sends NXCloud answered without sending
    grant = RateLimiter(dynamodb, TABLE, clock=clock).acquire(NUMBER, 10, 10, horizon=2.0)

    # the bucket lost 6 tokens, not 10: 4 go at once, then one every 0.1 s
    assert offsets(grant, clock) == [0.0] * 4 + [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]


def test_a_give_back_never_creates_an_item(dynamodb: Any) -> None:
    assert RateLimiter(dynamodb, TABLE, clock=Clock()).give_back(NUMBER, 3, 10) is None
    assert "Item" not in dynamodb.get_item(TableName=TABLE, Key={"id": {"S": NUMBER}})


def test_dynamodb_failing_grants_everything_now_and_says_why() -> None:
    class Failing:
        def update_item(self, **_: Any) -> None:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem")

    clock = Clock()
    grant = RateLimiter(Failing(), TABLE, clock=clock).acquire(NUMBER, 3, 80, horizon=2.0)

    assert offsets(grant, clock) == [0.0, 0.0, 0.0]
    assert isinstance(grant.error, ClientError)


def assert_within_rate(slots: list[float], *, rate: int, burst: int) -> None:
    """A token bucket of ``burst`` refilled at ``rate`` would have let every one of these through."""
    start = min(slots)
    tokens, last = float(burst), 0.0
    for at in sorted(round(slot - start, 6) for slot in slots):
        tokens = min(float(burst), tokens + (at - last) * rate)
        last = at
        assert tokens >= 1 - 1e-3, f"the slot {at} s in exceeds the rate"
        tokens -= 1
