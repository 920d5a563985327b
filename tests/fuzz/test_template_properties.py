"""Properties of the template check under any valid message: a list of problems, never an exception.

The check runs before every send; a crash in it would stop messages it should only compare. For any valid message
named after one of the page-shaped templates (or any other name), in any language, with any components, ``check``
returns problems of the known kinds whose texts name the template, "not found" exactly when the catalogue lacks it,
and a message built to fit its template has none.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from nxcloud_wa.models import parse_message
from nxcloud_wa.templates import TemplateSet, TemplateSpec, check
from tests.page_templates import ALL

from .strategies import valid_messages

CATALOGUE = TemplateSet(TemplateSpec.from_api(t) for t in ALL)
KINDS = frozenset(
    {"template_not_found", "template_not_approved", "body_parameters", "header", "header_unsupported", "button"}
)
NAMES = st.sampled_from([t["name"] for t in ALL])


@given(valid_messages(), st.one_of(NAMES, st.none()), st.sampled_from(["en_US", "pt_BR", "zh_CN"]))
def test_any_valid_message_gets_problems_never_an_exception(
    message: dict[str, Any], name: str | None, language: str
) -> None:
    if name is not None:  # most draws name a catalogued template, so the component rules are exercised
        message["template"] = {**message["template"], "name": name, "language": {"code": language}}
    template = parse_message(message).template

    problems = check(template, CATALOGUE)

    assert {p.kind for p in problems} <= KINDS
    assert all(p.text.startswith(f"template {template.name}") for p in problems)
    spec = CATALOGUE.find(template.name, template.language.code)
    assert (spec is None) == any(p.kind == "template_not_found" for p in problems)


@given(st.sampled_from(ALL), st.lists(st.text(min_size=1, max_size=20).filter(str.strip), min_size=10, max_size=10))
def test_a_message_built_from_its_template_fits(template: dict[str, Any], texts: list[str]) -> None:
    spec = TemplateSpec.from_api(template)
    components: list[dict[str, Any]] = []
    if spec.header == "IMAGE":
        components.append(
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/i"}}]}
        )
    if spec.body_parameters:
        body = [{"type": "text", "text": t} for t in texts[: spec.body_parameters]]
        components.append({"type": "body", "parameters": body})
    for button in spec.buttons:
        if button.takes == "URL":
            parameter = {"type": "text", "text": texts[0]}
        elif button.takes == "COPY_CODE":
            parameter = {"type": "coupon_code", "coupon_code": texts[1][:15]}
        else:
            continue
        components.append(
            {"type": "button", "sub_type": button.takes, "index": button.index, "parameters": [parameter]}
        )
    message = {"to": "8613800000001", "template": {"name": spec.name, "language": {"code": spec.language}}}
    message["template"]["components"] = components

    assert check(parse_message(message).template, CATALOGUE) == []
