"""The campaign-file soak's own parts: the generated audience and its truth, the ideal drain, the judge of a line."""

from __future__ import annotations

import math

import pytest
from soak import audience_gen
from soak.audience_gen import BROKEN, Row, generate
from soak.campaign_file import _inside, _unlike, ideal_drain, p99

from nxcloud_wa.phone import normalize_phone


def test_the_file_has_every_kind_of_row_and_its_truth() -> None:
    audience = generate(3000, seed=5)
    lines = audience.text.splitlines()

    assert lines[0] == audience_gen.HEADER and len(lines) == 3001
    kinds = {row.expect for row in audience.rows}
    assert kinds == {"sent", "duplicate", "invalid"}
    assert {row.broken for row in audience.rows if row.broken} == set(BROKEN)
    assert any(row.undeliverable for row in audience.rows)
    assert {row.country for row in audience.sent()} == {audience_gen.CHINA, audience_gen.UK}


def test_a_duplicate_is_a_number_sent_before_in_another_spelling() -> None:
    audience = generate(600, seed=2)
    sent = {row.digits: row.row for row in audience.sent()}
    lines = audience.text.splitlines()

    duplicates = [row for row in audience.rows if row.expect == "duplicate"]
    assert duplicates
    for row in duplicates:
        written = lines[row.row].split(",")[0]
        assert written != row.digits  # another spelling...
        assert normalize_phone(written) == row.digits  # ...of the same number
        assert sent[row.digits] < row.row  # met first on an earlier row


def test_numbers_to_send_are_distinct() -> None:
    digits = [row.digits for row in generate(2000, seed=3).sent()]

    assert len(digits) == len(set(digits))


def test_the_same_seed_gives_the_same_file() -> None:
    assert generate(500, seed=9).text == generate(500, seed=9).text
    assert generate(500, seed=9).text != generate(500, seed=10).text


def test_the_ideal_drain_paces_skips_the_pause_and_holds_rows_until_the_window_ends() -> None:
    assert ideal_drain(10, free=100, held=0, held_until=0, pause=(0, 0)) == pytest.approx(10.0)
    assert ideal_drain(10, free=100, held=0, held_until=0, pause=(5, 8)) == pytest.approx(13.0)
    # 10 free rows take 1 s; the 20 held ones wait for the window's end at 30 s, then take 2 s
    assert ideal_drain(10, free=10, held=20, held_until=30, pause=(0, 0)) == pytest.approx(32.0)
    # more free rows than the window: the held ones queue behind them, no gap
    assert ideal_drain(10, free=400, held=20, held_until=30, pause=(0, 0)) == pytest.approx(42.0)


def test_a_line_unlike_its_row_says_why() -> None:
    row = Row(3, "r3", "8613800000001", "sent")
    line = {"state": "sent", "reason": "", "to": "8613800000001", "message_id": "m1", "delivery": "delivered"}

    assert _unlike(row, line, ["m1"]) == ""
    assert "NXCloud accepted" in _unlike(row, line, ["m1", "m2"])
    assert "NXCloud accepted" in _unlike(row, line, [])
    assert "delivery" in _unlike(Row(3, "r3", "8613800000001", "sent", undeliverable=True), line, ["m1"])
    assert "expected duplicate" in _unlike(Row(3, "r3", "8613800000001", "duplicate"), line, ["m1"])


def test_the_quiet_window_may_cross_midnight() -> None:
    from datetime import time

    assert _inside(time(22, 0), time(21, 0), time(9, 0))
    assert _inside(time(3, 0), time(21, 0), time(9, 0))
    assert not _inside(time(9, 0), time(21, 0), time(9, 0))
    assert _inside(time(1, 57), time(1, 57), time(1, 58))
    assert not _inside(time(1, 58), time(1, 57), time(1, 58))


def test_p99_is_the_nearest_rank() -> None:
    assert p99(list(range(1, 101))) == 99
    assert p99([5.0, 1.0]) == 5.0
    assert math.isnan(p99([]))
