"""Rows held for their recipients' quiet hours: kept in the campaign bucket until the window ends, then queued by the
first pass after it.

A held row never waits on the send queue (no message put back delayed again and again through a 12-hour night, no
receive spent): the pass that read it writes it to its held file (``nxcloud_wa.campaign_state.held_key``; ``until``: the
epoch second at which every one of the number's time zones is outside the window, ``nxcloud_wa.quiet_hours``), and
the first pass at or after ``until`` releases the whole file (listed in key order: the earliest due first), counting
its rows against that pass's window like any other row.

Exactly once, across killed and repeated passes: a pass records the files it released
(``nxcloud_wa.campaign_state.released_key``) before its checkpoint moves, and the next pass (the checkpoint moved, so
those rows were queued and counted) deletes them before it lists what is held. A killed pass's own files (named
with its number) are deleted when it is tried again, so a row is never held twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from nxcloud_wa.campaign_state import held_key, held_prefix, released_key
from nxcloud_wa.s3 import object_missing


@dataclass(frozen=True, slots=True)
class Pending:
    """A valid row on its way to the queue: its queue body (the envelope) and its number's digits."""

    row: int
    ref: str | None
    to: str
    body: str

    def to_line(self) -> str:
        record = {"row": self.row, "ref": self.ref, "to": self.to, "body": self.body}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Pending:
        data = json.loads(line)
        return cls(int(data["row"]), data.get("ref"), str(data["to"]), str(data["body"]))


@dataclass(frozen=True, slots=True)
class HeldFile:
    """One pass's rows held until one instant (epoch seconds)."""

    key: str
    until: int
    number: int


def _parse(key: str) -> HeldFile:
    until, number = key.rsplit("/held-", 1)[1].removesuffix(".jsonl").split("-")
    return HeldFile(key, int(until), int(number))


class HeldRows:
    """One pass's view of a campaign's held rows (pass ``number``)."""

    def __init__(self, s3: Any, bucket: str, campaign_id: str, number: int) -> None:
        self.s3, self.bucket, self.campaign_id, self.number = s3, bucket, campaign_id, number

    def open(self) -> list[HeldFile]:
        """The held files, earliest due first, once the previous pass's released ones and this pass's own leftovers
        (a killed try of it) are deleted."""
        if self.number > 0:
            self._forget_released(self.number - 1)
        files = [_parse(key) for key in self._keys(held_prefix(self.campaign_id))]
        for leftover in [f for f in files if f.number == self.number]:
            self.s3.delete_object(Bucket=self.bucket, Key=leftover.key)
        return [f for f in files if f.number != self.number]

    def read(self, held: HeldFile) -> list[Pending]:
        text = self.s3.get_object(Bucket=self.bucket, Key=held.key)["Body"].read().decode("utf-8")
        return [Pending.from_line(line) for line in text.splitlines() if line]

    def keep(self, rows: dict[int, list[Pending]]) -> list[HeldFile]:
        """Write this pass's held rows, one file per ``until``."""
        kept = []
        for until, pending in sorted(rows.items()):
            key = held_key(self.campaign_id, until, self.number)
            body = "".join(p.to_line() for p in pending).encode("utf-8")
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)
            kept.append(HeldFile(key, until, self.number))
        return kept

    def mark_released(self, files: list[HeldFile]) -> None:
        """Record (before the checkpoint moves) which files this pass queued; the next pass deletes them."""
        key = released_key(self.campaign_id, self.number)
        if not files:  # a killed try of this pass may have left a list: this try released nothing
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            return
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=json.dumps([f.key for f in files]).encode("utf-8"))

    def forget_released(self) -> None:
        """Once the checkpoint moved: delete the files this pass released (the next pass would, if this one died
        first)."""
        self._forget_released(self.number)

    def _forget_released(self, number: int) -> None:
        key = released_key(self.campaign_id, number)
        try:
            listed = json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as exc:
            if object_missing(exc):
                return
            raise
        for released in listed:
            self.s3.delete_object(Bucket=self.bucket, Key=released)
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def _keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
