"""``make run``'s view of the suppression list: the entries the run's callbacks created, printed after the table.

The webhook stores an entry when a callback implies one (docs/audience.md, "Where entries come from"); in the local
run, the simulator's demo deliveries (events/README.md) make it: page example 3 fails with 131026 (``all``,
``undeliverable``), page example 2's reader taps ``Stop promotions`` (``marketing``, ``opted_out``). The view is a
log: numbers masked, as in the functions' logs. Entries that were there before the samples were pushed (seeded by the
stack) are left out: :func:`snapshot` before, :func:`created_since` after.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from local_stack.aws import Resources
from nxcloud_wa.phone import mask_valid_phone
from nxcloud_wa.suppressions import CAP_PREFIX, Suppression, decode

Snapshot = Mapping[str, str]
"""The list's items by ``id``, each with its ``at``: an entry stored again later is a new one."""


def all_entries(res: Resources) -> list[Suppression]:
    """Every entry of the local list, by id (a Scan: fine on moto, never done by the functions). The frequency cap's
    counts (``cap#`` items) share the table but are no entries: left out, as the index leaves them out."""
    dynamodb = res.client("dynamodb")
    items, request = [], {"TableName": res.suppressions_table}
    while True:
        answer = dynamodb.scan(**request)
        items += answer.get("Items", [])
        if "LastEvaluatedKey" not in answer:
            break
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    entries = (decode(item) for item in items if not item["id"]["S"].startswith(CAP_PREFIX))
    return sorted(entries, key=lambda entry: entry.key)


def snapshot(res: Resources) -> Snapshot:
    return {_id(entry): entry.at for entry in all_entries(res)}


def created_since(res: Resources, before: Snapshot) -> list[Suppression]:
    """The entries stored since ``before`` was taken (new, or stored again)."""
    return [entry for entry in all_entries(res) if before.get(_id(entry)) != entry.at]


def _id(entry: Suppression) -> str:
    return f"{entry.business_phone}#{entry.recipient}"


def entry_lines(entries: list[Suppression]) -> list[str]:
    """A heading and one aligned line per entry: masked numbers, scope, reason, source, and until when it applies."""
    if not entries:
        return ["suppression entries created during the run: none"]
    header = ("business number", "recipient", "scope", "reason", "source", "applies")
    cells = [
        (
            mask_valid_phone(entry.business_phone),
            mask_valid_phone(entry.recipient),
            str(entry.scope),
            str(entry.reason),
            entry.source,
            _until(entry.expiration),
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in (header, *cells)) for i in range(len(header))]
    lines = [f"suppression entries created during the run ({len(entries)}; numbers masked):"]
    for row in (header, *cells):
        lines.append(("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))).rstrip())
    return lines


def _until(expiration: int | None) -> str:
    if expiration is None:
        return "until removed"
    return "until " + datetime.fromtimestamp(expiration, UTC).strftime("%Y-%m-%d %H:%M UTC")


def print_created(res: Resources, before: Snapshot, out: TextIO = sys.stdout) -> None:
    print("", file=out)
    for line in entry_lines(created_since(res, before)):
        print(line, file=out)
