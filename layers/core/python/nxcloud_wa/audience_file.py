"""An audience file's records, read as a stream: CSV or JSON Lines, never the whole object in memory.

A campaign's audience is a customer's file of up to a million rows in the stack's bucket. The planner reads it once,
from an S3 ``StreamingBody`` (or any object with ``read(n)``, or any iterable of byte chunks), and may be killed at
any row: so each :class:`Record` carries the :class:`Checkpoint` where the next one starts (a byte offset, that
record's physical line number and the count of records before it), and a reader opened at a checkpoint (on a ranged
``GET`` from that offset) yields exactly the records one uninterrupted pass would have yielded from there.

What makes that hold:

- Records are cut from physical lines (``\\n``-terminated; ``\\r\\n`` is kept for the CSV parser), and a checkpoint is
  always the start of a line where a record starts, so a resumed reader starts in the parser's start state.
- A UTF-8 BOM is only ever at offset 0: it is skipped there and counted in the offsets.
- CSV (RFC 4180, quoted newlines included) is parsed by the standard library's ``csv`` module fed one line at a
  time, so the lines each record used are known. A record that cannot be read (an unterminated quote, a stray
  character after a closing quote, a quoted field longer than :data:`MAX_ROW_LINES` lines or :data:`MAX_ROW_BYTES`)
  is reported at its first line, and reading starts again at the line after it: one bad quote costs one row, never
  the rest of the file, and every later line still gets its own verdict.
- JSON Lines: one record per line (JSON strings cannot hold a raw newline).

Invalid bytes, wrong field counts, non-objects and non-string values make a record *invalid* (``error`` says why,
``values`` is None); nothing here raises for a bad row. Only a file whose columns cannot be known (empty, an
unreadable CSV header, a JSON Lines first line that is not an object of strings) raises :class:`AudienceFileError`:
then there is no campaign to run. Lines holding nothing (empty, or only separators and spaces) are not records.

Which columns are allowed, and what a record becomes, is :mod:`nxcloud_wa.audience_rows`' business.
"""

from __future__ import annotations

import csv
import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, runtime_checkable

from .models import MAX_MESSAGE_BYTES

CHUNK_BYTES: Final = 64 * 1024
MAX_ROW_BYTES: Final = MAX_MESSAGE_BYTES
"""A row can hold at most one message's worth of text; a longer line (or quoted field) is an invalid row."""
MAX_ROW_LINES: Final = 32
"""How many lines a quoted CSV field may span. It bounds the re-reading after an unterminated quote (each line after
it is read again as a row of its own), so a file of stray quotes costs at most this factor, never quadratic time."""
BOM: Final = b"\xef\xbb\xbf"


class AudienceFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


class AudienceFileError(ValueError):
    """The file cannot be a campaign's audience: ``problems`` are the texts a person fixes it by."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def audience_format(key: str) -> AudienceFormat:
    """The format named by the object key's suffix (``.csv`` or ``.jsonl``, any case)."""
    suffix = key.rsplit(".", 1)[-1].lower() if "." in key else ""
    try:
        return AudienceFormat(suffix)
    except ValueError:
        raise AudienceFileError(
            [f"an audience file's name ends in .csv or .jsonl, got {key.rsplit('/', 1)[-1]!r}"]
        ) from None


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a reader starts: ``offset`` is a byte offset at the start of a line, ``line`` that line's 1-based number,
    ``rows`` the number of records before it. Small and plain, to be stored with a campaign's progress."""

    offset: int = 0
    line: int = 1
    rows: int = 0


@dataclass(frozen=True, slots=True)
class Record:
    """One row of the file: ``line`` is the physical line it starts on; ``values`` maps column to text, or is None
    with ``error`` saying why the row could not be read. ``next`` is where the following record starts."""

    line: int
    values: dict[str, str] | None
    error: str | None
    next: Checkpoint


@runtime_checkable
class Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


ByteSource = Readable | Iterable[bytes]


def read_audience(
    source: ByteSource, key: str, *, resume: Checkpoint | None = None, columns: Sequence[str] | None = None
) -> AudienceReader:
    """A reader of the file ``key`` whose bytes ``source`` gives. From the start it reads the columns itself (the CSV
    header, or a JSON Lines file's first object); ``resume`` (the ``source`` then starts at its offset) needs the
    ``columns`` the first pass read."""
    return AudienceReader(source, audience_format(key), resume=resume, columns=columns)


class AudienceReader:
    """Iterates an audience file's :class:`Record` objects; ``columns`` is known as soon as it is made."""

    def __init__(
        self,
        source: ByteSource,
        fmt: AudienceFormat,
        *,
        resume: Checkpoint | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        if resume is not None and columns is None:
            raise ValueError("resuming needs the columns the first pass read")
        start = resume or Checkpoint()
        records = _csv_records if fmt is AudienceFormat.CSV else _jsonl_records
        self._records: Iterator[_Raw] = records(_Lines(_lines(_chunks(source), start)))
        self._pending: deque[_Raw] = deque()
        self.checkpoint = start
        """Where the record after the last one yielded starts (where a killed reader would resume)."""
        self.columns: tuple[str, ...] = tuple(columns) if columns is not None else self._read_columns(fmt)

    def _read_columns(self, fmt: AudienceFormat) -> tuple[str, ...]:
        first = next(self._records, None)
        if first is None:
            raise AudienceFileError(["the file is empty: it needs a header row (CSV) or a first object (JSON Lines)"])
        if first.cells is None:
            where = "header" if fmt is AudienceFormat.CSV else "first line, which names the columns,"
            raise AudienceFileError([f"the file's {where} cannot be read (line {first.line}): {first.error}"])
        if isinstance(first.cells, list):
            self.checkpoint = first.next
            return tuple(first.cells)
        self._pending.append(first)
        return tuple(first.cells)

    def __iter__(self) -> Iterator[Record]:
        while True:
            record = self._pending.popleft() if self._pending else next(self._records, None)
            if record is None:
                return
            shaped = self._shaped(record)
            self.checkpoint = shaped.next
            yield shaped

    def _shaped(self, raw: _Raw) -> Record:
        """The record with its values keyed by column (CSV) and its ``rows`` counted from the data's start."""
        values, error = self._by_column(raw.cells) if isinstance(raw.cells, list) else (raw.cells, raw.error)
        rows = self.checkpoint.rows + 1
        return Record(raw.line, values, error, Checkpoint(raw.next.offset, raw.next.line, rows))

    def _by_column(self, cells: list[str]) -> tuple[dict[str, str] | None, str | None]:
        if len(cells) != len(self.columns):
            return None, f"has {_count(len(cells), 'field')}, the header has {_count(len(self.columns), 'column')}"
        return dict(zip(self.columns, cells, strict=True)), None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _chunks(source: ByteSource) -> Iterator[bytes]:
    if isinstance(source, Readable):
        while chunk := source.read(CHUNK_BYTES):
            yield chunk
    else:
        yield from source


@dataclass(frozen=True, slots=True)
class _Line:
    """One physical line: ``end`` is the offset after its terminator; ``text`` is None when it was too long (its bytes
    are not kept); ``bad`` when it is not valid UTF-8 (``text`` then holds the invalid bytes as lone surrogates)."""

    number: int
    end: int
    text: str | None
    bad: bool = False


def _lines(chunks: Iterator[bytes], start: Checkpoint) -> Iterator[_Line]:
    """Split the bytes into lines, keeping each line's terminator, in bounded memory: a line longer than
    :data:`MAX_ROW_BYTES` is skipped to its end (``skipping``) and given without its text."""
    offset, number, pending, skipping = start.offset, start.line, b"", False
    for chunk in chunks:
        buffer, position = pending + chunk, 0
        while (newline := buffer.find(b"\n", position)) >= 0:
            end = offset + newline + 1
            if skipping:
                yield _Line(number, end, None)
            else:
                yield _decoded(number, end, buffer[position : newline + 1], first=offset + position == 0)
            number, position, skipping = number + 1, newline + 1, False
        offset += position
        pending = buffer[position:]
        if skipping or len(pending) > MAX_ROW_BYTES:
            offset, skipping, pending = offset + len(pending), True, b""
    if skipping:
        yield _Line(number, offset, None)
    elif pending:
        yield _decoded(number, offset + len(pending), pending, first=offset == 0)


def _decoded(number: int, end: int, data: bytes, *, first: bool) -> _Line:
    if first and data.startswith(BOM):
        data = data[len(BOM) :]
    if len(data) > MAX_ROW_BYTES:
        return _Line(number, end, None)
    try:
        return _Line(number, end, data.decode("utf-8"))
    except UnicodeDecodeError:
        return _Line(number, end, data.decode("utf-8", "surrogateescape"), bad=True)


class _Lines:
    """The lines, with the lines of a record that could not be read put back to be read again."""

    def __init__(self, lines: Iterator[_Line]) -> None:
        self._lines = lines
        self._back: deque[_Line] = deque()

    def __next__(self) -> _Line:
        return self._back.popleft() if self._back else next(self._lines)

    def put_back(self, lines: Sequence[_Line]) -> None:
        self._back.extendleft(reversed(lines))


class _TooLong(Exception):
    """The record's lines exceed the bounds; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Feeder:
    """The CSV parser's line iterator: hands it one line at a time and remembers which lines the record used."""

    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.taken: list[_Line] = []
        self._size = 0

    def __iter__(self) -> _Feeder:
        return self

    def __next__(self) -> str:
        line = next(self.lines)
        if line.text is None or (self.taken and self._too_much(line.text)):
            if self.taken:
                self.lines.put_back([line])
                raise _TooLong(f"a quoted field is not closed within {MAX_ROW_LINES} lines or {MAX_ROW_BYTES} bytes")
            self.taken.append(line)
            raise _TooLong(f"the line is longer than {MAX_ROW_BYTES} bytes")
        self.taken.append(line)
        self._size += len(line.text)
        return line.text

    def _too_much(self, text: str) -> bool:
        return len(self.taken) >= MAX_ROW_LINES or self._size + len(text) > MAX_ROW_BYTES

    def take(self) -> list[_Line]:
        taken, self.taken, self._size = self.taken, [], 0
        return taken


@dataclass(frozen=True, slots=True)
class _Raw:
    """A record before the reader knows the columns: a CSV record's fields (a list), a JSON object (a dict), or None
    with ``error``; ``next.rows`` is not counted yet."""

    line: int
    cells: list[str] | dict[str, str] | None
    error: str | None
    next: Checkpoint


def _csv_records(lines: _Lines) -> Iterator[_Raw]:
    """CSV records, each from the lines it used; after one that cannot be read, from the line after its first."""
    feeder = _Feeder(lines)
    while True:
        reader = csv.reader(feeder, strict=True)
        try:
            for fields in reader:
                taken = feeder.take()
                if any(field.strip() for field in fields):
                    yield _csv_record(taken, fields)
            return
        except (csv.Error, _TooLong) as exc:
            taken = feeder.take()
            lines.put_back(taken[1:])
            yield _invalid(taken[0], _csv_reason(exc, len(taken)))


def _csv_record(taken: list[_Line], fields: list[str]) -> _Raw:
    bad = next((line.number for line in taken if line.bad), None)
    if bad is not None:
        return _invalid(taken[0], f"line {bad} is not valid UTF-8", end=taken[-1])
    return _Raw(taken[0].number, fields, None, _after(taken[-1]))


def _csv_reason(exc: Exception, lines: int) -> str:
    if isinstance(exc, _TooLong):
        return exc.reason
    if str(exc) == "unexpected end of data":
        return "a quoted field is not closed before the end of the file (unterminated quote)"
    if "new-line character seen in unquoted field" in str(exc):
        return "a carriage return inside an unquoted field (lines must end in LF or CRLF)"
    if lines > 1:
        return f"a quoted field that starts here runs over {lines} lines and does not end properly ({exc})"
    return f"malformed CSV: {exc}"


def _jsonl_records(lines: _Lines) -> Iterator[_Raw]:
    while (line := next(lines, None)) is not None:
        if line.text is not None and not line.text.strip():
            continue
        values, error = _json_object(line)
        yield _Raw(line.number, values, error, _after(line))


def _json_object(line: _Line) -> tuple[dict[str, str] | None, str | None]:
    if line.text is None:
        return None, f"the line is longer than {MAX_ROW_BYTES} bytes"
    if line.bad:
        return None, "the line is not valid UTF-8"
    try:
        data = json.loads(line.text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        return None, f"key {exc.key!r} appears twice"
    except (ValueError, RecursionError) as exc:
        return None, f"not valid JSON: {exc}"
    return _strings(data)


def _strings(data: Any) -> tuple[dict[str, str] | None, str | None]:
    """A row is an object of strings: a number written as a JSON number would lose its leading ``+`` or zeros."""
    if not isinstance(data, dict):
        return None, f"a line must be a JSON object, got {_json_type(data)}"
    wrong = next((key for key, value in data.items() if not isinstance(value, str)), None)
    if wrong is not None:
        return None, f"{wrong}: every value must be a string, got {_json_type(data[wrong])}"
    return data, None


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise _DuplicateKey(key)
        data[key] = value
    return data


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _after(line: _Line) -> Checkpoint:
    """The checkpoint after ``line`` (its ``rows`` is set by the reader, which knows where the data starts)."""
    return Checkpoint(line.end, line.number + 1, 0)


def _invalid(first: _Line, reason: str, *, end: _Line | None = None) -> _Raw:
    return _Raw(first.number, None, reason, _after(end or first))
