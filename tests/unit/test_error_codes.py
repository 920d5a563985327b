"""The error table against the page's 响应码说明 table and the signing convention's auth codes (both as docs/nxcloud.md
records them), and the exceptions built from it."""

from __future__ import annotations

import re

import pytest

from nxcloud_wa.error_codes import (
    CONNECT_ERROR,
    CONNECTION_DROPPED,
    MALFORMED_RESPONSE,
    NXCLOUD_CODES,
    PERMANENT_HTTP_STATUSES,
    READ_TIMEOUT,
    RETRY_IN_CLIENT_STATUSES,
    TEMPLATE_CODES,
    TEMPLATE_MISMATCH,
    THROTTLED,
    UNKNOWN_CODE,
    ErrorClass,
    classify_code,
    classify_http_status,
    classify_template_code,
    throttle_code_in,
)
from nxcloud_wa.exceptions import (
    AuthError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    ThrottledError,
    UnknownOutcomeError,
    error_for_code,
    error_for_http_status,
    parse_retry_after,
)
from nxcloud_wa.signing import sign
from tests.nxcloud_reference import get_template_codes, send_page_codes


def page_code_table() -> dict[int, str]:
    """``code -> message`` for every numeric code in the page's 响应码说明 table (docs/nxcloud.md), success (0) left
    out."""
    rows = send_page_codes()
    assert "1000~100X" in rows
    table = {int(code): message for code, (message, _) in rows.items() if re.fullmatch(r"-?\d+", code)}
    del table[0]
    return table


def test_every_code_on_the_page_is_in_the_table_with_the_pages_message() -> None:
    page = page_code_table()
    assert len(page) == 22  # -1, 21058-21063 and the fifteen 22xxx codes
    assert min(page) == -1
    assert {c for c in page if c > 0} == {*range(21058, 21064)} | {
        22020,
        22041,
        22042,
        22049,
        22089,
        22090,
        22091,
        22092,
        22093,
        22122,
        22123,
        22124,
        22125,
        22126,
        22141,
    }
    for code, message in page.items():
        assert code in NXCLOUD_CODES, code
        assert NXCLOUD_CODES[code].message == message, code


def test_every_get_template_code_of_the_page_is_classified() -> None:
    """Section 6's codes: its own (9000, 9001, 9002, 9006: the page lists no 9003-9005) are rows of their own, with the
    page's meaning; -1 and the auth range are the send's rows."""
    page = get_template_codes()
    own = {int(code): meaning for code, meaning in page.items() if code.startswith("9")}

    assert set(own) == set(TEMPLATE_CODES) == {9000, 9001, 9002, 9006}
    for code, meaning in own.items():
        assert TEMPLATE_CODES[code].message == meaning, code
    assert {"0", "-1", "1000`–`100X"} <= set(page)
    assert classify_template_code(-1) is NXCLOUD_CODES[-1]
    assert classify_template_code(1003).auth
    assert classify_template_code(9004) is UNKNOWN_CODE
    assert [TEMPLATE_CODES[c].error_class for c in sorted(TEMPLATE_CODES)] == [
        ErrorClass.PERMANENT,  # 9000: our request lacks a field: asking again cannot help
        ErrorClass.RETRYABLE,  # 9001: NXCloud's system error
        ErrorClass.PERMANENT,
        ErrorClass.PERMANENT,
    ]


def test_a_template_mismatch_is_permanent_and_a_422() -> None:
    assert (TEMPLATE_MISMATCH.reason, TEMPLATE_MISMATCH.error_class, TEMPLATE_MISMATCH.api_status) == (
        "template_mismatch",
        ErrorClass.PERMANENT,
        422,
    )


def test_success_is_not_an_error_code() -> None:
    assert 0 not in NXCLOUD_CODES


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1004, 1005])
def test_auth_codes_are_retryable_and_flagged_auth(code: int) -> None:
    info = classify_code(code)
    assert info.auth is True
    assert info.error_class is ErrorClass.RETRYABLE


def test_only_the_1000_range_is_auth() -> None:
    assert {code for code, info in NXCLOUD_CODES.items() if info.auth} == {1000, 1001, 1002, 1003, 1004, 1005}


@pytest.mark.parametrize("code", range(21058, 21064))
def test_parameter_errors_are_permanent(code: int) -> None:
    assert classify_code(code).error_class is ErrorClass.PERMANENT
    assert classify_code(code).message == "参数异常"


@pytest.mark.parametrize(
    ("code", "error_class"),
    [
        (-1, ErrorClass.RETRYABLE),  # 请求失败: contact support; upstream trouble
        (22090, ErrorClass.PERMANENT),  # 非法的号码
        (22091, ErrorClass.PERMANENT),  # 非WhatsApp用户
        (22092, ErrorClass.PERMANENT),  # 不存在语言包
        (22093, ErrorClass.PERMANENT),  # 模板不存在
        (22041, ErrorClass.RETRYABLE),  # 云平台发送失败
        (22042, ErrorClass.RETRYABLE),  # 发送WhatsApp信息失败
        (22141, ErrorClass.RETRYABLE),  # WhatsApp发送失败
    ],
)
def test_selected_business_codes_have_the_documented_class(code: int, error_class: ErrorClass) -> None:
    assert classify_code(code).error_class is error_class


@pytest.mark.parametrize("code", [99999, 21057, 21064, 1006, 22000, -2])
def test_unknown_code_is_the_deliberate_retryable_default(code: int) -> None:
    info = classify_code(code)
    assert info is UNKNOWN_CODE
    assert info.error_class is ErrorClass.RETRYABLE
    assert info.auth is False


def test_every_row_has_an_english_meaning() -> None:
    for code, info in NXCLOUD_CODES.items():
        assert info.meaning.strip(), code
        assert info.message.strip(), code


# --------------------------------------------------------------------------------------------------------------------
# error_for_code
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(NXCLOUD_CODES))
def test_error_for_code_builds_the_class_the_table_says(code: int) -> None:
    info = NXCLOUD_CODES[code]
    exc = error_for_code(code, info, "upstream says no", "trace-0123")

    assert isinstance(exc, SendError)
    assert (exc.code, exc.trace_id) == (code, "trace-0123")
    assert exc.error_class is info.error_class
    assert not isinstance(exc, UnknownOutcomeError)
    if info.auth:
        assert type(exc) is AuthError
        assert isinstance(exc, RetryableSendError)
        assert exc.reason == "nxcloud_auth"
    elif info.error_class is ErrorClass.PERMANENT:
        assert type(exc) is PermanentSendError
        assert exc.reason == "nxcloud_code"
    else:
        assert type(exc) is RetryableSendError
        assert exc.reason == "nxcloud_code"
    assert f"NXCloud code {code}" in str(exc)
    assert "upstream says no" in str(exc)
    assert info.meaning in str(exc)
    assert exc.error_code == str(code)
    assert exc.classification.api_status == (
        503 if code == 22125 else 422 if info.error_class is ErrorClass.PERMANENT else 502
    )


def test_error_for_an_unknown_code_is_retryable_and_not_auth() -> None:
    exc = error_for_code(31337, classify_code(31337), "new failure", None)
    assert type(exc) is RetryableSendError
    assert exc.error_class is ErrorClass.RETRYABLE
    assert (exc.code, exc.trace_id) == (31337, None)
    assert "31337" in str(exc)


def test_empty_upstream_message_falls_back_to_the_pages_wording() -> None:
    exc = error_for_code(22093, NXCLOUD_CODES[22093], "", "t")
    assert "业务异常" in str(exc)
    assert "template does not exist" in str(exc)


def test_error_message_carries_no_secret_or_signature() -> None:
    secret = "Sup3r-Secret-Value"
    headers = {"accessKey": "AK-123", "action": "mt", "bizType": "2", "ts": "1700000000000"}
    signature = sign(headers, '{"to":"8613800000000"}', secret)
    for code in (1003, 1005, 22141, 31337):
        exc = error_for_code(code, classify_code(code), "invalid sign", "trace")
        rendered = f"{exc} {exc!r} {exc.message} {exc.error_code}"
        assert secret not in rendered
        assert signature not in rendered
        assert "AK-123" not in rendered


def test_error_class_values_are_the_documented_strings() -> None:
    assert {str(c) for c in ErrorClass} == {"permanent", "retryable", "unknown"}


def test_http_status_tables() -> None:
    assert {503} == RETRY_IN_CLIENT_STATUSES  # not 429: a throttle resent at once spends the rate again
    assert not (PERMANENT_HTTP_STATUSES & RETRY_IN_CLIENT_STATUSES)
    for status in (404, 405, 500, 502, 504):  # wrong URL, upstream deploy or trouble: not the message's fault
        assert status not in PERMANENT_HTTP_STATUSES
    assert 400 in PERMANENT_HTTP_STATUSES


@pytest.mark.parametrize(
    ("status", "error_class", "api_status"),
    [
        (400, ErrorClass.PERMANENT, 422),
        (415, ErrorClass.PERMANENT, 422),
        (503, ErrorClass.RETRYABLE, 503),
        (500, ErrorClass.RETRYABLE, 502),
        (404, ErrorClass.RETRYABLE, 502),
    ],
)
def test_an_http_status_without_a_code_is_classified_by_the_table(
    status: int, error_class: ErrorClass, api_status: int
) -> None:
    exc = error_for_http_status(status)
    assert (exc.reason, exc.error_class, exc.classification.api_status) == (f"http_{status}", error_class, api_status)
    assert exc.error_code == f"http_{status}"  # no NXCloud code: the reason stands in for it
    assert type(exc) is (PermanentSendError if error_class is ErrorClass.PERMANENT else RetryableSendError)


def test_what_happens_on_the_wire_after_the_request_went_out_is_an_unknown_outcome() -> None:
    assert CONNECT_ERROR.error_class is ErrorClass.RETRYABLE  # nothing reached NXCloud
    for unknown in (READ_TIMEOUT, CONNECTION_DROPPED, MALFORMED_RESPONSE):
        assert unknown.error_class is ErrorClass.UNKNOWN
    assert READ_TIMEOUT.api_status == 504
    assert CONNECTION_DROPPED.api_status == MALFORMED_RESPONSE.api_status == 502


# --- throttles: delayed, never dead-lettered (docs/throughput.md)


def test_http_429_is_a_throttle_with_its_retry_after() -> None:
    exc = error_for_http_status(429, "7")

    assert isinstance(exc, ThrottledError)
    assert (exc.reason, exc.error_class, exc.error_code, exc.retry_after) == ("throttled", "retryable", "http_429", 7)
    assert exc.classification.api_status == 429
    assert classify_http_status(429) is THROTTLED
    assert not exc.per_recipient


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        (" 30 ", 30.0),
        (None, None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
        ("-1", None),
        ("１", None),
    ],
)
def test_retry_after_is_read_in_its_seconds_form_only(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize(
    ("code", "message", "throttle_code"),
    [
        (22141, "(#130429) Rate limit hit: Cloud API message throughput has been reached.", "130429"),
        (-1, "WhatsApp error 131056: (Business Account, Consumer Account) pair rate limit hit", "131056"),
        (99999, "meta code 130429", "130429"),  # a code NXCloud does not list
        (22090, "130429", "130429"),  # whatever NXCloud's code says, a throttle is never permanent
    ],
)
def test_metas_rate_codes_in_nxclouds_text_are_throttles(code: int, message: str, throttle_code: str) -> None:
    exc = error_for_code(code, classify_code(code), message, "trace")

    assert isinstance(exc, ThrottledError)
    assert (exc.reason, exc.error_code, exc.code, exc.trace_id) == ("throttled", throttle_code, code, "trace")
    assert exc.per_recipient is (throttle_code == "131056")


@pytest.mark.parametrize("text", ["1304290", "order 2130429", "", "rate limit", "13042"])
def test_only_metas_whole_codes_are_recognised(text: str) -> None:
    assert throttle_code_in(text) is None
    exc = error_for_code(22141, classify_code(22141), text, None)
    assert not isinstance(exc, ThrottledError)


def test_nxcloud_documents_no_rate_code_of_its_own() -> None:
    """docs/nxcloud.md: the send page's table has no rate-limit code, so none of its rows is a throttle."""
    for code, info in NXCLOUD_CODES.items():
        assert "rate" not in info.meaning.lower(), code
