"""The campaign-file soak's audience: a generated CSV and, for every row, what must become of it (the truth).

Rows, drawn with a seeded RNG so a run replays:

* valid rows to numbers of two countries: China (``86138…``, one zone, Asia/Shanghai) and the UK (``447…``,
  Europe/London and the Crown dependencies, one offset), so a quiet-hours window can be open in one and closed in the
  other;
* every :data:`REPEAT_EVERY`-th row a number met before, in another spelling (``+86 138 …``, ``0086…``, ``+44 7…``):
  it must end ``duplicate`` and never be sent;
* about :data:`INVALID_SHARE` of the rows broken in one of :data:`BROKEN` ways (a short number, an empty parameter, a
  ref too long, a line with an extra field, an unterminated quote): each must end ``invalid`` and cost no other row;
* about :data:`UNDELIVERABLE_SHARE` of the recipients WhatsApp cannot deliver to (the simulator fails them after
  ``sent``): sent, with delivery ``failed``.

Each row carries its own ``ref`` (``r<row>``), so the report's line and the row are matched without trusting the
report's numbering.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

REPEAT_EVERY: Final = 30
INVALID_SHARE: Final = 0.02
UNDELIVERABLE_SHARE: Final = 0.01
CHINA: Final = "86"
UK: Final = "44"
ZONES: Final = {CHINA: ("Asia/Shanghai",), UK: ("Europe/London",)}
"""The recipients' time zones by country code (what ``phonenumbers.timezone`` gives these ranges; the UK's Crown
dependencies share London's clock)."""
BROKEN: Final = ("short_number", "empty_parameter", "long_ref", "extra_field", "open_quote")
HEADER: Final = "to,body.1,ref"

Expect = Literal["sent", "duplicate", "invalid"]


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the file and its truth. ``digits`` is the number's E.164 digits (empty for an invalid row)."""

    row: int
    ref: str
    digits: str
    expect: Expect
    undeliverable: bool = False
    broken: str = ""

    @property
    def line(self) -> int:
        """The row's line in the file, which the report's ``row`` column holds (the header is line 1; no row of
        this file spans lines)."""
        return self.row + 1

    @property
    def country(self) -> str:
        return country_of(self.digits)


@dataclass(frozen=True, slots=True)
class Audience:
    text: str
    rows: list[Row]

    def sent(self) -> list[Row]:
        return [row for row in self.rows if row.expect == "sent"]


def country_of(digits: str) -> str:
    """The country code of a number this generator made (China's or the UK's)."""
    return CHINA if digits.startswith(CHINA) else UK


def generate(count: int, seed: int) -> Audience:
    """``count`` rows (the header aside), with their truth."""
    rng = random.Random(f"audience-{seed}")
    lines, rows = [HEADER], []
    numbers: list[str] = []
    for row_number in range(1, count + 1):
        ref = f"r{row_number}"
        if rng.random() < INVALID_SHARE:
            kind = BROKEN[row_number % len(BROKEN)]
            lines.append(_broken(kind, ref, rng))
            rows.append(Row(row_number, ref, "", "invalid", broken=kind))
        elif numbers and row_number % REPEAT_EVERY == 0:
            digits = rng.choice(numbers)
            lines.append(f"{_respelled(digits, rng)},P-{row_number},{ref}")
            rows.append(Row(row_number, ref, digits, "duplicate"))
        else:
            digits = _new_number(rng, len(numbers))
            numbers.append(digits)
            undeliverable = rng.random() < UNDELIVERABLE_SHARE
            lines.append(f"{digits},P-{row_number},{ref}")
            rows.append(Row(row_number, ref, digits, "sent", undeliverable=undeliverable))
    return Audience("\n".join(lines) + "\n", rows)


def _new_number(rng: random.Random, serial: int) -> str:
    """A distinct valid mobile number: the serial makes it unique, the country is drawn (about half each)."""
    if rng.random() < 0.5:
        return f"{CHINA}138{serial:08d}"
    return f"{UK}79{serial:08d}"


def _respelled(digits: str, rng: random.Random) -> str:
    """The same number as people write it: with ``+`` and spaces, or with the ``00`` prefix."""
    country, national = digits[:2], digits[2:]
    if rng.random() < 0.5:
        return f"+{country} {national[:3]} {national[3:7]} {national[7:]}"
    return f"00{country}{national}"


def _broken(kind: str, ref: str, rng: random.Random) -> str:
    """A line that must end ``invalid`` (and only that line)."""
    serial = rng.randrange(10**8)
    match kind:
        case "short_number":
            return f"12345,P,{ref}"
        case "empty_parameter":
            return f"{CHINA}139{serial:08d},,{ref}"
        case "long_ref":
            return f"{CHINA}139{serial:08d},P,{ref}{'x' * 200}"
        case "extra_field":
            return f"{CHINA}139{serial:08d},P,{ref},extra"
        case _:
            return f'{CHINA}139{serial:08d},"P unterminated,{ref}'


def quiet_rows(rows: list[Row], country: str) -> Iterator[Row]:
    """The rows to be sent whose recipient is in ``country``."""
    return (row for row in rows if row.expect == "sent" and row.country == country)
