"""What a delivery ends as, typed: sent, dead-lettered, rejected to the caller, put back with a delay, or to be
retried.

Both triggers receive these from :mod:`delivery` and only translate them: the queue into a partial batch response,
the API into an HTTP answer. A :class:`Failure` says why a message was not sent, once, for logs, metrics, dead-letter
attributes and API error bodies alike, so the four always agree; its classification comes from
``nxcloud_wa.error_codes``, the one table.

What an idempotency record stores (``stored_data``) and how it reads back (``from_stored``) lives here too: the
stored form is the one earlier versions wrote (``{"status": "sent", "message_id", ...}``), so records cross deploys.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from nxcloud_wa.error_codes import (
    INTERNAL_ERROR,
    INVALID_MESSAGE,
    MISCONFIGURED,
    RATE_LIMITED,
    THROTTLE_REASONS,
    UNKNOWN_OUTCOME,
    Classification,
    ErrorClass,
)
from nxcloud_wa.exceptions import (
    ConfigurationError,
    InvalidMessageError,
    SendError,
    TemplateMismatchError,
    ThrottledError,
)

SENT: Final = "sent"
UNKNOWN: Final = "unknown_outcome"
NUMBER_RATE_DELAY: Final = 1.0
PAIR_RATE_DELAY: Final = 6.0


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message was not sent."""

    classification: Classification
    error_code: str
    error_message: str
    trace_id: str | None = None
    errors: tuple[dict[str, Any], ...] = ()
    """An invalid message's field errors (``{loc, msg, type}``), for the API's 400 body."""
    retry_after: float | None = None
    """A throttle's delay, in seconds, when the upstream or the limiter said (the API's ``Retry-After``)."""

    @property
    def reason(self) -> str:
        return self.classification.reason

    @property
    def error_class(self) -> ErrorClass:
        return self.classification.error_class

    @property
    def api_status(self) -> int:
        return self.classification.api_status


def failure(classification: Classification, code: str | None = None, message: str | None = None) -> Failure:
    """A failure of one of the delivery's own kinds, described by the table unless told otherwise."""
    return Failure(classification, code or classification.reason, message or classification.meaning)


def failure_for(exc: BaseException) -> Failure:
    """Describe an exception raised while handling one message."""
    if isinstance(exc, InvalidMessageError):
        return Failure(INVALID_MESSAGE, "validation", str(exc), errors=tuple(exc.errors))
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


def unknown(cause: Failure) -> Failure:
    """An unknown outcome as it is dead-lettered: reason ``unknown_outcome``, code naming what happened."""
    return replace(cause, classification=UNKNOWN_OUTCOME, error_code=cause.reason, errors=())


@dataclass(frozen=True, slots=True)
class Sent:
    """NXCloud accepted the message (or an earlier delivery of the same key did: ``replayed``)."""

    message_id: str
    trace_id: str | None
    at: str
    latency_ms: float | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """On the dead-letter queue with its reason: permanently rejected (queue), or an unknown outcome (both).

    ``dlq_message_id`` is None when an earlier delivery of the key put it there (``replayed``).
    """

    failure: Failure
    dlq_message_id: str | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """Permanently refused and answered to the API's caller; nothing was sent and nothing is kept."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Not sent, nothing final: the queue delivers it again, the API's caller may try again."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class Delayed:
    """Throttled (the ``failure`` says by what), not sent: put back on the send queue as a copy that becomes visible
    in ``delay_seconds``, and the record is done. Unlike a retry, it spends none of the message's receives."""

    failure: Failure
    delay_seconds: int
    queue_message_id: str


Outcome = Sent | DeadLettered | Rejected | RetryLater | Delayed


# --- the idempotency record's data


def stored_data(outcome: Sent | Failure, *, dead_lettered: bool = False) -> dict[str, Any]:
    """The data stored for a final outcome: a sent message, or an unknown outcome (its failure, see :func:`unknown`).

    ``dead_lettered`` says whether the unknown outcome reached the dead-letter queue: a later delivery of the key
    writes it there if not, and otherwise only answers it again.
    """
    if isinstance(outcome, Sent):
        return {
            "status": SENT,
            "message_id": outcome.message_id,
            "trace_id": outcome.trace_id,
            "at": outcome.at,
            "latency_ms": outcome.latency_ms,
        }
    error = {
        "error_class": str(outcome.error_class),
        "reason": outcome.error_code,  # what happened: read_timeout, connection_dropped, interrupted...
        "code": None,
        "message": outcome.error_message,
        "trace_id": outcome.trace_id,
    }
    return {"status": UNKNOWN, "error": error, "at": now(), "dead_lettered": dead_lettered}


def from_stored(data: dict[str, Any]) -> Sent | tuple[Failure, bool]:
    """A stored outcome: the sent message, or an unknown outcome's failure and whether it was dead-lettered."""
    if data.get("status") == SENT:
        return Sent(str(data.get("message_id")), data.get("trace_id"), str(data.get("at")), replayed=True)
    raw = data.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    cause = failure(
        UNKNOWN_OUTCOME,
        str(error.get("reason") or UNKNOWN_OUTCOME.reason),
        str(error.get("message") or UNKNOWN_OUTCOME.meaning),
    )
    return replace(cause, trace_id=error.get("trace_id")), bool(data.get("dead_lettered"))


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
