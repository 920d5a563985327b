"""The current-status rule: a function of the set of statuses seen, whatever their order and repeats."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nxcloud_wa.statuses import CALLBACK_STATUSES, STATUS_RANK, current_status, outranked_by, rank


def test_the_order_is_the_documented_one() -> None:
    assert sorted(STATUS_RANK, key=rank) == ["accepted", "sent", "delivered", "failed", "deleted", "read"]
    assert {"sent", "delivered", "read", "failed", "deleted"} == CALLBACK_STATUSES


@pytest.mark.parametrize(
    ("seen", "current"),
    [
        (["accepted"], "accepted"),
        (["read", "sent", "delivered"], "read"),  # late and out of order: still read
        (["delivered", "delivered"], "delivered"),  # a repeat changes nothing
        (["sent", "failed"], "failed"),
        (["delivered", "failed"], "failed"),  # failed takes precedence over accepted, sent and delivered
        (["read", "failed"], "read"),  # not over read: the recipient read it
        (["failed", "read"], "read"),
        (["read", "deleted"], "read"),
        (["failed", "deleted"], "deleted"),  # deleted over failed
        ([], None),
    ],
)
def test_current_status(seen: list[str], current: str | None) -> None:
    assert current_status(seen) == current


@given(st.lists(st.sampled_from(sorted(STATUS_RANK)), max_size=8))
def test_the_current_status_does_not_depend_on_order(seen: list[str]) -> None:
    expected = current_status(seen)
    for ordering in itertools.islice(itertools.permutations(seen), 50):
        assert current_status(ordering) == expected


@pytest.mark.parametrize(
    ("status", "replaces"),
    [
        ("sent", {"accepted"}),
        ("delivered", {"accepted", "sent"}),
        ("failed", {"accepted", "sent", "delivered"}),
        ("deleted", {"accepted", "sent", "delivered", "failed"}),
        ("read", {"accepted", "sent", "delivered", "failed", "deleted"}),
    ],
)
def test_what_each_callback_status_replaces(status: str, replaces: set[str]) -> None:
    assert set(outranked_by(status)) == replaces
    assert all(current_status([old, status]) == status for old in replaces)


def test_an_unknown_status_has_no_rank() -> None:
    with pytest.raises(KeyError):
        rank("pending")
