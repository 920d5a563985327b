"""Audience files (nxcloud_wa.audience_file, nxcloud_wa.audience_rows): reading CSV and JSON Lines as a stream with
resumable checkpoints, every kind of broken line, the columns against the template, rows as messages, duplicates."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nxcloud_wa.audience_file import (
    MAX_ROW_BYTES,
    MAX_ROW_LINES,
    AudienceFileError,
    Checkpoint,
    Record,
    audience_format,
    read_audience,
)
from nxcloud_wa.audience_rows import SeenNumbers, plan_columns, plan_row, row_message
from nxcloud_wa.templates import TemplateSpec
from tests.page_templates import ORDER_UPDATE, TEN_BTN4, TEST_00045

ORDER = TemplateSpec.from_api(ORDER_UPDATE)
FULL_HEADER = "to,body.1,body.2,body.3,header.image,button.0,ref"
GOOD = "8613800000001,Ann,42,today,https://x.example/a.jpg,A1,r-1"


def rows(data: bytes, key: str = "a.csv", chunk: int = 7) -> tuple[tuple[str, ...], list[Record]]:
    """The columns and records of ``data``, fed in small chunks (so every boundary falls inside some line)."""
    reader = read_audience(iter([data[i : i + chunk] for i in range(0, len(data), chunk)]), key)
    return reader.columns, list(reader)


def summary(records: list[Record]) -> list[tuple[int, str | None]]:
    return [(r.line, r.error) for r in records]


# Reading ---------------------------------------------------------------------------------------------------------


def test_format_comes_from_the_key_suffix() -> None:
    assert audience_format("audiences/x.CSV") == "csv"
    assert audience_format("audiences/x.jsonl") == "jsonl"
    with pytest.raises(AudienceFileError, match=r"ends in \.csv or \.jsonl, got 'x\.xlsx'"):
        audience_format("audiences/x.xlsx")


def test_a_file_object_is_read_in_chunks_not_whole() -> None:
    class Counting(io.BytesIO):
        largest = 0

        def read(self, size: int | None = -1, /) -> bytes:
            assert size is not None and size > 0
            Counting.largest = max(Counting.largest, size)
            return super().read(size)

    data = ("to,body.1\n" + "".join(f"86138{i:08d},x\n" for i in range(20000))).encode()
    reader = read_audience(Counting(data), "a.csv")
    assert sum(1 for _ in reader) == 20000
    assert Counting.largest < len(data)


def test_bom_crlf_blank_lines_and_quoted_newlines() -> None:
    data = b'\xef\xbb\xbfto,body.1\r\n8613800000001,"hi\r\nthere"\r\n\r\n , \r\n8613800000002,"say ""x"""\r\n'
    columns, records = rows(data)
    assert columns == ("to", "body.1")
    assert [(r.line, r.values) for r in records] == [
        (2, {"to": "8613800000001", "body.1": "hi\r\nthere"}),
        (6, {"to": "8613800000002", "body.1": 'say "x"'}),
    ]
    assert records[0].next == Checkpoint(offset=data.index(b"\r\n\r\n") + 2, line=4, rows=1)
    assert records[-1].next == Checkpoint(offset=len(data), line=7, rows=2)


def test_every_kind_of_broken_csv_line_is_an_invalid_row_and_reading_goes_on() -> None:
    data = (
        b"to,body.1\n"
        b"8613800000001,ok\n"  # 2
        b"8613800000002\n"  # 3: a field missing
        b"8613800000003,a,b\n"  # 4: a field too many
        b"8613800000004,\xff\xfe\n"  # 5: invalid UTF-8
        b'8613800000005,"a"b\n'  # 6: a character after a closing quote
        b"8613800000006,a\rb\n"  # 7: a bare carriage return
        b"\n"  # 8: blank, not a row
        b"8613800000009,ok\n"  # 9
        b'8613800000010,"never closed\n'  # 10: an unterminated quote, at the end of the file
        b"8613800000011,ok\n"  # 11
    )
    _, records = rows(data)
    reasons = dict(summary(records))
    assert reasons[2] is None and reasons[9] is None and reasons[11] is None
    assert reasons[3] == "has 1 field, the header has 2 columns"
    assert reasons[4] == "has 3 fields, the header has 2 columns"
    assert reasons[5] == "line 5 is not valid UTF-8"
    assert "malformed CSV" in (reasons[6] or "")
    assert "carriage return" in (reasons[7] or "")
    assert reasons[10] == "a quoted field is not closed before the end of the file (unterminated quote)"
    assert sorted(reasons) == [2, 3, 4, 5, 6, 7, 9, 10, 11]
    assert [r.next.rows for r in records] == list(range(1, 10))


def test_an_unterminated_quote_costs_one_row_not_the_rest_of_the_file() -> None:
    lines = [f"86138{i:08d},row {i}" for i in range(2 * MAX_ROW_LINES)]
    data = ('to,body.1\n8613800000000,"oops\n' + "\n".join(lines) + "\n").encode()
    _, records = rows(data)
    assert records[0].line == 2 and "not closed within" in (records[0].error or "")
    assert [r.line for r in records[1:]] == list(range(3, 3 + len(lines)))
    assert all(r.error is None for r in records[1:])


def test_a_quote_closed_by_a_later_line_reports_the_first_line_and_rereads_the_rest() -> None:
    data = b'to,body.1\n8613800000001,"oops\n8613800000002,ok\n8613800000003,"a"b\n8613800000004,ok\n'
    _, records = rows(data)
    assert records[0].line == 2 and "runs over 3 lines" in (records[0].error or "")
    assert summary(records[1:])[0] == (3, None)
    assert records[2].line == 4 and records[2].error is not None
    assert summary(records[3:]) == [(5, None)]


def test_an_overlong_line_is_invalid_without_being_kept() -> None:
    data = b"to,body.1\n8613800000001," + b"x" * (3 * MAX_ROW_BYTES) + b"\n8613800000002,ok\n"
    _, records = rows(data, chunk=4096)
    assert summary(records) == [(2, f"the line is longer than {MAX_ROW_BYTES} bytes"), (3, None)]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "the file is empty"),
        (b"\n\n", "the file is empty"),
        (b'to,"body.1\n', "header cannot be read (line 1)"),
        (b"to,\xffbody\n", "header cannot be read (line 1): line 1 is not valid UTF-8"),
    ],
)
def test_a_file_without_readable_columns_is_refused(data: bytes, problem: str) -> None:
    with pytest.raises(AudienceFileError, match=re.escape(problem)):
        read_audience([data], "a.csv")


def test_jsonl_rows_and_their_broken_lines() -> None:
    data = (
        b'\xef\xbb\xbf{"to": "8613800000001", "body.1": "a"}\n'  # 1
        b"[1]\n"  # 2
        b'{"to": 8613800000003}\n'  # 3
        b"\n"  # 4: blank
        b'{"to": "1", "to": "2"}\n'  # 5
        b"{nope\n"  # 6
        b'{"to": "\xff"}\n'  # 7
        b'{"to": "8613800000008", "body.1": null}\n'  # 8
        b'{"to": "8613800000009"}'  # 9, no final newline
    )
    columns, records = rows(data, key="a.jsonl")
    assert columns == ("to", "body.1")
    assert summary(records) == [
        (1, None),
        (2, "a line must be a JSON object, got an array"),
        (3, "to: every value must be a string, got a number"),
        (5, "key 'to' appears twice"),
        (6, "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (7, "the line is not valid UTF-8"),
        (8, "body.1: every value must be a string, got null"),
        (9, None),
    ]


def test_a_jsonl_first_line_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(AudienceFileError, match=r"first line, which names the columns, cannot be read"):
        read_audience([b"[1]\n"], "a.jsonl")


def test_resuming_needs_the_columns() -> None:
    with pytest.raises(ValueError, match="columns"):
        read_audience([b""], "a.csv", resume=Checkpoint(10, 2, 0))


LINES = st.sampled_from(
    [
        "8613800000001,ok",
        '8613800000002,"multi\nline"',
        '8613800000003,"multi\r\nline, with ""quotes"""',
        "8613800000004",
        "8613800000005,a,b",
        '8613800000006,"never closed',
        '8613800000007,"x"y',
        "",
        " , ",
        "8613800000008,\udcff",
        '"8613800000009","ok"',
    ]
)


@settings(max_examples=150, deadline=None)
@given(
    lines=st.lists(LINES, max_size=12),
    bom=st.booleans(),
    crlf=st.booleans(),
    chunk=st.integers(1, 40),
    jsonl=st.booleans(),
)
def test_resuming_at_any_checkpoint_gives_the_rows_of_one_pass(
    lines: list[str], bom: bool, crlf: bool, chunk: int, jsonl: bool
) -> None:
    end = "\r\n" if crlf else "\n"
    if jsonl:
        text = "\n".join(['{"to": "8613800000000", "body.1": "x"}', *(_as_json(line) for line in lines)])
    else:
        text = end.join(["to,body.1", *lines]) + end
    data = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8", "surrogateescape")
    key = "a.jsonl" if jsonl else "a.csv"
    columns, records = rows(data, key, chunk)
    for i, record in enumerate(records):
        tail = data[record.next.offset :]
        resumed = read_audience(
            [tail[j : j + chunk] for j in range(0, len(tail), chunk)], key, resume=record.next, columns=columns
        )
        assert list(resumed) == records[i + 1 :]
        assert resumed.checkpoint == (records[-1].next if records[i + 1 :] else record.next)


def _as_json(line: str) -> str:
    """A JSON Lines counterpart of a CSV test line: some valid, some broken."""
    return line.replace("\n", "\\n") if line.startswith("8613800000001") else line


# Columns against the template ------------------------------------------------------------------------------------


def problems(columns: str, spec: TemplateSpec = ORDER) -> list[str]:
    with pytest.raises(AudienceFileError) as caught:
        plan_columns(columns.split(","), spec)
    return caught.value.problems[:-1]  # the last one lists the allowed columns


def test_unknown_and_duplicate_columns_are_each_named() -> None:
    assert problems("to,body1,Body.1,name,to,ref,ref") == [
        "unknown column 'body1'",
        "unknown column 'Body.1'",
        "unknown column 'name'",
        "column 'to' appears 2 times",
        "column 'ref' appears 2 times",
    ]


def test_a_missing_to_and_a_gap_in_the_body_columns() -> None:
    assert problems("body.1,body.3,body.5") == [
        "no 'to' column: every row needs its recipient",
        "body columns run from body.1 without a gap: missing body.2, body.4",
    ]


def test_the_columns_must_fit_the_template_in_the_check_s_own_words() -> None:
    assert problems("to,body.1,body.2,header.image,button.0") == [
        "the columns do not fit: template order_update (en_US) takes 3 body parameters, got 2 (body.N columns)"
    ]
    assert problems("to,body.1,body.2,body.3,button.0") == [
        "the columns do not fit: template order_update (en_US) has an IMAGE header: give a header component with one"
        " image parameter (header.image columns)"
    ]
    assert problems("to,body.1,body.2,body.3,header.image") == [
        "the columns do not fit: template order_update (en_US) needs a URL button parameter (its url's variable) at"
        " index 0 (button.<index> columns)"
    ]
    assert problems("to,header.image,button.0,button.1", TemplateSpec.from_api(TEST_00045)) == [
        "the columns do not fit: template test_00045 (pt_BR) has no header to fill, got a header component"
        " (header.image columns)"
    ]
    assert "has no button at index 3" in problems("to,body.1,body.2,body.3,header.image,button.0,button.3")[0]


def test_a_button_column_takes_what_the_template_s_button_takes() -> None:
    spec = TemplateSpec.from_api(TEN_BTN4)
    indexes = [b.index for b in spec.buttons if b.takes]
    columns = ["to", *(f"body.{i}" for i in range(1, spec.body_parameters + 1)), *(f"button.{i}" for i in indexes)]
    if spec.header == "IMAGE":
        columns.append("header.image")
    layout = plan_columns(columns, spec)
    assert layout.buttons == tuple((b.index, b.takes) for b in spec.buttons if b.takes)


# Rows as messages ------------------------------------------------------------------------------------------------

LAYOUT = plan_columns(FULL_HEADER.split(","), ORDER)


def values(**changes: str) -> dict[str, str]:
    row = dict(zip(FULL_HEADER.split(","), GOOD.split(","), strict=True))
    row.update({k.replace("_", "."): v for k, v in changes.items()})
    return row


def test_a_row_becomes_the_template_s_message() -> None:
    fields: dict[str, Any] = {"business_phone": "8613900000000", "idempotency_key": "campaign:c1:8613800000001"}
    message = row_message(LAYOUT, values(to="+86 138 0000 0001"), fields)
    assert message.to == "8613800000001" and message.business_phone == "8613900000000"
    body = message.model_dump(mode="json", exclude_none=True)["template"]
    assert body == {
        "name": "order_update",
        "language": {"code": "en_US", "policy": "deterministic"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": t} for t in ("Ann", "42", "today")]},
            {"type": "button", "sub_type": "URL", "index": 0, "parameters": [{"type": "text", "text": "A1"}]},
        ],
    }


def test_a_copy_code_button_column_becomes_a_coupon_code() -> None:
    spec = TemplateSpec("promo", "en_US", "APPROVED", body_parameters=0, buttons=(_copy_code(1),))
    message = row_message(plan_columns(["to", "button.1"], spec), {"to": "8613800000001", "button.1": "SAVE10"})
    component = message.model_dump(exclude_none=True)["template"]["components"][0]
    assert component == {
        "type": "button",
        "sub_type": "COPY_CODE",
        "index": 1,
        "parameters": [{"type": "coupon_code", "coupon_code": "SAVE10"}],
    }


def _copy_code(index: int) -> Any:
    from nxcloud_wa.templates import ButtonSpec

    return ButtonSpec(index, "COPY_CODE")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"to": "12345"}, "to: must have 7 to 15 digits including the country code, got 5"),
        ({"to": "8610000000000"}, "to: is not a valid number for its country code"),
        ({"body_2": "  "}, "body.2: empty"),
        ({"body_3": "x" * 1025}, "body.3: text must have at most 1024 characters"),
        ({"header_image": "ftp://x"}, "header.image: must be an http:// or https:// URL"),
        ({"ref": "r" * 129}, "ref: at most 128 characters"),
    ],
)
def test_an_invalid_row_names_its_column_and_rule(changes: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(reason)):
        row_message(LAYOUT, values(**changes))


def test_a_jsonl_row_with_a_key_outside_the_columns_is_invalid() -> None:
    with pytest.raises(ValueError, match=re.escape("'body.4': not among the file's columns")):
        row_message(LAYOUT, {**values(), "body.4": "x"})


FULL_WIDTH = "".join(chr(ord(digit) + 0xFEE0) for digit in "8613800000001")


def test_duplicates_in_several_spellings_are_sent_once_for_the_first_valid_row() -> None:
    data = "\n".join(
        [
            FULL_HEADER,
            GOOD.replace("8613800000001", "86138000000O1"),  # 2: invalid, so not the first valid row
            GOOD.replace("8613800000001", "+86 138 0000 0001"),  # 3: the first valid row
            GOOD.replace("8613800000001", "0086-138-0000-0001"),  # 4
            GOOD.replace("8613800000001", FULL_WIDTH),  # 5: full-width digits
            GOOD.replace("8613800000001", "8613800000002"),  # 6: another number
        ]
    ).encode()
    reader = read_audience([data], "a.csv")
    seen = SeenNumbers()
    outcomes = [plan_row(record, LAYOUT, seen) for record in reader]
    assert [(o.line, o.state, o.reason) for o in outcomes] == [
        (2, "invalid", "to: must be a phone number with country code: digits, optionally with +, spaces or hyphens"),
        (3, "valid", None),
        (4, "duplicate", "the same number as row 3"),
        (5, "duplicate", "the same number as row 3"),
        (6, "valid", None),
    ]
    assert outcomes[1].ref == "r-1" and outcomes[1].message is not None


def test_seen_numbers_grow_and_survive_a_round_trip() -> None:
    seen = SeenNumbers()
    numbers = [str(8613800000000 + i * 7919) for i in range(5000)]
    assert all(seen.add(n, line) is None for line, n in enumerate(numbers, start=2))
    assert len(seen) == 5000
    assert seen.add(numbers[10], 99999) == 12
    restored = SeenNumbers.from_bytes(seen.to_bytes())
    assert len(restored) == 5000
    assert [restored.first(n) for n in numbers[:3]] == [2, 3, 4]
    assert restored.first("8613899999999") is None


def test_a_resume_with_the_persisted_numbers_plans_the_rest_as_one_pass_would() -> None:
    numbers = ["+86 138 0000 0001", "8613800000002", "0086 138 0000 0001", "bad", "8613800000002", "8613800000003"]
    data = "\n".join([FULL_HEADER, *(GOOD.replace("8613800000001", n) for n in numbers)]).encode()
    reader = read_audience([data], "a.csv")
    seen = SeenNumbers()
    one_pass, snapshots = [], []
    for record in reader:
        one_pass.append(plan_row(record, LAYOUT, seen))
        snapshots.append((record.next, seen.to_bytes()))
    assert [o.state for o in one_pass] == ["valid", "valid", "duplicate", "invalid", "duplicate", "valid"]
    for i, (checkpoint, saved) in enumerate(snapshots):
        restored = SeenNumbers.from_bytes(saved)
        resumed = read_audience([data[checkpoint.offset :]], "a.csv", resume=checkpoint, columns=reader.columns)
        assert [plan_row(record, LAYOUT, restored) for record in resumed] == one_pass[i + 1 :]
