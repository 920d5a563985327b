"""The pre-flight check's rules (nxcloud_wa.templates), one by one, against templates shaped like NXCloud's pages: the
getTemplate page's ``order_update`` example and the templates the send page's three request examples must have."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from nxcloud_wa.exceptions import TemplateMismatchError
from nxcloud_wa.models import parse_message
from nxcloud_wa.templates import ButtonSpec, Problem, TemplateSet, TemplateSpec, check
from tests.page_templates import ORDER_UPDATE, TEN_BTN4, TEST_00045, TEXT_TEMPLATE, template

PAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "page_examples"


CATALOGUE = TemplateSet(TemplateSpec.from_api(t) for t in (ORDER_UPDATE, TEXT_TEMPLATE, TEST_00045, TEN_BTN4))


def message(name: str = "order_update", language: str = "en_US", *components: dict[str, Any]) -> Any:
    body = {"to": "8613800000001", "template": {"name": name, "language": {"code": language}}}
    if components:
        body["template"]["components"] = list(components)
    return parse_message(body).template


def header() -> dict[str, Any]:
    return {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]}


def body(count: int) -> dict[str, Any]:
    return {"type": "body", "parameters": [{"type": "text", "text": f"v{i}"} for i in range(count)]}


def url_button(index: int, sub_type: str = "URL") -> dict[str, Any]:
    return {"type": "button", "sub_type": sub_type, "index": index, "parameters": [{"type": "text", "text": "42"}]}


def code_button(index: int) -> dict[str, Any]:
    return {
        "type": "button",
        "sub_type": "COPY_CODE",
        "index": index,
        "parameters": [{"type": "coupon_code", "coupon_code": "123123"}],
    }


def problems(template_message: Any, templates: TemplateSet = CATALOGUE) -> list[Problem]:
    return check(template_message, templates)


FITS_ORDER_UPDATE = (header(), body(3), url_button(0))


# --- what getTemplate's objects become


def test_a_template_keeps_only_what_the_check_needs() -> None:
    spec = TemplateSpec.from_api(ORDER_UPDATE)

    assert spec == TemplateSpec(
        name="order_update",
        language="en_US",
        status="APPROVED",
        category="UTILITY",
        header="IMAGE",
        header_variables=0,
        body_parameters=3,
        buttons=(ButtonSpec(0, "URL", has_variable=True),),
    )
    assert spec.label == "template order_update (en_US)"


def test_buttons_are_indexed_by_their_position_and_only_some_take_a_parameter() -> None:
    spec = TemplateSpec.from_api(TEN_BTN4)

    assert [(b.index, b.type, b.takes) for b in spec.buttons] == [
        (0, "QUICK_REPLY", None),
        (1, "QUICK_REPLY", None),
        (2, "URL", None),  # a static url: nothing to fill
        (3, "COPY_CODE", "COPY_CODE"),
    ]


def test_placeholders_are_counted_where_they_occur_with_spaces_allowed() -> None:
    spec = TemplateSpec.from_api(template("t", "en", {"type": "body", "text": "{{1}} {{ 2 }} {{1}} {{x}} {1}"}))

    assert spec.body_parameters == 3


def test_malformed_components_are_ignored_and_a_nameless_template_is_refused() -> None:
    odd = template("t", "en", "not a component", {"type": "BUTTONS", "buttons": ["x", {"type": "url"}]})
    spec = TemplateSpec.from_api({**odd, "status": "approved", "category": None})

    assert (spec.status, spec.category, spec.header, spec.body_parameters) == ("APPROVED", "", None, 0)
    assert spec.buttons == (ButtonSpec(0, "URL", has_variable=False),)
    for bad in ({**ORDER_UPDATE, "name": ""}, {k: v for k, v in ORDER_UPDATE.items() if k != "language"}):
        with pytest.raises(ValueError, match="name or a language"):
            TemplateSpec.from_api(bad)


# --- the page's examples fit their templates


@pytest.mark.parametrize("path", sorted(PAGE_EXAMPLES.glob("*.json")), ids=lambda p: p.stem)
def test_each_page_example_fits_its_template(path: Path) -> None:
    assert problems(parse_message(path.read_text(encoding="utf-8")).template) == []


def test_the_getTemplate_pages_example_fits_when_given_what_it_needs() -> None:
    assert problems(message("order_update", "en_US", *FITS_ORDER_UPDATE)) == []


# --- rule 1: it exists for that name and language


def test_a_template_the_account_does_not_have_is_not_found() -> None:
    assert problems(message("order_updte", "en_US", body(3))) == [
        Problem("template_not_found", "template order_updte (en_US) does not exist for this business number")
    ]


def test_a_language_the_template_was_never_created_in_names_the_ones_it_has() -> None:
    other = TemplateSet([*CATALOGUE, TemplateSpec.from_api({**ORDER_UPDATE, "language": "zh_CN"})])

    assert problems(message("order_update", "pt_BR", *FITS_ORDER_UPDATE), other) == [
        Problem("template_not_found", "template order_update has no pt_BR version (it exists in en_US, zh_CN)")
    ]


# --- rule 2: it is approved


@pytest.mark.parametrize("status", ["PENDING", "REJECTED", "PAUSED", "DISABLED"])
def test_any_status_but_approved_is_named(status: str) -> None:
    templates = TemplateSet([TemplateSpec.from_api({**ORDER_UPDATE, "status": status})])

    assert problems(message("order_update", "en_US", *FITS_ORDER_UPDATE), templates) == [
        Problem("template_not_approved", f"template order_update (en_US) is {status}, not APPROVED")
    ]


# --- rule 3: the body's parameters


def test_the_issues_example_too_few_body_parameters() -> None:
    found = problems(message("order_update", "en_US", header(), body(2), url_button(0)))

    assert found == [Problem("body_parameters", "template order_update (en_US) takes 3 body parameters, got 2")]
    assert str(TemplateMismatchError(found)) == "template order_update (en_US) takes 3 body parameters, got 2"


@pytest.mark.parametrize(("given", "text"), [(4, "got 4"), (0, "got 0")])
def test_too_many_or_none_is_refused(given: int, text: str) -> None:
    components = [header(), url_button(0)] + ([body(given)] if given else [])

    assert problems(message("order_update", "en_US", *components)) == [
        Problem("body_parameters", f"template order_update (en_US) takes 3 body parameters, {text}")
    ]


def test_a_body_without_variables_takes_no_parameters() -> None:
    assert problems(message("ten_btn4", "en_US", body(1), code_button(3))) == [
        Problem("body_parameters", "template ten_btn4 (en_US) takes no body parameters, got 1")
    ]


def test_a_repeated_variable_is_given_again_as_the_send_page_says() -> None:
    """Highest placeholder {{3}}, four placeholders: the page's example 1 gives four texts ("China" twice)."""
    assert problems(message("text_template", "en_US", header(), body(4))) == []
    assert problems(message("text_template", "en_US", header(), body(3))) == [
        Problem("body_parameters", "template text_template (en_US) takes 4 body parameters, got 3")
    ]


# --- rule 4: the header


def test_an_image_header_needs_its_image() -> None:
    assert problems(message("order_update", "en_US", body(3), url_button(0))) == [
        Problem(
            "header",
            "template order_update (en_US) has an IMAGE header: give a header component with one image parameter",
        )
    ]


def test_no_header_parameter_where_the_template_has_no_header() -> None:
    assert problems(message("ten_btn4", "en_US", header(), code_button(3))) == [
        Problem("header", "template ten_btn4 (en_US) has no header to fill, got a header component")
    ]


def test_a_text_header_without_a_variable_takes_nothing() -> None:
    plain = {"type": "HEADER", "format": "TEXT", "text": "Your order"}
    templates = TemplateSet([TemplateSpec.from_api(template("t", "en", plain, {"type": "BODY", "text": "Hi"}))])

    assert problems(message("t", "en"), templates) == []
    assert [p.kind for p in problems(message("t", "en", header()), templates)] == ["header"]


@pytest.mark.parametrize(
    ("component", "what"),
    [
        ({"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"}, "a TEXT header with a variable"),
        ({"type": "HEADER", "format": "VIDEO"}, "a VIDEO header"),
        ({"type": "HEADER", "format": "DOCUMENT"}, "a DOCUMENT header"),
        ({"type": "HEADER", "format": "LOCATION"}, "a LOCATION header"),
    ],
)
def test_a_header_the_send_api_cannot_fill_is_refused_with_that_reason(component: dict[str, Any], what: str) -> None:
    templates = TemplateSet([TemplateSpec.from_api(template("t", "en", component))])
    expected = [
        Problem(
            "header_unsupported",
            f"template t (en) has {what}, which NXCloud's send API cannot fill (it fills image headers only)",
        )
    ]

    assert problems(message("t", "en"), templates) == expected
    assert problems(message("t", "en", header()), templates) == expected


# --- rule 5: the buttons


def test_a_url_button_with_a_variable_needs_its_parameter_at_its_index() -> None:
    assert problems(message("order_update", "en_US", header(), body(3))) == [
        Problem("button", "template order_update (en_US) needs a URL button parameter (its url's variable) at index 0")
    ]


def test_every_url_button_with_a_variable_is_needed_and_sub_type_is_read_in_any_case() -> None:
    assert problems(message("test_00045", "pt_BR", url_button(0, "url"), url_button(1, "Url"))) == []
    assert problems(message("test_00045", "pt_BR", url_button(1, "url"))) == [
        Problem("button", "template test_00045 (pt_BR) needs a URL button parameter (its url's variable) at index 0")
    ]


def test_a_copy_code_button_needs_its_coupon_code() -> None:
    assert problems(message("ten_btn4", "en_US")) == [
        Problem("button", "template ten_btn4 (en_US) needs a COPY_CODE button parameter at index 3")
    ]


def test_no_button_parameter_at_an_index_the_template_does_not_have() -> None:
    assert problems(message("order_update", "en_US", *FITS_ORDER_UPDATE, url_button(4))) == [
        Problem(
            "button",
            "template order_update (en_US) has no button at index 4 (its only button is at index 0), "
            "got a URL button parameter",
        )
    ]
    assert problems(message("text_template", "en_US", header(), body(4), code_button(0))) == [
        Problem(
            "button",
            "template text_template (en_US) has no button at index 0 (it has no buttons), "
            "got a COPY_CODE button parameter",
        )
    ]


@pytest.mark.parametrize(
    ("component", "text"),
    [
        (url_button(0), "'s button 0 is a QUICK_REPLY button: it takes no parameter, got a URL button parameter"),
        (
            url_button(2),
            "'s button 2 is a URL button without a variable: it takes no parameter, got a URL button parameter",
        ),
        (
            code_button(1),
            "'s button 1 is a QUICK_REPLY button: it takes no parameter, got a COPY_CODE button parameter",
        ),
    ],
)
def test_no_button_parameter_for_a_button_that_takes_none(component: dict[str, Any], text: str) -> None:
    assert problems(message("ten_btn4", "en_US", component, code_button(3))) == [
        Problem("button", "template ten_btn4 (en_US)" + text)
    ]


def test_no_button_parameter_of_another_type() -> None:
    assert problems(message("ten_btn4", "en_US", url_button(3))) == [
        Problem(
            "button",
            "template ten_btn4 (en_US)'s button 3 needs a COPY_CODE button parameter, got a URL button parameter",
        )
    ]
    assert problems(message("order_update", "en_US", header(), body(3), code_button(0))) == [
        Problem(
            "button",
            "template order_update (en_US)'s button 0 needs a URL button parameter (its url's variable), "
            "got a COPY_CODE button parameter",
        )
    ]


# --- all together


def test_every_problem_is_listed_in_order_and_the_first_names_the_error() -> None:
    pending = TemplateSet([TemplateSpec.from_api({**ORDER_UPDATE, "status": "PENDING"})])
    found = problems(message("order_update", "en_US", body(1), code_button(2)), pending)
    error = TemplateMismatchError(found)

    assert [p.kind for p in found] == ["template_not_approved", "header", "body_parameters", "button", "button"]
    assert error.kind == "template_not_approved"
    assert error.classification.reason == "template_mismatch"
    assert str(error) == "; ".join(p.text for p in found)


def test_a_mismatch_needs_a_problem() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TemplateMismatchError([])


def test_the_check_does_not_change_the_catalogue() -> None:
    before = copy.deepcopy(list(CATALOGUE))
    problems(message("order_update", "en_US", body(1)))

    assert list(CATALOGUE) == before
    assert len(CATALOGUE) == 4
    assert [t.name for t in CATALOGUE] == ["order_update", "ten_btn4", "test_00045", "text_template"]


def test_texts_never_carry_a_parameters_value() -> None:
    secretish = message(
        "order_update", "en_US", header(), body(2) | {"parameters": [{"type": "text", "text": "8613812345678"}] * 2}
    )
    assert "8613812345678" not in json.dumps([p.text for p in problems(secretish)])
