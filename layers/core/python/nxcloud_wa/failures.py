"""Why a message was not sent, as one value (:class:`Failure`), and every mapping of an exception to one.

Three questions, three homes:

* how a code, an HTTP status or a transport condition is classified (reason, class, the API's status): the one table,
  :mod:`nxcloud_wa.error_codes` (a read timeout is ``READ_TIMEOUT``, NXCloud's 22141 is its row);
* which :class:`Failure` an exception, or one of the delivery's own conditions, becomes: here;
* what the delivery then does with it (retried, dead-lettered, put back, rejected): ``functions/sender/fate.py``,
  from the failure's classification alone.

A :class:`Failure` is what logs, metrics, dead-letter attributes and API error bodies all read, so the four agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final

from .error_codes import (
    DEAD_LETTER_FAILED,
    INTERNAL_ERROR,
    MISCONFIGURED,
    RATE_LIMITED,
    RETRIES_EXHAUSTED,
    THROTTLE_REASONS,
    UNKNOWN_OUTCOME,
    Classification,
    Classified,
)
from .exceptions import ConfigurationError, InvalidMessageError, SendError, TemplateMismatchError, ThrottledError

NUMBER_RATE_DELAY: Final = 1.0
PAIR_RATE_DELAY: Final = 6.0
MAX_WRITE_ERROR_TEXT: Final = 500


@dataclass(frozen=True, slots=True)
class Failure(Classified):
    """Why a message was not sent."""

    classification: Classification
    error_code: str
    error_message: str
    trace_id: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    """An invalid message's field errors (``{loc, msg, type}``), for the API's 400 body."""
    retry_after: float | None = None
    """A throttle's delay, in seconds, when the upstream or the limiter said (the API's ``Retry-After``)."""


def failure(classification: Classification, code: str | None = None, message: str | None = None) -> Failure:
    """A failure of one of the delivery's own kinds, described by the table unless told otherwise."""
    return Failure(classification, code or classification.reason, message or classification.meaning)


def failure_for(exc: BaseException) -> Failure:
    """Describe an exception raised while handling one message."""
    if isinstance(exc, InvalidMessageError):
        return Failure(exc.classification, "validation", str(exc), errors=tuple(exc.errors))
    if isinstance(exc, ThrottledError):
        retry_after = exc.retry_after if exc.retry_after is not None else throttle_delay(exc.per_recipient)
        return Failure(exc.classification, exc.error_code, exc.message, exc.trace_id, retry_after=retry_after)
    if isinstance(exc, SendError):
        return Failure(exc.classification, exc.error_code, exc.message, exc.trace_id)
    if isinstance(exc, TemplateMismatchError):
        return Failure(exc.classification, exc.kind, str(exc))
    if isinstance(exc, ConfigurationError):
        return failure(MISCONFIGURED, "configuration")
    return failure(INTERNAL_ERROR, type(exc).__name__)


def throttle_delay(per_recipient: bool) -> float:
    """How long to wait after an upstream throttle that named no ``Retry-After``: a second for the number's rate,
    six for the recipient's (Meta allows about one message every 6 seconds to the same recipient)."""
    return PAIR_RATE_DELAY if per_recipient else NUMBER_RATE_DELAY


def rate_limited(retry_in: float) -> Failure:
    """The limiter held the message back: the number has capacity again in ``retry_in`` seconds."""
    return Failure(RATE_LIMITED, "number_at_rate", RATE_LIMITED.meaning, retry_after=retry_in)


def is_throttle(failure: Failure) -> bool:
    """A throttle delays the message; it is not one of its failed attempts."""
    return failure.reason in THROTTLE_REASONS


# --- a failure restated under the reason a dead letter or a retry carries (the error_code keeps what happened)


def unknown(cause: Failure) -> Failure:
    """An unknown outcome as it is dead-lettered: reason ``unknown_outcome``, code naming what happened."""
    return replace(cause, classification=UNKNOWN_OUTCOME, error_code=cause.reason, errors=())


def exhausted(last: Failure) -> Failure:
    """A message that spent its last receive failing: reason ``retries_exhausted``, the last failure's code."""
    return Failure(RETRIES_EXHAUSTED, last.error_code, last.error_message, last.trace_id)


def dead_letter_failed(cause: Failure, error: BaseException) -> Failure:
    """The dead-letter queue refused the write: retried, under ``dlq_write_failed`` with what SQS said."""
    return Failure(DEAD_LETTER_FAILED, cause.error_code, str(error)[:MAX_WRITE_ERROR_TEXT], cause.trace_id)
