"""The signature rule (docs/nxcloud.md, "Signing"), against vectors worked out here, not by the code under test.

Each expected value is the MD5 of a line written out literally from the rule
``md5(accessKey=..&action=..&bizType=..&ts=.. + &body=<body> + &accessSecret=<secret>)`` over UTF-8. The three
hexadecimal constants were computed outside Python (``printf '%s' '<line>' | md5sum``).
"""

from __future__ import annotations

import hashlib
import itertools
import re

import pytest

from nxcloud_wa.signing import sign, signing_string

HEADERS = {"accessKey": "AK", "action": "mt", "bizType": "2", "ts": "1700000000000"}


def md5_hex(line: str) -> str:
    return hashlib.md5(line.encode("utf-8")).hexdigest()


def test_signing_mds_worked_shape() -> None:
    body = '{"to":"8613800000000"}'
    line = 'accessKey=AK&action=mt&bizType=2&ts=1700000000000&body={"to":"8613800000000"}&accessSecret=SECRET'

    assert signing_string(HEADERS, body, "SECRET") == line
    assert sign(HEADERS, body, "SECRET") == md5_hex(line)
    assert sign(HEADERS, body, "SECRET") == "75ac09c1eeb3fcdaddf6adae99b9b467"  # md5sum of the line


def test_empty_body_leaves_body_str_out() -> None:
    line = "accessKey=AK&action=mt&bizType=2&ts=1700000000000&accessSecret=SECRET"

    assert signing_string(HEADERS, "", "SECRET") == line
    assert sign(HEADERS, "", "SECRET") == md5_hex(line)
    assert sign(HEADERS, "", "SECRET") == "c8193f5c33bd25834866feff8ea4af8d"  # md5sum of the line
    assert "&body=" not in signing_string(HEADERS, "", "SECRET")


def test_non_ascii_body_is_signed_as_utf8_bytes() -> None:
    body = '{"text":"你好 👋"}'
    line = 'accessKey=AK&action=mt&bizType=2&ts=1700000000000&body={"text":"你好 👋"}&accessSecret=SECRET'

    assert sign(HEADERS, body, "SECRET") == hashlib.md5(line.encode("utf-8")).hexdigest()
    assert sign(HEADERS, body, "SECRET") == "c8a05974e4958818d9197f0c8167eadd"  # md5sum of the UTF-8 line
    # The \u-escaped spelling of the same JSON is different text, so a different signature.
    escaped = '{"text":"\\u4f60\\u597d \\ud83d\\udc4b"}'
    assert sign(HEADERS, escaped, "SECRET") != sign(HEADERS, body, "SECRET")


def test_a_realistic_request() -> None:
    headers = {"accessKey": "fme2na3kdi3ki", "ts": "1655710885431", "bizType": "2", "action": "mt"}
    body = (
        '{"tenant_id":1,"appkey":"f543ertg","business_phone":"8618512348399","messaging_product":"whatsapp",'
        '"recipient_type":"individual","to":"8613612349759","type":"template","template":{"name":"text_template",'
        '"language":{"code":"en_US","policy":"deterministic"}}}'
    )
    line = (
        "accessKey=fme2na3kdi3ki&action=mt&bizType=2&ts=1655710885431"
        '&body={"tenant_id":1,"appkey":"f543ertg","business_phone":"8618512348399","messaging_product":"whatsapp",'
        '"recipient_type":"individual","to":"8613612349759","type":"template","template":{"name":"text_template",'
        '"language":{"code":"en_US","policy":"deterministic"}}}'
        "&accessSecret=s3cr3t/with+chars=&"
    )
    assert sign(headers, body, "s3cr3t/with+chars=&") == md5_hex(line)


def test_header_order_does_not_matter() -> None:
    body = '{"to":"8613800000000"}'
    expected = md5_hex(
        'accessKey=AK&action=mt&bizType=2&ts=1700000000000&body={"to":"8613800000000"}&accessSecret=SECRET'
    )
    for order in itertools.permutations(HEADERS):
        assert sign({name: HEADERS[name] for name in order}, body, "SECRET") == expected


def test_sign_and_other_headers_are_not_signed() -> None:
    body = '{"to":"8613800000000"}'
    with_extras = {"sign": "0" * 32, "Content-Type": "application/json", **HEADERS, "X-Other": "1"}
    assert sign(with_extras, body, "SECRET") == sign(HEADERS, body, "SECRET")


@pytest.mark.parametrize("missing", ["accessKey", "action", "bizType", "ts"])
def test_a_missing_header_is_a_key_error_naming_it(missing: str) -> None:
    headers = {k: v for k, v in HEADERS.items() if k != missing}
    with pytest.raises(KeyError) as excinfo:
        sign(headers, "{}", "SECRET")
    assert excinfo.value.args == (missing,)


def test_header_names_are_case_sensitive() -> None:
    headers = {"accesskey": "AK", "action": "mt", "biztype": "2", "ts": "1700000000000"}
    with pytest.raises(KeyError):
        sign(headers, "{}", "SECRET")


@pytest.mark.parametrize(
    ("headers", "body", "secret"),
    [
        (HEADERS, "", ""),
        (HEADERS, '{"to":"8613800000000"}', "SECRET"),
        ({"accessKey": "ÄÖÜ", "action": "mt", "bizType": "2", "ts": "1"}, "日本語", "秘密"),
        (HEADERS, "x" * 100_000, "S" * 1000),
    ],
)
def test_signature_is_32_lower_case_hex_characters(headers: dict[str, str], body: str, secret: str) -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", sign(headers, body, secret))


def test_one_space_in_the_body_changes_the_signature() -> None:
    compact = '{"to":"8613800000000"}'
    spaced = '{"to": "8613800000000"}'
    assert sign(HEADERS, compact, "SECRET") != sign(HEADERS, spaced, "SECRET")
    assert sign(HEADERS, spaced, "SECRET") == md5_hex(
        'accessKey=AK&action=mt&bizType=2&ts=1700000000000&body={"to": "8613800000000"}&accessSecret=SECRET'
    )


def test_every_input_enters_the_signature() -> None:
    body = '{"to":"8613800000000"}'
    base = sign(HEADERS, body, "SECRET")
    assert sign(HEADERS, body, "SECRET2") != base
    assert sign(HEADERS, body + "\n", "SECRET") != base
    for name, value in HEADERS.items():
        assert sign({**HEADERS, name: value + "0"}, body, "SECRET") != base
