"""A campaign's report: one CSV line per row of its audience file, from what the planner and the sender recorded.

Two sources, both in row order, merged as streams (a million rows never sit in memory):

* the planner's row log (one JSON object per row it read: ``row``, ``ref``, ``to``, ``state`` ``valid``/``invalid``/
  ``duplicate``/``expired``, ``reason``), in pass order, which is file order;
* the rows' outcomes the sender settled (:class:`~nxcloud_wa.campaigns_table.RowOutcome`, sk ``row#<row>``: a Query
  returns them in row order), and those of each retry round (``retry#<round>#<row>``, one Query stream a round): a
  row's line shows its last round's outcome (:func:`latest_outcomes`), so once the campaign is completed the lines
  by state equal its counts with the rows re-sent taken from ``dead_lettered``
  (:func:`nxcloud_wa.campaigns.final_totals`).

A row the planner queued (``valid``) takes its outcome's state; one with no outcome yet is ``queued``. ``to`` is what
the row log holds: the number's E.164 digits for a row whose number is valid (``valid``, ``duplicate``, ``expired``:
the number the message went, or would have gone, to, so two spellings of one recipient read the same), the text as
the row gave it for an ``invalid`` one. The report is the customer's own file, so the number is full here (logs
still mask numbers).

Where the report lives (``reports/{id}.csv``, :func:`report_key`) and when a stored one still answers for the
campaign (:func:`is_current`) are decided here too, since the API reads that decision and the planner acts on it.
"""

from __future__ import annotations

import csv
import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import astuple, dataclass
from typing import IO, Any, Final

from botocore.exceptions import ClientError

from .campaigns import RowState, Status
from .campaigns_table import Campaign, RowOutcome
from .s3 import object_missing

COLUMNS: Final = ("row", "ref", "to", "state", "reason", "message_id", "delivery", "error_code", "at")
VALID: Final = "valid"
"""The row log's state of a row the planner queued: its outcome (or ``queued``) is the report's."""
REPORT_PREFIX: Final = "reports/"
"""The bucket's lifecycle rule expires these after 30 days (template.yaml, CampaignBucket)."""
REBUILD_SECONDS: Final = 60
"""A report younger than this still answers while only counts moved (the status did not): a running campaign's
counts move with every batch, and a report rebuilt on each of them would never be ready."""


BUILDING_SECONDS: Final = 360
"""How long a report request holds off another (:meth:`~nxcloud_wa.campaigns_table.CampaignStore.request_report`):
longer than the planner's timeout (300 s), so a build still running is never started twice by a client polling
every few seconds; a build that died is asked for again after it."""


def report_key(campaign_id: str) -> str:
    return f"{REPORT_PREFIX}{campaign_id}.csv"


def built_from(campaign: Campaign) -> str:
    """What a report reflects: the campaign's version (every status move raises it) and its counts (sends, final
    states and delivery statuses all move one), as a short digest that fits an object's metadata."""
    data = json.dumps([campaign.version, sorted(campaign.counts.items())], separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class ReportStamp:
    """The metadata a report object carries: what it was built from, the campaign's status then, when, its lines."""

    built_from: str
    status: str
    built_at: float
    rows: int

    def metadata(self) -> dict[str, str]:
        return {
            "built-from": self.built_from,
            "status": self.status,
            "built-at": repr(self.built_at),
            "rows": str(self.rows),
        }

    @classmethod
    def of(cls, metadata: Mapping[str, str]) -> ReportStamp | None:
        """The stamp of an object's metadata; None for an object without one (not a report this code wrote)."""
        try:
            status = Status(metadata["status"]).value
            return cls(metadata["built-from"], status, float(metadata["built-at"]), int(metadata["rows"]))
        except (KeyError, ValueError):
            return None


def stored_stamp(s3: Any, bucket: str, campaign_id: str) -> ReportStamp | None:
    """The stamp of the campaign's stored report (one ``HeadObject``); None when there is no report."""
    try:
        head = s3.head_object(Bucket=bucket, Key=report_key(campaign_id))
    except ClientError as exc:
        if object_missing(exc):
            return None
        raise
    return ReportStamp.of(head.get("Metadata", {}))


def is_current(stamp: ReportStamp | None, campaign: Campaign, now: float) -> bool:
    """Whether a stored report answers for ``campaign`` now: built from exactly what the campaign is, or, its status
    unchanged (a completed campaign's report keeps its final states), less than :data:`REBUILD_SECONDS` old."""
    if stamp is None:
        return False
    if stamp.built_from == built_from(campaign):
        return True
    return stamp.status == campaign.status.value and now - stamp.built_at < REBUILD_SECONDS


@dataclass(frozen=True, slots=True)
class ReportLine:
    row: int
    ref: str
    to: str
    state: str
    reason: str
    message_id: str
    delivery: str
    error_code: str
    at: str


def latest_outcomes(rounds: Iterable[Iterable[RowOutcome]]) -> Iterator[RowOutcome]:
    """One outcome per row, in row order: the one of the row's last round (``rounds``: each round's outcomes in row
    order). A row re-sent by a retry ended ``dead_lettered`` in the round before; its last round is its truth."""
    merged = heapq.merge(*rounds, key=lambda o: (o.row, o.round))
    last: RowOutcome | None = None
    for outcome in merged:
        if last is not None and last.row != outcome.row:
            yield last
        last = outcome
    if last is not None:
        yield last


def report_lines(logged: Iterable[Mapping[str, Any]], outcomes: Iterable[RowOutcome]) -> Iterator[ReportLine]:
    """Every logged row with its outcome; both inputs in increasing row order (an outcome whose row the log lacks
    is a bug upstream: it is reported too, rather than dropped)."""
    pending = iter(outcomes)
    outcome = next(pending, None)
    for entry in logged:
        row = int(entry["row"])
        while outcome is not None and outcome.row < row:
            yield _orphan(outcome)
            outcome = next(pending, None)
        mine = outcome if outcome is not None and outcome.row == row else None
        if mine is not None:
            outcome = next(pending, None)
        yield _line(entry, mine)
    while outcome is not None:
        yield _orphan(outcome)
        outcome = next(pending, None)


def _line(entry: Mapping[str, Any], outcome: RowOutcome | None) -> ReportLine:
    state = str(entry.get("state") or "")
    if state == VALID:
        state = outcome.state.value if outcome is not None else RowState.QUEUED.value
    return ReportLine(
        row=int(entry["row"]),
        ref=str(entry.get("ref") or ""),
        to=str(entry.get("to") or ""),
        state=state,
        reason=(outcome.reason if outcome is not None and outcome.reason else str(entry.get("reason") or "")),
        message_id=(outcome.message_id or "") if outcome is not None else "",
        delivery=(outcome.delivery or "") if outcome is not None else "",
        error_code=(outcome.error_code or "") if outcome is not None else "",
        at=outcome.at if outcome is not None else "",
    )


def _orphan(outcome: RowOutcome) -> ReportLine:
    return ReportLine(
        outcome.row,
        outcome.ref or "",
        "",
        outcome.state.value,
        outcome.reason or "",
        outcome.message_id or "",
        outcome.delivery or "",
        outcome.error_code or "",
        outcome.at,
    )


def write_csv(lines: Iterable[ReportLine], out: IO[str]) -> Counter[str]:
    """Write the header and ``lines`` as CSV; the count of lines per state (what the campaign's counts must equal
    once it is completed)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    states: Counter[str] = Counter()
    for line in lines:
        writer.writerow(astuple(line))
        states[line.state] += 1
    return states
