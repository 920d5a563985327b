"""A message's fate, rule by rule: pure functions of what its attempt came to, the trigger and the deployment."""

from __future__ import annotations

from dataclasses import replace

import pytest

import fate
from fate import Release, Rules, ToDeadLetter, ToPutBack
from idempotency_record import StoredUnknown
from incoming import Incoming
from nxcloud_wa.audience import CapTally, FrequencyCap
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.error_codes import (
    CONNECT_ERROR,
    IN_PROGRESS,
    INTERRUPTED,
    INVALID_MESSAGE,
    READ_TIMEOUT,
    THROTTLED,
    ErrorClass,
    classify_http_status,
)
from nxcloud_wa.exceptions import PermanentSendError, RetryableSendError, SendError, UnknownOutcomeError, send_error
from nxcloud_wa.failures import Failure, failure, failure_for, rate_limited, unknown
from nxcloud_wa.suppressions import Reason, Scope, Suppression
from outcomes import DeadLettered, Delayed, Rejected, RetryLater, Sent, Skipped

SENT = Sent("mid-1", "trace", "2026-12-01T00:00:00.000+00:00", latency_ms=10.0)
INVALID = failure(INVALID_MESSAGE, "validation")
RETRYABLE = failure(classify_http_status(500))
TIMEOUT = failure(READ_TIMEOUT)
UNKNOWN = unknown(TIMEOUT)
HELD_BACK = rate_limited(0.5)
THROTTLE = Failure(THROTTLED, "http_429", "over the rate", retry_after=2.0)

QUEUE = Rules(dead_letter_rejections=True, can_put_back=True, max_receive_count=5)
API = Rules(dead_letter_rejections=False, can_put_back=True, max_receive_count=5)


def queued(receive_count: int = 1, earlier_failures: int = 0) -> Incoming:
    return Incoming("{}", "sqs", "m-1", receive_count=receive_count, earlier_failures=earlier_failures)


REQUEST = Incoming("{}", "api", "req-1")


# --- after_send


def test_an_unknown_outcome_takes_its_dead_letter_form_under_dead_letter_only() -> None:
    assert fate.after_send(TIMEOUT, UnknownOutcomePolicy.DEAD_LETTER) == UNKNOWN
    assert fate.after_send(TIMEOUT, UnknownOutcomePolicy.RETRY) == TIMEOUT


@pytest.mark.parametrize("cause", [RETRYABLE, INVALID, THROTTLE])
def test_any_other_failed_send_stays_as_it_is(cause: Failure) -> None:
    assert fate.after_send(cause, UnknownOutcomePolicy.DEAD_LETTER) == cause


# --- dispose


def test_a_sent_message_is_final() -> None:
    assert fate.dispose(SENT, queued(), QUEUE) == SENT


@pytest.mark.parametrize(("rules", "incoming"), [(QUEUE, queued()), (API, REQUEST)])
def test_an_unknown_outcome_is_dead_lettered_from_both_triggers(rules: Rules, incoming: Incoming) -> None:
    assert fate.dispose(UNKNOWN, incoming, rules) == ToDeadLetter(UNKNOWN)


def test_under_retry_an_unknown_outcome_is_retried_like_any_failure() -> None:
    assert fate.dispose(TIMEOUT, queued(), QUEUE) == RetryLater(TIMEOUT)


def test_a_recorded_unknown_outcome_is_dead_lettered_once() -> None:
    assert fate.dispose(StoredUnknown(UNKNOWN, True), queued(), QUEUE) == DeadLettered(UNKNOWN, replayed=True)
    assert fate.dispose(StoredUnknown(UNKNOWN, False), queued(), QUEUE) == ToDeadLetter(UNKNOWN, replayed=True)


def test_a_permanent_failure_is_dead_lettered_from_the_queue_and_rejected_on_the_api() -> None:
    assert fate.dispose(INVALID, queued(), QUEUE) == ToDeadLetter(INVALID)
    assert fate.dispose(INVALID, REQUEST, API) == Rejected(INVALID)


@pytest.mark.parametrize("throttle", [HELD_BACK, THROTTLE])
def test_a_throttled_queue_message_is_put_back_even_on_its_last_receive(throttle: Failure) -> None:
    assert fate.dispose(throttle, queued(), QUEUE) == ToPutBack(throttle)
    assert fate.dispose(throttle, queued(receive_count=3, earlier_failures=4), QUEUE) == ToPutBack(throttle)


def test_a_throttle_is_retried_on_the_api_and_without_a_send_queue() -> None:
    assert fate.dispose(THROTTLE, REQUEST, API) == RetryLater(THROTTLE)  # 429 with Retry-After
    assert fate.dispose(THROTTLE, queued(), Rules(dead_letter_rejections=True)) == RetryLater(THROTTLE)


def test_a_copy_that_spent_the_messages_last_receive_is_dead_lettered_as_exhausted() -> None:
    disposal = fate.dispose(RETRYABLE, queued(receive_count=2, earlier_failures=3), QUEUE)

    assert isinstance(disposal, ToDeadLetter)
    assert (disposal.failure.reason, disposal.failure.error_code) == ("retries_exhausted", RETRYABLE.error_code)


@pytest.mark.parametrize(
    "incoming",
    [
        queued(receive_count=5),  # an original: the redrive policy counts its receives
        queued(receive_count=1, earlier_failures=3),  # a copy with receives left
    ],
)
def test_a_retryable_failure_with_receives_left_is_retried(incoming: Incoming) -> None:
    assert fate.dispose(RETRYABLE, incoming, QUEUE) == RetryLater(RETRYABLE)


# --- after the writes


def test_a_dead_letter_written_is_final_and_one_refused_is_retried() -> None:
    intent = ToDeadLetter(INVALID, replayed=True)
    assert fate.dead_lettered(intent, "dlq-1") == DeadLettered(INVALID, "dlq-1", replayed=True)
    retried = fate.dead_lettered(intent, RuntimeError("queue gone"))
    assert isinstance(retried, RetryLater)
    assert (retried.failure.reason, retried.failure.error_code) == ("dlq_write_failed", "validation")
    assert "queue gone" in retried.failure.error_message


def test_a_copy_written_ends_the_record_and_one_refused_is_retried() -> None:
    assert fate.put_back(ToPutBack(THROTTLE), 3, "copy-1") == Delayed(THROTTLE, 3, "copy-1")
    assert fate.put_back(ToPutBack(THROTTLE), 3, RuntimeError("no")) == RetryLater(THROTTLE)


def test_a_request_refused_before_the_delivery_is_rejected_only_when_it_is_wrong() -> None:
    assert fate.refused(INVALID) == Rejected(INVALID)
    assert fate.refused(failure(CONNECT_ERROR)) == RetryLater(failure(CONNECT_ERROR))


# --- the rate slot


@pytest.mark.parametrize("result", [SENT, RETRYABLE, THROTTLE, UNKNOWN, failure(IN_PROGRESS)])
def test_a_slot_no_request_went_out_in_is_given_back(result: Sent | Failure) -> None:
    assert fate.slot_unused(result, requested=False)


@pytest.mark.parametrize(
    ("result", "unused"),
    [
        (SENT, False),
        (UNKNOWN, False),  # it may have been sent
        (TIMEOUT, False),
        (THROTTLE, False),  # the number was too fast already
        (RETRYABLE, True),  # NXCloud answered without sending
        (INVALID, True),
    ],
)
def test_a_slot_a_request_went_out_in_is_kept_unless_nothing_was_sent(result: Sent | Failure, unused: bool) -> None:
    assert fate.slot_unused(result, requested=True) is unused


# --- settlement


def test_a_message_sent_now_is_stored_and_a_replay_changes_nothing() -> None:
    assert fate.settlement(SENT, SENT, requested=True) == SENT
    replay = Sent("mid-1", "trace", SENT.at, replayed=True)
    assert fate.settlement(replay, replay, requested=False) is None


def test_an_unknown_outcome_is_stored_with_whether_it_reached_the_dead_letter_queue() -> None:
    assert fate.settlement(UNKNOWN, DeadLettered(UNKNOWN, "d"), requested=True) == StoredUnknown(UNKNOWN, True)
    assert fate.settlement(UNKNOWN, RetryLater(UNKNOWN), requested=True) == StoredUnknown(UNKNOWN, False)


def test_an_interrupted_attempt_is_taken_over_as_final_though_not_claimed() -> None:
    interrupted = unknown(failure(INTERRUPTED))
    assert fate.settlement(interrupted, DeadLettered(interrupted, "d"), requested=False) == StoredUnknown(
        interrupted, True
    )


def test_a_recorded_unknown_outcome_is_stored_again_only_when_it_was_dead_lettered_only_now() -> None:
    now = DeadLettered(UNKNOWN, "d", replayed=True)
    assert fate.settlement(StoredUnknown(UNKNOWN, False), now, requested=False) == StoredUnknown(UNKNOWN, True)
    assert fate.settlement(StoredUnknown(UNKNOWN, False), RetryLater(UNKNOWN), requested=False) is None
    already = DeadLettered(UNKNOWN, replayed=True)
    assert fate.settlement(StoredUnknown(UNKNOWN, True), already, requested=False) is None


@pytest.mark.parametrize("outcome", [RetryLater(RETRYABLE), Delayed(THROTTLE, 2, "c"), Rejected(INVALID)])
def test_any_other_claim_of_this_delivery_is_released_and_anothers_is_left_alone(
    outcome: RetryLater | Delayed | Rejected,
) -> None:
    assert fate.settlement(outcome.failure, outcome, requested=True) == Release()
    assert fate.settlement(outcome.failure, outcome, requested=False) is None


@pytest.mark.parametrize(
    ("error_class", "exception", "outcome"),
    [
        (ErrorClass.UNKNOWN, UnknownOutcomeError, ToDeadLetter),
        (ErrorClass.RETRYABLE, RetryableSendError, RetryLater),
        (ErrorClass.PERMANENT, PermanentSendError, ToDeadLetter),
    ],
)
def test_the_table_alone_decides_what_becomes_of_a_read_timeout(
    error_class: ErrorClass, exception: type[SendError], outcome: type
) -> None:
    """Reclassifying READ_TIMEOUT (one edit, in error_codes.py) changes the exception, the failure and the fate."""
    classification = replace(READ_TIMEOUT, error_class=error_class)
    error = send_error("no answer", classification)
    cause = fate.after_send(failure_for(error), UnknownOutcomePolicy.DEAD_LETTER)

    assert type(error) is exception
    assert isinstance(fate.dispose(cause, queued(), QUEUE), outcome)


# --- screen (the suppression list's verdict)

BUSINESS, RECIPIENT = "8618512348399", "8613800000000"
PAIR = (BUSINESS, RECIPIENT)


def entry(scope: str = "marketing", reason: str = "opted_out") -> Suppression:
    return Suppression(BUSINESS, RECIPIENT, Scope(scope), Reason(reason), "Stop promotions", "2026-12-01")


@pytest.mark.parametrize("category", ["MARKETING", None, "", "SOMETHING_NEW"])
def test_a_marketing_entry_skips_marketing_and_unknown_categories(category: str | None) -> None:
    verdict = fate.screen({PAIR: entry()}, PAIR, category)

    assert isinstance(verdict, Skipped)
    assert (verdict.reason, verdict.suppression_reason, verdict.scope, verdict.source) == (
        "suppressed",
        "opted_out",
        "marketing",
        "Stop promotions",
    )
    assert verdict.failure.reason == "recipient_suppressed" and verdict.failure.error_code == "opted_out"
    assert verdict.category == (category or "unknown")  # the skip's log line says what it was judged by
    assert verdict.failure.api_status == 422


@pytest.mark.parametrize("category", ["UTILITY", "AUTHENTICATION", "utility"])
def test_a_marketing_entry_does_not_stop_utility_or_authentication(category: str) -> None:
    assert fate.screen({PAIR: entry()}, PAIR, category) is None


@pytest.mark.parametrize("category", ["UTILITY", "AUTHENTICATION", "MARKETING", None])
def test_an_all_entry_stops_every_category(category: str | None) -> None:
    verdict = fate.screen({PAIR: entry("all", "undeliverable")}, PAIR, category)
    assert isinstance(verdict, Skipped) and verdict.suppression_reason == "undeliverable"


def test_no_entry_or_no_business_number_goes_on() -> None:
    assert fate.screen({}, PAIR, "MARKETING") is None
    assert fate.screen({PAIR: entry()}, (BUSINESS, "8613800000001"), "MARKETING") is None
    assert fate.screen(None, None, "MARKETING") is None


@pytest.mark.parametrize(("category", "kept_back"), [("MARKETING", True), (None, True), ("UTILITY", False)])
def test_an_unreadable_list_retries_marketing_and_sends_utility(category: str | None, kept_back: bool) -> None:
    verdict = fate.screen(None, PAIR, category)

    if kept_back:
        assert isinstance(verdict, Failure) and verdict.reason == "suppressions_unavailable"
        assert fate.dispose(verdict, queued(), QUEUE) == RetryLater(verdict)
        assert fate.dispose(verdict, REQUEST, API) == RetryLater(verdict) and verdict.api_status == 503
    else:
        assert verdict is None


def test_a_skipped_message_is_final_on_both_triggers_never_dead_lettered_and_leaves_no_claim() -> None:
    skipped = fate.skipped(entry())

    assert fate.dispose(skipped, queued(), QUEUE) is skipped
    assert fate.dispose(skipped, REQUEST, API) is skipped
    assert fate.settlement(skipped, skipped, requested=False) is None
    assert fate.slot_unused(skipped, requested=False)


# --- the marketing frequency cap


def tally(*sent: str, count: int = 1) -> CapTally:
    return CapTally(FrequencyCap(count, 86_400, f"{count}/24h"), {PAIR: dict.fromkeys(sent, 1_799_999_000)}, 1.8e9)


@pytest.mark.parametrize("category", ["MARKETING", None, "SOMETHING_NEW"])
def test_a_marketing_message_over_the_cap_is_skipped_and_under_it_counted(category: str | None) -> None:
    under = fate.capped(tally(), PAIR, "m2", category)
    over = fate.capped(tally("m1"), PAIR, "m2", category)

    assert under == fate.Counted(PAIR, "m2", {})
    assert isinstance(over, Skipped)
    assert (over.reason, over.cap, over.suppression_reason) == ("frequency_cap", "1/24h", "")
    assert (over.failure.reason, over.failure.error_code, over.failure.api_status) == ("frequency_capped", "1/24h", 422)


def test_a_message_already_counted_is_not_capped() -> None:
    assert fate.capped(tally("m1"), PAIR, "m1", "MARKETING") == fate.Counted(PAIR, "m1", {"m1": 1_799_999_000})


@pytest.mark.parametrize("category", ["UTILITY", "AUTHENTICATION", "utility"])
def test_utility_and_authentication_are_neither_capped_nor_counted(category: str) -> None:
    assert fate.capped(tally("m1"), PAIR, "m2", category) is None


def test_a_batch_s_second_marketing_message_to_a_pair_at_one_a_day_is_capped() -> None:
    batch = tally()

    assert isinstance(fate.capped(batch, PAIR, "m1", "MARKETING"), fate.Counted)
    assert isinstance(fate.capped(batch, PAIR, "m2", "MARKETING"), Skipped)


@pytest.mark.parametrize(
    ("result", "requested", "counts"),
    [
        (SENT, True, True),
        (UNKNOWN, True, True),  # it may have gone out
        (TIMEOUT, True, True),  # an unknown outcome retried under retry
        (replace(SENT, replayed=True), False, False),  # an earlier delivery sent (and counted) it
        (RETRYABLE, True, False),
        (INVALID, True, False),
        (THROTTLE, True, False),
        (HELD_BACK, False, False),
    ],
)
def test_what_counts_against_the_cap_is_what_may_have_gone_out_now(
    result: fate.Result, requested: bool, counts: bool
) -> None:
    assert fate.may_have_sent(result, requested) is counts
