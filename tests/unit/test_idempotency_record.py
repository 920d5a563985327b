"""The idempotency record's data, read back exactly (including what earlier versions stored, so a record written
before a deploy means the same after it)."""

from __future__ import annotations

import pytest

from idempotency_record import StoredUnknown, from_stored, stored_data
from nxcloud_wa.error_codes import READ_TIMEOUT
from nxcloud_wa.exceptions import UnknownOutcomeError
from nxcloud_wa.failures import failure_for, unknown
from outcomes import Sent


def test_a_sent_outcome_reads_back_as_a_replay() -> None:
    sent = Sent("wamid-1", "trace-1", "2026-11-29T10:00:00.000+00:00", latency_ms=12.5)
    assert from_stored(stored_data(sent)) == Sent("wamid-1", "trace-1", sent.at, replayed=True)


@pytest.mark.parametrize("dead_lettered", [True, False])
def test_an_unknown_outcome_reads_back_with_whether_it_was_dead_lettered(dead_lettered: bool) -> None:
    dead = unknown(failure_for(UnknownOutcomeError("no answer", READ_TIMEOUT, trace_id="t-7")))
    failure, flag = from_stored(stored_data(StoredUnknown(dead, dead_lettered)))  # type: ignore[misc]
    assert failure == dead
    assert flag is dead_lettered


def test_what_earlier_versions_stored_reads_back_the_same() -> None:
    sent = {"status": "sent", "message_id": "m1", "trace_id": None, "at": "2026-11-01T00:00:00.000+00:00"}
    queue_unknown = {
        "status": "unknown_outcome",
        "error": {
            "error_class": "retryable",
            "reason": "connection_dropped",
            "code": None,
            "message": "the connection failed after the request was sent",
            "trace_id": None,
        },
        "at": "2026-11-01T00:00:00.000+00:00",
    }
    assert from_stored(sent) == Sent("m1", None, sent["at"], replayed=True)
    failure, dead_lettered = from_stored(queue_unknown)  # type: ignore[misc]
    assert (failure.reason, failure.error_code, failure.error_message) == (
        "unknown_outcome",
        "connection_dropped",
        "the connection failed after the request was sent",
    )
    assert dead_lettered is False  # not recorded then: written again rather than risk a missing one
    failure, dead_lettered = from_stored({**queue_unknown, "dead_lettered": True})  # type: ignore[misc]
    assert dead_lettered is True
