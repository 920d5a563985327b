"""The message model against NXCloud's page: its three examples, every validation rule, non-ASCII, the language table.

Expected values are written out here from the page (as docs/nxcloud.md records it), never taken from the code.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from nxcloud_wa.client import encode_body
from nxcloud_wa.languages import TEMPLATE_LANGUAGES
from nxcloud_wa.models import Defaults, InvalidMessageError, SendRequest, parse_message
from tests.nxcloud_reference import template_languages

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "page_examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("example*.json"))

# The body's top-level keys in the page's order (its parameter table and all three examples).
PAGE_KEY_ORDER = [
    "tenant_id",
    "appkey",
    "business_phone",
    "messaging_product",
    "recipient_type",
    "to",
    "type",
    "template",
]

_DELETE = object()


def valid_message() -> dict[str, Any]:
    """A message using every component kind: header image, body text, a URL button and a COPY_CODE button."""
    return {
        "tenant_id": 1,
        "appkey": "f543ertg",
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "8613612349759",
        "type": "template",
        "template": {
            "name": "order_update",
            "language": {"code": "en_US", "policy": "deterministic"},
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://example.com/a.png"}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "David"}, {"type": "text", "text": "China"}]},
                {"type": "button", "sub_type": "URL", "index": 0, "parameters": [{"type": "text", "text": "abc"}]},
                {
                    "type": "button",
                    "sub_type": "COPY_CODE",
                    "index": 1,
                    "parameters": [{"type": "coupon_code", "coupon_code": "123123"}],
                },
            ],
        },
    }


def with_change(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """``valid_message()`` with the value at ``path`` replaced (or removed, for ``_DELETE``)."""
    message = valid_message()
    target: Any = message
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = copy.deepcopy(value)
    return message


def rejection(raw: Any) -> InvalidMessageError:
    with pytest.raises(InvalidMessageError) as excinfo:
        parse_message(raw)
    return excinfo.value


def find_error(errors: list[dict[str, Any]], loc: list[Any]) -> dict[str, Any]:
    matches = [e for e in errors if e["loc"] == loc]
    assert matches, f"no error at {loc}; errors were {errors}"
    return matches[0]


C = ("template", "components")
HEADER, BODY, URL_BUTTON, COPY_BUTTON = 0, 1, 2, 3
LOC_HEADER = ["template", "components", HEADER, "header"]
LOC_BODY = ["template", "components", BODY, "body"]
LOC_URL = ["template", "components", URL_BUTTON, "button"]
LOC_COPY = ["template", "components", COPY_BUTTON, "button"]


# --------------------------------------------------------------------------------------------------------------------
# The page's three request examples
# --------------------------------------------------------------------------------------------------------------------


def test_the_three_page_examples_are_present() -> None:
    assert [p.name for p in EXAMPLES] == ["example1.json", "example2.json", "example3.json"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_page_example_round_trips_to_the_same_upstream_body(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    expected = json.loads(text)

    upstream = parse_message(text).to_upstream(Defaults())

    assert upstream == expected
    # Same key order at every level: json.dumps writes keys in insertion order.
    assert json.dumps(upstream) == json.dumps(expected)
    assert list(upstream) == PAGE_KEY_ORDER
    encoded = encode_body(upstream)
    assert json.loads(encoded) == expected
    assert json.dumps(json.loads(encoded)) == json.dumps(expected)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_page_example_validates_from_bytes_too(path: Path) -> None:
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert parse_message(path.read_bytes()).to_upstream(Defaults()) == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_page_example_without_account_fields_takes_them_from_defaults(path: Path) -> None:
    expected = json.loads(path.read_text(encoding="utf-8"))
    stripped = {k: v for k, v in expected.items() if k not in ("tenant_id", "appkey", "business_phone")}
    defaults = Defaults(
        tenant_id=expected["tenant_id"], appkey=expected["appkey"], business_phone=expected["business_phone"]
    )

    upstream = parse_message(json.dumps(stripped, ensure_ascii=False)).to_upstream(defaults)

    assert upstream == expected
    assert json.dumps(upstream) == json.dumps(expected)


def test_page_examples_keep_the_pages_values() -> None:
    """The data files differ from the page only where the brief says: real digits in the numbers, comma, comments."""
    first, second, third = (json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES)
    assert first["business_phone"] == "8618512348399"
    assert first["to"] == "8613612349759"
    assert [c["type"] for c in first["template"]["components"]] == ["header", "body"]
    assert [p["text"] for p in first["template"]["components"][1]["parameters"]] == [
        "David",
        "China",
        "China",
        "86138XXX",
    ]
    assert [c["sub_type"] for c in second["template"]["components"]] == ["url", "url"]
    assert third["business_phone"] == "85291234867"
    assert third["to"] == "8613612345759"
    assert third["template"]["components"][0]["sub_type"] == "COPY_CODE"


def test_lower_case_url_sub_type_of_page_example_2_is_sent_as_written() -> None:
    upstream = parse_message(EXAMPLES[1].read_text(encoding="utf-8")).to_upstream(Defaults())
    assert [c["sub_type"] for c in upstream["template"]["components"]] == ["url", "url"]


# --------------------------------------------------------------------------------------------------------------------
# Validation rules: one bad input each, with the location and the error it must give
# --------------------------------------------------------------------------------------------------------------------

BAD_INPUTS = [
    # unknown fields, at every level
    pytest.param(("foo",), 1, ["foo"], "extra_forbidden", "Extra inputs", id="unknown-top-level"),
    pytest.param(
        ("template", "langauge"), {}, ["template", "langauge"], "extra_forbidden", None, id="unknown-template"
    ),
    pytest.param(
        ("template", "language", "fallback"),
        "en",
        ["template", "language", "fallback"],
        "extra_forbidden",
        None,
        id="unknown-language",
    ),
    pytest.param((*C, HEADER, "foo"), 1, [*LOC_HEADER, "foo"], "extra_forbidden", None, id="unknown-header"),
    pytest.param((*C, BODY, "foo"), 1, [*LOC_BODY, "foo"], "extra_forbidden", None, id="unknown-body"),
    pytest.param((*C, URL_BUTTON, "foo"), 1, [*LOC_URL, "foo"], "extra_forbidden", None, id="unknown-button"),
    pytest.param(
        (*C, HEADER, "parameters", 0, "foo"),
        1,
        [*LOC_HEADER, "parameters", 0, "foo"],
        "extra_forbidden",
        None,
        id="unknown-image-parameter",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image", "caption"),
        "x",
        [*LOC_HEADER, "parameters", 0, "image", "caption"],
        "extra_forbidden",
        None,
        id="unknown-image-object",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "foo"),
        1,
        [*LOC_BODY, "parameters", 0, "foo"],
        "extra_forbidden",
        None,
        id="unknown-body-parameter",
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters", 0, "foo"),
        1,
        [*LOC_URL, "parameters", 0, "text", "foo"],
        "extra_forbidden",
        None,
        id="unknown-url-button-parameter",
    ),
    pytest.param(
        (*C, COPY_BUTTON, "parameters", 0, "foo"),
        1,
        [*LOC_COPY, "parameters", 0, "coupon_code", "foo"],
        "extra_forbidden",
        None,
        id="unknown-coupon-parameter",
    ),
    pytest.param(("idempotency_key ",), "k", ["idempotency_key "], "extra_forbidden", None, id="near-miss-field-name"),
    # required fields
    pytest.param(("to",), _DELETE, ["to"], "missing", "Field required", id="missing-to"),
    pytest.param(("template",), _DELETE, ["template"], "missing", "Field required", id="missing-template"),
    pytest.param(("template", "name"), _DELETE, ["template", "name"], "missing", None, id="missing-template-name"),
    pytest.param(("template", "language"), _DELETE, ["template", "language"], "missing", None, id="missing-language"),
    pytest.param(
        ("template", "language", "code"),
        _DELETE,
        ["template", "language", "code"],
        "missing",
        None,
        id="missing-language-code",
    ),
    pytest.param(("template",), "order_update", ["template"], "model_type", None, id="template-not-object"),
    # template name
    pytest.param(("template", "name"), "", ["template", "name"], "string_too_short", None, id="name-empty"),
    pytest.param(
        ("template", "name"), "order update", ["template", "name"], "string_pattern_mismatch", None, id="name-space"
    ),
    pytest.param(
        ("template", "name"),
        "order_update\n",
        ["template", "name"],
        "string_pattern_mismatch",
        None,
        id="name-trailing-newline",
    ),
    pytest.param(("template", "name"), "n" * 513, ["template", "name"], "string_too_long", "512", id="name-513"),
    pytest.param(("template", "name"), 45, ["template", "name"], "string_type", None, id="name-not-string"),
    # language
    pytest.param(
        ("template", "language", "code"),
        "xx_YY",
        ["template", "language", "code"],
        "value_error",
        "template language codes",
        id="language-unknown",
    ),
    pytest.param(
        ("template", "language", "code"),
        "en-US",
        ["template", "language", "code"],
        "value_error",
        None,
        id="language-hyphen",
    ),
    pytest.param(
        ("template", "language", "code"),
        "en_us",
        ["template", "language", "code"],
        "value_error",
        None,
        id="language-wrong-case",
    ),
    pytest.param(
        ("template", "language", "policy"),
        "fallback",
        ["template", "language", "policy"],
        "literal_error",
        "deterministic",
        id="policy-not-deterministic",
    ),
    # fixed values
    pytest.param(("messaging_product",), "sms", ["messaging_product"], "literal_error", "whatsapp", id="product"),
    pytest.param(("recipient_type",), "group", ["recipient_type"], "literal_error", "individual", id="recipient"),
    pytest.param(("type",), "text", ["type"], "literal_error", "template", id="type-not-template"),
    # tenant_id
    pytest.param(("tenant_id",), 0, ["tenant_id"], "greater_than", "greater than 0", id="tenant-zero"),
    pytest.param(("tenant_id",), -3, ["tenant_id"], "greater_than", None, id="tenant-negative"),
    pytest.param(("tenant_id",), "1", ["tenant_id"], "int_type", "valid integer", id="tenant-string"),
    pytest.param(("tenant_id",), True, ["tenant_id"], "int_type", None, id="tenant-bool"),
    pytest.param(("tenant_id",), 1.0, ["tenant_id"], "int_type", None, id="tenant-float"),
    pytest.param(("tenant_id",), 2**63, ["tenant_id"], "less_than_equal", None, id="tenant-beyond-long"),
    # appkey
    pytest.param(("appkey",), "", ["appkey"], "string_too_short", None, id="appkey-empty"),
    pytest.param(("appkey",), "f543 ertg", ["appkey"], "string_pattern_mismatch", None, id="appkey-space"),
    pytest.param(("appkey",), "f543ertg\n", ["appkey"], "string_pattern_mismatch", None, id="appkey-newline"),
    pytest.param(("appkey",), "k" * 129, ["appkey"], "string_too_long", "128", id="appkey-too-long"),
    # phone numbers (the rules themselves are in test_phone.py)
    pytest.param(("to",), "+86 138-abcd-0000", ["to"], "value_error", "country code", id="to-letters"),
    pytest.param(("to",), 8613612349759, ["to"], "string_type", None, id="to-number-not-string"),
    pytest.param(("business_phone",), "123456", ["business_phone"], "value_error", "7 to 15", id="business-short"),
    # components list
    pytest.param(C, "header", ["template", "components"], "list_type", None, id="components-not-list"),
    pytest.param(
        (*C, HEADER, "type"),
        "footer",
        ["template", "components", HEADER],
        "union_tag_invalid",
        "header",
        id="component-unknown-type",
    ),
    pytest.param(
        (*C, HEADER, "type"),
        _DELETE,
        ["template", "components", HEADER],
        "union_tag_not_found",
        None,
        id="component-without-type",
    ),
    # header
    pytest.param(
        (*C, HEADER, "parameters"),
        [{"type": "text", "text": "x"}],
        [*LOC_HEADER, "parameters", 0, "type"],
        "literal_error",
        "image",
        id="header-text-parameter",
    ),
    pytest.param(
        (*C, HEADER, "parameters"),
        [{"type": "image", "image": {"link": "https://a.example/1.png"}}] * 2,
        [*LOC_HEADER, "parameters"],
        "too_long",
        None,
        id="header-two-parameters",
    ),
    pytest.param((*C, HEADER, "parameters"), [], [*LOC_HEADER, "parameters"], "too_short", None, id="header-empty"),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image", "link"),
        "ftp://example.com/a.png",
        [*LOC_HEADER, "parameters", 0, "image", "link"],
        "value_error",
        "http",
        id="link-ftp",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image", "link"),
        "https://",
        [*LOC_HEADER, "parameters", 0, "image", "link"],
        "value_error",
        "http",
        id="link-no-host",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image", "link"),
        "//example.com/a.png",
        [*LOC_HEADER, "parameters", 0, "image", "link"],
        "value_error",
        "http",
        id="link-no-scheme",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image", "link"),
        "https://example.com/" + "a" * 2048,
        [*LOC_HEADER, "parameters", 0, "image", "link"],
        "string_too_long",
        "2048",
        id="link-too-long",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "image"),
        _DELETE,
        [*LOC_HEADER, "parameters", 0, "image"],
        "missing",
        None,
        id="image-parameter-without-image",
    ),
    # body
    pytest.param((*C, BODY, "parameters"), [], [*LOC_BODY, "parameters"], "too_short", None, id="body-no-params"),
    pytest.param(
        (*C, BODY, "parameters"),
        [{"type": "image", "image": {"link": "https://a.example/1.png"}}],
        [*LOC_BODY, "parameters", 0, "type"],
        "literal_error",
        "text",
        id="body-image-parameter",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "text"),
        "",
        [*LOC_BODY, "parameters", 0, "text"],
        "string_too_short",
        None,
        id="body-text-empty",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "text"),
        "   ",
        [*LOC_BODY, "parameters", 0, "text"],
        "value_error",
        "blank",
        id="body-text-blank",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "text"),
        "\t\n ",
        [*LOC_BODY, "parameters", 0, "text"],
        "value_error",
        "blank",
        id="body-text-whitespace",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "text"),
        "a" * 1025,
        [*LOC_BODY, "parameters", 0],
        "value_error",
        "1024",
        id="body-text-1025",
    ),
    pytest.param(
        (*C, BODY, "parameters", 0, "text"),
        _DELETE,
        [*LOC_BODY, "parameters", 0, "text"],
        "missing",
        None,
        id="text-parameter-without-text",
    ),
    pytest.param(
        (*C, BODY, "parameters"),
        [{"type": "text", "text": str(i)} for i in range(101)],
        [*LOC_BODY, "parameters"],
        "too_long",
        "100",
        id="body-101-parameters",
    ),
    # buttons
    pytest.param((*C, URL_BUTTON, "sub_type"), _DELETE, [*LOC_URL, "sub_type"], "missing", None, id="no-sub-type"),
    pytest.param(
        (*C, URL_BUTTON, "sub_type"),
        "QUICK_REPLY",
        [*LOC_URL, "sub_type"],
        "value_error",
        "URL or COPY_CODE",
        id="sub-type-quick-reply",
    ),
    pytest.param(
        (*C, URL_BUTTON, "sub_type"), "", [*LOC_URL, "sub_type"], "string_too_short", None, id="sub-type-empty"
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters"),
        [{"type": "coupon_code", "coupon_code": "SAVE10"}],
        LOC_URL,
        "value_error",
        "'text'",
        id="url-button-with-coupon",
    ),
    pytest.param(
        (*C, COPY_BUTTON, "parameters"),
        [{"type": "text", "text": "SAVE10"}],
        LOC_COPY,
        "value_error",
        "'coupon_code'",
        id="copy-code-with-text",
    ),
    pytest.param(
        (*C, COPY_BUTTON, "parameters", 0, "coupon_code"),
        "C" * 16,
        [*LOC_COPY, "parameters", 0, "coupon_code", "coupon_code"],
        "string_too_long",
        "15",
        id="coupon-16",
    ),
    pytest.param(
        (*C, COPY_BUTTON, "parameters", 0, "coupon_code"),
        "",
        [*LOC_COPY, "parameters", 0, "coupon_code", "coupon_code"],
        "string_too_short",
        None,
        id="coupon-empty",
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters", 0, "text"),
        "u" * 2001,
        [*LOC_URL, "parameters", 0, "text", "text"],
        "string_too_long",
        "2000",
        id="url-text-2001",
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters", 0, "type"),
        "payload",
        [*LOC_URL, "parameters", 0],
        "union_tag_invalid",
        "text",
        id="button-parameter-unknown-type",
    ),
    pytest.param(
        (*C, URL_BUTTON, "index"),
        -1,
        [*LOC_URL, "index"],
        "greater_than_equal",
        "greater than or equal to 0",
        id="index-negative",
    ),
    pytest.param(
        (*C, URL_BUTTON, "index"), 10, [*LOC_URL, "index"], "less_than_equal", "less than or equal to 9", id="index-10"
    ),
    pytest.param((*C, URL_BUTTON, "index"), "0", [*LOC_URL, "index"], "int_type", None, id="index-string"),
    pytest.param((*C, URL_BUTTON, "index"), 0.0, [*LOC_URL, "index"], "int_type", None, id="index-float"),
    pytest.param((*C, URL_BUTTON, "index"), _DELETE, [*LOC_URL, "index"], "missing", None, id="index-missing"),
    pytest.param(
        (*C, URL_BUTTON, "parameters"),
        [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        [*LOC_URL, "parameters"],
        "too_long",
        None,
        id="button-two-parameters",
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters"), [], [*LOC_URL, "parameters"], "too_short", None, id="button-no-params"
    ),
    # a parameter carries the field its type names and no other
    pytest.param(
        (*C, BODY, "parameters", 0, "image"),
        {"link": "https://example.com/a.png"},
        [*LOC_BODY, "parameters", 0, "image"],
        "extra_forbidden",
        None,
        id="text-parameter-with-image",
    ),
    pytest.param(
        (*C, HEADER, "parameters", 0, "text"),
        "x",
        [*LOC_HEADER, "parameters", 0, "text"],
        "extra_forbidden",
        None,
        id="image-parameter-with-text",
    ),
    pytest.param(
        (*C, COPY_BUTTON, "parameters", 0, "text"),
        "x",
        [*LOC_COPY, "parameters", 0, "coupon_code", "text"],
        "extra_forbidden",
        None,
        id="coupon-parameter-with-text",
    ),
    pytest.param(
        (*C, URL_BUTTON, "parameters", 0, "coupon_code"),
        "x",
        [*LOC_URL, "parameters", 0, "text", "coupon_code"],
        "extra_forbidden",
        None,
        id="url-parameter-with-coupon",
    ),
    # our own field
    pytest.param(("idempotency_key",), "", ["idempotency_key"], "string_too_short", None, id="idempotency-key-empty"),
    pytest.param(
        ("idempotency_key",), "k" * 129, ["idempotency_key"], "string_too_long", "128", id="idempotency-key-too-long"
    ),
]


@pytest.mark.parametrize(("path", "value", "loc", "error_type", "fragment"), BAD_INPUTS)
def test_bad_input_is_rejected_with_its_location_and_reason(
    path: tuple[Any, ...], value: Any, loc: list[Any], error_type: str, fragment: str | None
) -> None:
    message = with_change(path, value)

    for raw in (message, json.dumps(message)):
        error = find_error(rejection(raw).errors, loc)
        assert error["type"] == error_type, error
        if fragment is not None:
            assert fragment in error["msg"], error


def test_the_unchanged_message_is_valid() -> None:
    """The base of every bad-input case above is itself valid, so each case fails for its own change only."""
    upstream = parse_message(valid_message()).to_upstream(Defaults())
    assert upstream == valid_message()


@pytest.mark.parametrize(
    "components",
    [
        pytest.param(
            [
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://a.example/1.png"}}]},
                {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://a.example/2.png"}}]},
            ],
            id="two-headers",
        ),
        pytest.param(
            [
                {"type": "body", "parameters": [{"type": "text", "text": "a"}]},
                {"type": "body", "parameters": [{"type": "text", "text": "b"}]},
            ],
            id="two-bodies",
        ),
    ],
)
def test_at_most_one_header_and_one_body(components: list[dict[str, Any]]) -> None:
    kind = components[0]["type"]
    error = find_error(rejection(with_change(C, components)).errors, ["template"])
    assert error["type"] == "value_error"
    assert f"at most one {kind}" in error["msg"]


def test_two_buttons_with_the_same_index_are_rejected() -> None:
    message = valid_message()
    message["template"]["components"][COPY_BUTTON]["index"] = 0
    error = find_error(rejection(message).errors, ["template"])
    assert "same index" in error["msg"]


def test_more_than_12_components_are_rejected() -> None:
    buttons = [
        {"type": "button", "sub_type": "URL", "index": i, "parameters": [{"type": "text", "text": "x"}]}
        for i in range(10)
    ]
    body = {"type": "body", "parameters": [{"type": "text", "text": "x"}]}
    header = valid_message()["template"]["components"][HEADER]
    twelve = [header, body, *buttons]
    assert parse_message(with_change(C, twelve)).template.components is not None

    extra = {"type": "button", "sub_type": "URL", "index": 9, "parameters": [{"type": "text", "text": "y"}]}
    error = find_error(rejection(with_change(C, [*twelve, extra])).errors, ["template", "components"])
    assert error["type"] == "too_long"
    assert "12" in error["msg"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param(("template", "name"), "n" * 512, id="name-512"),
        pytest.param((*C, BODY, "parameters", 0, "text"), "a" * 1024, id="body-text-1024"),
        pytest.param((*C, BODY, "parameters"), [{"type": "text", "text": "v"}] * 100, id="body-100-parameters"),
        pytest.param((*C, COPY_BUTTON, "parameters", 0, "coupon_code"), "C" * 15, id="coupon-15"),
        pytest.param((*C, URL_BUTTON, "parameters", 0, "text"), "u" * 2000, id="url-text-2000"),
        pytest.param((*C, URL_BUTTON, "index"), 9, id="index-9"),
        pytest.param((*C, HEADER, "parameters", 0, "image", "link"), "HTTP://EXAMPLE.COM/A.PNG", id="link-upper"),
        pytest.param((*C, HEADER, "parameters", 0, "image", "link"), "http://example.com/a.png", id="link-http"),
        pytest.param(("tenant_id",), 2**63 - 1, id="tenant-max-long"),
        pytest.param(C, _DELETE, id="no-components"),
        pytest.param(("template", "name"), "模板_1", id="name-non-ascii"),
    ],
)
def test_values_at_the_limits_are_accepted_and_sent_unchanged(path: tuple[Any, ...], value: Any) -> None:
    message = with_change(path, value)
    assert parse_message(json.dumps(message, ensure_ascii=False)).to_upstream(Defaults()) == message


@pytest.mark.parametrize("sub_type", ["URL", "url", "Url", "uRL"])
def test_url_sub_type_in_any_case_is_sent_as_written(sub_type: str) -> None:
    upstream = parse_message(with_change((*C, URL_BUTTON, "sub_type"), sub_type)).to_upstream(Defaults())
    assert upstream["template"]["components"][URL_BUTTON]["sub_type"] == sub_type


@pytest.mark.parametrize("sub_type", ["COPY_CODE", "copy_code", "Copy_Code"])
def test_copy_code_sub_type_in_any_case_is_sent_as_written(sub_type: str) -> None:
    upstream = parse_message(with_change((*C, COPY_BUTTON, "sub_type"), sub_type)).to_upstream(Defaults())
    assert upstream["template"]["components"][COPY_BUTTON]["sub_type"] == sub_type


def test_lower_case_copy_code_still_needs_a_coupon_code_parameter() -> None:
    message = with_change((*C, COPY_BUTTON, "sub_type"), "copy_code")
    message["template"]["components"][COPY_BUTTON]["parameters"] = [{"type": "text", "text": "x"}]
    assert "coupon_code" in find_error(rejection(message).errors, LOC_COPY)["msg"]


def test_body_parameters_keep_their_order_and_repetitions() -> None:
    texts = ["David", "China", "China", "86138XXX"]
    message = with_change((*C, BODY, "parameters"), [{"type": "text", "text": t} for t in texts])
    upstream = parse_message(message).to_upstream(Defaults())
    assert [p["text"] for p in upstream["template"]["components"][BODY]["parameters"]] == texts


# --------------------------------------------------------------------------------------------------------------------
# Fixed values and defaults
# --------------------------------------------------------------------------------------------------------------------


def test_fixed_values_left_out_are_filled_in_with_the_pages_values() -> None:
    message = valid_message()
    for name in ("messaging_product", "recipient_type", "type"):
        del message[name]
    del message["template"]["language"]["policy"]

    upstream = parse_message(json.dumps(message)).to_upstream(Defaults())

    assert upstream["messaging_product"] == "whatsapp"
    assert upstream["recipient_type"] == "individual"
    assert upstream["type"] == "template"
    assert upstream["template"]["language"] == {"code": "en_US", "policy": "deterministic"}
    assert list(upstream) == PAGE_KEY_ORDER
    assert upstream == valid_message()


@pytest.mark.parametrize("missing", ["tenant_id", "appkey", "business_phone"])
def test_account_field_missing_with_no_default_is_named(missing: str) -> None:
    request = parse_message(with_change((missing,), _DELETE))
    with pytest.raises(InvalidMessageError) as excinfo:
        request.to_upstream(Defaults())
    assert excinfo.value.errors == [
        {
            "loc": [missing],
            "msg": f"{missing} is required: give it in the message or configure a default",
            "type": "missing",
        }
    ]
    assert missing in str(excinfo.value)


def test_all_missing_account_fields_are_named_at_once() -> None:
    message = valid_message()
    for name in ("tenant_id", "appkey", "business_phone"):
        del message[name]
    with pytest.raises(InvalidMessageError) as excinfo:
        parse_message(message).to_upstream(Defaults())
    assert sorted(e["loc"][0] for e in excinfo.value.errors) == ["appkey", "business_phone", "tenant_id"]


def test_message_values_win_over_defaults() -> None:
    defaults = Defaults(tenant_id=999, appkey="default_key", business_phone="85291234867")
    upstream = parse_message(valid_message()).to_upstream(defaults)
    assert (upstream["tenant_id"], upstream["appkey"], upstream["business_phone"]) == (1, "f543ertg", "8618512348399")


def test_defaults_fill_only_what_the_message_leaves_out() -> None:
    defaults = Defaults(tenant_id=999, appkey="default_key", business_phone="85291234867")
    upstream = parse_message(with_change(("appkey",), _DELETE)).to_upstream(defaults)
    assert (upstream["tenant_id"], upstream["appkey"], upstream["business_phone"]) == (
        1,
        "default_key",
        "8618512348399",
    )
    assert list(upstream) == PAGE_KEY_ORDER


def test_idempotency_key_is_ours_and_never_sent() -> None:
    request = parse_message(with_change(("idempotency_key",), "order-42"))
    assert request.idempotency_key == "order-42"
    assert "idempotency_key" not in request.to_upstream(Defaults())


def test_phone_numbers_are_sent_normalised() -> None:
    message = valid_message()
    message["to"] = "+86 136-1234-9759"
    message["business_phone"] = "0086 185 1234 8399"
    upstream = parse_message(message).to_upstream(Defaults())
    assert (upstream["to"], upstream["business_phone"]) == ("8613612349759", "8618512348399")


def test_defaults_model_is_strict_and_normalises_the_phone() -> None:
    assert Defaults(business_phone="+852 9123 4867").business_phone == "85291234867"
    with pytest.raises(ValidationError):
        Defaults(tenant_id=0)
    with pytest.raises(ValidationError):
        Defaults.model_validate({"tenant": 1})


def test_a_parsed_message_is_immutable() -> None:
    request = parse_message(valid_message())
    with pytest.raises(ValidationError):
        request.to = "8613800000000"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------------------------
# Raw input: JSON text, bytes, sizes
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "error_type", "fragment"),
    [
        pytest.param('{"to": "8613612349759",', "json_invalid", "not valid JSON", id="malformed"),
        pytest.param("", "json_invalid", "not valid JSON", id="empty"),
        pytest.param("{'to': '8613612349759'}", "json_invalid", "not valid JSON", id="single-quotes"),
        pytest.param("[]", "model_type", "JSON object", id="list"),
        pytest.param('[{"to": "8613612349759"}]', "model_type", "JSON object", id="list-of-object"),
        pytest.param('"hello"', "model_type", "JSON object", id="string"),
        pytest.param("42", "model_type", "JSON object", id="number"),
        pytest.param("null", "model_type", "JSON object", id="null"),
        pytest.param(b'{"to": "\xff\xfe"}', "json_invalid", "not valid JSON", id="invalid-utf8"),
        pytest.param(b'{"to": "86136\xc3"}', "json_invalid", "not valid JSON", id="truncated-utf8"),
        pytest.param("[" * 100_000 + "]" * 100_000, "too_large", "65536", id="100000-nested-lists"),
    ],
)
def test_raw_input_that_is_not_a_json_object(raw: str | bytes, error_type: str, fragment: str | None) -> None:
    error = rejection(raw)
    assert len(error.errors) == 1
    assert error.errors[0]["loc"] == []
    assert error.errors[0]["type"] == error_type
    if fragment is not None:
        assert fragment in error.errors[0]["msg"]


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("[" * 32_000 + "]" * 32_000, id="32000-nested-lists"),
        pytest.param('{"template": ' + "[" * 32_000 + "]" * 32_000 + "}", id="nested-lists-in-a-field"),
        pytest.param('{"to": ' + '{"a":' * 10_000 + "1" + "}" * 10_000 + "}", id="10000-nested-objects"),
    ],
)
def test_deep_nesting_under_the_size_limit_is_an_invalid_message_not_a_recursion_error(raw: str) -> None:
    """The nesting fits under the size limit, so it reaches the JSON decoder (whose recursion limit depends on the
    Python version) and, if decoded, the model."""
    assert len(raw) <= 64 * 1024
    error = rejection(raw)
    assert error.errors
    assert all(e["type"] in ("json_invalid", "model_type", "string_type") for e in error.errors), error.errors


def test_size_limit_is_64_kib_of_utf8_bytes() -> None:
    text = json.dumps(valid_message())
    at_limit = text + " " * (64 * 1024 - len(text.encode("utf-8")))  # trailing JSON whitespace
    assert len(at_limit.encode("utf-8")) == 65536
    assert parse_message(at_limit).to_upstream(Defaults()) == valid_message()
    assert parse_message(at_limit.encode("utf-8")).to_upstream(Defaults()) == valid_message()

    over = at_limit + " "
    for raw in (over, over.encode("utf-8")):
        error = rejection(raw).errors[0]
        assert (error["loc"], error["type"]) == ([], "too_large")
        assert "65537" in error["msg"]


def test_size_limit_counts_bytes_not_characters() -> None:
    text = json.dumps(with_change((*C, BODY, "parameters", 0, "text"), "x"), ensure_ascii=False)
    raw = text.replace('"text": "x"', '"text": "' + "你" * 22_000 + '"')  # 22 000 characters, 66 000 bytes
    assert len(raw) < 64 * 1024 < len(raw.encode("utf-8"))
    assert rejection(raw).errors[0]["type"] == "too_large"


def test_invalid_message_error_lists_locations_in_its_text() -> None:
    message = valid_message()
    message["to"] = "12"
    message["template"]["name"] = ""
    error = rejection(message)
    assert {tuple(e["loc"]) for e in error.errors} == {("to",), ("template", "name")}
    assert "to: " in str(error)
    assert "template.name: " in str(error)


def test_lone_surrogate_from_a_truncated_emoji_is_rejected() -> None:
    """``\\ud83d`` alone cannot be encoded as UTF-8: it must fail validation, not the HTTP client."""
    raw = json.dumps(valid_message()).replace('"David"', '"David \\ud83d"')
    error = find_error(rejection(raw).errors, [*LOC_BODY, "parameters", 0, "text"])
    assert error["type"] == "string_unicode"


# --------------------------------------------------------------------------------------------------------------------
# Non-ASCII text survives byte for byte
# --------------------------------------------------------------------------------------------------------------------

NON_ASCII_TEXTS = [
    "你好，世界。订单已发货",  # Chinese, full-width punctuation
    "مرحبا بالعالم",  # Arabic (right to left)
    "שלום",  # Hebrew
    "👋🏽 👨‍👩‍👧 🇭🇰",  # emoji with a skin tone, a ZWJ family and a flag
    "e\u0301 n\u0303 a\u0308",  # combining marks: must not be normalised to NFC
    "Ａｂｃ１２３",  # full-width Latin and digits
    "\u200fRTL mark and \u00a0nbsp",
    "tab\there",
]


@pytest.mark.parametrize("text", NON_ASCII_TEXTS)
def test_non_ascii_survives_parse_upstream_and_encoding(text: str) -> None:
    message = with_change((*C, BODY, "parameters", 0, "text"), text)
    message["template"]["components"][URL_BUTTON]["parameters"][0]["text"] = text

    for raw in (
        json.dumps(message, ensure_ascii=False),
        json.dumps(message, ensure_ascii=True),
        json.dumps(message, ensure_ascii=False).encode("utf-8"),
    ):
        upstream = parse_message(raw).to_upstream(Defaults())
        assert upstream["template"]["components"][BODY]["parameters"][0]["text"] == text
        encoded = encode_body(upstream)
        assert json.loads(encoded) == message
        # UTF-8 kept as is, not \u-escaped: the characters' own bytes are in the body, twice (body and button).
        assert encoded.encode("utf-8").count(json.dumps(text, ensure_ascii=False).encode("utf-8")) == 2
        non_ascii = [ch for ch in text if ord(ch) > 127]
        if non_ascii:
            assert "\\u" not in encoded


def test_combining_characters_are_not_normalised() -> None:
    decomposed = "Jose\u0301"
    message = with_change((*C, BODY, "parameters", 0, "text"), decomposed)
    upstream = parse_message(json.dumps(message)).to_upstream(Defaults())
    sent = upstream["template"]["components"][BODY]["parameters"][0]["text"]
    assert sent == decomposed
    assert len(sent) == 5
    assert "José" not in encode_body(upstream)  # the precomposed form would be a different signed text


def test_text_length_limit_counts_characters_not_bytes() -> None:
    at_limit = "你" * 1024  # 3072 UTF-8 bytes
    upstream = parse_message(with_change((*C, BODY, "parameters", 0, "text"), at_limit)).to_upstream(Defaults())
    assert upstream["template"]["components"][BODY]["parameters"][0]["text"] == at_limit


# --------------------------------------------------------------------------------------------------------------------
# Rejected values never reach the error (it is logged and put on dead letters)
# --------------------------------------------------------------------------------------------------------------------

LEAK_CASES = [
    pytest.param(("to",), "+86 139-4567-1234-9876-5", "13945671234", id="to-too-long"),
    pytest.param(("to",), "86139456712X4", "86139456712", id="to-letter"),
    pytest.param(("to",), "+86 100 4567 1234", "10045671234", id="to-invalid-for-country"),
    pytest.param(("to",), "+999 4567 1234", "45671234", id="to-unknown-country"),
    pytest.param(("business_phone",), "861394567", "861394567", id="business-phone-short"),
    pytest.param(("to",), "x" * 40 + "8613945671234", "8613945671234", id="to-over-32-chars"),
    pytest.param(("template", "language", "code"), "zz_LEAKMARK", "LEAKMARK", id="language-code"),
    pytest.param((*C, URL_BUTTON, "sub_type"), "LEAKMARK", "LEAKMARK", id="sub-type"),
    pytest.param((*C, HEADER, "type"), "LEAKMARK", "LEAKMARK", id="component-type"),
    pytest.param((*C, URL_BUTTON, "parameters", 0, "type"), "LEAKMARK", "LEAKMARK", id="parameter-type"),
    pytest.param(("template", "language", "policy"), "LEAKMARK", "LEAKMARK", id="policy"),
    pytest.param(("messaging_product",), "LEAKMARK", "LEAKMARK", id="messaging-product"),
    pytest.param(("appkey",), "LEAK MARK", "LEAK MARK", id="appkey"),
    pytest.param(("template", "name"), "LEAK MARK", "LEAK MARK", id="template-name"),
    pytest.param(("tenant_id",), "LEAKMARK", "LEAKMARK", id="tenant-id"),
    pytest.param((*C, HEADER, "parameters", 0, "image", "link"), "ftp://leakmark.example/", "leakmark", id="link"),
    pytest.param((*C, COPY_BUTTON, "parameters", 0, "coupon_code"), "LEAKMARK-LONG-CODE", "LEAKMARK", id="coupon"),
    pytest.param((*C, BODY, "parameters", 0, "text"), "LEAKMARK" * 200, "LEAKMARK", id="body-text"),
]


@pytest.mark.parametrize(("path", "value", "secret_part"), LEAK_CASES)
def test_rejected_values_do_not_appear_in_the_error(path: tuple[Any, ...], value: Any, secret_part: str) -> None:
    error = rejection(json.dumps(with_change(path, value)))
    assert error.errors  # it was rejected
    for rendered in (str(error.errors), repr(error.errors), str(error), repr(error)):
        assert secret_part not in rendered
        assert secret_part.lower() not in rendered.lower()


def test_phone_errors_do_not_show_the_digits_in_any_form() -> None:
    number = "+86 139 4567 1234 98"  # 15 digits: right length, invalid for China
    digits = re.sub(r"\D", "", number)
    error = rejection(with_change(("to",), number))
    text = str(error) + repr(error.errors)
    assert digits not in text
    assert digits[2:] not in text
    assert "4567" not in text


# --------------------------------------------------------------------------------------------------------------------
# The language table is the page's table
# --------------------------------------------------------------------------------------------------------------------


def page_language_table() -> list[tuple[str, str]]:
    """(code, name) pairs of the page's 模板语言 table, in the page's order (column by column), from docs/nxcloud.md."""
    return template_languages()


def test_language_table_is_the_pages_table() -> None:
    page = page_language_table()
    assert len(page) == 65
    assert len({code for code, _ in page}) == 65
    assert dict(TEMPLATE_LANGUAGES) == dict(page)
    assert list(TEMPLATE_LANGUAGES) == [code for code, _ in page]  # the page's order, column by column


def test_language_table_spot_checks() -> None:
    assert len(TEMPLATE_LANGUAGES) == 65
    for code in ("en_US", "pt_BR", "zh_CN", "zh_HK", "zh_TW", "fil", "es_MX", "nb", "vi"):
        assert code in TEMPLATE_LANGUAGES
    for code in ("en-US", "pt", "zh", "no", "iw", "EN_US", "en_us", ""):
        assert code not in TEMPLATE_LANGUAGES


@pytest.mark.parametrize("code", sorted(TEMPLATE_LANGUAGES))
def test_every_table_language_code_is_accepted(code: str) -> None:
    request = parse_message(with_change(("template", "language", "code"), code))
    assert request.to_upstream(Defaults())["template"]["language"] == {"code": code, "policy": "deterministic"}


def test_send_request_schema_has_no_unexpected_fields() -> None:
    """The caller-facing fields: the page's body plus our idempotency_key, nothing else."""
    assert set(SendRequest.model_fields) == {*PAGE_KEY_ORDER, "idempotency_key"}
