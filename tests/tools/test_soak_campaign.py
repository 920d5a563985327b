"""The campaign soak's ledger rows (tools/soak/campaign.py): what counts as dead-lettered for throttling, the drain
time against the ideal, NXCloud's refusals and the limiter's requests per message, read from made-up journeys."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from soak import campaign
from soak.ledger import Journey, Ledger, Tracker, render
from soak.messages import API_SYNC, QUEUE, Message, generate
from soak.mix import MessageShares


def journey(
    index: int,
    *,
    first_in: float = 100.0,
    sent_at: float | None = None,
    dead: tuple[str, float] | None = None,
    delays: dict[str, int] | None = None,
    path: str = QUEUE,
    api: list[tuple[int, str | None]] | None = None,
) -> Journey:
    message = Message(f"sk000000-{index:06d}", path, "{}", "ok")
    return Journey(
        message,
        first_in=first_in,
        sent_at=sent_at,
        dead=[dead] if dead else [],
        delays=Counter(delays or {}),
        api_answers=api or [],
    )


def account(
    journeys: list[Journey],
    *,
    rate: int = 10,
    numbers: int = 1,
    upstream_requests: int = 100,
    upstream_faults: Counter[str] | None = None,
    limiter_requests: int = 0,
) -> campaign.CampaignLedger:
    return campaign.account(
        journeys,
        rate=rate,
        numbers=numbers,
        upstream_requests=upstream_requests,
        upstream_faults=upstream_faults or Counter(),
        limiter_requests=limiter_requests,
    )


def test_only_a_throttled_message_that_ran_out_of_receives_is_a_throttle_dead_letter() -> None:
    journeys = [
        journey(0, dead=("retries_exhausted http_500", 103.0), delays={"throttled http_429": 2}),
        journey(1, dead=("nxcloud_code 22090", 102.0), delays={"rate_limited number_at_rate": 1}),
        journey(2, dead=("retries_exhausted http_500", 104.0)),  # never throttled: the message's own failures
        journey(3, sent_at=105.0, delays={"throttled http_429": 1}),
    ]

    ledger = account(journeys)

    assert ledger.throttle_dead_letters == 1
    assert ledger.other_dead_after_throttle == Counter({"nxcloud_code 22090": 1})
    assert (ledger.held_messages, ledger.throttled_messages) == (1, 2)
    assert ledger.put_back == Counter({"throttled http_429": 3, "rate_limited number_at_rate": 1})
    assert ledger.failures() == ["1 messages dead-lettered for throttling"]


def test_the_drain_runs_from_the_first_message_in_to_the_last_end_against_n_over_the_rate() -> None:
    journeys = [
        journey(0, first_in=100.0, sent_at=101.0),
        journey(1, first_in=100.5, dead=("invalid_message", 100.6)),
        journey(2, first_in=101.0, path=API_SYNC, api=[(429, "rate_limited"), (200, None)]),
        journey(3, first_in=100.2, sent_at=100.8),
    ]
    journeys[2].api_final = (200, None, 100.9)
    journeys[2].sent_at = 100.9

    ledger = account(journeys, rate=2, numbers=2)

    assert ledger.drain_s == pytest.approx(1.0)
    assert ledger.ideal_s == pytest.approx(1.0)  # 4 messages at 2 numbers x 2 per second
    assert ledger.drain_ratio == pytest.approx(1.0)
    assert ledger.api_429 == 1 and ledger.held_messages == 1
    assert ledger.verdicts() == []


def test_a_slow_drain_is_a_missed_goal_not_a_failure() -> None:
    ledger = account([journey(0, first_in=100.0, sent_at=100.5), journey(1, first_in=100.0, sent_at=103.0)], rate=1)

    assert ledger.drain_ratio == pytest.approx(1.5)
    assert ledger.failures() == []
    assert ledger.verdicts() == ["drain time 1.50x the ideal, over the 1.10x goal"]


def test_refusals_and_limiter_requests_are_read_per_request_and_per_message() -> None:
    faults = Counter({"rate_limit http_429": 6, "http_status 500": 4})
    ledger = account(
        [journey(n, sent_at=101.0) for n in range(10)],
        upstream_requests=100,
        upstream_faults=faults,
        limiter_requests=3,
    )

    assert (ledger.refused, ledger.requests, ledger.slots_used) == (6, 100, 94)
    assert ledger.refused_share == pytest.approx(0.06)
    assert ledger.limiter_per_message == pytest.approx(0.3)
    assert ledger.failures() == ["NXCloud refused 6.0% of its requests for the rate"]


def test_the_waits_for_a_slot_are_read_per_message_that_waited() -> None:
    journeys = [journey(n, sent_at=101.0) for n in range(4)]
    for n, waited in enumerate((0.0, 120.0, 40.0, 900.0)):
        journeys[n].waited_ms = waited

    ledger = account(journeys)

    assert sorted(ledger.waits_ms) == [40.0, 120.0, 900.0]
    assert (ledger.wait_ms(0.5), ledger.wait_ms(0.99)) == (120.0, 900.0)
    assert account([journey(0, sent_at=101.0)]).wait_ms(0.99) == 0.0


def test_the_tracker_reads_each_deliverys_wait_and_put_back_from_the_functions_lines() -> None:
    message = Message("sk000000-000001", QUEUE, '{"token": "sk000000-000001"}', "ok")
    tracker = Tracker([message])
    event = {"Records": [{"messageId": "m1", "body": message.body}]}
    delayed = {"outcome": "delayed", "sqs_message_id": "m1", "reason": "throttled", "error_code": "http_429"}
    sent = {"outcome": "sent", "sqs_message_id": "m1", "rate_wait_ms": 250.5}

    tracker.invocation(event, {}, [delayed | {"rate_wait_ms": 100.0}], None)
    tracker.invocation(event, {}, [sent], None)

    followed = tracker.journeys[message.token]
    assert followed.waited_ms == 350.5
    assert followed.delays == Counter({"throttled http_429": 1})
    assert followed.sent_at is not None


def test_the_rows_and_the_json_carry_every_figure() -> None:
    ledger = account([journey(0, sent_at=101.0)], limiter_requests=2)

    labels = [label.strip() for label, _ in campaign.rows([ledger])]
    document = json.loads(json.dumps(campaign.as_json(ledger)))

    assert "dead-lettered for throttling (goal 0)" in labels
    assert "limiter requests (UpdateItem) per message" in labels
    assert document["limiter_requests_per_message"] == 2.0 and document["throttle_dead_letters"] == 0
    assert document["waited_messages"] == 0 and "waits_ms" not in document
    assert campaign.rows([None]) == [] and campaign.as_json(None) is None


def test_a_campaign_has_no_outage_template_and_spreads_its_messages_over_the_numbers() -> None:
    shares = campaign.shares(MessageShares())
    numbers = campaign.BUSINESS_NUMBERS[:3]

    messages = generate(30, seed=1, run="000000", shares=shares, business_phones=numbers)

    assert shares.outage == 0.0 and MessageShares().outage > 0
    phones = Counter(json.loads(m.body).get("business_phone") for m in messages if m.kind != "invalid")
    assert set(phones) == set(numbers)
    assert max(phones.values()) - min(phones.values()) <= 3  # in turn (invalid bodies carry none)


def test_a_campaign_runs_without_the_lifecycle_and_its_ledger_says_so_without_failing() -> None:
    """A campaign leaves the callbacks out; a standard run without its lifecycle rows is a failure, as before."""
    standard = Ledger("dead_letter", "default", 1)
    campaign_run = Ledger("dead_letter", "default", 1, campaign=account([journey(0, sent_at=101.0)]))

    text = render([campaign_run])

    assert standard.failures() == ["the delivery lifecycle was not accounted for"]
    assert campaign_run.failures() == []
    assert "delivery lifecycle" not in text and "dead-lettered for throttling (goal 0)" in text
