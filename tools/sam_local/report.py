"""The tables ``make sam-local`` prints, in the style of ``make run``'s."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sam_local.api import ApiRow


@dataclass(frozen=True, slots=True)
class InvokeRow:
    """One sample event through ``sam local invoke``, beside ``make invoke`` and the manifest."""

    event: str
    outcome: str
    seconds: list[float]
    durations_ms: list[float]
    parity: str
    expected: str
    problems: tuple[str, ...]
    aws_calls: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for line in (header, *rows):
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=out)


def print_invokes(title: str, rows: list[InvokeRow], out: TextIO) -> None:
    print(f"\n{title}", file=out)
    header = ("event", "outcome (one invocation)", "invoke s", "function ms", "make invoke", "expected", "")
    table(
        header,
        [
            (
                r.event,
                r.outcome,
                "+".join(f"{s:.1f}" for s in r.seconds),
                "+".join(f"{d:.0f}" for d in r.durations_ms) or "-",
                r.parity,
                r.expected,
                "ok" if r.ok else "MISMATCH",
            )
            for r in rows
        ],
        out,
    )
    for row in rows:
        for problem in row.problems:
            print(f"  MISMATCH {row.event}: {problem}", file=out)


def print_api(title: str, rows: list[ApiRow], out: TextIO) -> None:
    print(f"\n{title}", file=out)
    header = ("request", "outcome", "s", "expected", "", "note")
    table(
        header,
        [(r.request, r.outcome, r.seconds, r.expected, "ok" if r.ok else "MISMATCH", r.note) for r in rows],
        out,
    )
    for row in rows:
        for problem in row.problems:
            print(f"  MISMATCH {row.request}: {problem}", file=out)


def timing_line(architecture: str, rows: list[InvokeRow]) -> str:
    """Median and range of the wall time per ``sam local invoke`` and of the function's own duration."""
    seconds = [s for r in rows for s in r.seconds]
    durations = [d for r in rows for d in r.durations_ms]
    text = (
        f"{architecture}: {len(seconds)} invocations, wall time per `sam local invoke` median "
        f"{statistics.median(seconds):.1f} s (min {min(seconds):.1f}, max {max(seconds):.1f})"
    )
    if durations:
        text += f"; the function's own duration (RIE REPORT) median {statistics.median(durations):.0f} ms"
    return text
