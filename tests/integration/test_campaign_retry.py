"""``POST /campaigns/{id}/retry`` end to end (docs/campaigns.md, "Retry"): a campaign planned by the real planner's
handler and sent by the real sender against the NXCloud simulator, which dead-letters some rows for a reason that
may pass on a retry (22093, a template code) and some for one that may not (22090 judges the number; a dropped
connection is an unknown outcome: NXCloud may have sent it). The fault is cleared, the campaign retried through the
API's handler, the planner's retry pass re-queues the passable rows, the sender sends them: each recipient gets
exactly one accepted send, and the counts and the report agree by the rule of ``final_totals``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from local_stack.lambda_events import api_event
from nxcloud_wa.campaigns import FINAL_STATES, Action, Status, final_totals, tick, tick_kind
from nxcloud_wa.campaigns_table import Campaign
from tests.integration.test_campaign_planner import MORNING_IN_CHINA, NIGHT_IN_CHINA, QUIET, Engine, engine
from tests.integration.test_campaign_report import build, download, get_report, send_all

__all__ = ["engine"]  # the planner's fixture, used here as is

SENT, PASSES, BAD_NUMBER, UNKNOWN, PASSES_TOO = (f"861380013800{i}" for i in range(5))
AUDIENCE = "to,body.1,ref\n" + "".join(
    f"{n},A-{i},r{i}\n" for i, n in enumerate([SENT, PASSES, BAD_NUMBER, UNKNOWN, PASSES_TOO])
)
"""Rows 2-6: sent; 22093 (may pass); 22090 (the number: never again); a dropped answer (unknown: never again);
22093 again."""


def act(engine: Engine, campaign_id: str, action: str) -> tuple[int, dict[str, Any]]:
    """``POST /campaigns/{id}/<action>`` through the API's handler; the tick it queues is consumed."""
    path = f"/campaigns/{campaign_id}/{action}"
    answer = engine.stack.invoke(
        api_event(None, method="POST", path=path, resource=f"/campaigns/{{campaign_id}}/{action}")
    )
    ticks = [m["Body"] for m in engine.stack.drain(engine.stack.resources.campaign_tick_queue_url)]
    assert all(tick_kind(body) is None for body in ticks)
    return int(answer["statusCode"]), json.loads(answer["body"])


def accepted(engine: Engine) -> Counter[str]:
    return Counter(r.to for r in engine.stack.simulator.accepted)


def first_round(engine: Engine, **overrides: Any) -> str:
    """The campaign planned and sent with the faults on: completed, one row sent, four dead-lettered."""
    sim = engine.stack.simulator
    for number in (PASSES, PASSES_TOO):
        sim.add_fault(kind="code", code=22093, to=number)
    sim.add_fault(kind="code", code=22090, to=BAD_NUMBER)
    sim.add_fault(kind="drop", to=UNKNOWN)
    campaign_id = engine.campaign(AUDIENCE, **overrides).campaign_id
    engine.run(campaign_id)
    send_all(engine.stack)
    campaign = engine.store.get(campaign_id)
    assert campaign.status is Status.COMPLETED
    assert {k: v for k, v in campaign.counts.items() if v} == {"rows": 5, "queued": 5, "sent": 1, "dead_lettered": 4}
    sim.clear_faults()
    return campaign_id


def test_a_retry_resends_only_the_rows_that_may_pass_once_and_the_report_agrees(engine: Engine) -> None:
    campaign_id = first_round(engine)
    assert accepted(engine) == {SENT: 1}
    kept = {o.row: o.message is not None for o in engine.store.rows(campaign_id)[0]}
    assert kept == {2: False, 3: True, 4: False, 5: False, 6: True}  # the message is kept only where it may pass

    status, body = act(engine, campaign_id, "retry")
    assert status == 200 and body["status"] == "running" and body["counts"]["retried"] == 0
    engine.run(campaign_id)
    queued = [message for message, _ in engine.queued()][-2:]
    assert [(m["nxwa_campaign"]["row"], m["nxwa_campaign"]["round"]) for m in queued] == [(3, 1), (6, 1)]
    send_all(engine.stack)

    campaign = engine.store.get(campaign_id)
    assert campaign.status is Status.COMPLETED
    assert accepted(engine) == {SENT: 1, PASSES: 1, PASSES_TOO: 1}  # exactly one send per recipient; 4 and 5 not again
    counts = {k: v for k, v in campaign.counts.items() if v}
    assert counts == {"rows": 5, "queued": 5, "sent": 3, "dead_lettered": 4, "retried": 2}

    assert get_report(engine.stack, campaign_id)[0] == 202
    build(engine, campaign_id)
    lines = download(get_report(engine.stack, campaign_id)[1]["url"])
    by_row = {int(line["row"]): line for line in lines}
    assert {row: by_row[row]["state"] for row in by_row} == {
        2: "sent",
        3: "sent",
        4: "dead_lettered",
        5: "dead_lettered",
        6: "sent",
    }
    assert (by_row[4]["error_code"], by_row[5]["reason"]) == ("22090", "unknown_outcome")
    states = Counter(line["state"] for line in lines)
    assert {state.value: states[state.value] for state in FINAL_STATES} == final_totals(campaign.counts)

    # Nothing left that may pass: a second retry queues nothing and completes on its first pass.
    batches = len(engine.batches)
    status, body = act(engine, campaign_id, "retry")
    assert status == 200 and body["status"] == "running"
    engine.run(campaign_id)
    again = engine.store.get(campaign_id)
    assert again.status is Status.COMPLETED and again.retry.round == 2 and not again.retry.scanning
    assert len(engine.batches) == batches and again.counts == campaign.counts
    assert accepted(engine) == {SENT: 1, PASSES: 1, PASSES_TOO: 1}


def test_a_retry_scans_a_window_a_pass(engine: Engine) -> None:
    campaign_id = first_round(engine, rate=0.01)  # a window is one row
    assert act(engine, campaign_id, "retry")[0] == 200
    # One pass per row item of the first round (DynamoDB may answer a page ending at the last item with a cursor:
    # then one more pass reads an empty page; moto does not).
    assert engine.run(campaign_id) in (5, 6)
    assert [m["nxwa_campaign"]["row"] for m, _ in engine.queued()[-2:]] == [3, 6]
    scanned = engine.store.get(campaign_id)
    assert (scanned.retry.cursor, scanned.retry.scanning, scanned.counts["retried"]) == ("row#000000006", False, 2)
    assert scanned.status is Status.RUNNING  # done scanning; the sender completes it as the re-sent rows settle
    send_all(engine.stack)
    assert engine.store.get(campaign_id).status is Status.COMPLETED
    assert accepted(engine) == {SENT: 1, PASSES: 1, PASSES_TOO: 1}


def test_a_retried_row_that_fails_again_is_counted_once_in_its_last_state(engine: Engine) -> None:
    campaign_id = first_round(engine)
    engine.stack.simulator.add_fault(kind="code", code=22093, to=PASSES_TOO)  # still failing for one of them
    assert act(engine, campaign_id, "retry")[0] == 200
    engine.run(campaign_id)
    send_all(engine.stack)
    campaign = engine.store.get(campaign_id)
    assert campaign.status is Status.COMPLETED
    assert accepted(engine) == {SENT: 1, PASSES: 1}
    assert {k: v for k, v in campaign.counts.items() if v} == {
        "rows": 5,
        "queued": 5,
        "sent": 2,
        "dead_lettered": 5,
        "retried": 2,
    }
    assert final_totals(campaign.counts)["dead_lettered"] == 3
    [again] = [o for o in engine.store.rows(campaign_id, round_=1)[0] if o.state.value == "dead_lettered"]
    assert (again.row, again.error_code, again.message is not None) == (6, "22093", True)  # it may pass next time


def test_a_retry_never_sends_inside_the_quiet_hours_it_waits_for_the_window_to_end(engine: Engine) -> None:
    campaign_id = first_round(engine, quiet_hours=QUIET)  # 18:00 in Shanghai: sent then
    engine.clock.now = NIGHT_IN_CHINA
    assert act(engine, campaign_id, "retry")[0] == 200
    batches = len(engine.batches)
    engine.tick(tick(campaign_id))
    assert len(engine.batches) == batches  # row 3 would reach its recipient at 22:00 there: the pass ends before it
    waiting = engine.store.get(campaign_id)
    assert waiting.status is Status.RUNNING and waiting.counts["retried"] == 0
    assert (waiting.retry.cursor, waiting.retry.scanning) == ("row#000000002", True)
    assert [t["DelaySeconds"] for t in engine.ticks] == [900]  # at most 15 minutes at a time, no spinning
    engine.clock.now = MORNING_IN_CHINA
    engine.tick(engine.ticks.pop(0)["MessageBody"])
    assert [m["nxwa_campaign"]["row"] for m, _ in engine.queued()[-2:]] == [3, 6]
    send_all(engine.stack)
    assert engine.store.get(campaign_id).status is Status.COMPLETED
    assert accepted(engine) == {SENT: 1, PASSES: 1, PASSES_TOO: 1}


def test_a_duplicate_retry_pass_counts_nothing_twice(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner

    campaign_id = first_round(engine)
    assert act(engine, campaign_id, "retry")[0] == 200
    as_read = engine.store.get(campaign_id)
    engine.tick(tick(campaign_id))
    before = engine.store.get(campaign_id)
    assert before.counts["retried"] == 2 and not before.retry.scanning
    # The same pass again, as a twin that read the campaign before the first moved the scan (a duplicate delivery).
    monkeypatch.setattr(planner.planner().store, "get", lambda *_a, **_k: as_read)
    assert planner.planner().run(tick(campaign_id)).outcome == "duplicate pass: the checkpoint moved"
    monkeypatch.undo()
    assert engine.store.get(campaign_id) == before  # its queue writes repeat the same keys: nothing counted twice
    send_all(engine.stack)
    after = engine.store.get(campaign_id)
    assert after.status is Status.COMPLETED and after.counts["sent"] == 3 and after.counts["retried"] == 2
    assert accepted(engine) == {SENT: 1, PASSES: 1, PASSES_TOO: 1}  # the twin's copies were answered, not sent


def moved(engine: Engine, campaign: Campaign, *actions: Action) -> None:
    for action in actions:
        campaign = engine.store.apply(campaign, action, "2026-01-01T00:00:00+00:00")


@pytest.mark.parametrize(
    ("actions", "status"),
    [
        ((), "scheduled"),
        ((Action.START,), "running"),
        ((Action.START, Action.PAUSE), "paused"),
        ((Action.CANCEL,), "cancelled"),
    ],
)
def test_a_retry_the_status_refuses_is_a_409_naming_it(
    engine: Engine, actions: tuple[Action, ...], status: str
) -> None:
    campaign = engine.campaign(AUDIENCE)
    moved(engine, campaign, *actions)
    code, body = act(engine, campaign.campaign_id, "retry")
    assert (code, body["error"], body["code"]) == (409, "conflict", status)
    assert body["message"].startswith(f"cannot retry a campaign that is {status}")
    assert engine.store.get(campaign.campaign_id).status.value == status


def test_a_retry_after_expires_at_is_a_409_naming_the_time(engine: Engine) -> None:
    campaign = engine.campaign(AUDIENCE, expires_at="2026-01-02T00:00:00+00:00")
    moved(engine, campaign, Action.START, Action.COMPLETE)
    code, body = act(engine, campaign.campaign_id, "retry")
    assert (code, body["code"]) == (409, "expired")
    assert body["message"] == "cannot retry a campaign that expired at 2026-01-02T00:00:00+00:00"
    assert engine.store.get(campaign.campaign_id).status is Status.COMPLETED


def test_an_unknown_campaign_is_a_404(engine: Engine) -> None:
    assert act(engine, "c-none", "retry")[0] == 404
