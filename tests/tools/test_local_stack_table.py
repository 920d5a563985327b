"""``make run``'s table (tools/local_stack/table.py): every sample's row fits a 120-column terminal, nothing it says
is lost on the way, and a mismatch says what was documented."""

from __future__ import annotations

import io

import pytest

from local_stack.runner import Row
from local_stack.samples import load_samples
from local_stack.table import print_table, table_lines

MESSAGE_ID = "FDQlr13pg_0yMh0C_APgmWha46s"  # NXCloud's message ids are 27 characters


def documented_rows() -> list[Row]:
    """A row for every sample as it ends when all is well (the documented outcome and delivery), plus the API's
    403 row: the cells ``make run`` prints, at their real lengths."""
    rows = []
    for sample in load_samples():
        sent = bool(sample.expected_delivery)
        rows.append(
            Row(
                sample.name,
                sample.path,
                sample.expected,
                MESSAGE_ID if sent else "",
                sample.expected,
                sample.expected_delivery,
                sample.expected_delivery,
                "sent delivered read failed" if sent else "",
            )
        )
    return [*rows, Row("(any request without x-api-key)", "api", "http 403", "Forbidden", "http 403")]


def mismatch() -> Row:
    return Row("sqs-mixed-batch.json · valid message", "sqs", "sent", MESSAGE_ID, "sent", "delivered", "read", "sent")


def words(lines: list[str]) -> set[str]:
    return {word for line in lines for word in line.split()}


def test_no_line_exceeds_120_columns_at_width_120() -> None:
    lines = table_lines([*documented_rows(), mismatch()], 120)

    too_long = [line for line in lines if len(line) > 120]
    assert too_long == []
    assert max(len(line) for line in table_lines(documented_rows(), 250)) > 120  # so the layout had to wrap


@pytest.mark.parametrize("width", [80, 120, 250])
def test_every_cell_is_kept_whole_at_any_width(width: int) -> None:
    rows = documented_rows()

    shown = words(table_lines(rows, width))

    for row in rows:
        said = words([row.sample, row.path, row.outcome, row.detail, row.delivery, row.events])
        assert said <= shown, (row.sample, said - shown)
    assert shown >= {"ok", "sample", "path", "outcome", "delivery"}


def test_each_message_is_its_sample_line_then_its_columns_when_nothing_needs_wrapping() -> None:
    rows = documented_rows()

    lines = table_lines(rows, 250)

    assert lines[0] == "sample"
    assert lines[1].split()[:2] == ["path", "outcome"]
    assert len(lines) == 2 + 2 * len(rows)
    assert [lines[2 + 2 * i] for i in range(len(rows))] == [r.sample for r in rows]
    assert all(line.startswith("  ") and line.rstrip().endswith(" ok") for line in lines[3::2])


def test_a_mismatch_says_so_and_what_was_documented_an_ok_row_does_not_repeat_it() -> None:
    lines = table_lines([mismatch(), documented_rows()[0]], 120)

    assert lines[3].split()[-1] == "MISMATCH"
    assert lines[4] == "  expected: sent / read"
    assert sum("expected:" in line for line in lines) == 1


def test_the_table_takes_the_terminals_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "90")  # what shutil.get_terminal_size reads first
    out = io.StringIO()

    print_table(documented_rows(), out)

    lines = out.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 90
    assert lines == table_lines(documented_rows(), 90)
