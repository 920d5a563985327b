"""An audience file's columns against the campaign's template, and each row as the message it sends.

Columns (the CSV header, or a JSON Lines file's first object's keys): ``to`` (required), ``body.1`` ... ``body.N``
(the body's text parameters in order, contiguous from 1), ``header.image`` (the header's image link),
``button.<index>`` (0-9: a URL button's text or a COPY_CODE button's coupon code, as the template's button at that
index takes) and ``ref`` (optional, the customer's own reference). Anything else, or a name given twice, is a
campaign-level error: a typo (``body1``, ``Body.1``) must not send a million messages with a blank parameter.

Whether the columns fit the template is decided by the pre-flight check itself (:func:`nxcloud_wa.templates.check`):
a message shaped like the columns is checked against the template, so a campaign and a single message are refused
for the same reasons, in the same words ("template order_update (en_US) takes 3 body parameters, got 2").

Each row then becomes a :class:`~nxcloud_wa.models.SendRequest` through :func:`~nxcloud_wa.models.parse_message`, so
every rule of a single message holds for it; a row that breaks one is ``invalid`` with the column and the rule.
A number met again (however written: ``+86 138...``, ``0086138...``) is a ``duplicate`` of its first valid row
(:class:`SeenNumbers`).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from .audience_file import AudienceFileError, Record
from .exceptions import InvalidMessageError
from .models import (
    MAX_BODY_PARAMETERS,
    MAX_BUTTON_INDEX,
    BodyComponent,
    ButtonComponent,
    HeaderComponent,
    Image,
    ImageParameter,
    Language,
    SendRequest,
    Template,
    TextParameter,
    parse_message,
)
from .templates import TemplateSet, TemplateSpec, check

TO: Final = "to"
REF: Final = "ref"
HEADER_IMAGE: Final = "header.image"
MAX_REF: Final = 128
"""A customer's reference is echoed in every event and report line: an id, not a document."""
_BODY = re.compile(r"body\.([1-9][0-9]{0,2})")
_BUTTON = re.compile(r"button\.([0-9])")
COLUMNS_HELP: Final = (
    f"the columns are {TO}, body.1 ... body.N, {HEADER_IMAGE}, button.0 ... button.{MAX_BUTTON_INDEX} and {REF}"
)

RowState = Literal["valid", "invalid", "duplicate"]


@dataclass(frozen=True, slots=True)
class Layout:
    """Which column fills which part of the template's message, once the columns are known to fit it."""

    spec: TemplateSpec
    body: tuple[str, ...]
    header_image: bool
    buttons: tuple[tuple[int, str], ...]
    """(index, ``URL`` or ``COPY_CODE``) for each ``button.<index>`` column, in index order."""
    columns: frozenset[str]

    @property
    def required(self) -> tuple[str, ...]:
        return (
            TO,
            *self.body,
            *((HEADER_IMAGE,) if self.header_image else ()),
            *(f"button.{i}" for i, _ in self.buttons),
        )


def plan_columns(columns: Iterable[str], spec: TemplateSpec) -> Layout:
    """The layout of a file whose columns are ``columns``; :class:`AudienceFileError` naming every column that is
    unknown, given twice or missing, and every way they do not fit the template."""
    names = list(columns)
    problems = _name_problems(names)
    if problems:
        raise AudienceFileError([*problems, COLUMNS_HELP])
    body = tuple(sorted((n for n in names if _BODY.fullmatch(n)), key=_number))
    indexes = sorted(_number(n) for n in names if _BUTTON.fullmatch(n))
    buttons = tuple((i, _sub_type(spec, i)) for i in indexes)
    layout = Layout(spec, body, HEADER_IMAGE in names, buttons, frozenset(names))
    unfit = check(_probe(layout), TemplateSet([spec]))
    if unfit:
        where = {"header": HEADER_IMAGE, "body_parameters": "body.N", "button": "button.<index>"}
        texts = [
            f"the columns do not fit: {p.text}" + (f" ({where[p.kind]} columns)" if p.kind in where else "")
            for p in unfit
        ]
        raise AudienceFileError([*texts, COLUMNS_HELP])
    return layout


def _name_problems(names: list[str]) -> list[str]:
    known = {TO, REF, HEADER_IMAGE}
    unknown = [n for n in names if n not in known and not _BODY.fullmatch(n) and not _BUTTON.fullmatch(n)]
    problems = [f"unknown column {n!r}" for n in dict.fromkeys(unknown)]
    problems += [f"column {n!r} appears {names.count(n)} times" for n in dict.fromkeys(names) if names.count(n) > 1]
    if TO not in names:
        problems.append(f"no {TO!r} column: every row needs its recipient")
    numbers = sorted({_number(n) for n in names if _BODY.fullmatch(n)})
    missing = [f"body.{i}" for i in range(1, (numbers[-1] if numbers else 0) + 1) if i not in numbers]
    if missing:
        problems.append(f"body columns run from body.1 without a gap: missing {', '.join(missing)}")
    if numbers and numbers[-1] > MAX_BODY_PARAMETERS:
        problems.append(f"at most {MAX_BODY_PARAMETERS} body columns, got body.{numbers[-1]}")
    return problems


def _number(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def _sub_type(spec: TemplateSpec, index: int) -> str:
    """What the template's button at ``index`` takes; ``URL`` where it takes nothing (the check then says so)."""
    button = spec.button(index)
    return (button.takes if button else None) or "URL"


def _probe(layout: Layout) -> Template:
    """A message shaped like the columns, for :func:`check` (it compares shapes, never values)."""
    text = TextParameter.model_construct(type="text", text="x")
    components: list[Any] = []
    if layout.header_image:
        image = ImageParameter.model_construct(type="image", image=Image.model_construct(link="https://x"))
        components.append(HeaderComponent.model_construct(type="header", parameters=[image]))
    if layout.body:
        components.append(BodyComponent.model_construct(type="body", parameters=[text] * len(layout.body)))
    for index, sub_type in layout.buttons:
        components.append(
            ButtonComponent.model_construct(type="button", sub_type=sub_type, index=index, parameters=[text])
        )
    language = Language.model_construct(code=layout.spec.language, policy="deterministic")
    return Template.model_construct(name=layout.spec.name, language=language, components=components)


class RowError(ValueError):
    """Why a row cannot be sent; the text names columns and rules, never a value (it may be a number)."""


def row_message(layout: Layout, values: Mapping[str, str], fields: Mapping[str, Any] | None = None) -> SendRequest:
    """The message one row sends: ``fields`` are the campaign's (``business_phone``, ``tenant_id``, ``appkey``,
    ``idempotency_key``); raises :class:`RowError`."""
    unknown = [key for key in values if key not in layout.columns]
    if unknown:
        raise RowError(f"{', '.join(map(repr, unknown))}: not among the file's columns (its first line's keys)")
    blank = [column for column in layout.required if not values.get(column, "").strip()]
    if blank:
        raise RowError(f"{', '.join(blank)}: empty")
    if len(values.get(REF, "")) > MAX_REF:
        raise RowError(f"{REF}: at most {MAX_REF} characters")
    body = {**(fields or {}), TO: values[TO], "template": _template(layout, values)}
    try:
        return parse_message(body)
    except InvalidMessageError as exc:
        raise RowError("; ".join(f"{_column(layout, e['loc'])}: {_rule(e['msg'])}" for e in exc.errors)) from None


def _template(layout: Layout, values: Mapping[str, str]) -> dict[str, Any]:
    components: list[dict[str, Any]] = []
    if layout.header_image:
        image = {"type": "image", "image": {"link": values[HEADER_IMAGE]}}
        components.append({"type": "header", "parameters": [image]})
    if layout.body:
        components.append({"type": "body", "parameters": [{"type": "text", "text": values[c]} for c in layout.body]})
    for index, sub_type in layout.buttons:
        value = values[f"button.{index}"]
        parameter = (
            {"type": "text", "text": value} if sub_type == "URL" else {"type": "coupon_code", "coupon_code": value}
        )
        components.append({"type": "button", "sub_type": sub_type, "index": index, "parameters": [parameter]})
    spec = layout.spec
    return {
        "name": spec.name,
        "language": {"code": spec.language},
        **({"components": components} if components else {}),
    }


def _column(layout: Layout, loc: list[Any]) -> str:
    """The column a validation error's location points at (the message was built from the columns, in order)."""
    if loc[:2] != ["template", "components"] or len(loc) < 3:
        return str(loc[0]) if loc else "(row)"
    position = loc[2]
    offset = int(layout.header_image) + int(bool(layout.body))
    if layout.header_image and position == 0:
        return HEADER_IMAGE
    if layout.body and position == int(layout.header_image):
        numbers = [part for part in loc[3:] if isinstance(part, int)]
        return layout.body[numbers[0]] if numbers and numbers[0] < len(layout.body) else "body"
    index = position - offset
    return f"button.{layout.buttons[index][0]}" if 0 <= index < len(layout.buttons) else "template"


def _rule(message: str) -> str:
    return message.removeprefix("Value error, ")


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What one row of the file comes to: ``message`` for a valid row only; ``reason`` for the others."""

    line: int
    state: RowState
    reason: str | None = None
    message: SendRequest | None = None
    ref: str | None = None


def plan_row(record: Record, layout: Layout, seen: SeenNumbers, fields: Mapping[str, Any] | None = None) -> RowOutcome:
    """The outcome of one record: invalid (unreadable, or breaking a message rule), a duplicate of an earlier valid
    row's number, or valid (its number is then remembered)."""
    ref = (record.values or {}).get(REF) or None
    if record.values is None:
        return RowOutcome(record.line, "invalid", record.error, ref=ref)
    try:
        message = row_message(layout, record.values, fields)
    except RowError as exc:
        return RowOutcome(record.line, "invalid", str(exc), ref=ref)
    first = seen.add(message.to, record.line)
    if first is not None:
        return RowOutcome(record.line, "duplicate", f"the same number as row {first}", ref=ref)
    return RowOutcome(record.line, "valid", message=message, ref=ref)


class SeenNumbers:
    """The numbers of a campaign's valid rows, each with its first row's line: an open-addressing hash table in two
    flat arrays (8 + 4 bytes a slot, at most 2/3 full), so a million numbers take 24 MiB where a ``dict`` of ints
    takes about 100 MiB. A number is its E.164 digits as an int (at most 15 digits: below 2**50; 0 marks a free slot).
    :meth:`to_bytes` / :meth:`from_bytes` persist it with a checkpoint."""

    _MULTIPLIER: Final = 0x9E3779B97F4A7C15

    def __init__(self, capacity: int = 1 << 10) -> None:
        self._size = 0
        self._bits = max(capacity - 1, 1).bit_length()
        self._keys = array("Q", bytes(8 << self._bits))
        self._lines = array("I", bytes(4 << self._bits))

    def __len__(self) -> int:
        return self._size

    def add(self, digits: str, line: int) -> int | None:
        """Remember ``digits`` at ``line``; the line it was first added at when it was seen before, else None."""
        return self._add(int(digits), line)

    def _add(self, key: int, line: int) -> int | None:
        slot = self._slot(key)
        if self._keys[slot] == key:
            return int(self._lines[slot])
        self._keys[slot], self._lines[slot] = key, line
        self._size += 1
        if self._size * 3 > 2 << self._bits:
            self._grow()
        return None

    def first(self, digits: str) -> int | None:
        slot = self._slot(int(digits))
        return int(self._lines[slot]) if self._keys[slot] else None

    def _slot(self, key: int) -> int:
        """The slot holding ``key``, else the free slot where it goes (linear probing from a Fibonacci hash)."""
        mask = (1 << self._bits) - 1
        slot = ((key * self._MULTIPLIER) & 0xFFFFFFFFFFFFFFFF) >> (64 - self._bits)
        keys = self._keys
        while keys[slot] and keys[slot] != key:
            slot = (slot + 1) & mask
        return slot

    def _grow(self) -> None:
        keys, lines = self._keys, self._lines
        self._bits += 1
        self._keys = array("Q", bytes(8 << self._bits))
        self._lines = array("I", bytes(4 << self._bits))
        for key, line in zip(keys, lines, strict=True):
            if key:
                slot = self._slot(key)
                self._keys[slot], self._lines[slot] = key, line

    def to_bytes(self) -> bytes:
        """The occupied entries only (12 bytes each), keys then lines: what a checkpoint stores."""
        keys = array("Q", (k for k in self._keys if k))
        lines = array("I", (line for k, line in zip(self._keys, self._lines, strict=True) if k))
        return len(keys).to_bytes(8, "little") + keys.tobytes() + lines.tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SeenNumbers:
        count = int.from_bytes(data[:8], "little")
        keys, lines = array("Q"), array("I")
        keys.frombytes(data[8 : 8 + 8 * count])
        lines.frombytes(data[8 + 8 * count : 8 + 12 * count])
        seen = cls(capacity=max(count * 2, 1 << 10))
        for key, line in zip(keys, lines, strict=True):
            seen._add(key, line)
        return seen
