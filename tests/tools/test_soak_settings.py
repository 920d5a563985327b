"""The soak's timings on a busy machine: stretched together, NXCloud's read timeout (which decides the unknown
outcomes the faults cause) never."""

from __future__ import annotations

import pytest
from soak.run import MAX_STRETCH, SoakSettings, load_stretch


def test_a_stretch_applies_to_the_timeout_the_retry_delay_and_the_time_limits_only() -> None:
    base = SoakSettings(function_timeout=2.0, retry_delay=2, read_timeout=0.3, time_limit=120, stretch=2.5)

    stretched = base.stretched()

    assert stretched.function_timeout == 5.0
    assert stretched.retry_delay == 5  # never before the timeout: a retry must not meet a running invocation
    assert stretched.time_limit == 300 and stretched.api_give_up == base.api_give_up * 2.5
    assert stretched.read_timeout == 0.3


def test_a_retry_delay_is_never_shorter_than_the_stretched_timeout() -> None:
    assert SoakSettings(function_timeout=3.0, retry_delay=1, stretch=1.5).stretched().retry_delay == 5


@pytest.mark.parametrize("load", [0.0, 1.0, 3.0, 100.0])
def test_the_load_stretch_stays_within_one_and_the_cap(monkeypatch: pytest.MonkeyPatch, load: float) -> None:
    monkeypatch.setattr("os.getloadavg", lambda: (load, load, load))
    monkeypatch.setattr("os.cpu_count", lambda: 2)

    assert load_stretch() == min(MAX_STRETCH, max(1.0, load / 2))
    assert SoakSettings(stretch=None).stretched().stretch == load_stretch()


def test_the_lifecycles_time_limit_grows_with_the_messages_unless_given() -> None:
    small, large = SoakSettings(messages=250, stretch=1), SoakSettings(messages=10_000, stretch=1)

    assert small.stretched().lifecycle_limit() < large.stretched().lifecycle_limit()
    assert SoakSettings(messages=10_000, lifecycle_time_limit=60, stretch=2).stretched().lifecycle_limit() == 120
