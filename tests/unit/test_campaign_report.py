"""A campaign's report (nxcloud_wa.campaign_report): the planner's row log merged with the sender's row outcomes, in
row order, as a stream; the counts by state are what the campaign's counts must equal once it is completed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace

import pytest

from nxcloud_wa.campaign_report import (
    COLUMNS,
    REBUILD_SECONDS,
    ReportStamp,
    built_from,
    is_current,
    report_key,
    report_lines,
    write_csv,
)
from nxcloud_wa.campaign_state import iter_row_log, row_log_line
from nxcloud_wa.campaigns import REPORT_KIND, RowState, Status, tick, tick_campaign, tick_kind, tick_number
from nxcloud_wa.campaigns_table import Campaign, RowOutcome

AT = "2027-01-15T08:00:00.000+00:00"


def outcome(row: int, state: RowState, **fields: str) -> RowOutcome:
    return RowOutcome("c-1", row, state, AT, **fields)


def test_each_logged_row_gets_its_outcome_and_unsettled_ones_are_queued() -> None:
    logged = [
        {"row": 2, "ref": "a", "to": "8613800138000", "state": "valid"},
        {"row": 3, "to": "12", "state": "invalid", "reason": "line 3, to: not a phone number"},
        {"row": 4, "ref": "c", "to": "0086 13800138000", "state": "duplicate", "reason": "the same number as row 2"},
        {"row": 5, "ref": "d", "to": "8613900139000", "state": "valid"},
        {"row": 6, "ref": "e", "to": "8613700137000", "state": "valid"},
    ]
    outcomes = [
        outcome(2, RowState.SENT, message_id="wamid.2", delivery="read"),
        outcome(6, RowState.DEAD_LETTERED, reason="invalid_recipient", error_code="131026"),
    ]
    lines = list(report_lines(logged, outcomes))
    assert [(line.row, line.state) for line in lines] == [
        (2, "sent"),
        (3, "invalid"),
        (4, "duplicate"),
        (5, "queued"),
        (6, "dead_lettered"),
    ]
    assert (lines[0].message_id, lines[0].delivery, lines[0].to) == ("wamid.2", "read", "8613800138000")
    assert (lines[4].reason, lines[4].error_code) == ("invalid_recipient", "131026")
    assert lines[1].reason == "line 3, to: not a phone number"


def test_an_outcome_the_log_lacks_is_reported_not_dropped() -> None:
    lines = list(
        report_lines([{"row": 5, "state": "valid"}], [outcome(3, RowState.SENT), outcome(9, RowState.SKIPPED)])
    )
    assert [(line.row, line.state) for line in lines] == [(3, "sent"), (5, "queued"), (9, "skipped")]


def test_the_csv_has_the_columns_and_counts_by_state() -> None:
    out = io.StringIO()
    logged = [{"row": n, "state": "valid" if n % 3 else "invalid", "to": str(n)} for n in range(1, 10)]
    states = write_csv(report_lines(logged, [outcome(n, RowState.SENT) for n in (1, 2, 4)]), out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS
    assert len(rows) == 10
    assert states == {"sent": 3, "invalid": 3, "queued": 3}


def test_the_merge_is_a_stream() -> None:
    def logged() -> Iterator[dict[str, object]]:
        yield {"row": 1, "state": "valid"}
        raise AssertionError("read past the first row before answering it")

    assert next(report_lines(logged(), iter([]))).row == 1


CAMPAIGN = Campaign("c-1", "spring", "promo", "en_US", "audiences/a.csv", AT, AT, 10.0, Status.COMPLETED, version=4)


def test_a_report_is_current_when_built_from_the_campaign_as_it_is() -> None:
    campaign = replace(CAMPAIGN, counts={"rows": 3, "sent": 3})
    stamp = ReportStamp(built_from(campaign), "completed", 1000.0, 3)
    assert ReportStamp.of(stamp.metadata()) == stamp
    assert report_key("c-1") == "reports/c-1.csv"
    late = 1000.0 + REBUILD_SECONDS
    assert is_current(stamp, campaign, late)
    # A delivery count moved: stale once the report is a minute old, still current before.
    delivered = replace(campaign, counts={"rows": 3, "sent": 3, "delivered": 1})
    assert is_current(stamp, delivered, late - 1) and not is_current(stamp, delivered, late)
    # A status move (the version rises) makes it stale at once, however young.
    moved = replace(campaign, status=Status.RUNNING, version=5)
    assert not is_current(stamp, moved, 1000.0)
    assert not is_current(None, campaign, 1000.0)
    assert ReportStamp.of({"built-from": "x"}) is None
    assert ReportStamp.of(stamp.metadata() | {"status": "gone"}) is None


def test_a_report_tick_is_a_tick_of_its_kind_and_older_ticks_stay_passes() -> None:
    body = tick("c-1", kind=REPORT_KIND)
    assert (tick_campaign(body), tick_number(body), tick_kind(body)) == ("c-1", None, "report")
    assert tick_kind(tick("c-1", 3)) is None and tick_kind('{"campaign_id": "c-1"}') is None
    with pytest.raises(ValueError, match="kind"):
        tick_kind('{"campaign_id": "c-1", "kind": "pass"}')


def test_a_row_log_read_as_a_stream_of_byte_lines() -> None:
    text = row_log_line(2, "r", "8613800138000", "valid", None) + row_log_line(3, None, "12", "invalid", "bad")
    entries = list(iter_row_log(line.encode() for line in text.splitlines()))
    assert [(e["row"], e["state"], e["to"]) for e in entries] == [(2, "valid", "8613800138000"), (3, "invalid", "12")]
