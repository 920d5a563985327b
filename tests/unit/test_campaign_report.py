"""A campaign's report (nxcloud_wa.campaign_report): the planner's row log merged with the sender's row outcomes, in
row order, as a stream; the counts by state are what the campaign's counts must equal once it is completed."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from nxcloud_wa.campaign_report import COLUMNS, report_lines, write_csv
from nxcloud_wa.campaigns import RowState
from nxcloud_wa.campaigns_table import RowOutcome

AT = "2027-01-15T08:00:00.000+00:00"


def outcome(row: int, state: RowState, **fields: str) -> RowOutcome:
    return RowOutcome("c-1", row, state, AT, **fields)


def test_each_logged_row_gets_its_outcome_and_unsettled_ones_are_queued() -> None:
    logged = [
        {"row": 2, "ref": "a", "to": "+86 138 0013 8000", "state": "valid"},
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
    assert (lines[0].message_id, lines[0].delivery, lines[0].to) == ("wamid.2", "read", "+86 138 0013 8000")
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
