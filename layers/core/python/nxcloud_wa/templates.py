"""A message against its template: what the send API needs of each template, and the rules a message must meet.

getTemplate (docs/nxcloud.md section 6) describes a template by its components; the send API (section 1) fills some of
them from a message's parameters. :class:`TemplateSpec` keeps only what the check compares (and what ``nxwa templates``
shows), never a template's texts or examples. :func:`check` lists every rule a message breaks, each as a
:class:`Problem` a person can act on, so one round of fixes is enough:

1. a template of that name exists in that language;
2. its status is ``APPROVED`` (any other status is named);
3. the body gets exactly as many text parameters as its text has placeholders: the highest ``{{n}}`` when each
   variable appears once, and one more for each repetition, because the send page asks for a repeated variable to be
   given again ("重复多次的变量也须多次赋值", its example 1);
4. an ``IMAGE`` header gets its image parameter; no header parameter is given where the template has nothing to fill
   (no header, or a ``TEXT`` header without a variable); a header the send API cannot fill (a ``TEXT`` header with a
   variable, ``VIDEO``, ``DOCUMENT``, ``LOCATION``: it only carries image parameters) is refused, saying so;
5. each URL button whose url has a variable gets a ``URL`` button parameter at its index, each ``COPY_CODE`` button a
   ``COPY_CODE`` one (its coupon code); no button parameter points at an index the template has no button at, or at a
   button that takes another kind of parameter or none.

Every problem's ``kind`` is short and stable (``template_not_found``, ``body_parameters``...): it becomes the
``error_code`` of logs, metrics and dead letters. The texts name templates, languages and counts, never a parameter's
value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from .models import BodyComponent, ButtonComponent, HeaderComponent, Template

APPROVED: Final = "APPROVED"
PLACEHOLDER: Final = re.compile(r"\{\{\s*\d+\s*\}\}")
FILLABLE_HEADERS: Final = frozenset({"IMAGE"})
"""Header formats whose variable the send API can carry: it takes image header parameters only."""


class Problem(NamedTuple):
    """One rule a message breaks: ``kind`` for machines, ``text`` for the person who fixes the message."""

    kind: str
    text: str


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    """One button of a template, at its position (``index``, as a message's button component names it)."""

    index: int
    type: str
    """``URL``, ``COPY_CODE``, ``QUICK_REPLY``, ``PHONE_NUMBER``, ... (upper case)."""
    has_variable: bool = False
    """A URL button whose url has a placeholder (only those take a parameter)."""

    @property
    def takes(self) -> str | None:
        """The ``sub_type`` of the button parameter this button needs, or None when it takes none."""
        if self.type == "URL" and self.has_variable:
            return "URL"
        return "COPY_CODE" if self.type == "COPY_CODE" else None

    @classmethod
    def from_api(cls, index: int, data: Mapping[str, Any]) -> ButtonSpec:
        kind = _upper(data.get("type"))
        return cls(index, kind, kind == "URL" and _placeholders(data.get("url")) > 0)


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """What the check needs of one template in one language."""

    name: str
    language: str
    status: str
    category: str = ""
    header: str | None = None
    """The header's format (``IMAGE``, ``TEXT``, ``VIDEO``...), None without a header."""
    header_variables: int = 0
    body_parameters: int = 0
    buttons: tuple[ButtonSpec, ...] = ()

    @property
    def label(self) -> str:
        return f"template {self.name} ({self.language})"

    @property
    def approved(self) -> bool:
        return self.status == APPROVED

    @property
    def header_fillable(self) -> bool:
        """Whether a message can give what the header needs: nothing, or an image."""
        nothing_to_fill = self.header is None or (self.header == "TEXT" and self.header_variables == 0)
        return nothing_to_fill or self.header in FILLABLE_HEADERS

    def button(self, index: int) -> ButtonSpec | None:
        return next((b for b in self.buttons if b.index == index), None)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> TemplateSpec:
        """Keep what the check needs of one of getTemplate's template objects; ``ValueError`` when it has no name or
        language (nothing a message could name)."""
        name, language = data.get("name"), data.get("language")
        if not isinstance(name, str) or not name or not isinstance(language, str) or not language:
            raise ValueError("a template object without a name or a language")
        header, header_variables, body = None, 0, 0
        buttons: tuple[ButtonSpec, ...] = ()
        for component in _dicts(data.get("components")):
            kind = _upper(component.get("type"))
            if kind == "HEADER":
                header = _upper(component.get("format")) or "TEXT"
                header_variables = _placeholders(component.get("text"))
            elif kind == "BODY":
                body = _placeholders(component.get("text"))
            elif kind == "BUTTONS":
                buttons = tuple(ButtonSpec.from_api(i, b) for i, b in enumerate(_dicts(component.get("buttons"))))
        status, category = _upper(data.get("status")) or "UNKNOWN", _upper(data.get("category"))
        return cls(name, language, status, category, header, header_variables, body, buttons)


class TemplateSet:
    """An account's templates, by name and language (what one getTemplate listing said)."""

    def __init__(self, templates: Iterable[TemplateSpec] = ()) -> None:
        self._by_key = {(t.name, t.language): t for t in templates}

    def find(self, name: str, language: str) -> TemplateSpec | None:
        return self._by_key.get((name, language))

    def usable(self, name: str, language: str) -> bool:
        """Whether a message naming this template can pass the first two rules (it exists and is approved)."""
        spec = self.find(name, language)
        return spec is not None and spec.approved

    def languages(self, name: str) -> list[str]:
        return sorted(language for n, language in self._by_key if n == name)

    def __iter__(self) -> Iterator[TemplateSpec]:
        return iter(sorted(self._by_key.values(), key=lambda t: (t.name, t.language)))

    def __len__(self) -> int:
        return len(self._by_key)


def check(template: Template, templates: TemplateSet) -> list[Problem]:
    """Every rule the message's ``template`` breaks against the account's ``templates``; empty when it fits."""
    name, language = template.name, template.language.code
    spec = templates.find(name, language)
    if spec is None:
        elsewhere = templates.languages(name)
        text = (
            f"template {name} has no {language} version (it exists in {', '.join(elsewhere)})"
            if elsewhere
            else f"template {name} ({language}) does not exist for this business number"
        )
        return [Problem("template_not_found", text)]
    components = template.components or []
    status = [] if spec.approved else [Problem("template_not_approved", f"{spec.label} is {spec.status}, not APPROVED")]
    return status + _header(spec, components) + _body(spec, components) + _buttons(spec, components)


def _header(spec: TemplateSpec, components: list[Any]) -> list[Problem]:
    given = any(isinstance(c, HeaderComponent) for c in components)
    if not spec.header_fillable:
        what = "a TEXT header with a variable" if spec.header == "TEXT" else _a(f"{spec.header} header")
        text = f"{spec.label} has {what}, which NXCloud's send API cannot fill (it fills image headers only)"
        return [Problem("header_unsupported", text)]
    if spec.header in FILLABLE_HEADERS and not given:
        text = f"{spec.label} has {_a(f'{spec.header} header')}: give a header component with one image parameter"
        return [Problem("header", text)]
    if spec.header not in FILLABLE_HEADERS and given:
        return [Problem("header", f"{spec.label} has no header to fill, got a header component")]
    return []


def _body(spec: TemplateSpec, components: list[Any]) -> list[Problem]:
    got = sum(len(c.parameters) for c in components if isinstance(c, BodyComponent))
    if got == spec.body_parameters:
        return []
    takes = _count(spec.body_parameters, "body parameter")
    return [Problem("body_parameters", f"{spec.label} takes {takes}, got {got}")]


def _buttons(spec: TemplateSpec, components: list[Any]) -> list[Problem]:
    given = {c.index: c.sub_type.upper() for c in components if isinstance(c, ButtonComponent)}
    problems = [
        Problem("button", f"{spec.label} needs {_wanted(button)} at index {button.index}")
        for button in spec.buttons
        if button.takes and button.index not in given
    ]
    for index, sub_type in sorted(given.items()):
        button = spec.button(index)
        got = f"got a {sub_type} button parameter"
        if button is None:
            where = _button_indexes(len(spec.buttons))
            problems.append(Problem("button", f"{spec.label} has no button at index {index} ({where}), {got}"))
        elif button.takes is None:
            plain = _a(f"{button.type} button") + (" without a variable" if button.type == "URL" else "")
            text = f"{spec.label}'s button {index} is {plain}: it takes no parameter, {got}"
            problems.append(Problem("button", text))
        elif button.takes != sub_type:
            problems.append(Problem("button", f"{spec.label}'s button {index} needs {_wanted(button)}, {got}"))
    return problems


def _button_indexes(count: int) -> str:
    if count == 0:
        return "it has no buttons"
    return "its only button is at index 0" if count == 1 else f"its buttons are at index 0-{count - 1}"


def _wanted(button: ButtonSpec) -> str:
    return "a URL button parameter (its url's variable)" if button.takes == "URL" else "a COPY_CODE button parameter"


def _count(n: int, noun: str) -> str:
    return f"no {noun}s" if n == 0 else f"1 {noun}" if n == 1 else f"{n} {noun}s"


def _a(phrase: str) -> str:
    """The phrase with its article, as said aloud: an IMAGE header, a URL button."""
    vowel_sound = phrase[:1] in "AEIO" or (phrase[:1] == "U" and not phrase.startswith("URL"))
    return f"an {phrase}" if vowel_sound else f"a {phrase}"


def _placeholders(text: Any) -> int:
    return len(PLACEHOLDER.findall(text)) if isinstance(text, str) else 0


def _upper(value: Any) -> str:
    return value.strip().upper() if isinstance(value, str) else ""


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
