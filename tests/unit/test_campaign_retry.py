"""The pure rules of a campaign's retry (docs/campaigns.md, "Retry"): which dead-lettered rows may pass, the
envelope's round, completion with re-sent rows, the move with expiry, the report's last round and totals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nxcloud_wa.campaign_report import latest_outcomes
from nxcloud_wa.campaigns import (
    COUNTS,
    MAX_ROUND,
    InvalidEnvelopeError,
    RowState,
    RowTag,
    Status,
    TransitionError,
    check_retry,
    envelope,
    final_totals,
    is_complete,
    unwrap,
)
from nxcloud_wa.campaigns_table import RowOutcome, decode_row, encode_row
from nxcloud_wa.error_codes import MAYBE_SENT, NEVER_ON_RETRY, NXCLOUD_CODES, may_pass_on_retry

DOC = Path(__file__).resolve().parents[2] / "docs" / "campaigns.md"
KEY = "campaign:c-1:8613800000001"


@pytest.mark.parametrize(
    ("reason", "code", "passes"),
    [
        ("nxcloud_code", "22093", True),  # template does not exist: the user may create it
        ("nxcloud_code", "22092", True),
        ("retries_exhausted", "22125", True),  # the balance, topped up
        ("template_mismatch", "body_parameters", True),
        ("nxcloud_auth", "1003", True),
        ("connect_error", None, True),
        ("http_status", "500", True),
        ("nxcloud_code", "22090", False),  # the number is invalid
        ("nxcloud_code", "22091", False),  # not a WhatsApp user
        ("retries_exhausted", "22091", False),
        ("unknown_outcome", "read_timeout", False),  # NXCloud may have sent it
        ("unknown_outcome", "interrupted", False),
        ("retries_exhausted", "read_timeout", False),  # the retry policy's last try timed out: it may have been sent
        ("retries_exhausted", "connection_dropped", False),
        ("retries_exhausted", "malformed_response", False),
        ("retries_exhausted", "connect_error", True),  # never reached NXCloud
        ("invalid_message", "invalid_campaign", False),
        ("too_large", None, False),
        ("idempotency_key_reused", None, False),
    ],
)
def test_which_dead_lettered_rows_may_pass_on_a_retry(reason: str, code: str | None, passes: bool) -> None:
    assert may_pass_on_retry(reason, code) is passes


def test_the_docs_list_the_rule_as_the_code_has_it() -> None:
    """docs/campaigns.md's "Retry" names every reason and code that never passes; a change to either must show."""
    text = DOC.read_text(encoding="utf-8")
    section = " ".join(text.split("## Retry", 1)[1].split("\n## ", 1)[0].split())
    rule = section.split("Never re-sent:", 1)[1].split("Everything else", 1)[0]
    named = set(re.findall(r"`([a-z_0-9]+)`", rule)) - {"retries_exhausted"}
    recipient_codes = {str(code) for code, info in NXCLOUD_CODES.items() if info.recipient}
    assert named == set(NEVER_ON_RETRY) | set(MAYBE_SENT) | recipient_codes


def test_an_envelopes_round_is_optional_and_checked() -> None:
    message = {"to": "8613800000001", "idempotency_key": KEY}
    assert json.loads(envelope(RowTag("c-1", 2, "r"), message))["nxwa_campaign"] == {"id": "c-1", "row": 2, "ref": "r"}
    body = json.loads(envelope(RowTag("c-1", 2, None, 3), message))
    assert body["nxwa_campaign"] == {"id": "c-1", "row": 2, "round": 3}
    assert unwrap(body) == (RowTag("c-1", 2, None, 3), message)
    for bad in (-1, True, "1", 1.0, MAX_ROUND + 1):
        with pytest.raises(InvalidEnvelopeError, match="round"):
            unwrap({"nxwa_campaign": {"id": "c-1", "row": 2, "round": bad}, "message": message})


def test_re_sent_rows_count_once_toward_completion() -> None:
    counts = {"rows": 5, "sent": 1, "dead_lettered": 4}
    assert is_complete(counts, planned=True)
    retrying = counts | {"retried": 2}  # two re-queued, not settled yet
    assert not is_complete(retrying, planned=True)
    assert not is_complete(retrying | {"sent": 2}, planned=True)
    assert is_complete(retrying | {"sent": 2, "dead_lettered": 5}, planned=True)
    assert not is_complete(retrying | {"sent": 3}, planned=False)  # the scan is not done
    assert COUNTS.index("retried") == COUNTS.index("cancelled") + 1


def test_a_retry_is_refused_by_the_status_past_expiry_or_rounds() -> None:
    at = datetime(2027, 1, 2, tzinfo=UTC)
    check_retry(Status.COMPLETED, "2027-01-03T00:00:00+00:00", at)
    check_retry(Status.COMPLETED, None, at)
    with pytest.raises(TransitionError) as refused:
        check_retry(Status.COMPLETED, "2027-01-02T00:00:00+00:00", at)
    assert (refused.value.code, str(refused.value)) == (
        "expired",
        "cannot retry a campaign that expired at 2027-01-02T00:00:00+00:00",
    )
    with pytest.raises(TransitionError) as refused:
        check_retry(Status.RUNNING, None, at)
    assert refused.value.code == "running" and "cannot retry a campaign that is running" in str(refused.value)
    with pytest.raises(TransitionError, match="at most"):
        check_retry(Status.COMPLETED, None, at, MAX_ROUND)


def outcome(row: int, round_: int, state: RowState) -> RowOutcome:
    return RowOutcome("c-1", row, state, "2027-01-01T00:00:00+00:00", round=round_)


def test_a_round_item_keeps_its_round_and_message() -> None:
    kept = RowOutcome("c-1", 7, RowState.DEAD_LETTERED, "t", reason="nxcloud_code", round=12, message='{"to":"1"}')
    item = encode_row(kept)
    assert item["sk"] == {"S": "retry#012#000000007"} and item["message"] == {"S": '{"to":"1"}'}
    assert decode_row(item) == kept
    assert encode_row(outcome(7, 0, RowState.SENT))["sk"] == {"S": "row#000000007"}


def test_the_report_shows_each_rows_last_round() -> None:
    dead, sent = RowState.DEAD_LETTERED, RowState.SENT
    rounds = [
        [outcome(2, 0, sent), outcome(3, 0, dead), outcome(4, 0, dead), outcome(5, 0, dead)],
        [outcome(3, 1, dead), outcome(5, 1, sent)],
        [outcome(3, 2, sent)],
    ]
    assert [(o.row, o.round, o.state) for o in latest_outcomes(rounds)] == [
        (2, 0, sent),
        (3, 2, sent),
        (4, 0, dead),
        (5, 1, sent),
    ]


def test_the_reports_totals_take_the_re_sent_rows_from_dead_lettered() -> None:
    totals = final_totals({"rows": 5, "sent": 3, "dead_lettered": 4, "retried": 2, "invalid": 1})
    assert (totals["sent"], totals["dead_lettered"], totals["invalid"]) == (3, 2, 1)
    assert "retried" not in totals and "rows" not in totals
