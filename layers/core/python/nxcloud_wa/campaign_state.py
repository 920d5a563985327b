"""The campaign engine's state in the campaign bucket (``state/{campaign_id}/``): where each object is and what a row
log line holds. One home, because the planner writes them and the report reads the row logs.

* ``seen-{pass}.bin``: the numbers of the valid rows read up to and including that pass
  (:meth:`nxcloud_wa.audience_rows.SeenNumbers.to_bytes`); the next pass starts from it.
* ``rows-{pass:08d}.jsonl``: the row log of one pass, one :func:`row_log_line` per row it ended or queued; the
  report reads them in name order (pass order) and joins them with the sender's row outcomes.
* ``held-{until:011d}-{pass:08d}.jsonl``: valid rows held for their recipients' quiet hours until ``until`` (epoch
  seconds); ``released-{pass:08d}.json``: the held files a pass queued (functions/planner/held_rows.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final, Literal

STATE_PREFIX: Final = "state/"
LoggedState = Literal["valid", "invalid", "duplicate", "expired", "cancelled"]
"""A row log line's ``state``: ``valid`` (queued: the sender settles it), or a final state the planner decided."""


def state_prefix(campaign_id: str) -> str:
    return f"{STATE_PREFIX}{campaign_id}/"


def seen_key(campaign_id: str, number: int) -> str:
    return f"{state_prefix(campaign_id)}seen-{number}.bin"


def rows_key(campaign_id: str, number: int) -> str:
    return f"{state_prefix(campaign_id)}rows-{number:08d}.jsonl"


def rows_prefix(campaign_id: str) -> str:
    """Every row log of the campaign starts so; their names sort in pass order."""
    return f"{state_prefix(campaign_id)}rows-"


def held_key(campaign_id: str, until: int, number: int) -> str:
    return f"{held_prefix(campaign_id)}{until:011d}-{number:08d}.jsonl"


def held_prefix(campaign_id: str) -> str:
    return f"{state_prefix(campaign_id)}held-"


def released_key(campaign_id: str, number: int) -> str:
    return f"{state_prefix(campaign_id)}released-{number:08d}.json"


def row_log_line(row: int, ref: str | None, to: str | None, state: LoggedState, reason: str | None) -> str:
    """One row's line: ``to`` is the number's digits, or the text as written when it is not a number (the
    customer's own file: the full number belongs in the report, never in a log)."""
    line = {"row": row, "ref": ref, "to": to, "state": state, "reason": reason}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n"


def read_row_log(text: str) -> list[Mapping[str, Any]]:
    """The lines of one row log, as written by :func:`row_log_line`."""
    return list(iter_row_log(text.splitlines()))


def iter_row_log(lines: Iterable[bytes | str]) -> Iterator[Mapping[str, Any]]:
    """The entries of a row log read as a stream of lines (an S3 body's ``iter_lines()``): the report holds one line
    at a time, never a pass's whole log. JSON escapes every control character, so a line break ends an entry."""
    for line in lines:
        if line.strip():
            yield json.loads(line)
