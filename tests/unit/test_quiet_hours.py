"""Quiet hours (nxcloud_wa.quiet_hours): the window in each recipient's own time zones, across midnight, for a
country of several zones, and across DST changes; every instant is given, never read from a clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nxcloud_wa.quiet_hours import QuietHours, hold_until, zones_for_number

NIGHT = QuietHours.parse({"start": "21:00", "end": "09:00"})
CHINA = "8613800000001"  # Asia/Shanghai, UTC+8, no DST
NEW_YORK = "12125550123"  # America/New_York
RUSSIA_MOBILE = "79161234567"  # a mobile number: the country's zones, UTC+2 ... UTC+12
LONDON = "447911123456"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_the_window_is_start_included_end_excluded_and_may_cross_midnight() -> None:
    assert [NIGHT.contains(time(h, m)) for h, m in ((20, 59), (21, 0), (0, 0), (8, 59), (9, 0))] == [
        False,
        True,
        True,
        True,
        False,
    ]
    day = QuietHours.parse({"start": "12:00", "end": "14:00"})
    assert [day.contains(time(h)) for h in (11, 12, 13, 14)] == [False, True, True, False]


BAD = [{"start": "21:00"}, {"start": "9:00", "end": "21:00"}, {"start": "21:00", "end": "24:00"}]
BAD += [{"start": "x", "end": 1}, {"start": "21:00", "end": "21:00"}, {"start": "21:00", "end": "09:00", "tz": "UTC"}]


@pytest.mark.parametrize("data", BAD)
def test_bad_quiet_hours_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="quiet_hours"):
        QuietHours.parse(data)


def test_a_number_is_judged_in_its_own_time_across_midnight() -> None:
    assert hold_until(CHINA, at("2026-12-06T12:59:59+00:00"), NIGHT) is None  # 20:59:59 in Shanghai
    assert hold_until(CHINA, at("2026-12-06T02:00:00+00:00"), NIGHT) is None  # 10:00 in Shanghai
    assert hold_until(CHINA, at("2026-12-06T13:00:00+00:00"), NIGHT) == at("2026-12-07T01:00:00+00:00")  # 21:00
    assert hold_until(CHINA, at("2026-12-06T00:59:59+00:00"), NIGHT) == at("2026-12-06T01:00:00+00:00")


def test_a_held_row_is_released_exactly_when_the_window_ends() -> None:
    released = hold_until(LONDON, at("2026-12-06T23:30:00+00:00"), NIGHT)
    assert released == at("2026-12-07T09:00:00+00:00")
    assert hold_until(LONDON, released, NIGHT) is None
    assert hold_until(LONDON, released - timedelta(seconds=1), NIGHT) == released


def test_a_country_of_several_zones_waits_for_the_last_of_them() -> None:
    zones = {zone.key for zone in zones_for_number(RUSSIA_MOBILE)}
    assert {"Europe/Moscow", "Asia/Kamchatka"} <= zones
    # 12:00 UTC is 15:00 in Moscow but 00:00 in Kamchatka: held until every zone is between 09:00 and 21:00, which is
    # 07:00-09:00 UTC (09:00 on UTC+12 ... 21:00 on UTC+2), the next day.
    assert hold_until(RUSSIA_MOBILE, at("2026-12-06T12:00:00+00:00"), NIGHT) == at("2026-12-07T07:00:00+00:00")
    assert hold_until(RUSSIA_MOBILE, at("2026-12-07T08:00:00+00:00"), NIGHT) is None


def test_zones_that_never_share_an_open_hour_are_reported() -> None:
    long_night = QuietHours.parse({"start": "18:00", "end": "10:00"})  # 8 open hours, zones 10 hours apart
    with pytest.raises(ValueError, match="never all outside"):
        hold_until(RUSSIA_MOBILE, at("2026-12-06T12:00:00+00:00"), long_night)


def test_dst_the_window_follows_the_wall_clock() -> None:
    # New York: EST (UTC-5) until 2026-03-08 02:00, then EDT (UTC-4). 09:00 is 14:00 UTC before, 13:00 UTC after.
    assert hold_until(NEW_YORK, at("2026-03-07T03:00:00+00:00"), NIGHT) == at("2026-03-07T14:00:00+00:00")
    assert hold_until(NEW_YORK, at("2026-03-08T03:00:00+00:00"), NIGHT) == at("2026-03-08T13:00:00+00:00")
    # The autumn night is an hour longer: 21:00 EDT (01:00 UTC) to 09:00 EST (14:00 UTC).
    assert hold_until(NEW_YORK, at("2026-11-01T01:00:00+00:00"), NIGHT) == at("2026-11-01T14:00:00+00:00")


def test_a_window_ending_inside_the_spring_gap_ends_at_the_jump() -> None:
    # 02:30 does not exist in New York on 2026-03-08: the clocks go from 02:00 EST to 03:00 EDT (07:00 UTC).
    early = QuietHours.parse({"start": "23:00", "end": "02:30"})
    released = hold_until(NEW_YORK, at("2026-03-08T05:00:00+00:00"), early)
    assert released is not None
    assert at("2026-03-08T07:00:00+00:00") <= released <= at("2026-03-08T07:01:00+00:00")


def test_an_unknown_zone_is_judged_in_utc() -> None:
    assert [zone.key for zone in zones_for_number("80012345678")] == ["UTC"]


@settings(max_examples=200, deadline=None)
@given(
    number=st.sampled_from([CHINA, NEW_YORK, RUSSIA_MOBILE, LONDON, "5511987654321", "61412345678"]),
    instant=st.datetimes(datetime(2026, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    start=st.integers(0, 23),
    length=st.integers(1, 14),
)
def test_never_inside_the_window_and_never_later_than_needed(
    number: str, instant: datetime, start: int, length: int
) -> None:
    quiet = QuietHours(time(start), time((start + length) % 24))
    try:
        released = hold_until(number, instant, quiet)
    except ValueError:
        return
    send = released or instant
    zones = zones_for_number(number)
    assert not any(quiet.contains(send.astimezone(zone).time()) for zone in zones)
    if released is not None:
        before = released - timedelta(minutes=1)
        assert before < instant or any(quiet.contains(before.astimezone(zone).time()) for zone in zones)


def test_a_zone_key_is_a_real_zone() -> None:
    assert zones_for_number(CHINA) == (ZoneInfo("Asia/Shanghai"),)
