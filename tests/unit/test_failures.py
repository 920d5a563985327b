"""Failures described once: each exception, and each of the delivery's own conditions, as one Failure."""

from __future__ import annotations

from nxcloud_wa.error_codes import INTERNAL_ERROR, NXCLOUD_CODES, READ_TIMEOUT
from nxcloud_wa.exceptions import ConfigurationError, InvalidMessageError, UnknownOutcomeError, error_for_code
from nxcloud_wa.failures import failure_for, unknown


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
