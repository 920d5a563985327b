"""The planner's pure pieces: a tick's pass number, the window's delays, where a pass stops, a row's fields."""

from __future__ import annotations

import io

import pytest

import planner
from nxcloud_wa.audience_file import read_audience
from nxcloud_wa.campaigns import tick, tick_campaign, tick_number
from nxcloud_wa.campaigns_table import Campaign


def test_a_numbered_tick_names_its_pass_and_an_api_tick_none() -> None:
    assert tick_number(tick("c-1", 7)) == 7
    assert tick_campaign(tick("c-1", 7)) == "c-1"
    assert tick_number(tick("c-1")) is None
    assert tick("c-1") == '{"campaign_id":"c-1"}'  # the API's ticks are unchanged
    for wrong in (
        '{"campaign_id":"c-1","tick":-1}',
        '{"campaign_id":"c-1","tick":"3"}',
        '{"campaign_id":"c-1","tick":true}',
    ):
        with pytest.raises(ValueError, match="integer from 0"):
            tick_number(wrong)


@pytest.mark.parametrize(
    ("rate", "elapsed", "expected"),
    [
        (2.0, 0.0, [0, 0, 1, 1, 2, 2]),  # two a second, from the pass's start
        (0.5, 0.0, [0, 2, 4, 6, 8, 10]),
        (2.0, 1.5, [0, 0, 0, 0, 0, 1]),  # a slow pass: what is due already goes at once (never negative)
        (2.0, 1.0, [0, 0, 0, 0, 1, 1]),
    ],
)
def test_a_pass_spreads_its_messages_at_the_rate_from_its_start(
    rate: float, elapsed: float, expected: list[int]
) -> None:
    assert [planner._delay(i, rate, elapsed) for i in range(6)] == expected


def test_no_delay_exceeds_what_sqs_takes() -> None:
    assert planner._delay(10_000, 1.0, 0.0) == planner.MAX_DELAY == 900


def test_a_full_window_stops_before_the_next_record_and_leaves_it_unread() -> None:
    reader = read_audience(io.BytesIO(b"to\n1\n2\n3\n"), "a.csv")
    plan = planner.PassPlan(reader.checkpoint, limit=2)
    taken = []
    for record in planner._until_full(reader, plan):
        taken.append(record.line)
        plan.queued += 1
        plan.counts["rows"] += 1
        plan.position = record.next
    assert taken == [2, 3]
    assert not plan.file_ended
    assert (plan.position.offset, plan.position.line, plan.position.rows) == (7, 4, 2)  # row 4 is the next pass's


def test_a_file_that_ends_inside_the_window_is_planned() -> None:
    reader = read_audience(io.BytesIO(b"to\n1\n"), "a.csv")
    plan = planner.PassPlan(reader.checkpoint, limit=5)
    assert [r.line for r in planner._until_full(reader, plan)] == [2]
    assert plan.file_ended


def test_a_window_of_rows_read_is_bounded_whatever_their_states(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner, "MAX_PASS_ROWS", 3)
    reader = read_audience(io.BytesIO(b"to\n" + b"x\n" * 10), "a.csv")
    plan = planner.PassPlan(reader.checkpoint, limit=100)
    lines = []
    for record in planner._until_full(reader, plan):
        plan.counts["rows"] += 1
        lines.append(record.line)
    assert lines == [2, 3, 4]
    assert not plan.file_ended


def _campaign(**fields: object) -> Campaign:
    base: dict[str, object] = {
        "campaign_id": "c-1",
        "name": "n",
        "template_name": "t",
        "language": "en_US",
        "audience_key": "audiences/a.csv",
        "created_at": "2026-01-01T00:00:00+00:00",
        "start_at": "2026-01-01T00:00:00+00:00",
        "rate": 10.0,
    }
    return Campaign(**{**base, **fields})  # type: ignore[arg-type]


def test_a_rows_fields_are_the_campaigns_with_the_tenant_as_a_number() -> None:
    assert planner._fields(_campaign()) == {}
    assert planner._fields(_campaign(tenant_id="42", appkey="k", business_phone="8618512348399")) == {
        "tenant_id": 42,
        "appkey": "k",
        "business_phone": "8618512348399",
    }


def test_the_state_objects_sort_in_pass_order_and_release_order() -> None:
    from nxcloud_wa.campaign_state import held_key, held_prefix, read_row_log, row_log_line, rows_key, rows_prefix

    keys = [rows_key("c-1", n) for n in (10, 9, 100, 0)]
    assert sorted(keys) == [rows_key("c-1", n) for n in (0, 9, 10, 100)]
    assert all(k.startswith(rows_prefix("c-1")) for k in keys)
    held = [held_key("c-1", until, n) for until, n in ((1_772_499_600, 3), (999_999_999, 7), (1_772_499_600, 1))]
    assert sorted(held) == [held[1], held[2], held[0]]  # the earliest due first, then the pass that held it
    assert all(k.startswith(held_prefix("c-1")) for k in held)
    line = row_log_line(7, "r7", "8613800138000", "duplicate", "the same number as row 2")
    assert (
        read_row_log(line + line)
        == [{"row": 7, "ref": "r7", "to": "8613800138000", "state": "duplicate", "reason": "the same number as row 2"}]
        * 2
    )


def _records(arn: str) -> dict[str, object]:
    return {"Records": [{"eventSource": "aws:sqs", "eventSourceARN": arn, "body": tick("c-1")}]}


def test_make_invoke_hands_a_tick_queues_records_to_the_planner_and_others_to_the_sender() -> None:
    from local_stack.invoke import function_for_event

    region = "arn:aws:sqs:us-east-1:123456789012"
    assert function_for_event(_records(f"{region}:nxcloud-wa-CampaignTickQueue-1A2B")) == "PlannerFunction"
    assert function_for_event(_records(f"{region}:nxcloud-wa-sender-SendQueue-7Qd2")) == "SenderFunction"
    assert function_for_event(_records(f"{region}:local-1a2b3c4d-send")) == "SenderFunction"  # as before the planner


def test_a_held_row_and_its_file_name_read_back_as_written() -> None:
    import held_rows
    from nxcloud_wa.campaign_state import held_key

    row = held_rows.Pending(12, "r12", "8613800138000", '{"nxwa_campaign":{"id":"c-1","row":12},"message":{}}')
    assert held_rows.Pending.from_line(row.to_line()) == row
    assert held_rows.Pending.from_line(held_rows.Pending(3, None, "1", "{}").to_line()).ref is None
    key = held_key("c-1", 1_772_499_600, 7)
    assert held_rows._parse(key) == held_rows.HeldFile(key, 1_772_499_600, 7)
