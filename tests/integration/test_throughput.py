"""The business numbers' rate end to end: the real handler, moto's server (the rate-limit table, the queues) and the
simulator enforcing the number's rate too. Throttles delay, they never dead-letter; the API answers 429.

Time the test would wait for (a delayed copy's ``DelaySeconds``, the number's capacity coming back) passes on a
controlled clock instead (:class:`Clock`), which moto's SQS and the function's limiter read. The function's own wait
for a slot still sleeps: the simulator enforces the number's rate on the wall clock, and that is what is proved."""

from __future__ import annotations

import functools
import json
import time
from typing import Any

import pytest

from tests.stack import MAX_RECEIVE_COUNT, reset_function_runtime
from tests.stack import AdvancingClock as Clock

from .conftest import Stack, message

NUMBER = "8618512348399"  # the secret's business_phone


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> Clock:
    """The controlled clock, read by moto's SQS (in this process: moto's server is a thread) and by the limiter and
    the pacing the function's runtime builds."""
    import moto.sqs.models

    import runtime
    from delivery import Pacing
    from rate_limiter import RateLimiter

    controlled = Clock()
    monkeypatch.setattr(moto.sqs.models, "unix_time", lambda dt=None: controlled())
    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda dt=None: controlled() * 1000)
    monkeypatch.setattr(runtime, "RateLimiter", functools.partial(RateLimiter, clock=controlled))
    monkeypatch.setattr(runtime, "Pacing", functools.partial(Pacing, clock=controlled))
    reset_function_runtime()
    return controlled


def _body(response: dict[str, Any]) -> dict[str, Any]:
    return json.loads(response["body"])


@pytest.fixture
def rate(monkeypatch: pytest.MonkeyPatch, stack: Stack) -> Any:
    """Set the function's rate (and wait) for the rest of the test: ``rate(per_second, wait=seconds)``."""

    def set_rate(per_second: int, wait: float = 2.0) -> None:
        monkeypatch.setenv("MESSAGES_PER_SECOND", str(per_second))
        monkeypatch.setenv("RATE_WAIT_SECONDS", str(wait))
        reset_function_runtime()

    return set_rate


def delayed_count(stack: Stack) -> int:
    return queued_counts(stack)["ApproximateNumberOfMessagesDelayed"]


def queued_counts(stack: Stack) -> dict[str, int]:
    """Visible, in flight and delayed, in one request (read one by one, a copy whose delay ends in between is in none
    more often)."""
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attributes = stack.sqs.get_queue_attributes(QueueUrl=stack.resources.send_queue_url, AttributeNames=names)
    return {name: int(attributes["Attributes"][name]) for name in names}


def run_until_drained(stack: Stack, clock: Clock, seconds: float, *, wall_clock: bool = False) -> list[dict[str, Any]]:
    """Run batches as the event source would until the queue (delayed copies included) is empty, and still is a
    moment later: moto reads each count at its own instant, so a copy whose delay ends in between is in none. While
    nothing can be received (the copies are delayed), the clock is advanced, ``seconds`` of it at most.

    ``wall_clock``: wait for real instead. Advancing the controlled clock moves the limiter's time too, so the sends
    after it leave that much earlier on the wall clock the simulator enforces the rate on: a test of the rate as the
    simulator sees it must not advance it (under load, a receive that finds the copies in flight for a moment did)."""
    responses = []
    waited = 0.0
    empty_reads = 0
    wait = time.sleep if wall_clock else clock.advance
    while waited < seconds and empty_reads < 2:
        if not sum(queued_counts(stack).values()):
            empty_reads += 1
            wait(0.2)
            continue
        empty_reads = 0
        event, response = stack.run_batch()
        if event["Records"]:
            responses.append(response)
        else:
            wait(0.2)
            waited += 0.2
    return responses


def test_the_stack_never_offers_a_number_more_than_its_rate(
    stack: Stack, simulator: Any, rate: Any, clock: Clock
) -> None:
    """30 messages in 3 batches at 10 per second, against a simulator enforcing the same 10: nothing refused. (The
    simulator's bucket holds a few more than the limiter's burst of 10: a send leaves at its slot but arrives a few
    milliseconds later or earlier than the one before it, as on any network.)"""
    rate(10)
    simulator.set_rate_limit(per_second=10, burst=13)
    for i in range(30):
        stack.enqueue(message(to=f"861380000{i:04d}"))
    started = time.time()

    run_until_drained(stack, clock, 30, wall_clock=True)

    assert len(simulator.accepted) == 30
    assert simulator.rate_counts["refused_total"] == 0
    assert stack.dlq_messages() == []
    # 10 at once, then 20 more at 10 per second: the 30th no sooner than 2 s after the first slot, which is no sooner
    # than the start. (Measured from the start, not from the first arrival: on a loaded machine the first batch's
    # sends may leave late, and the span from them would shrink with no send early.)
    assert max(r.received_at for r in simulator.requests) - started >= 1.9


def test_what_cannot_go_soon_is_put_back_delayed_and_sent_once_later(
    stack: Stack, simulator: Any, rate: Any, clock: Clock
) -> None:
    rate(2, wait=0.05)
    ids = [stack.enqueue(message(to=f"861380000{i:04d}")) for i in range(6)]

    event, response = stack.run_batch()

    assert len(event["Records"]) == 6
    assert response == {"batchItemFailures": []}  # the held-back records are done: their copies are on the queue
    assert len(simulator.accepted) == 2
    assert delayed_count(stack) == 4
    run_until_drained(stack, clock, 40)
    assert len(simulator.accepted) == 6
    assert sorted(r.to for r in simulator.accepted) == [f"861380000{i:04d}" for i in range(6)]
    assert stack.dlq_messages() == []
    assert len(ids) == 6


def test_a_message_without_a_key_keeps_its_first_sqs_id_as_its_key_across_copies(
    stack: Stack, simulator: Any, rate: Any, clock: Clock
) -> None:
    rate(1, wait=0.05)
    stack.enqueue(message(to="8613800000001"))
    original = stack.enqueue(message(to="8613800000002"))
    stack.run_batch()

    assert stack.receive()["Records"] == []  # the copy is delayed
    for _ in range(10):  # its delay is a second or two (jitter)
        clock.advance(0.5)
        event = stack.receive()
        if event["Records"]:
            break
    [record] = event["Records"]
    assert record["messageId"] != original
    assert record["messageAttributes"]["idempotency_key"]["stringValue"] == original
    assert record["messageAttributes"]["throttled"]["stringValue"] == "1"


def test_nxclouds_throttle_is_put_back_and_spends_no_receive(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    """Four 429s in a row, more than the queue's receives (3): the message is sent, never dead-lettered."""
    import requeue

    monkeypatch.setattr(requeue, "MAX_DOUBLINGS", 0)  # a second or so each time: the test need not wait 30 s
    simulator.add_fault(kind="http_status", status=429, retry_after="1", times=4)
    stack.enqueue(message())

    responses = run_until_drained(stack, clock, 60)

    assert len(simulator.accepted) == 1
    assert all(r == {"batchItemFailures": []} for r in responses)
    assert len(responses) == 5
    assert stack.dlq_messages() == []


def test_a_copys_failures_count_with_its_originals(stack: Stack, simulator: Any, clock: Clock) -> None:
    """Two 5xx (two receives spent), a throttle (put back, none spent), a third 5xx: the message's receives are
    spent (MaxReceiveCount 3), so the function dead-letters the copy itself, with the last failure's code."""
    assert MAX_RECEIVE_COUNT == 3
    simulator.add_fault(kind="http_status", status=500, times=2)
    simulator.add_fault(kind="code", code=22141, message="(#130429) Rate limit hit", times=1)
    simulator.add_fault(kind="http_status", status=502)
    stack.enqueue(message())

    run_until_drained(stack, clock, 30)

    [letter] = stack.dlq_messages()
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert (attributes["reason"], attributes["error_code"]) == ("retries_exhausted", "http_502")
    assert len(simulator.requests) == 4
    assert simulator.accepted == []


def test_the_api_answers_429_with_retry_after_when_the_number_is_at_its_rate(
    stack: Stack, simulator: Any, rate: Any, clock: Clock
) -> None:
    rate(1, wait=0.05)
    first = stack.call_api(message(to="8613800000001"))
    second = stack.call_api(message(to="8613800000002"), {"Idempotency-Key": "k2"})
    queued = stack.call_api(message(to="8613800000003"), {"Prefer": "respond-async"})

    assert first["statusCode"] == 200
    assert second["statusCode"] == 429
    assert _body(second)["error"] == "rate_limited"
    assert second["multiValueHeaders"]["Retry-After"] == ["1"]
    assert queued["statusCode"] == 202  # respond-async: the queue sends it when the number has capacity
    assert len(simulator.accepted) == 1
    clock.advance(1.0)  # the number has capacity again
    again = stack.call_api(message(to="8613800000002"), {"Idempotency-Key": "k2"})
    assert again["statusCode"] == 200


def test_the_api_passes_nxclouds_retry_after_on(stack: Stack, simulator: Any) -> None:
    simulator.add_fault(kind="http_status", status=429, retry_after="7")

    response = stack.call_api(message())

    assert response["statusCode"] == 429
    assert (_body(response)["error"], _body(response)["code"]) == ("throttled", "http_429")
    assert response["multiValueHeaders"]["Retry-After"] == ["7"]
    assert len(simulator.requests) == 1  # not resent at once
