"""The current-status rule: a function of the set of statuses seen, whatever their order and repeats."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nxcloud_wa.statuses import CALLBACK_STATUSES, STATUS_RANK, current_status, rank


def test_the_order_is_the_documented_one() -> None:
    assert sorted(STATUS_RANK, key=rank) == ["accepted", "sent", "delivered", "read", "failed", "deleted"]
    assert {"sent", "delivered", "read", "failed", "deleted"} == CALLBACK_STATUSES


@pytest.mark.parametrize(
    ("seen", "current"),
    [
        (["accepted"], "accepted"),
        (["read", "sent", "delivered"], "read"),  # late and out of order: still read
        (["delivered", "delivered"], "delivered"),  # a repeat changes nothing
        (["sent", "failed"], "failed"),
        (["read", "failed"], "failed"),  # failed is kept whenever it arrives
        (["deleted", "read"], "deleted"),
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


def test_an_unknown_status_has_no_rank() -> None:
    with pytest.raises(KeyError):
        rank("pending")
