"""A message's fate: the rules that decide it, as pure functions of what its attempt came to.

:mod:`delivery` runs the steps and does the writing; every "what now?" is answered here, from the failure's
classification (``nxcloud_wa.error_codes``, the one table), the trigger and the deployment's settings:

* :func:`screen`: what the suppression list says of a message before anything else is decided: skipped (its
  recipient has an entry that stops its template's category), kept back to retry later (the list could not be read
  and the message is marketing, or of unknown category), or on its way;
* :func:`capped`: what the marketing frequency cap says of a message the list let through: skipped (its pair has had
  as many marketing templates as the cap allows in its window), or on its way; :func:`may_have_sent`: whether a
  message counts against the cap afterwards;
* :func:`after_send`: an unknown outcome (NXCloud may have sent it) is dead-lettered under
  ``UNKNOWN_OUTCOME_POLICY=dead_letter``, or retried like any other failure under ``retry``;
* :func:`dispose`: what becomes of the attempt: final as it is (sent, rejected to the API's caller, retried, or
  dead-lettered by an earlier delivery), or to be written to the dead-letter queue, or put back on the send queue;
* :func:`dead_lettered`, :func:`put_back`: the outcome once that write succeeded or failed;
* :func:`slot_unused`: whether the number's rate slot the message took is given back;
* :func:`settlement`: what the key's idempotency record becomes.

The rules, in words: a suppressed message is skipped: final, not a failure, never claimed or dead-lettered (the queue
deletes it, the API answers 422); when the list cannot be read, ``UTILITY`` and ``AUTHENTICATION`` go on unchecked and
everything else is retried (:func:`nxcloud_wa.audience.when_unreadable`). A permanent failure is dead-lettered (queue)
or rejected to the caller (API); an unknown outcome is dead-lettered on both (once: a later delivery of the key only
answers it again), or retried under ``retry``. A throttle (held back by the limiter, or refused upstream for a rate) is
put back on the queue as a delayed copy, spending none of the message's receives, or answered 429 to the API's caller. A
retry of a put-back copy that has spent the message's last receive is dead-lettered (``retries_exhausted``). A failed
dead-letter write is retried, and so is a copy SQS would not take. Nothing final is lost: a message's outcome is stored
when it must be remembered (sent, or an unknown outcome), and its claim released otherwise, so a message retried, put
back or redriven is tried again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from idempotency_record import StoredUnknown
from incoming import Incoming
from nxcloud_wa.audience import CapTally, WhenUnreadable, is_marketing, suppression_for, when_unreadable
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.error_codes import (
    FREQUENCY_CAPPED,
    RECIPIENT_SUPPRESSED,
    SUPPRESSIONS_UNAVAILABLE,
    UNKNOWN_OUTCOME,
    ErrorClass,
)
from nxcloud_wa.failures import Failure, dead_letter_failed, exhausted, failure, is_throttle, unknown
from nxcloud_wa.phone import redact_numbers
from nxcloud_wa.suppressions import Key, Suppression
from outcomes import UNKNOWN_CATEGORY, DeadLettered, Delayed, Outcome, Rejected, RetryLater, Sent, Skipped, now

Result = Sent | Skipped | Failure | StoredUnknown
"""What an attempt came to: sent (now, or by an earlier delivery), skipped (suppressed), why not, or an unknown
outcome an earlier delivery of the key recorded."""

SUPPRESSED: Final = "suppressed"
"""Why a message is skipped when its recipient's entry stops it (``Skipped.reason``, the metric's ``Reason``)."""
FREQUENCY_CAP: Final = "frequency_cap"
"""Why a marketing message is skipped when its recipient has reached the frequency cap."""


@dataclass(frozen=True, slots=True)
class Counted:
    """A marketing message under the frequency cap, on its way: if it goes out, its pair's count gains its send."""

    key: Key
    tag: str
    """The message's name in the count (:func:`nxcloud_wa.suppressions.send_tag`)."""
    recent: Mapping[str, int]
    """The pair's sends inside the window as the batch read them."""


@dataclass(frozen=True, slots=True)
class ToDeadLetter:
    """To be written to the dead-letter queue under ``failure``; ``replayed``: an earlier delivery recorded it."""

    failure: Failure
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class ToPutBack:
    """To be put back on the send queue as a delayed copy (a throttle of a queue message)."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class Release:
    """The key's claim is released: nothing final happened, and a later delivery tries the message again."""


@dataclass(frozen=True, slots=True)
class Rules:
    """What the trigger and the deployment decide about fates."""

    dead_letter_rejections: bool
    """A permanent failure goes to the dead-letter queue (the queue) or back to the caller (the API)."""
    can_put_back: bool = False
    """The send queue's URL is known: a throttled queue message can go back as a delayed copy."""
    max_receive_count: int = 0
    """The redrive policy's ``maxReceiveCount``: the receives a message may spend failing over all its copies."""


def screen(found: Mapping[Key, Suppression] | None, key: Key | None, category: str | None) -> Skipped | Failure | None:
    """What the batch's lookup (``found``; None: the list could not be read) says of one message to ``key`` (None:
    no business number, so nothing to look up: NXCloud refuses it) whose template is of ``category`` (None:
    unknown, which counts as marketing). None: it goes on to be paced, claimed and sent."""
    if key is None:
        return None
    if found is None:
        unreadable = when_unreadable(category) is WhenUnreadable.RETRY_LATER
        return failure(SUPPRESSIONS_UNAVAILABLE) if unreadable else None
    entry = suppression_for(found, key, category)
    return skipped(entry, category) if entry is not None else None


def skipped(entry: Suppression, category: str | None = None) -> Skipped:
    """The outcome of a message ``entry`` stops (the API's body says the entry's reason, scope and source)."""
    source = redact_numbers(entry.source)  # a hand-written source may quote a number: never in an answer
    text = f"the recipient is on the suppression list ({entry.reason}, scope {entry.scope}, source {source}): "
    text += "the message was not sent"
    return Skipped(
        failure(RECIPIENT_SUPPRESSED, str(entry.reason), text),
        SUPPRESSED,
        now(),
        suppression_reason=str(entry.reason),
        scope=str(entry.scope),
        source=entry.source,
        category=category or UNKNOWN_CATEGORY,
    )


def capped(tally: CapTally, key: Key, tag: str, category: str | None) -> Skipped | Counted | None:
    """What the marketing frequency cap says of a message (``tag``) that passed the suppression list: skipped when its
    pair has reached the cap (counting the batch's earlier messages to it, and unless the count holds this message
    already), else counted (it goes on, and its send will count). ``UTILITY`` and ``AUTHENTICATION`` are neither
    capped nor counted (None: it goes on); an unknown category counts as marketing, as it does for the list."""
    if not is_marketing(category):
        return None
    if tally.admit(key, tag):
        return Counted(key, tag, tally.recent(key))
    cap = str(tally.cap)
    text = f"the recipient has reached the marketing frequency cap ({cap} per recipient and business number): "
    text += "the message was not sent"
    return Skipped(
        failure(FREQUENCY_CAPPED, cap, text), FREQUENCY_CAP, now(), cap=cap, category=category or UNKNOWN_CATEGORY
    )


def may_have_sent(result: Result, requested: bool) -> bool:
    """Whether a message counts as sent for the frequency cap: its request went out in this delivery and NXCloud
    accepted it, or its outcome is unknown (it may have gone out: the count errs towards not messaging)."""
    if not requested:
        return False
    return isinstance(result, Sent) or (isinstance(result, Failure) and result.error_class is ErrorClass.UNKNOWN)


def after_send(cause: Failure, policy: UnknownOutcomePolicy) -> Failure:
    """What a failed send counts as: under ``dead_letter`` an unknown outcome takes its dead-letter form
    (``nxcloud_wa.failures.unknown``); anything else stays as it is (under ``retry`` an unknown outcome is retried)."""
    if cause.error_class is ErrorClass.UNKNOWN and policy is UnknownOutcomePolicy.DEAD_LETTER:
        return unknown(cause)
    return cause


def dispose(result: Result, incoming: Incoming, rules: Rules) -> Outcome | ToDeadLetter | ToPutBack:
    """The outcome of an attempt that needs no write, or the write it needs."""
    if isinstance(result, Sent | Skipped):
        return result
    if isinstance(result, StoredUnknown):
        dead = result.failure
        return DeadLettered(dead, replayed=True) if result.dead_lettered else ToDeadLetter(dead, replayed=True)
    if is_throttle(result) and incoming.queued and rules.can_put_back:
        return ToPutBack(result)  # the API's caller is answered 429 with Retry-After instead (a retry, below)
    if result.reason == UNKNOWN_OUTCOME.reason:
        return ToDeadLetter(result)
    if result.error_class is ErrorClass.PERMANENT:
        return ToDeadLetter(result) if rules.dead_letter_rejections else Rejected(result)
    last_receive = receives_exhausted(incoming, rules.max_receive_count)
    return ToDeadLetter(exhausted(result)) if last_receive else RetryLater(result)


def receives_exhausted(incoming: Incoming, max_receive_count: int) -> bool:
    """Whether a retry of this record would exceed the message's receives: only a put-back copy's (an original's are
    the redrive policy's to count, and it does)."""
    if not incoming.queued or not incoming.earlier_failures or not max_receive_count:
        return False
    return incoming.earlier_failures + (incoming.receive_count or 1) >= max_receive_count


def dead_lettered(intent: ToDeadLetter, written: str | BaseException) -> DeadLettered | RetryLater:
    """A dead letter written (SQS's message id) is final; one SQS would not take is retried."""
    if isinstance(written, str):
        return DeadLettered(intent.failure, written, replayed=intent.replayed)
    return RetryLater(dead_letter_failed(intent.failure, written))


def put_back(intent: ToPutBack, delay_seconds: int, written: str | BaseException) -> Delayed | RetryLater:
    """A copy on the queue ends the record; one SQS would not take leaves it to be retried (a receive spent)."""
    if isinstance(written, str):
        return Delayed(intent.failure, delay_seconds, written)
    return RetryLater(intent.failure)


def refused(failure: Failure) -> Rejected | RetryLater:
    """A request the API refused before the delivery (unreadable, invalid, a dependency failing): rejected when the
    request itself is wrong, else the caller may try again."""
    return Rejected(failure) if failure.error_class is ErrorClass.PERMANENT else RetryLater(failure)


def slot_unused(result: Result, requested: bool) -> bool:
    """Whether the rate slot a message took went unused, so it is given back: no request went out (its claim failed,
    or found the message sent already or in progress), or NXCloud answered without sending, and not because the
    number was too fast. A slot is kept for a send that may have been accepted (sent, or an unknown outcome) and for
    a throttle."""
    if not requested:
        return True
    return (
        isinstance(result, Failure)
        and result.error_class in (ErrorClass.RETRYABLE, ErrorClass.PERMANENT)
        and not is_throttle(result)
    )


def settlement(result: Result, outcome: Outcome, requested: bool) -> Sent | StoredUnknown | Release | None:
    """What the key's idempotency record becomes (``requested``: the claim is this delivery's, its request went out).

    * a message sent now: stored, so a later delivery of the key answers it again;
    * an unknown outcome decided now (a fresh send's, or an interrupted attempt's record taken over as final), or
      recorded before and dead-lettered only now: stored with whether it reached the dead-letter queue;
    * any other claim of this delivery's: released;
    * otherwise nothing changes (a replay, another delivery's key).
    """
    if isinstance(outcome, Sent):
        return None if outcome.replayed else outcome
    if isinstance(outcome, Skipped):  # screened before the claim: there is no claim to settle
        return None
    dead_lettered = isinstance(outcome, DeadLettered)
    if isinstance(result, StoredUnknown):
        return None if result.dead_lettered == dead_lettered else StoredUnknown(result.failure, dead_lettered)
    if isinstance(result, Failure) and result.reason == UNKNOWN_OUTCOME.reason:
        return StoredUnknown(result, dead_lettered)
    return Release() if requested else None
