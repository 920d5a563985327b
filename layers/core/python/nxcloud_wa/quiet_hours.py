"""Quiet hours: a campaign never messages a recipient at night, in the recipient's own time.

A campaign's ``quiet_hours`` (``{"start": "21:00", "end": "09:00"}``) is a window of wall-clock time, start included,
end excluded, that may cross midnight. A recipient's time zones are those libphonenumber gives for the number
(``phonenumbers.timezone``): a number of a country that spans several zones (Russia, the US without an area code's
zone, Brazil) has several, and it is held if ANY of them is inside the window, so no recipient is ever messaged in
theirs. A number with no known zone is judged in UTC.

:func:`hold_until` is pure: it takes the instant to judge (the caller's clock) and answers None (send now) or the
earliest instant at which every one of the number's zones is outside the window, so a held row is put aside until
then instead of being retried. DST is the zones' own (``zoneinfo``): the window is wall-clock time on each day.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as number_zones

UNKNOWN_ZONE: Final = "Etc/Unknown"
SEARCH_DAYS: Final = 3
"""How far :func:`hold_until` looks for an instant when all of a number's zones are outside the window."""


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> QuietHours:
        """From the API's ``{"start": "HH:MM", "end": "HH:MM"}``; ``ValueError`` saying what is wrong."""
        if not isinstance(data, Mapping) or set(data) != {"start", "end"}:
            raise ValueError('quiet_hours is {"start": "HH:MM", "end": "HH:MM"}')
        start, end = (_clock(data[name], name) for name in ("start", "end"))
        if start == end:
            raise ValueError("quiet_hours: start and end must differ")
        return cls(start, end)

    def contains(self, wall: time) -> bool:
        """Whether a wall-clock time is inside the window (start included, end excluded; it may cross midnight)."""
        if self.start < self.end:
            return self.start <= wall < self.end
        return wall >= self.start or wall < self.end


def _clock(value: Any, name: str) -> time:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise ValueError(f"quiet_hours.{name} is a time of day as HH:MM (00:00 to 23:59)")
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"quiet_hours.{name} is a time of day as HH:MM (00:00 to 23:59)") from None


@functools.lru_cache(maxsize=4096)
def zones_for_number(digits: str) -> tuple[ZoneInfo, ...]:
    """The time zones of a normalised number (E.164 digits), UTC when libphonenumber knows none."""
    try:
        names = number_zones.time_zones_for_number(phonenumbers.parse("+" + digits))
    except phonenumbers.NumberParseException:
        names = ()
    known = [name for name in names if name != UNKNOWN_ZONE]
    return tuple(ZoneInfo(name) for name in known) or (ZoneInfo("UTC"),)


def hold_until(digits: str, instant: datetime, quiet: QuietHours) -> datetime | None:
    """None when the number may be messaged at ``instant`` (aware); else the earliest later instant at which all
    its zones are outside the window. ``ValueError`` when there is none within :data:`SEARCH_DAYS` (its zones span
    more hours than the window leaves open: such a recipient can never be messaged under these quiet hours)."""
    zones = zones_for_number(digits)
    at = instant.astimezone(UTC)
    limit = at + timedelta(days=SEARCH_DAYS)
    while at < limit:
        inside = [zone for zone in zones if quiet.contains(_wall(at, zone))]
        if not inside:
            return None if at == instant.astimezone(UTC) else at
        at = max(_window_end(at, zone, quiet) for zone in inside)
    raise ValueError("the number's time zones are never all outside these quiet hours")


def _wall(at: datetime, zone: ZoneInfo) -> time:
    return at.astimezone(zone).time().replace(tzinfo=None)


def _window_end(at: datetime, zone: ZoneInfo, quiet: QuietHours) -> datetime:
    """The first instant after ``at`` (inside the window in ``zone``) at which the zone's wall clock reaches the end."""
    local = at.astimezone(zone)
    for days in range(3):
        day = local.date() + timedelta(days=days)
        end = _instant(datetime.combine(day, quiet.end), zone)
        if end > at and not quiet.contains(_wall(end, zone)):
            return end
    return at + timedelta(days=1)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at which ``zone``'s clock shows ``wall`` or later: a wall time skipped by a DST jump forward
    is reached at the jump itself (found by halving the gap to the minute); a repeated one, at its first occurrence."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    low, high = wall.replace(tzinfo=zone, fold=1).astimezone(UTC), first
    while high - low > timedelta(minutes=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high
