"""Failures described once, and the idempotency record's data, read back exactly (including what earlier versions
stored, so a record written before a deploy means the same after it)."""

from __future__ import annotations

import pytest

from nxcloud_wa.error_codes import INTERNAL_ERROR, NXCLOUD_CODES, READ_TIMEOUT
from nxcloud_wa.exceptions import ConfigurationError, InvalidMessageError, UnknownOutcomeError, error_for_code
from outcomes import Sent, failure_for, from_stored, stored_data, unknown


def test_a_send_error_is_described_by_its_classification() -> None:
    failure = failure_for(error_for_code(22093, NXCLOUD_CODES[22093], "不存在模板", "trace-1"))
    assert (failure.reason, str(failure.error_class), failure.error_code, failure.api_status) == (
        "nxcloud_code",
        "permanent",
        "22093",
        422,
    )
    assert failure.trace_id == "trace-1"
    assert "template does not exist" in failure.error_message


def test_an_invalid_message_keeps_its_field_errors_for_the_api() -> None:
    errors = [{"loc": ["to"], "msg": "Field required", "type": "missing"}]
    failure = failure_for(InvalidMessageError(errors))
    assert (failure.reason, failure.error_code, failure.api_status, failure.errors) == (
        "invalid_message",
        "validation",
        400,
        tuple(errors),
    )


def test_a_misconfiguration_says_nothing_of_its_details() -> None:
    failure = failure_for(ConfigurationError("invalid configuration: NXCLOUD_SECRET_ID is not set"))
    assert (failure.reason, failure.error_code, failure.api_status) == ("misconfigured", "configuration", 500)
    assert "NXCLOUD_SECRET_ID" not in failure.error_message


def test_anything_else_is_an_internal_error_named_by_its_type_only() -> None:
    failure = failure_for(KeyError("8613800000000"))
    assert (failure.classification, failure.error_code) == (INTERNAL_ERROR, "KeyError")
    assert "8613800000000" not in failure.error_message


def test_an_unknown_outcome_is_dead_lettered_under_its_own_reason_naming_what_happened() -> None:
    cause = failure_for(UnknownOutcomeError("no answer within 10 s", READ_TIMEOUT, trace_id=None))
    dead = unknown(cause)
    assert (dead.reason, str(dead.error_class), dead.error_code, dead.api_status) == (
        "unknown_outcome",
        "unknown",
        "read_timeout",
        504,
    )
    assert dead.error_message == "no answer within 10 s"


def test_a_sent_outcome_reads_back_as_a_replay() -> None:
    sent = Sent("wamid-1", "trace-1", "2026-11-29T10:00:00.000+00:00", latency_ms=12.5)
    assert from_stored(stored_data(sent)) == Sent("wamid-1", "trace-1", sent.at, replayed=True)


@pytest.mark.parametrize("dead_lettered", [True, False])
def test_an_unknown_outcome_reads_back_with_whether_it_was_dead_lettered(dead_lettered: bool) -> None:
    dead = unknown(failure_for(UnknownOutcomeError("no answer", READ_TIMEOUT, trace_id="t-7")))
    failure, flag = from_stored(stored_data(dead, dead_lettered=dead_lettered))  # type: ignore[misc]
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
