"""The fault-injection soak, short (CI), and the bugs it found, each pinned down on its own.

The CI soak is ``make soak`` in small: 250 messages per policy, a fixed seed, the ``heavy`` mix (every fault kind,
three times as often as ``default``), both UNKNOWN_OUTCOME_POLICY values at once. It fails on any loss, any avoidable
duplicate (any duplicate at all under dead_letter), anything reported sent that NXCloud never accepted, or a message
ending in a way its kind does not allow, or anything claimed after its recipient's suppression entry was stored and
sent all the same; and, for the delivery lifecycle, on any callback acknowledged but not stored,
any stored status that is not the simulator's truth, or any change of a current status without its event.
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
    operations = (
        "DynamoDB.BatchExecuteStatement",
        "DynamoDB.BatchWriteItem",
        "SecretsManager.GetSecretValue",
        "SQS.SendMessageBatch",
    )
    for operation in operations:
        assert operation in aws, operation
    assert sum(sum(ledger.kills.values()) for ledger in ci_ledgers) > 0  # invocations cut short, as a timeout does
    lifecycle = (
        "DynamoDB.UpdateItem(-messages) error sticky",  # the webhook could not store: it kept the callback...
        "SQS.SendMessage(-kept) error sticky",  # ...or, when that failed too, answered 503
        "DynamoDB.UpdateItem(-messages) throttle",
        "DynamoDB.UpdateItem(-messages) lost_response",  # stored, but the webhook never heard so
        "DynamoDB.BatchGetItem(-messages) error sticky",  # the publisher failed: the stream hands the batch over
        "EventBridge.PutEvents partial: entries failed",  # FailedEntryCount > 0, ErrorCode on some entries
        "EventBridge.PutEvents error",
        "EventBridge.PutEvents throttle",
        "EventBridge.PutEvents lost_response",  # the events went out, the publisher puts them again
    )
    for label in lifecycle:
        assert label in aws, label
    webhook_kills = publisher_kills = 0
    for ledger in ci_ledgers:
        assert ledger.lifecycle is not None
        webhook_kills += ledger.lifecycle.webhook["killed"]
        publisher_kills += ledger.lifecycle.publisher["killed"]
    assert webhook_kills > 0  # a webhook invocation killed mid-way: NXCloud is answered 502
    assert publisher_kills > 0  # a publisher invocation killed mid-way: the stream hands its batch over again


@pytest.mark.slow
def test_ci_soak_stores_every_acknowledged_callback_and_publishes_every_change(ci_ledgers: list[Ledger]) -> None:
    text = render(ci_ledgers)

    for ledger in ci_ledgers:
        lifecycle = ledger.lifecycle
        assert lifecycle is not None, text
        assert lifecycle.unsettled == [], text
        assert lifecycle.messages == ledger.nxcloud_accepted_total, text  # every accepted send had its callbacks
        assert lifecycle.answered_2xx > 0, text
        assert lifecycle.callbacks_lost == lifecycle.clicks_lost == 0, text
        assert lifecycle.statuses_invented == lifecycle.stored_unknown == 0, text
        assert lifecycle.final_differs == 0, text
        assert lifecycle.final_equal + lifecycle.final_explained == lifecycle.messages, text
        assert lifecycle.events_missing == lifecycle.events_unexpected == lifecycle.click_events_missing == 0, text
        assert lifecycle.events_distinct == lifecycle.changes > 0, text  # one distinct event per change, no more
        assert lifecycle.changes_backwards == lifecycle.final_not_a_change == 0, text
        assert lifecycle.kept_left == 0, text
    kept = sum(sum(ledger.lifecycle.kept.values()) for ledger in ci_ledgers if ledger.lifecycle)
    replayed = sum(ledger.lifecycle.replayed["HTTP 200"] for ledger in ci_ledgers if ledger.lifecycle)
    refused = sum(ledger.lifecycle.refused_total for ledger in ci_ledgers if ledger.lifecycle)
    assert kept > 0 and replayed >= kept, text  # callbacks the table refused were kept, then stored by the replay
    assert refused > 0, text  # and some were refused outright (gone: NXCloud does not retry)


@pytest.mark.slow
def test_ci_soak_sends_nothing_claimed_after_a_suppression_was_stored(ci_ledgers: list[Ledger]) -> None:
    text = render(ci_ledgers)

    for ledger in ci_ledgers:
        audience = ledger.audience
        assert audience is not None, text
        assert audience.sends_claimed_after == 0, text  # the promise: nothing claimed after the entry was stored
        assert sum(audience.entries.values()) > 0, text  # the callbacks stored entries (131050, 131026, clicks)
        assert audience.list_reads > 0, text  # the delivery read the list (one BatchGetItem per batch)
    skipped = sum(
        sum(lg.audience.skipped.values()) + lg.audience.suppressed_rejected_api for lg in ci_ledgers if lg.audience
    )
    assert skipped > 0, text  # a later message to an opted-out recipient was skipped


# --- what the soak found, one test each


class Killed(BaseException):
    """The Lambda runtime ending the function at its deadline: nothing after it runs (no except, no finally)."""


def _kill_after_send(rt: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    real_send = rt.sender.send

    def send_then_die(request: Any, credentials: Any = None) -> Any:
        real_send(request, credentials)
        raise Killed

    monkeypatch.setattr(rt.sender, "send", send_then_die)


def _deliver(rt: Any, body: dict[str, Any], key: str, remaining_ms: int = 30_000) -> Any:
    """One queued message through the delivery flow, as the SQS trigger hands it over."""
    from incoming import Incoming

    incoming = Incoming(body=json.dumps(body), source="sqs", source_id=f"msg-{key}", key=key)
    [outcome] = rt.delivery.deliver([incoming], remaining_ms=remaining_ms, dead_letter_rejections=True)
    return outcome


def _fail_settlements(rt: Any, monkeypatch: pytest.MonkeyPatch, times: int) -> list[int]:
    """Make the idempotency table refuse the next ``times`` settlements (BatchWriteItem); returns the call log."""
    client = rt.delivery.store.client
    real = client.batch_write_item
    calls: list[int] = []

    def batch_write_item(**kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchWriteItem")
        return real(**kwargs)

    monkeypatch.setattr(client, "batch_write_item", batch_write_item)
    return calls


@pytest.mark.parametrize(("policy", "accepted"), [("dead_letter", 1), ("retry", 2)])
def test_delivery_killed_after_the_send_is_never_sent_again_under_dead_letter(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str, accepted: int
) -> None:
    import runtime
    from outcomes import DeadLettered, Sent

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()
    rt = runtime.get()
    real_send = rt.sender.send
    _kill_after_send(rt, monkeypatch)
    with pytest.raises(Killed):
        _deliver(rt, message(), "killed-after-send", remaining_ms=50)
    monkeypatch.setattr(rt.sender, "send", real_send)
    time.sleep(0.1)  # past the killed invocation's deadline: its INPROGRESS record has expired
    outcome = _deliver(rt, message(), "killed-after-send")
    again = _deliver(rt, message(), "killed-after-send")  # and a later redelivery only answers it again

    assert len(simulator.accepted) == accepted
    if policy == "dead_letter":
        assert isinstance(outcome, DeadLettered)
        assert (outcome.failure.reason, outcome.failure.error_code) == ("unknown_outcome", "interrupted")
        assert isinstance(again, DeadLettered) and again.replayed
        assert len(stack.dlq_messages()) == 1
    else:
        assert isinstance(outcome, Sent) and not outcome.replayed
        assert isinstance(again, Sent) and again.replayed


@pytest.mark.parametrize("policy", POLICIES)
def test_sent_message_whose_outcome_could_not_be_stored_is_reported_sent_not_resent(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    import runtime

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", policy)
    runtime.reset()
    calls = _fail_settlements(runtime.get(), monkeypatch, times=1000)
    stack.enqueue(message())
    _, response = stack.run_batch()
    stack.run_batch()

    assert calls  # the settlement was tried, and failed
    assert response == {"batchItemFailures": []}
    assert stack.queue_depth() == 0
    assert len(simulator.accepted) == 1


def test_outcome_whose_store_failed_is_stored_on_a_second_try_so_a_later_duplicate_is_not_resent(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime
    from outcomes import Sent

    monkeypatch.setenv("UNKNOWN_OUTCOME_POLICY", "retry")  # the policy that takes over an expired in-progress key
    runtime.reset()
    rt = runtime.get()
    calls = _fail_settlements(rt, monkeypatch, times=1)
    first = _deliver(rt, message(), "stored-late", remaining_ms=50)
    time.sleep(0.1)  # past the first invocation's deadline: an INPROGRESS record would have expired
    second = _deliver(rt, message(), "stored-late")  # a producer's duplicate of the message

    assert len(calls) == 2
    assert isinstance(first, Sent) and isinstance(second, Sent)
    assert second.replayed and second.message_id == first.message_id
    assert len(simulator.accepted) == 1


def test_a_cold_containers_first_batch_is_replayed_not_refused_when_redelivered(stack: Stack, simulator: Any) -> None:
    import runtime

    runtime.reset()
    for n in range(2):
        stack.enqueue(message(to=f"861380000011{n}"), {"idempotency_key": f"cold-{n}"})
    event = stack.receive()
    first = stack.invoke(event)
    again = stack.invoke(event)  # the event source delivers the same batch again

    assert first == again == {"batchItemFailures": []}
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
    assert len(dead) == 1  # written on the retry, which records that it was: the third call only answers it again
    assert {d["MessageAttributes"]["reason"]["StringValue"] for d in dead} == {"unknown_outcome"}
