"""Small pure helpers: medians, ratios, rates and units. Kept apart so the unit tests need no servers."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spread:
    """Median of repeated samples with their range: one sample on a busy 2-core machine proves little."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if not samples:
            raise ValueError("no samples")
        return cls(statistics.median(samples), min(samples), max(samples), len(samples))

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "min": self.low, "max": self.high, "n": self.n}


def ratio(value: float, reference: float) -> float:
    """``value`` as a multiple of ``reference`` (inf when the reference is zero: never hide a broken reference)."""
    return value / reference if reference else float("inf")


def rate(count: float, seconds: float) -> float:
    """Items per second; inf for zero time rather than a ZeroDivisionError in a report."""
    return count / seconds if seconds > 0 else float("inf")


def ms(seconds: float) -> str:
    """Seconds shown as milliseconds, the unit every figure here is read in."""
    return f"{seconds * 1000:.0f} ms"


def spread_ms(spread: Spread) -> str:
    """A median with its range, e.g. ``412 ms (398-460, n=5)``."""
    return f"{ms(spread.median)} ({spread.low * 1000:.0f}-{spread.high * 1000:.0f}, n={spread.n})"


def times(value: float) -> str:
    """A ratio, e.g. ``1.43x``."""
    return f"{value:.2f}x"


def verdict(value: float, limit: float) -> str:
    """Whether a ratio is within its limit, said in words next to the figure."""
    return "within" if value <= limit else "OVER"


def table(rows: Sequence[tuple[str, str, str]], headers: tuple[str, str, str] = ("measure", "value", "against")) -> str:
    """A plain-text table with a header rule; a row whose value and note are empty is a section title."""
    measured = [r for r in rows if r[1] or r[2]]
    widths = [max(len(r[i]) for r in (headers, *measured)) for i in range(2)]
    lines = [f"{headers[0]:<{widths[0]}}  {headers[1]:>{widths[1]}}  {headers[2]}".rstrip()]
    lines.append("-" * len(lines[0]))
    for name, value, note in rows:
        if not value and not note:
            lines.append(name)
            continue
        lines.append(f"{name:<{widths[0]}}  {value:>{widths[1]}}  {note}".rstrip())
    return "\n".join(lines)
