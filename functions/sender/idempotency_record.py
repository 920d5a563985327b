"""What an idempotency record stores for a final outcome (``stored_data``), and how it reads back (``from_stored``).

The stored form is the one earlier versions wrote (``{"status": "sent", "message_id", ...}`` or
``{"status": "unknown_outcome", "error": {...}, "dead_lettered"}``) and must stay so: records cross deploys, and
tests/unit/test_idempotency.py proves that Powertools reads them. :mod:`idempotency` writes and reads the records;
:mod:`fate` decides what a record must hold. Which message a sent record names is read in one place,
``nxcloud_wa.idempotency_keys.sent_message``: for a replay here, and for GET /messages/{id} by idempotency key.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final, NamedTuple

from nxcloud_wa.error_codes import UNKNOWN_OUTCOME
from nxcloud_wa.failures import Failure, failure
from nxcloud_wa.idempotency_keys import SENT, sent_message
from outcomes import Sent, now

UNKNOWN: Final = "unknown_outcome"


class StoredUnknown(NamedTuple):
    """An unknown outcome as its record holds it: its failure (see ``nxcloud_wa.failures.unknown``) and whether it
    reached the dead-letter queue (a later delivery of the key writes it there if not, and otherwise only answers it
    again)."""

    failure: Failure
    dead_lettered: bool


def stored_data(outcome: Sent | StoredUnknown) -> dict[str, Any]:
    """The data stored for a final outcome: a sent message, or an unknown outcome."""
    if isinstance(outcome, Sent):
        return {
            "status": SENT,
            "message_id": outcome.message_id,
            "trace_id": outcome.trace_id,
            "at": outcome.at,
            "latency_ms": outcome.latency_ms,
        }
    cause = outcome.failure
    error = {
        "error_class": str(cause.error_class),
        "reason": cause.error_code,  # what happened: read_timeout, connection_dropped, interrupted...
        "code": None,
        "message": cause.error_message,
        "trace_id": cause.trace_id,
    }
    return {"status": UNKNOWN, "error": error, "at": now(), "dead_lettered": outcome.dead_lettered}


def from_stored(data: dict[str, Any]) -> Sent | StoredUnknown:
    """A stored outcome: the sent message (``replayed``), or an unknown outcome."""
    message_id = sent_message(data)
    if message_id is not None:
        return Sent(message_id, data.get("trace_id"), str(data.get("at")), replayed=True)
    raw = data.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    cause = failure(
        UNKNOWN_OUTCOME,
        str(error.get("reason") or UNKNOWN_OUTCOME.reason),
        str(error.get("message") or UNKNOWN_OUTCOME.meaning),
    )
    return StoredUnknown(replace(cause, trace_id=error.get("trace_id")), bool(data.get("dead_lettered")))
