"""``nxwa suppressions add|remove|check|list|import|export``: the suppression list through the stack's REST API.

Through the API (``/suppressions``, docs/audience.md), never DynamoDB directly, so a holder of only the API key can
manage the list, and every rule (normalising numbers, precedence, which reasons a person may give) is the API's.

``import FILE.csv`` reads a header ``number[,scope,reason,expires_at]`` (also ``source`` and ``at``, which
``export`` writes and import ignores), puts each row with source ``import`` at a bounded concurrency, and reports
how many were added, were already present and were invalid, with their line numbers. ``export`` writes the same
columns, so an export imports into another stack. WhatsApp's reasons (``marketing_stopped``, ``undeliverable``)
are recorded from callbacks only, and the API refuses them: import stores them as the person's reason that stops
and lifts the same way (``opted_out``: an opt-in removes it; ``manual``: only a person does), scope and expiry
kept, and counts them.
"""

from __future__ import annotations

import csv
import json
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from waops.rest import Answer, RestApi

COLUMNS: Final = ("number", "scope", "reason", "expires_at")
"""What import reads: ``number`` required, the others optional (an empty cell is the API's default)."""
EXPORT_COLUMNS: Final = (*COLUMNS, "source", "at")
AS_A_PERSONS: Final = {"marketing_stopped": "opted_out", "undeliverable": "manual"}
"""WhatsApp's reasons as import stores them: the person's reason an opt-in lifts (or not) the same way."""
PAGE: Final = 1000
"""Entries asked for per page (the API's most)."""


class Api(RestApi):
    """The REST API's /suppressions routes, with the key."""

    def put(self, number: str, body: dict[str, Any]) -> Answer:
        return self._call("PUT", _path(number), {}, json.dumps(body).encode())

    def remove(self, number: str, business_phone: str | None) -> Answer:
        return self._call("DELETE", _path(number), {"business_phone": business_phone})

    def get(self, number: str, business_phone: str | None) -> Answer:
        return self._call("GET", _path(number), {"business_phone": business_phone})

    def entries(self, business_phone: str | None, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """The business number's entries, by recipient, following the cursors (at most ``limit``); ``SystemExit``
        if a page is refused."""
        cursor, given = None, 0
        while limit is None or given < limit:
            size = PAGE if limit is None else min(PAGE, limit - given)
            query = {"business_phone": business_phone, "limit": str(size), "cursor": cursor}
            answer = self._call("GET", "/suppressions", query)
            if answer.status != 200:
                raise SystemExit(f"nxwa: listing the suppression list failed: HTTP {answer.status}: {answer.error}")
            for item in answer.body["items"][: None if limit is None else limit - given]:
                given += 1
                yield item
            cursor = answer.body["next_cursor"]
            if cursor is None:
                return


def _path(number: str) -> str:
    return "/suppressions/" + urllib.parse.quote(number, safe="")


def request_body(
    scope: str | None = None,
    reason: str | None = None,
    expires_at: str | None = None,
    business_phone: str | None = None,
    source: str | None = None,
) -> dict[str, str]:
    """PUT's body: the fields given (the API's defaults for the rest)."""
    fields = {
        "scope": scope,
        "reason": reason,
        "expires_at": expires_at,
        "business_phone": business_phone,
        "source": source,
    }
    return {name: value for name, value in fields.items() if value}


# --- import -----------------------------------------------------------------------------------------------------------


@dataclass
class Imported:
    """What an import did, row by row: ``problems`` are ``(line, what)`` for the invalid and the failed rows."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[tuple[int, str]] = field(default_factory=list)
    translated: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        lines = ", ".join(str(line) for line, _ in self.problems) or "none"
        text = (
            f"added {self.counts['added']}, already present {self.counts['present']}, "
            f"invalid {self.counts['invalid']}, failed {self.counts['failed']} (lines: {lines})"
        )
        if self.translated:
            text += f"; {self.translated} with WhatsApp's reasons stored as {_translations()}"
        return text


def _translations() -> str:
    return ", ".join(f"{theirs} -> {ours}" for theirs, ours in AS_A_PERSONS.items())


def import_file(api: Api, path: Path, business_phone: str | None, concurrency: int) -> Imported:
    """Put every row of the CSV file, ``concurrency`` requests at a time; ``SystemExit`` for a file without the
    ``number`` column or with a column import does not read."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        unknown = sorted(set(header) - set(EXPORT_COLUMNS))
        if "number" not in header or unknown:
            raise SystemExit(
                f"nxwa: {path.name}: the header must be number[,scope,reason,expires_at]"
                + (f"; unknown column(s): {', '.join(unknown)}" if unknown else "")
            )
        rows = [(reader.line_num, {k.strip(): (v or "").strip() for k, v in row.items() if k}) for row in reader]
    result = Imported()
    requests = [_request(row, business_phone, result) for _, row in rows]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        answers = pool.map(lambda request: _put(api, request), requests)
        for (line, _), answer in zip(rows, answers, strict=True):
            _count(result, line, answer)
    return result


def _request(row: dict[str, str], business_phone: str | None, result: Imported) -> tuple[str, dict[str, str]]:
    """A row's number and PUT body; a reason of WhatsApp's becomes the person's that acts the same, counted."""
    reason = row.get("reason") or None
    if reason in AS_A_PERSONS:
        result.translated += 1
        reason = AS_A_PERSONS[reason]
    return row.get("number", ""), request_body(
        row.get("scope"), reason, row.get("expires_at"), business_phone, "import"
    )


def _put(api: Api, request: tuple[str, dict[str, str]]) -> Answer:
    number, body = request
    if not number:
        return Answer(400, {"errors": [{"loc": ["path", "number"], "msg": "is empty"}]})
    return api.put(number, body)


def _count(result: Imported, line: int, answer: Answer) -> None:
    if answer.status == 201:
        result.counts["added"] += 1
    elif answer.status == 200:
        result.counts["present"] += 1
    elif answer.status == 400:
        result.counts["invalid"] += 1
        result.problems.append((line, f"invalid: {answer.error}"))
    else:
        result.counts["failed"] += 1
        result.problems.append((line, f"HTTP {answer.status}: {answer.error}"))


# --- export -----------------------------------------------------------------------------------------------------------


def export(api: Api, business_phone: str | None, out: IO[str]) -> int:
    """Write the business number's entries as CSV (:data:`EXPORT_COLUMNS`); return how many."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    written = 0
    for entry in api.entries(business_phone):
        writer.writerow({**entry, "expires_at": entry.get("expires_at") or ""})
        written += 1
    return written
