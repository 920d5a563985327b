"""A campaign's report end to end (docs/campaigns.md, "The report"): a campaign stored with ``CampaignStore`` and its
file in the stack's bucket, planned by the real planner's handler, sent by the real sender against the NXCloud
simulator, then ``GET /campaigns/{id}/report`` through the API's handler: a 202 that queues a report tick on the tick
queue, the planner's handler building ``reports/{id}.csv`` from it, a 200 whose presigned URL is downloaded from moto's
server. The report is checked against the file, the simulator's record of what it accepted, and the campaign's
counts.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
import requests

from local_stack.lambda_events import api_event
from nxcloud_wa.campaign_report import COLUMNS, REBUILD_SECONDS
from nxcloud_wa.campaigns import FINAL_STATES, Status, final_totals, tick_kind
from tests.integration.conftest import Stack
from tests.integration.test_campaign_planner import MIXED, Engine, engine
from tests.integration.test_campaign_send import delivered

__all__ = ["engine"]  # the planner's fixture, used here as is

FAILING = "8613800138001"
"""Row 3's number: NXCloud refuses it for good (22090), so the row ends dead-lettered."""


@pytest.fixture(autouse=True)
def one_clock(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API's report clock is the planner's: a report's age is measured between the two, as in AWS."""
    import campaigns_api

    monkeypatch.setattr(campaigns_api, "wall_clock", engine.clock)


def get_report(stack: Stack, campaign_id: str) -> tuple[int, dict[str, Any], dict[str, list[str]]]:
    path = f"/campaigns/{campaign_id}/report"
    answer = stack.invoke(api_event(None, method="GET", path=path, resource="/campaigns/{campaign_id}/report"))
    return int(answer["statusCode"]), json.loads(answer["body"]), answer.get("multiValueHeaders") or {}


def report_ticks(stack: Stack) -> list[str]:
    """The report requests on the tick queue (consumed)."""
    bodies = [m["Body"] for m in stack.drain(stack.resources.campaign_tick_queue_url)]
    return [b for b in bodies if tick_kind(b) == "report"]


def build(engine: Engine, campaign_id: str) -> None:
    """Hand the planner the report request the API queued (exactly one)."""
    [request] = report_ticks(engine.stack)
    assert json.loads(request)["campaign_id"] == campaign_id
    assert engine.tick(request) == {"batchItemFailures": []}


def download(url: str) -> list[dict[str, str]]:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    rows = list(csv.reader(io.StringIO(answer.content.decode("utf-8"))))
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def send_all(stack: Stack, limit: int = 10) -> None:
    for _ in range(limit):
        if not stack.queue_depth():
            return
        stack.run_batch()
    raise AssertionError("the send queue never drained")


def test_a_completed_campaigns_report_is_the_truth_and_its_counts_are_the_campaigns(
    engine: Engine,
) -> None:
    stack = engine.stack
    stack.simulator.add_fault(kind="code", code=22090, to=FAILING)
    campaign_id = engine.campaign(MIXED).campaign_id
    engine.run(campaign_id)
    send_all(stack)
    campaign = engine.store.get(campaign_id)
    assert campaign.status is Status.COMPLETED

    status, body, headers = get_report(stack, campaign_id)
    assert (status, body) == (202, {"status": "building", "retry_after": 10})
    assert headers["Retry-After"] == ["10"]
    build(engine, campaign_id)
    status, body, _ = get_report(stack, campaign_id)
    assert status == 200 and body["rows"] == 9 and body["status"] == "completed"

    lines = download(body["url"])
    assert [int(line["row"]) for line in lines] == list(range(2, 11))  # one line per row of the file, in order
    by_row = {int(line["row"]): line for line in lines}
    accepted = {r.to: r.message_id for r in stack.simulator.accepted}
    assert accepted.keys() == {"8613800138000", "8613800138005"}
    for row in (2, 10):  # sent: the message NXCloud accepted for that number
        line = by_row[row]
        assert line["state"] == "sent" and line["message_id"] == accepted[line["to"]], line
    assert (by_row[2]["to"], by_row[2]["ref"]) == ("8613800138000", "r1")  # the number in full, as digits
    assert (by_row[3]["state"], by_row[3]["error_code"], by_row[3]["message_id"]) == ("dead_lettered", "22090", "")
    assert (by_row[4]["state"], by_row[4]["reason"]) == ("duplicate", "the same number as row 2")
    assert (by_row[9]["state"], by_row[9]["reason"]) == ("duplicate", "the same number as row 3")
    assert by_row[5]["state"] == "invalid" and by_row[5]["to"] == "12345" and "to" in by_row[5]["reason"]
    assert by_row[6]["state"] == "invalid" and "body.1" in by_row[6]["reason"]
    assert all(by_row[row]["state"] == "invalid" and by_row[row]["reason"] for row in (7, 8))

    states = {state.value: 0 for state in FINAL_STATES}
    for line in lines:
        states[line["state"]] += 1
    counts = engine.store.get(campaign_id).counts
    assert states == final_totals(counts)  # no retry here: retried is 0, and the totals are the counts
    assert len(lines) == counts["rows"]


def test_a_current_report_is_answered_again_and_rebuilt_once_counts_moved(
    engine: Engine,
) -> None:
    stack = engine.stack
    campaign_id = engine.campaign(MIXED).campaign_id
    engine.run(campaign_id)
    send_all(stack)
    assert get_report(stack, campaign_id)[0] == 202
    build(engine, campaign_id)
    assert get_report(stack, campaign_id)[0] == 200
    assert report_ticks(stack) == []  # a current report asks for nothing

    first = {int(line["row"]): line for line in download(get_report(stack, campaign_id)[1]["url"])}
    assert first[2]["delivery"] == first[10]["delivery"] == ""
    # NXCloud's callbacks arrive after the report was built: the webhook moves the campaign's delivery counts.
    assert stack.call_webhook(delivered(first[2]["message_id"]))["statusCode"] == 200
    assert stack.call_webhook(delivered(first[10]["message_id"], "read"))["statusCode"] == 200
    assert engine.store.get(campaign_id).counts["delivered"] == 2
    engine.clock.now += REBUILD_SECONDS - 1
    assert get_report(stack, campaign_id)[0] == 200  # young, and the status did not move: still answered
    engine.clock.now += 1
    assert get_report(stack, campaign_id)[0] == 202
    build(engine, campaign_id)
    status, body, _ = get_report(stack, campaign_id)
    assert status == 200 and body["built_at"] == "2026-03-02T10:01:00.000+00:00"
    again = {int(line["row"]): line for line in download(body["url"])}
    assert (again[2]["delivery"], again[10]["delivery"], again[3]["delivery"]) == ("delivered", "read", "")


def test_a_report_asked_for_twice_is_built_once(engine: Engine) -> None:
    """A client polling while the report is built queues one build (the request is noted on the campaign for
    BUILDING_SECONDS); a tick delivered twice builds once (the stored report is current the second time)."""
    stack = engine.stack
    campaign_id = engine.campaign(MIXED).campaign_id
    engine.run(campaign_id)
    assert get_report(stack, campaign_id)[0] == 202
    assert get_report(stack, campaign_id)[0] == 202
    [tick] = report_ticks(stack)
    s3 = stack.resources.client("s3")
    puts: list[str] = []
    import planner

    planner.planner().s3.meta.events.register(
        "provide-client-params.s3.PutObject", lambda params, **_: puts.append(params["Key"])
    )
    engine.tick(tick)
    engine.tick(tick)
    assert puts == [f"reports/{campaign_id}.csv"]
    assert get_report(stack, campaign_id)[0] == 200
    assert engine.store.request_report(campaign_id, time.time(), 360)  # the build ended: the next request is free
    head = s3.head_object(Bucket=engine.bucket, Key=f"reports/{campaign_id}.csv")
    assert head["Metadata"]["rows"] == "9"


def test_a_paused_campaigns_report_shows_its_unsent_rows_queued(engine: Engine) -> None:
    stack = engine.stack
    campaign_id = engine.campaign(MIXED).campaign_id
    engine.run(campaign_id)
    campaign = engine.store.get(campaign_id)
    from nxcloud_wa.campaigns import Action

    engine.store.apply(campaign, Action.PAUSE, "2026-03-02T10:00:00+00:00")
    stack.run_batch()  # the sender sees the pause: the rows go back on the queue, delayed, unsent

    assert get_report(stack, campaign_id)[0] == 202
    build(engine, campaign_id)
    status, body, _ = get_report(stack, campaign_id)
    assert status == 200 and body["status"] == "paused"
    states = {int(line["row"]): line["state"] for line in download(body["url"])}
    assert states == {
        2: "queued",
        3: "queued",
        4: "duplicate",
        5: "invalid",
        6: "invalid",
        7: "invalid",
        8: "invalid",
        9: "duplicate",
        10: "queued",
    }
    assert stack.simulator.accepted == []


def test_no_campaign_no_report(engine: Engine) -> None:
    status, body, _ = get_report(engine.stack, "c-0000")
    assert (status, body["error"]) == (404, "not_found")
    assert report_ticks(engine.stack) == []
