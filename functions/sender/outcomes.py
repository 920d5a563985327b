"""How each failure is described: one mapping from exception to (reason, class, code, message, traceId).

Used for dead-letter attributes, API error bodies, log lines and metric dimensions alike, so the four always agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)

from nxcloud_wa.error_codes import ErrorClass
from nxcloud_wa.exceptions import SendError
from nxcloud_wa.models import InvalidMessageError


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a message was not sent."""

    reason: str
    error_class: str
    error_code: str
    error_message: str
    trace_id: str | None = None


def failure_for(exc: BaseException) -> Failure:
    """Describe an exception raised while handling one message."""
    if isinstance(exc, InvalidMessageError):
        return Failure("invalid_message", ErrorClass.PERMANENT, "validation", str(exc))
    if isinstance(exc, IdempotencyValidationError):
        return Failure(
            "idempotency_key_reused",
            ErrorClass.PERMANENT,
            "idempotency_key_reused",
            "this idempotency key was already used for a different message",
        )
    if isinstance(exc, IdempotencyAlreadyInProgressError):
        return Failure(
            "in_progress", ErrorClass.RETRYABLE, "in_progress", "a delivery with this idempotency key is in progress"
        )
    if isinstance(exc, SendError):
        code = str(exc.code) if exc.code is not None else exc.reason
        return Failure(exc.reason, exc.error_class, code, exc.message, exc.trace_id)
    return Failure("internal_error", ErrorClass.RETRYABLE, type(exc).__name__, "unexpected error (see the logs)")


def failure_for_unknown_outcome(outcome: dict[str, Any]) -> Failure:
    """Describe a stored ``unknown_outcome`` result (dead-letter policy): NXCloud may have sent the message."""
    error = outcome.get("error") or {}
    return Failure(
        "unknown_outcome",
        "unknown",
        str(error.get("reason") or "unknown_outcome"),
        str(error.get("message") or "NXCloud may or may not have sent this message"),
        error.get("trace_id"),
    )
