"""``make run``'s table: one entry per message, laid out for the terminal's width (120 columns when not a terminal).

Each message takes a line for its sample (the file and the record's label, which can be a hundred characters long)
and, indented under it, a line of short columns: the path, the outcome, NXCloud's message_id, where the delivery
ended, the status events seen, and ``ok`` or ``MISMATCH``. What ``events/expected.json`` documents is the outcome
and the delivery themselves when the row is ``ok``, so it is printed only for a mismatch, on a line of its own.
When the columns are wider than the terminal, the widest is wrapped first (the outcome, in practice), between words
only, so nothing is cut.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, TextIO

if TYPE_CHECKING:
    from local_stack.runner import Row

WIDTH: Final = 120
"""The width laid out for when the output is not a terminal (a pipe, a log, CI)."""
INDENT: Final = "  "
GAP: Final = "  "
HEADER: Final = ("path", "outcome", "NXCloud message_id", "delivery", "status events", "")


def print_table(rows: Sequence[Row], out: TextIO = sys.stdout, width: int | None = None) -> None:
    """Print the table for ``width`` columns: the terminal's when not given."""
    for line in table_lines(rows, width or shutil.get_terminal_size((WIDTH, 24)).columns):
        print(line, file=out)


def table_lines(rows: Sequence[Row], width: int) -> list[str]:
    """The table's lines, none longer than ``width`` unless the columns' longest words alone are wider."""
    cells = [(r.path, r.outcome, r.detail, r.delivery, r.events, "ok" if r.ok else "MISMATCH") for r in rows]
    columns = list(zip(HEADER, *cells, strict=True))
    natural = [max(len(cell) for cell in column) for column in columns]
    floors = [max(len(word) for cell in column for word in [*cell.split(), ""]) for column in columns]
    widths = _fit(natural, floors, width - len(INDENT) - len(GAP) * (len(natural) - 1))
    lines = ["sample", *_row(HEADER, widths)]
    for row, row_cells in zip(rows, cells, strict=True):
        lines += textwrap.wrap(row.sample, width, subsequent_indent=INDENT * 2) or [""]
        lines += _row(row_cells, widths)
        if not row.ok:
            documented = row.expected + (f" / {row.expected_delivery}" if row.expected_delivery else "")
            expected = f"expected: {documented}"
            lines += textwrap.wrap(expected, width, initial_indent=INDENT, subsequent_indent=INDENT * 2)
    return lines


def _fit(widths: list[int], floors: list[int], room: int) -> list[int]:
    """Narrow the widest column that can still narrow, one character at a time, until the columns fit ``room``. A
    column never goes below its floor (its longest word): a message id or a reason is never cut in two."""
    fitted = list(widths)
    while sum(fitted) > room:
        narrowable = [i for i, w in enumerate(fitted) if w > floors[i]]
        if not narrowable:
            break
        widest = max(narrowable, key=fitted.__getitem__)
        fitted[widest] -= 1
    return fitted


def _row(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    """One row of cells, each wrapped to its column: as many lines as its tallest cell needs."""
    wrapped = [textwrap.wrap(cell, w, break_long_words=False) or [""] for cell, w in zip(cells, widths, strict=True)]
    height = max(len(cell_lines) for cell_lines in wrapped)
    padded = [[*c, *[""] * (height - len(c))] for c in wrapped]
    return [
        (INDENT + GAP.join(c[i].ljust(w) for c, w in zip(padded, widths, strict=True))).rstrip() for i in range(height)
    ]
