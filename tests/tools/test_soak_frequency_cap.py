"""The soak's frequency cap rows on made-up runs: skips are counted by reason (a capped skip has no entry, and is no
"skipped without an entry"), a send over the cap after the count held the cap fails the run, and the sends over it
that docs/audience.md allows (batches in flight together, a count that could not be written) are counted, not
failed."""

from __future__ import annotations

from collections.abc import Iterable

from soak.audience import EntryWatch
from soak.audience import account as audience_account
from soak.frequency_cap import CAPPED, CapLedger, account, rows
from soak.journal import Upstream
from soak.ledger import Journey, Tracker, _expected, skip_reason
from soak.messages import Message
from soak.mix import PROMO_TEMPLATE

BUSINESS = "8618512348399"
TO = "8613900000200"


def _journey(token: str, span: tuple[float, float], *, template: str = PROMO_TEMPLATE, to: str = TO) -> Journey:
    """A message whose one invocation ran over ``span`` (began, ended)."""
    message = Message(token, "queue", "{}", "opt_out", to=to, template=template)
    return Journey(message, starts=[span[0]], ends=[span[1]])


def _account(journeys: Iterable[Journey], accepted: dict[str, list[float]], cap: str = "1/24h") -> CapLedger:
    return account(
        cap,
        journeys,
        lambda token: Upstream(accepted=len(accepted.get(token, [])), accepted_at=accepted.get(token, [])),
        business_phone=BUSINESS,
    )


def test_a_skip_is_labelled_by_its_reason_and_a_capped_one_as_frequency_cap() -> None:
    suppressed = {"outcome": "skipped", "reason": "suppressed", "suppression_reason": "opted_out"}
    capped = {"outcome": "skipped", "reason": "frequency_cap", "cap": "1/24h"}  # no suppression_reason

    assert (skip_reason(suppressed), skip_reason(capped)) == ("opted_out", CAPPED)


def test_the_tracker_notes_a_capped_skip_and_a_batch_whose_count_was_not_written() -> None:
    token = "skabc123-000001"
    message = Message(token, "queue", "{}", "opt_out", to=TO, template=PROMO_TEMPLATE)
    tracker = Tracker([message])
    event = {"Records": [{"messageId": "m1", "body": f"order {token}"}]}
    lines = [
        {"outcome": "skipped", "reason": "frequency_cap", "sqs_message_id": "m1"},
        {"frequency_cap": "unrecorded"},
    ]

    tracker.invocation(event, {}, lines, None)

    journey = tracker.journeys[token]
    assert (journey.skipped, journey.count_unrecorded, len(journey.ends)) == (CAPPED, True, 1)


def test_a_capped_skip_is_not_a_suppression_without_an_entry() -> None:
    journey = _journey("capped", (1.0, 2.0))
    journey.skipped = CAPPED
    watch = EntryWatch(lambda: [])
    watch.poll()

    ledger = audience_account([journey], lambda _: Upstream(), watch, opt_out_recipients={}, list_reads=0)

    assert ledger.skipped == {CAPPED: 1}
    assert ledger.suppressed_without_entry == 0 and ledger.failures() == []


def test_a_send_over_the_cap_after_the_count_held_it_fails_the_run() -> None:
    first, second = _journey("first", (1.0, 2.0)), _journey("second", (3.0, 4.0))

    ledger = _account([first, second], {"first": [1.5], "second": [3.5]})

    assert (ledger.sends, ledger.pairs, ledger.over, ledger.over_promised) == (2, 1, 1, 1)
    assert ledger.failures() == ["1 sent over the frequency cap after the count held 1/24h"]


def test_two_sends_to_one_pair_from_one_batch_over_the_cap_fail_the_run() -> None:
    """One batch's check counts its own messages: the first that fit go on, the rest are skipped."""
    first, second = _journey("first", (1.0, 3.0)), _journey("second", (1.0, 3.0))

    assert _account([first, second], {"first": [1.5], "second": [1.6]}).over_promised == 1


def test_two_batches_in_flight_together_may_both_pass_as_documented() -> None:
    first, second = _journey("first", (1.0, 3.0)), _journey("second", (2.0, 4.0))  # began before the first ended

    ledger = _account([first, second], {"first": [1.5], "second": [2.5]})

    assert (ledger.over, ledger.over_documented, ledger.over_promised) == (1, 1, 0)
    assert ledger.failures() == []


def test_a_later_send_after_a_count_that_could_not_be_written_is_documented() -> None:
    first, second = _journey("first", (1.0, 2.0)), _journey("second", (3.0, 4.0))
    first.count_unrecorded = True

    assert _account([first, second], {"first": [1.5], "second": [3.5]}).over_documented == 1


def test_a_count_replaced_by_a_concurrent_batchs_settlement_is_documented() -> None:
    """Cap 2: two batches in flight together both pass; the later settlement's Put keeps only its own send, so a third
    message, after both settled, passes once more (docs/audience.md)."""
    one, two, three = _journey("one", (1.0, 3.0)), _journey("two", (2.0, 4.0)), _journey("three", (5.0, 6.0))

    ledger = _account([one, two, three], {"one": [1.5], "two": [2.5], "three": [5.5]}, cap="2/24h")

    assert (ledger.over, ledger.over_documented, ledger.over_promised) == (1, 1, 0)


def test_utility_sends_duplicates_and_other_recipients_are_not_over_the_cap() -> None:
    journeys = [
        _journey("promo", (1.0, 2.0)),
        _journey("notice", (3.0, 4.0), template="soak_notice"),  # UTILITY: never counted
        _journey("elsewhere", (5.0, 6.0), to="8613900000201"),  # another pair
    ]
    accepted = {"promo": [1.5, 1.6], "notice": [3.5], "elsewhere": [5.5]}  # promo accepted twice, one key: one send

    ledger = _account(journeys, accepted)

    assert (ledger.sends, ledger.pairs, ledger.over) == (2, 2, 0)


def test_a_capped_ending_is_expected_only_of_a_marketing_message_in_a_capped_run() -> None:
    promo, notice = _journey("promo", (1.0, 2.0)), _journey("notice", (1.0, 2.0), template="soak_notice")
    promo.skipped = notice.skipped = CAPPED

    assert _expected(promo, "skipped", capped=True)
    assert not _expected(promo, "skipped", capped=False)
    assert not _expected(notice, "skipped", capped=True)
    assert _expected(promo, "rejected:frequency_capped", capped=True)
    assert not _expected(promo, "rejected:frequency_capped", capped=False)


def test_the_rows_end_with_the_goal_and_say_dash_for_a_run_without_a_cap() -> None:
    ledger = CapLedger(cap="1/24h", sends=5, pairs=3, capped_queue=4, over=1, over_documented=1)

    found = dict(rows([ledger, None]))

    assert found["sent over the frequency cap"] == ["0", "-"]
    assert found["marketing frequency cap (MARKETING_CAP_PER_RECIPIENT)"] == ["1/24h", "-"]
    assert rows([None]) == []
