"""The delivery flow at a business number's rate: paced, held back, throttled upstream, put back as delayed copies,
and the message's own failures counted over its copies. DynamoDB and SQS as moto implements them in-process; the
sender scripted per recipient (tests/unit/test_delivery.py's); the limiter and the waits for a slot on a controlled
clock (:class:`Clock`), so nothing here waits on the wall clock."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

import requeue
from delivery import Delivery, Pacing
from idempotency import IdempotencyStore
from incoming import Incoming
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.error_codes import NXCLOUD_CODES, READ_TIMEOUT, classify_http_status
from nxcloud_wa.exceptions import RetryableSendError, UnknownOutcomeError, error_for_code, error_for_http_status
from nxcloud_wa.models import Defaults
from outcomes import DeadLettered, Delayed, RetryLater, Sent
from rate_limiter import RateLimiter
from tests.unit.test_delivery import ScriptedSender, body, raises

TABLE, RATE_TABLE = "idempotency", "rate"
NUMBER = "8618512348399"
OTHER_NUMBER = "85291234867"


@dataclass
class Clock:
    """Epoch seconds that move only when a test says so. Time stands still while messages wait for their slots: the
    limiter granted every send time from one instant, so ``waits`` holds each message's wait from that instant."""

    now: float = field(default_factory=lambda: float(int(time.time())))  # whole microseconds, as the limiter's
    waits: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(round(seconds, 6))

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sender(ScriptedSender):
    """The scripted sender with the secret's defaults and rates."""

    rates: dict[str, int]

    def credentials(self, *, refresh: bool = False) -> Credentials:
        return Credentials("AK", "SK", Defaults(business_phone=NUMBER), rates=getattr(self, "rates", {}))

    def defaults_for(self, credentials: Credentials) -> Defaults:
        return credentials.defaults


@dataclass
class World:
    dynamodb: Any
    sqs: Any
    dlq_url: str
    send_url: str
    sender: Sender
    executor: ThreadPoolExecutor
    clock: Clock

    def delivery(self, *, rate: int = 80, max_wait: float = 2.0, limiter: Any = None) -> Delivery:
        store = IdempotencyStore(self.dynamodb, TABLE, expiry_seconds=3600, take_over_interrupted=False)
        limiter = limiter or RateLimiter(self.dynamodb, RATE_TABLE, clock=self.clock)
        pacing = Pacing(limiter, rate, max_wait, reserve=1.0, clock=self.clock, sleep=self.clock.sleep)
        return Delivery(
            self.sender,  # type: ignore[arg-type]  # the Sender's methods the flow calls
            store,
            sqs=self.sqs,
            dlq_url=self.dlq_url,
            executor=self.executor,
            policy=UnknownOutcomePolicy.DEAD_LETTER,
            pacing=pacing,
            send_queue_url=self.send_url,
            max_receive_count=5,
        )

    def put_back(self, *, take: bool = False) -> list[dict[str, Any]]:
        """Every copy on the send queue, delays ignored (moto's receive honours them: read its store instead);
        ``take`` removes them."""
        from moto.sqs.models import sqs_backends

        queue = sqs_backends["123456789012"]["us-east-1"].queues["send"]
        messages = list(queue._messages)
        if take:
            queue._messages.clear()
        return [
            {
                "Body": m.body,
                "DelaySeconds": round((m.delayed_until - m.sent_timestamp) / 1000),
                "Attributes": {k: v["StringValue"] for k, v in m.message_attributes.items()},
            }
            for m in messages
        ]

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        return answer.get("Messages", [])

    def claims(self) -> list[dict[str, Any]]:
        return self.dynamodb.scan(TableName=TABLE)["Items"]


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), ThreadPoolExecutor(max_workers=10) as executor:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        for table in (TABLE, RATE_TABLE):
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                BillingMode="PAY_PER_REQUEST",
            )
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        send_url = sqs.create_queue(QueueName="send")["QueueUrl"]
        yield World(dynamodb, sqs, dlq_url, send_url, Sender(), executor, Clock())


def queued(text: str, n: int = 0, key: str | None = None, **extra: Any) -> Incoming:
    return Incoming(body=text, source="sqs", source_id=f"sqs-{n}", key=key, receive_count=1, **extra)


def batch(size: int = 10, start: int = 0, **extra: Any) -> list[Incoming]:
    return [queued(body(f"86138000000{n:02d}"), n, **extra) for n in range(start, start + size)]


def deliver(delivery: Delivery, *messages: Incoming, remaining_ms: int = 30_000) -> list[Any]:
    return delivery.deliver(list(messages), remaining_ms=remaining_ms, dead_letter_rejections=True)


def test_a_batch_far_from_the_rate_costs_one_limiter_request_and_no_wait(world: World) -> None:
    seen: Counter[str] = Counter()
    world.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: seen.update([model.name]))

    outcomes = deliver(world.delivery(), *batch())

    assert all(isinstance(o, Sent) for o in outcomes)
    assert seen == Counter({"UpdateItem": 1, "BatchExecuteStatement": 1, "BatchWriteItem": 1})
    assert world.clock.waits == []  # a burst of ten: nobody waited for a slot


def test_what_the_number_cannot_take_soon_is_put_back_as_delayed_copies_never_claimed(world: World) -> None:
    messages = batch()
    messages[3] = queued(body("8613800000003"), 3, key="attr-key")
    delivery = world.delivery(rate=4, max_wait=0.01)

    outcomes = deliver(delivery, *messages)

    sent = [o for o in outcomes if isinstance(o, Sent)]
    delayed = [o for o in outcomes if isinstance(o, Delayed)]
    assert (len(sent), len(delayed)) == (4, 6)  # a burst of 4 at 4 per second, nothing else within 10 ms
    assert sum(world.sender.sent.values()) == 4
    assert all(o.failure.reason == "rate_limited" and o.failure.error_code == "number_at_rate" for o in delayed)
    assert all(1 <= o.delay_seconds <= 2 for o in delayed)  # the next slot is 0.25 s away: at least a second
    copies = world.put_back()
    assert sorted(c["Body"] for c in copies) == sorted(m.body for m in messages[4:])
    assert {c["Attributes"]["idempotency_key"] for c in copies} == {f"sqs-{n}" for n in range(4, 10)}
    assert all(c["Attributes"]["failed_receives"] == "0" and c["Attributes"]["throttled"] == "1" for c in copies)
    assert all(c["DelaySeconds"] >= 1 for c in copies)
    assert len(world.claims()) == 4  # the sent ones' outcomes: a held-back message is never claimed


def test_the_key_a_copy_carries_is_the_one_its_original_used(world: World) -> None:
    messages = [queued(body("8613800000001", idempotency_key="in-body"), 1), queued(body("8613800000002"), 2, key="k")]
    deliver(world.delivery(rate=1, max_wait=0.01), queued(body(), 0), *messages)

    keys = sorted(c["Attributes"]["idempotency_key"] for c in world.put_back())
    assert keys == ["in-body", "k"]


def test_a_copy_comes_back_as_the_same_message_and_is_sent_once(world: World) -> None:
    delivery = world.delivery(rate=1, max_wait=0.01)
    [first, held] = deliver(delivery, queued(body("8613800000001"), 1), queued(body("8613800000002"), 2))
    [copy] = world.put_back()
    again = Incoming(
        body=copy["Body"],
        source="sqs",
        source_id="sqs-copy",
        key=copy["Attributes"]["idempotency_key"],
        receive_count=1,
        earlier_failures=int(copy["Attributes"]["failed_receives"]),
        times_put_back=int(copy["Attributes"]["throttled"]),
    )
    world.clock.advance(1.0)  # the number has capacity again

    [sent] = deliver(delivery, again)
    world.clock.advance(1.0)  # a redelivery takes its turn too (the pace comes before the claim)
    [replayed] = deliver(delivery, replace(again, source_id="sqs-copy-redelivered"))

    assert isinstance(first, Sent) and isinstance(held, Delayed)
    assert isinstance(sent, Sent) and not sent.replayed
    assert isinstance(replayed, Sent) and replayed.replayed
    assert world.sender.sent["8613800000002"] == 1


def test_a_throttle_upstream_is_put_back_by_its_retry_after_and_its_claim_released(world: World) -> None:
    world.sender.script["8613800000000"] = raises(error_for_http_status(429, "4"))

    [outcome] = deliver(world.delivery(), queued(body(), key="k1"))

    assert isinstance(outcome, Delayed)
    assert (outcome.failure.reason, outcome.failure.error_code) == ("throttled", "http_429")
    assert 4 <= outcome.delay_seconds <= 6  # Retry-After, with jitter
    assert world.claims() == []  # released: the copy will claim it again
    assert not world.dead_letters()


def test_metas_pair_limit_waits_longer_than_a_number_throttle(world: World) -> None:
    pair = error_for_code(22141, NXCLOUD_CODES[22141], "(#131056) pair rate limit hit", "t")
    world.sender.script["8613800000000"] = raises(pair)

    [outcome] = deliver(world.delivery(), queued(body()))

    assert isinstance(outcome, Delayed) and outcome.failure.error_code == "131056"
    assert outcome.delay_seconds >= 6


def test_a_copy_put_back_again_carries_its_failures_and_waits_longer(world: World) -> None:
    world.sender.script["8613800000000"] = raises(error_for_http_status(429))
    copy = queued(body(), key="k", earlier_failures=1, times_put_back=3)
    copy = replace(copy, receive_count=3)  # two receives of this copy failed before

    [outcome] = deliver(world.delivery(), copy)

    [again] = world.put_back()
    assert isinstance(outcome, Delayed)
    assert (again["Attributes"]["failed_receives"], again["Attributes"]["throttled"]) == ("3", "4")
    assert 8 <= outcome.delay_seconds <= 12  # a second, doubled for each of the 3 earlier put-backs, jittered


def test_a_copys_own_failures_keep_the_messages_budget(world: World) -> None:
    """A copy that fails on the message's last receive is dead-lettered by the function: the redrive policy would
    count the copy's receives only."""
    failure = RetryableSendError("NXCloud answered HTTP 500", classify_http_status(500), http_status=500)
    world.sender.script["8613800000000"] = raises(failure)
    delivery = world.delivery()

    [not_yet] = deliver(delivery, replace(queued(body(), 1), earlier_failures=3, receive_count=1))
    [exhausted] = deliver(delivery, replace(queued(body(), 2), earlier_failures=3, receive_count=2))
    [original] = deliver(delivery, replace(queued(body(), 3), receive_count=5))

    assert isinstance(not_yet, RetryLater)
    assert isinstance(exhausted, DeadLettered)
    assert (exhausted.failure.reason, exhausted.failure.error_code) == ("retries_exhausted", "http_500")
    assert isinstance(original, RetryLater)  # an original's receives are the redrive policy's to count
    [letter] = world.dead_letters()
    assert letter["MessageAttributes"]["reason"]["StringValue"] == "retries_exhausted"


def test_however_often_a_message_is_throttled_it_is_never_dead_lettered(world: World) -> None:
    world.sender.script["8613800000000"] = raises(error_for_http_status(429))
    delivery = world.delivery()
    incoming = queued(body(), key="k")
    for receive in range(1, 40):
        [outcome] = deliver(delivery, incoming)
        assert isinstance(outcome, Delayed), receive
        [copy] = world.put_back(take=True)
        incoming = replace(
            incoming,
            source_id=f"copy-{receive}",
            earlier_failures=int(copy["Attributes"]["failed_receives"]),
            times_put_back=int(copy["Attributes"]["throttled"]),
        )
        assert outcome.delay_seconds <= requeue.MAX_DELAY_SECONDS

    assert incoming.earlier_failures == 0 and incoming.times_put_back == 39
    assert not world.dead_letters()


@pytest.mark.parametrize(
    ("failure", "given_back"),
    [
        (RetryableSendError("NXCloud answered HTTP 500", classify_http_status(500), http_status=500), True),
        (error_for_code(22090, NXCLOUD_CODES[22090], "invalid number", "t"), True),
        (error_for_http_status(429), False),  # the number was too fast already
        (UnknownOutcomeError("no answer", READ_TIMEOUT), False),  # it may have been sent
    ],
    ids=["5xx", "permanent", "throttle", "unknown"],
)
def test_a_send_nxcloud_answered_without_sending_gives_its_slot_back(
    world: World, failure: Exception, given_back: bool
) -> None:
    """WhatsApp counts what it sends: a retry of NXCloud's failure must not cost the number a second slot."""
    world.sender.script["8613800000000"] = raises(failure)
    delivery = world.delivery(rate=1, max_wait=0.01)

    deliver(delivery, queued(body()))
    [after] = deliver(delivery, queued(body("8613800000001"), 1))

    assert isinstance(after, Sent) is given_back


def test_the_slots_of_a_batch_whose_claim_failed_are_given_back(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """No request went out: the next batch has the number's capacity as if the failed one had never asked."""
    delivery = world.delivery(rate=2, max_wait=0.01)
    claim = delivery.store.claim

    def down(*_: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError"}}, "BatchExecuteStatement")

    monkeypatch.setattr(delivery.store, "claim", down)

    failed = deliver(delivery, *batch(2))
    monkeypatch.setattr(delivery.store, "claim", claim)
    after = deliver(delivery, *batch(2, start=2))

    assert all(isinstance(o, RetryLater) for o in failed)
    assert all(isinstance(o, Sent) for o in after)


def test_the_slot_of_a_message_found_in_progress_is_given_back(world: World) -> None:
    """The same key twice in one batch: the second waits for the first's outcome, and sends nothing now."""
    delivery = world.delivery(rate=2, max_wait=0.01)

    first, twin = deliver(delivery, queued(body(), 0, key="k"), queued(body(), 1, key="k"))
    [after] = deliver(delivery, queued(body("8613800000002"), 2))

    assert isinstance(first, Sent) and isinstance(twin, RetryLater)
    assert twin.failure.reason == "in_progress"
    assert isinstance(after, Sent)


def test_the_api_caller_is_told_429_with_when_to_come_back(world: World) -> None:
    delivery = world.delivery(rate=1, max_wait=0.01)
    api = Incoming(body=body("8613800000001"), source="api", source_id="req-1")
    deliver(delivery, queued(body()))

    [outcome] = delivery.deliver([api], remaining_ms=30_000, dead_letter_rejections=False)

    assert isinstance(outcome, RetryLater)
    assert (outcome.failure.api_status, outcome.failure.reason) == (429, "rate_limited")
    assert 0 < (outcome.failure.retry_after or 0) <= 1.0
    assert world.put_back() == []


def test_a_number_the_secret_names_has_its_own_rate(world: World) -> None:
    world.sender.rates = {NUMBER: 2}
    messages = [queued(body(f"86138000000{n:02d}", business_phone=OTHER_NUMBER), n) for n in range(10, 15)]

    outcomes = deliver(world.delivery(rate=1000, max_wait=0.01), *batch(5), *messages)

    by_number = Counter((o.failure.reason if not isinstance(o, Sent) else "sent") for o in outcomes[:5])
    assert by_number == Counter({"sent": 2, "rate_limited": 3})  # the secret's 2 per second
    assert all(isinstance(o, Sent) for o in outcomes[5:])  # the other number, at the default


def test_waiting_for_a_slot_never_runs_into_the_invocations_timeout(world: World) -> None:
    """With 1.5 s left and 1 s kept for the send, at most 0.5 s of waiting: the rest is put back."""
    outcomes = deliver(world.delivery(rate=10, max_wait=2.0), *batch(10), *batch(10, start=10), remaining_ms=1500)

    sent = sum(isinstance(o, Sent) for o in outcomes)
    assert sent == 15  # ten at once, then one every 0.1 s for 0.5 s
    assert sorted(world.clock.waits) == [0.1, 0.2, 0.3, 0.4, 0.5]  # each at its slot, the first ten without waiting
    assert all(isinstance(o, Delayed) for o in outcomes if not isinstance(o, Sent))


def test_the_limiter_failing_fails_open(world: World) -> None:
    class Down:
        def acquire(self, number: str, wanted: int, rate: int, horizon: float) -> Any:
            from rate_limiter import Grant

            return Grant((world.clock(),) * wanted, 0.0, 1, error=ClientError({"Error": {"Code": "X"}}, "UpdateItem"))

    outcomes = deliver(world.delivery(limiter=Down()), *batch(3))

    assert all(isinstance(o, Sent) for o in outcomes)


def test_a_copy_sqs_will_not_take_leaves_its_record_to_be_retried(world: World) -> None:
    delivery = world.delivery(rate=1, max_wait=0.01)
    delivery.send_queue_url = world.send_url + "-missing"

    outcomes = deliver(delivery, *batch(2))

    assert isinstance(outcomes[0], Sent)
    assert isinstance(outcomes[1], RetryLater) and outcomes[1].failure.reason == "rate_limited"
