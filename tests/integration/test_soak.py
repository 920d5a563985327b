"""The fault-injection soak, short (CI), and the bugs it found, each pinned down on its own.

The CI soak is ``make soak`` in small: 250 messages per policy, a fixed seed, the ``heavy`` mix (every fault kind,
three times as often as ``default``), both UNKNOWN_OUTCOME_POLICY values at once. It fails on any loss, any avoidable
duplicate (any duplicate at all under dead_letter), anything reported sent that NXCloud never accepted, or a message
ending in a way its kind does not allow.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from soak.ledger import Ledger, render
from soak.run import SoakSettings, run_soak

from local_stack.lambda_events import LambdaContext
from tests.integration.conftest import Stack, message

POLICIES = ("dead_letter", "retry")


# --- the short soak


@pytest.fixture(scope="module")
def ci_ledgers() -> list[Ledger]:
    settings = [
        SoakSettings(messages=250, seed=7, mix="heavy", policy=p, retry_delay=2, function_timeout=2.0, time_limit=120)
        for p in POLICIES
    ]
    with ThreadPoolExecutor(max_workers=len(settings)) as pool:  # two stacks, side by side
        return list(pool.map(lambda s: run_soak(s, progress=None), settings))


@pytest.mark.slow
def test_ci_soak_loses_nothing_and_sends_no_avoidable_duplicate(ci_ledgers: list[Ledger]) -> None:
    text = render(ci_ledgers)

    for ledger in ci_ledgers:
        assert ledger.failures() == [], text
        assert ledger.messages_in == 250
        assert ledger.lost == ledger.duplicates_avoidable == ledger.phantom_sent == 0, text
    dead_letter, retry = ci_ledgers
    assert dead_letter.duplicates == 0, text
    assert dead_letter.dead_lettered["unknown_outcome read_timeout"] > 0, text  # unknown outcomes were met...
    assert retry.duplicates_unknown > 0, text  # ...and, at least once, sent again by the retry policy


@pytest.mark.slow
def test_ci_soak_injected_every_kind_of_fault(ci_ledgers: list[Ledger]) -> None:
    upstream = " ".join(kind for ledger in ci_ledgers for kind in ledger.upstream_faults)
    aws = " ".join(label for ledger in ci_ledgers for label in ledger.aws_faults)

    for kind in ("http_status 500", "http_status 429", "drop", "code 1003", "read_timeout_after_accept", "garbage"):
        assert kind in upstream, kind
    for operation in ("DynamoDB.PutItem", "DynamoDB.UpdateItem", "SecretsManager.GetSecretValue", "SQS.SendMessage"):
        assert operation in aws, operation
    assert sum(sum(ledger.kills.values()) for ledger in ci_ledgers) > 0  # invocations cut short, as a timeout does


# --- what the soak found, one test each


class Killed(BaseException):
    """The Lambda runtime ending the function at its deadline: nothing after it runs (no except, no finally)."""


def _kill_after_send(rt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = rt.sender.send

    def send_then_die(request: Any, credentials: Any = None) -> Any:
        real_send(request, credentials)
        raise Killed

    monkeypatch.setattr(rt.sender, "send", send_then_die)


@pytest.mark.parametrize(("policy", "accepted"), [("dead_letter", 1), ("retry", 2)])
def test_delivery_killed_after_the_send_is_never_sent_again_under_dead_letter(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str, accepted: int
) -> None:
    import runtime
    from nxcloud_wa.models import parse_message

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()
    rt = runtime.get()
    request, credentials = parse_message(message()), rt.sender.credentials()
    real_send = rt.sender.send
    _kill_after_send(rt, monkeypatch)
    rt.delivery.config.register_lambda_context(LambdaContext(timeout_seconds=0.05))
    with pytest.raises(Killed):
        rt.delivery.deliver(request, "killed-after-send", credentials)
    monkeypatch.setattr(rt.sender, "send", real_send)
    time.sleep(0.1)  # past the killed invocation's deadline: its INPROGRESS record has expired
    rt.delivery.config.register_lambda_context(LambdaContext(timeout_seconds=30))
    outcome = rt.delivery.deliver(request, "killed-after-send", credentials)

    assert len(simulator.accepted) == accepted
    if policy == "dead_letter":
        assert outcome["status"] == "unknown_outcome"
        assert outcome["error"]["reason"] == "interrupted"
    else:
        assert outcome["status"] == "sent"


@pytest.mark.parametrize("policy", POLICIES)
def test_sent_message_whose_outcome_could_not_be_stored_is_reported_sent_not_resent(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    import runtime

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()

    def dynamodb_down(self: Any, data_record: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", dynamodb_down)
    stack.enqueue(message())
    _, response = stack.run_batch()
    stack.run_batch()

    assert response == {"batchItemFailures": []}
    assert stack.queue_depth() == 0
    assert len(simulator.accepted) == 1


def test_outcome_whose_store_failed_is_stored_on_a_second_try_so_a_later_duplicate_is_not_resent(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    import runtime
    from nxcloud_wa.models import parse_message

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", "retry")  # the policy that takes over an expired in-progress key
    runtime.reset()
    update_record = DynamoDBPersistenceLayer._update_record
    calls: list[int] = []

    def fails_once(self: Any, data_record: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")
        update_record(self, data_record)

    monkeypatch.setattr(DynamoDBPersistenceLayer, "_update_record", fails_once)
    rt = runtime.get()
    request, credentials = parse_message(message()), rt.sender.credentials()
    rt.delivery.config.register_lambda_context(LambdaContext(timeout_seconds=0.05))
    first = rt.delivery.deliver(request, "stored-late", credentials)
    time.sleep(0.1)  # past the first invocation's deadline: an INPROGRESS record would have expired
    rt.delivery.config.register_lambda_context(LambdaContext(timeout_seconds=30))
    second = rt.delivery.deliver(request, "stored-late", credentials)  # a producer's duplicate of the message

    assert first["status"] == second["status"] == "sent"
    assert second.get("replayed") is True
    assert len(simulator.accepted) == 1


def test_records_sent_while_a_cold_container_configures_its_store_are_replayed_not_refused(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import jmespath

    import runtime
    from nxcloud_wa.models import parse_message

    compile_expression = jmespath.compile

    def slow_validation_compile(expression: str, *args: Any, **kwargs: Any) -> Any:
        if expression == "message":  # Powertools' configure() compiles this after it already says "configured"
            time.sleep(0.3)  # what a busy CPU does to the thread in the middle of it
        return compile_expression(expression, *args, **kwargs)

    monkeypatch.setattr(jmespath, "compile", slow_validation_compile)
    runtime.reset()
    rt = runtime.get()
    rt.delivery.config.register_lambda_context(LambdaContext(timeout_seconds=30))
    credentials = rt.sender.credentials()
    requests = {key: parse_message(message(to=f"861380000011{n}")) for n, key in enumerate(("cold-1", "cold-2"))}
    first = [
        threading.Thread(target=rt.delivery.deliver, args=(request, key, credentials))
        for key, request in requests.items()
    ]
    for thread in first:  # a batch's records, fanned out on a fresh container
        thread.start()
        time.sleep(0.05)
    for thread in first:
        thread.join()
    again = {key: rt.delivery.deliver(request, key, credentials) for key, request in requests.items()}  # redelivered

    assert [outcome.get("replayed") for outcome in again.values()] == [True, True]
    assert len(simulator.accepted) == 2


def test_api_unknown_outcome_whose_dead_letter_failed_is_dead_lettered_on_the_retry(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=1)
    monkeypatch.setenv("DLQ_URL", stack.resources.dlq_url + "-missing")
    runtime.reset()
    first = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})
    monkeypatch.setenv("DLQ_URL", stack.resources.dlq_url)
    runtime.reset()
    second = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})
    third = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})

    assert first["statusCode"] == 503
    assert second["statusCode"] == third["statusCode"] == 504
    assert json.loads(second["body"])["error"] == "unknown_outcome"
    assert len(simulator.accepted) == 1
    dead = stack.dlq_messages()
    assert len(dead) >= 1  # recorded (once more per later retry, until a write is known to have worked)
    assert {d["MessageAttributes"]["reason"]["StringValue"] for d in dead} == {"unknown_outcome"}
