"""Reading the control API's JSON into the simulator's rule dataclasses (faults, callback rules, rate limits).

One place for the checks every rule shares, so each names what is wrong the same way: not a JSON object, a field
the rule does not have, a value the dataclass refuses.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")


def check_fields(
    cls: type[Any],
    data: Any,
    *,
    what: str,
    fields: str,
    ignored: frozenset[str] = frozenset(),
    internal: frozenset[str] = frozenset(),
) -> None:
    """``ValueError`` unless ``data`` is a JSON object whose keys are fields of ``cls`` other than ``internal`` (the
    simulator's own, such as counters), or ``ignored`` (read back from an answer, not set): ``what`` names the rule
    ("a fault"), ``fields`` its fields in the message ("fault field(s)")."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a JSON object")
    unknown = sorted(set(data) - ({f.name for f in dataclasses.fields(cls)} - internal) - ignored)
    if unknown:
        raise ValueError(f"unknown {fields}: {', '.join(unknown)}")


def build(cls: type[T], data: dict[str, Any]) -> T:
    """``cls(**data)``, a missing or mistyped argument as ``ValueError``."""
    try:
        return cls(**data)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
