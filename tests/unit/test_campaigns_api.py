"""The campaign routes' pure parts: the answer's counts are the rules' counts, the list's cursor, the ETA."""

from __future__ import annotations

import base64

import pytest

from campaigns_api import Counts, decode_cursor, encode_cursor, eta_seconds
from nxcloud_wa.campaigns import COUNTS, Status
from nxcloud_wa.campaigns_table import Campaign
from nxcloud_wa.exceptions import InvalidMessageError


def campaign(status: Status, rate: float = 10, **counts: int) -> Campaign:
    return Campaign(
        campaign_id="c-1",
        name="n",
        template_name="promo",
        language="en_US",
        audience_key="audiences/a.csv",
        created_at="2026-01-01T00:00:00.000+00:00",
        start_at="2026-01-01T00:00:00.000+00:00",
        rate=rate,
        status=status,
        counts=counts,
    )


def test_the_answers_counts_are_the_rules_counts_in_their_order() -> None:
    assert tuple(Counts.model_fields) == COUNTS


def test_a_cursor_goes_round_trip_and_is_url_safe() -> None:
    key = {
        "campaign_id": {"S": "c-abc"},
        "sk": {"S": "campaign"},
        "listed": {"S": "campaign"},
        "created": {"S": "2026-01-01T00:00:00.000+00:00#c-abc"},
    }

    text = encode_cursor(key)

    assert text is not None and set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(text) == key
    assert encode_cursor(None) is None and encode_cursor({}) is None


@pytest.mark.parametrize(
    "text",
    [
        "!!!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(b'{"campaign_id": "c", "sk": "campaign"}').decode(),
        base64.urlsafe_b64encode(b'{"campaign_id": 1, "sk": "s", "listed": "l", "created": "c"}').decode(),
    ],
)
def test_any_other_cursor_is_refused_naming_it(text: str) -> None:
    with pytest.raises(InvalidMessageError) as refused:
        decode_cursor(text)

    assert refused.value.errors[0]["loc"] == ["query", "cursor"]


def test_the_eta_is_the_rows_not_final_yet_at_the_rate_while_running_only() -> None:
    running = campaign(Status.RUNNING, rate=10, rows=1000, queued=600, sent=500, invalid=20, duplicate=5)

    assert eta_seconds(running) == 48  # 1000 - (500 + 20 + 5) = 475 rows at 10 a second
    assert eta_seconds(campaign(Status.RUNNING, rows=3, sent=3)) == 0
    for status in (Status.SCHEDULED, Status.PAUSED, Status.CANCELLED, Status.COMPLETED):
        assert eta_seconds(campaign(status, rows=1000)) is None
