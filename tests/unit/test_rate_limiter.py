"""The business numbers' limiter (GCRA in one DynamoDB item per number) against moto's DynamoDB, with a clock of the
test's own: what it grants, when, and what it never grants."""

from __future__ import annotations

import random
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rate_limiter import LEASE_SECONDS, MAX_BURST, RateLimiter

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


def test_a_container_alone_far_from_the_rate_leases_slots_and_spends_them_without_a_request(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    requests = []
    for _ in range(40):  # 8 messages every 0.1 s at a number allowed 1,000 per second
        grant = limiter.acquire(NUMBER, 8, 1000, horizon=2.0)
        assert offsets(grant, clock) == [0.0] * 8  # far from the rate: every batch goes at once
        requests.append(grant.requests)
        clock.now += 0.1

    assert requests[:2] == [1, 1]  # the first batches take their own slots, as before
    assert sum(requests[20:]) <= 2  # then the lease (up to a second of the number's slots) covers batch after batch
    item = dynamodb.get_item(TableName=TABLE, Key={"id": {"S": NUMBER}})["Item"]
    assert int(item["tat"]["N"]) <= round((clock.now + LEASE_SECONDS) * 1_000_000)  # never more than a second ahead


def test_a_lease_keeps_other_containers_out_of_its_slots_for_at_most_its_length(dynamodb: Any) -> None:
    clock = Clock()
    alone = RateLimiter(dynamodb, TABLE, clock=clock)
    slots: list[float] = []
    for _ in range(20):
        slots += alone.acquire(NUMBER, 10, 100, horizon=2.0).send_at
        clock.now += 0.4  # a quarter of the rate: far from it, so the lease grows to a second

    other = RateLimiter(dynamodb, TABLE, clock=clock).acquire(NUMBER, 10, 100, horizon=2.0)

    assert other.granted == 10 and other.requests == 2  # a new container asks for the idle case first, as before
    assert min(other.send_at) > clock.now  # the lease holds the number's next slots: the newcomer waits...
    assert max(other.send_at) - clock.now <= LEASE_SECONDS  # ...no longer than a lease reaches
    assert_within_rate(slots + list(other.send_at), rate=100, burst=MAX_BURST)


def test_beside_another_container_each_batch_takes_its_own_slots_as_without_leases(dynamodb: Any) -> None:
    clock = Clock()
    first, second = RateLimiter(dynamodb, TABLE, clock=clock), RateLimiter(dynamodb, TABLE, clock=clock)
    for turn in range(20):
        grant = (first, second)[turn % 2].acquire(NUMBER, 10, 1000, horizon=2.0)
        assert (grant.requests, offsets(grant, clock)) == (1, [0.0] * 10)  # nobody leases, nobody waits
        clock.now += 0.05


def test_slots_given_back_into_a_lease_cost_no_request_and_go_to_the_next_batch(dynamodb: Any) -> None:
    clock = Clock()
    limiter = RateLimiter(dynamodb, TABLE, clock=clock)
    for _ in range(6):
        limiter.acquire(NUMBER, 10, 100, horizon=2.0)
        clock.now += 0.6  # a sixth of the rate: the lease grows each time, to a second
    limiter.acquire(NUMBER, 10, 100, horizon=2.0)  # a burst of ten from the lease: its next slots are 0.01 s apart
    dynamodb.meta.events.register("before-call.dynamodb.UpdateItem", fail_on_call)

    assert limiter.give_back(NUMBER, 4, 100) is None
    grant = limiter.acquire(NUMBER, 4, 100, horizon=2.0)

    assert grant.requests == 0
    assert offsets(grant, clock) == [0.0] * 4  # the four slots given back, not the next four, 0.01 to 0.04 s on


@pytest.mark.parametrize("offered", [20.0, 45.0, 150.0])
def test_no_mix_of_containers_and_leases_exceeds_the_rate(dynamodb: Any, offered: float) -> None:
    """Three containers asking at random moments for random batches and horizons, one of them alone for stretches
    (so leases grow) and the others cutting in: far from the rate, near it and past it, the slots granted keep to the
    rate and its burst, and past it the number is kept busy."""
    clock = Clock()
    containers = [RateLimiter(dynamodb, TABLE, clock=clock) for _ in range(3)]
    chance = random.Random(7)
    granted: list[float] = []
    limiter = containers[0]
    for _ in range(300):
        limiter = limiter if chance.random() < 0.8 else chance.choice(containers)
        wanted = chance.randint(1, 10)
        granted += limiter.acquire(NUMBER, wanted, 50, horizon=chance.choice([0.0, 0.5, 2.0])).send_at
        clock.now += chance.expovariate(offered / 5.5)

    assert_within_rate(granted, rate=50, burst=MAX_BURST)
    elapsed = clock.now - min(granted)
    assert len(granted) >= 0.75 * min(offered, 50) * elapsed  # (horizons of 0 let a third of the asks go unmet)


def fail_on_call(**_: Any) -> None:
    raise AssertionError("no request expected")


def assert_within_rate(slots: list[float], *, rate: int, burst: int) -> None:
    """A token bucket of ``burst`` refilled at ``rate`` would have let every one of these through."""
    start = min(slots)
    tokens, last = float(burst), 0.0
    for at in sorted(round(slot - start, 6) for slot in slots):
        tokens = min(float(burst), tokens + (at - last) * rate)
        last = at
        assert tokens >= 1 - 1e-3, f"the slot {at} s in exceeds the rate"
        tokens -= 1
