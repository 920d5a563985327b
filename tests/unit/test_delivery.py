"""The delivery flow, outcome by outcome, with DynamoDB and SQS as moto implements them in-process (no server) and
a sender scripted per recipient (NXCloud itself is exercised through the simulator in tests/integration)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from delivery import Delivery
from idempotency import IdempotencyStore
from incoming import Incoming
from nxcloud_wa.client import SendResult
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.error_codes import NXCLOUD_CODES, READ_TIMEOUT, classify_http_status
from nxcloud_wa.exceptions import RetryableSendError, UnknownOutcomeError, error_for_code
from nxcloud_wa.models import SendRequest
from outcomes import DeadLettered, Rejected, RetryLater, Sent

TABLE = "idempotency"
CREDENTIALS = Credentials("AK", "SK")


def body(to: str = "8613800000000", **extra: Any) -> str:
    return json.dumps({"to": to, "template": {"name": "order_update", "language": {"code": "en_US"}}, **extra})


@dataclass
class ScriptedSender:
    """Answers like NXCloud would, per recipient: ``script[to]`` raises or returns; counts what it was asked."""

    script: dict[str, Callable[[], SendResult]] = field(default_factory=dict)
    sent: Counter[str] = field(default_factory=Counter)
    credentials_error: Exception | None = None

    def credentials(self, *, refresh: bool = False) -> Credentials:
        if self.credentials_error is not None:
            raise self.credentials_error
        return CREDENTIALS

    def send(self, request: SendRequest, credentials: Credentials | None = None) -> SendResult:
        self.sent[request.to] += 1
        answer = self.script.get(request.to)
        return answer() if answer else SendResult(f"mid-{request.to}-{self.sent[request.to]}", "trace")


def raises(exc: Exception) -> Callable[[], SendResult]:
    def answer() -> SendResult:
        raise exc

    return answer


@dataclass
class World:
    dynamodb: Any
    sqs: Any
    dlq_url: str
    sender: ScriptedSender
    executor: ThreadPoolExecutor

    def delivery(self, policy: UnknownOutcomePolicy = UnknownOutcomePolicy.DEAD_LETTER, dlq_url: str = "") -> Delivery:
        store = IdempotencyStore(
            self.dynamodb, TABLE, expiry_seconds=3600, take_over_interrupted=policy is UnknownOutcomePolicy.RETRY
        )
        return Delivery(
            self.sender,  # type: ignore[arg-type]  # the Sender's two methods the flow calls
            store,
            sqs=self.sqs,
            dlq_url=dlq_url or self.dlq_url,
            executor=self.executor,
            policy=policy,
        )

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
        )
        return answer.get("Messages", [])


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(), ThreadPoolExecutor(max_workers=10) as executor:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq_url = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        yield World(dynamodb, sqs, dlq_url, ScriptedSender(), executor)


def queued(text: str, n: int = 0, key: str | None = None) -> Incoming:
    return Incoming(body=text, source="sqs", source_id=f"sqs-{n}", key=key, receive_count=1)


def deliver(delivery: Delivery, *messages: Incoming, queue: bool = True) -> list[Any]:
    return delivery.deliver(list(messages), remaining_ms=30_000, dead_letter_rejections=queue)


def test_a_batch_is_sent_with_one_claim_and_one_settlement(world: World) -> None:
    seen: Counter[str] = Counter()
    world.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: seen.update([model.name]))
    messages = [queued(body(f"86138000000{n:02d}"), n) for n in range(10)]

    outcomes = deliver(world.delivery(), *messages)

    assert all(isinstance(o, Sent) and not o.replayed and o.latency_ms is not None for o in outcomes)
    assert seen == Counter({"BatchExecuteStatement": 1, "BatchWriteItem": 1})
    assert sum(world.sender.sent.values()) == 10


def test_a_redelivered_message_is_answered_from_the_table_not_sent_again(world: World) -> None:
    delivery = world.delivery()
    [first] = deliver(delivery, queued(body(), key="k1"))
    [again] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(first, Sent) and isinstance(again, Sent)
    assert again.replayed and again.message_id == first.message_id
    assert world.sender.sent["8613800000000"] == 1


@pytest.mark.parametrize(("queue", "kind"), [(True, DeadLettered), (False, Rejected)])
def test_an_invalid_message_is_dead_lettered_from_the_queue_and_rejected_on_the_api(
    world: World, queue: bool, kind: type
) -> None:
    [outcome] = deliver(world.delivery(), queued('{"to": "1"}'), queue=queue)

    assert isinstance(outcome, kind)
    assert (outcome.failure.reason, outcome.failure.error_code, outcome.failure.api_status) == (
        "invalid_message",
        "validation",
        400,
    )
    assert len(world.dead_letters()) == (1 if queue else 0)
    assert not world.sender.sent


def test_a_permanent_rejection_is_dead_lettered_with_its_reason_and_its_key_released(world: World) -> None:
    world.sender.script["8613800000000"] = raises(error_for_code(22093, NXCLOUD_CODES[22093], "no template", "t9"))
    delivery = world.delivery()
    [outcome] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(outcome, DeadLettered)
    [letter] = world.dead_letters()
    attributes = {k: v["StringValue"] for k, v in letter["MessageAttributes"].items()}
    assert letter["Body"] == body()
    assert attributes["reason"] == "nxcloud_code"
    assert attributes["error_class"] == "permanent"
    assert (attributes["error_code"], attributes["nxcloud_trace_id"]) == ("22093", "t9")
    assert (attributes["source"], attributes["source_message_id"], attributes["idempotency_key"]) == (
        "sqs",
        "sqs-0",
        "k1",
    )
    world.sender.script.clear()  # the template was created: a redrive must send it
    [redriven] = deliver(delivery, queued(body(), key="k1"))
    assert isinstance(redriven, Sent) and not redriven.replayed


def test_a_retryable_failure_is_retried_and_its_key_released(world: World) -> None:
    world.sender.script["8613800000000"] = raises(
        RetryableSendError("NXCloud answered HTTP 500", classify_http_status(500), http_status=500)
    )
    delivery = world.delivery()
    [outcome] = deliver(delivery, queued(body(), key="k1"))
    world.sender.script.clear()
    [retried] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(outcome, RetryLater) and outcome.failure.reason == "http_500"
    assert isinstance(retried, Sent) and not retried.replayed
    assert not world.dead_letters()


def test_an_unknown_outcome_is_dead_lettered_once_and_never_sent_again_under_dead_letter(world: World) -> None:
    world.sender.script["8613800000000"] = raises(UnknownOutcomeError("no answer", READ_TIMEOUT))
    delivery = world.delivery()
    [outcome] = deliver(delivery, queued(body(), key="k1"))
    [again] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(outcome, DeadLettered) and not outcome.replayed
    assert (outcome.failure.reason, outcome.failure.error_code, str(outcome.failure.error_class)) == (
        "unknown_outcome",
        "read_timeout",
        "unknown",
    )
    assert isinstance(again, DeadLettered) and again.replayed and again.dlq_message_id is None
    assert world.sender.sent["8613800000000"] == 1
    assert len(world.dead_letters()) == 1


def test_an_unknown_outcome_is_retried_under_retry(world: World) -> None:
    world.sender.script["8613800000000"] = raises(UnknownOutcomeError("no answer", READ_TIMEOUT))
    delivery = world.delivery(UnknownOutcomePolicy.RETRY)
    [outcome] = deliver(delivery, queued(body(), key="k1"))
    world.sender.script.clear()
    [again] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(outcome, RetryLater) and outcome.failure.reason == "read_timeout"
    assert isinstance(again, Sent)
    assert world.sender.sent["8613800000000"] == 2
    assert not world.dead_letters()


def test_an_unknown_outcome_whose_dead_letter_failed_is_dead_lettered_by_the_next_delivery(world: World) -> None:
    world.sender.script["8613800000000"] = raises(UnknownOutcomeError("no answer", READ_TIMEOUT))
    [first] = deliver(world.delivery(dlq_url=world.dlq_url + "-missing"), queued(body(), key="k1"))
    delivery = world.delivery()
    [second] = deliver(delivery, queued(body(), key="k1"))
    [third] = deliver(delivery, queued(body(), key="k1"))

    assert isinstance(first, RetryLater) and first.failure.reason == "dlq_write_failed"
    assert isinstance(second, DeadLettered) and second.dlq_message_id is not None
    assert isinstance(third, DeadLettered) and third.dlq_message_id is None
    assert world.sender.sent["8613800000000"] == 1
    assert len(world.dead_letters()) == 1


def test_a_failed_dead_letter_write_turns_a_rejection_into_a_retry(world: World) -> None:
    [outcome] = deliver(world.delivery(dlq_url=world.dlq_url + "-missing"), queued("not json"))

    assert isinstance(outcome, RetryLater)
    assert (outcome.failure.reason, outcome.failure.error_code) == ("dlq_write_failed", "validation")


def test_the_same_key_twice_in_one_batch_is_sent_once(world: World) -> None:
    outcomes = deliver(
        world.delivery(),
        queued(body(), 0, key="k1"),
        queued(body(), 1, key="k1"),
        queued(body("8613800000001"), 2, key="k1"),
    )

    assert isinstance(outcomes[0], Sent)
    assert isinstance(outcomes[1], RetryLater) and outcomes[1].failure.reason == "in_progress"
    assert isinstance(outcomes[2], DeadLettered) and outcomes[2].failure.reason == "idempotency_key_reused"
    assert sum(world.sender.sent.values()) == 1


def test_without_credentials_every_valid_message_is_retried_and_an_invalid_one_still_dead_lettered(
    world: World,
) -> None:
    from nxcloud_wa.exceptions import ConfigurationError

    world.sender.credentials_error = ConfigurationError("the NXCloud secret lacks accessKey")
    outcomes = deliver(world.delivery(), queued(body(), 0), queued("[]", 1))

    assert isinstance(outcomes[0], RetryLater) and outcomes[0].failure.reason == "misconfigured"
    assert isinstance(outcomes[1], DeadLettered) and outcomes[1].failure.reason == "invalid_message"
    assert not world.sender.sent


def test_when_the_table_cannot_be_claimed_nothing_is_sent_and_everything_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchExecuteStatement")

    monkeypatch.setattr(world.dynamodb, "batch_execute_statement", down)
    outcomes = deliver(world.delivery(), queued(body(), 0), queued(body("8613800000001"), 1))

    assert all(isinstance(o, RetryLater) and o.failure.reason == "internal_error" for o in outcomes)
    assert all(o.failure.error_code == "ClientError" for o in outcomes)
    assert not world.sender.sent


def test_a_message_whose_claim_statement_is_throttled_is_retried_as_a_failed_claim_and_the_others_sent(
    world: World,
) -> None:
    """DynamoDB refuses one INSERT of the batch for its own sake (a per-statement ``ThrottlingError``): that message
    fails as when the whole claim raised (the test above), the others, claimed, go out."""
    real = world.dynamodb.batch_execute_statement

    def first_statement_throttled(**kwargs: Any) -> Any:
        rest = kwargs["Statements"][1:]
        error = {"Error": {"Code": "ThrottlingError", "Message": "Throughput exceeds the current capacity."}}
        return {"Responses": [error, *real(Statements=rest)["Responses"]]}

    world.dynamodb.batch_execute_statement = first_statement_throttled
    outcomes = deliver(world.delivery(), queued(body(), 0), queued(body("8613800000001"), 1))

    assert isinstance(outcomes[0], RetryLater) and outcomes[0].failure.reason == "internal_error"
    assert outcomes[0].failure.error_code == "ClientError"
    assert isinstance(outcomes[1], Sent)
    assert world.sender.sent == Counter({"8613800000001": 1})


def test_the_key_is_the_bodys_else_the_triggers_else_the_message_id(world: World) -> None:
    delivery = world.delivery()
    deliver(delivery, queued(body(idempotency_key="from-body"), 0, key="from-attribute"))
    deliver(delivery, queued(body("8613800000001"), 1, key="from-attribute"))
    deliver(delivery, queued(body("8613800000002"), 2))

    again = deliver(
        delivery,
        queued(body(idempotency_key="from-body"), 5),
        queued(body("8613800000001"), 6, key="from-attribute"),
        queued(body("8613800000002"), 2),
    )
    assert [o.replayed for o in again] == [True, True, True]
