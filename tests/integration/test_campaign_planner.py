"""The campaign planner's real handler against moto's server and the NXCloud simulator's catalogue.

Each test stores a campaign through ``CampaignStore`` and its audience file in the stack's bucket, then hands the
handler ticks as the SQS event source would. The planner's clock is the test's. What it queues is read from its own
``SendMessage``/``SendMessageBatch`` calls (recorded on its SQS client as they are made: a delayed message cannot be
received before its delay) and, where the delay is 0, from the send queue itself. The sender does not take part:
the planner's job ends at the queue.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest

from local_stack.lambda_events import LambdaContext
from nxcloud_wa.campaigns import Action, Status, tick, unwrap
from nxcloud_wa.campaigns_table import Campaign, CampaignStore
from tests.integration.conftest import SECRET, Stack

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC).timestamp()
ORDER_UPDATE = {
    "name": "order_update",
    "language": "en_US",
    "category": "UTILITY",
    "status": "APPROVED",
    "components": [{"type": "BODY", "text": "Your order {{1}} has shipped."}],
}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


@dataclass
class Clock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Engine:
    """The stack, the planner's handler on it, and what the planner queued."""

    stack: Stack
    clock: Clock
    store: CampaignStore
    bucket: str
    batches: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)

    def upload(self, text: str | bytes, key: str = "audiences/a.csv") -> str:
        s3 = self.stack.resources.client("s3")
        body = text.encode("utf-8") if isinstance(text, str) else text
        return str(s3.put_object(Bucket=self.bucket, Key=key, Body=body)["ETag"])

    def campaign(self, text: str | bytes, *, key: str = "audiences/a.csv", **overrides: Any) -> Campaign:
        etag = self.upload(text, key)
        fields: dict[str, Any] = {
            "campaign_id": f"c-{uuid.uuid4().hex[:12]}",
            "name": "spring",
            "template_name": "order_update",
            "language": "en_US",
            "audience_key": key,
            "created_at": _iso(NOW - 60),
            "start_at": _iso(NOW - 1),
            "rate": 1000.0,
            "audience_etag": etag,
        }
        campaign = Campaign(**{**fields, **overrides})
        self.store.create(campaign)
        return campaign

    def tick(self, body: str) -> dict[str, Any]:
        """One tick through the handler, as the tick queue's event source delivers it."""
        import planner

        record = {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "r",
            "body": body,
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ticks",
            "awsRegion": "us-east-1",
        }
        response: dict[str, Any] = planner.lambda_handler({"Records": [record]}, LambdaContext("PlannerFunction"))
        return response

    def run(self, campaign_id: str, limit: int = 50) -> int:
        """Tick the campaign, then each tick the planner queues, until it queues none; return the passes run."""
        self.tick(tick(campaign_id))
        runs = 1
        while self.ticks and runs < limit:
            body = self.ticks.pop(0)["MessageBody"]
            self.tick(body)
            runs += 1
        return runs

    def queued(self) -> list[tuple[dict[str, Any], int]]:
        """Every campaign message the planner queued, decoded, with its delay, in order."""
        return [(json.loads(e["MessageBody"]), e["DelaySeconds"]) for b in self.batches for e in b["Entries"]]

    def row_log(self, campaign_id: str) -> list[dict[str, Any]]:
        s3 = self.stack.resources.client("s3")
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"state/{campaign_id}/rows-").get("Contents", [])
        lines: list[dict[str, Any]] = []
        for item in sorted(listed, key=lambda i: i["Key"]):
            text = s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read().decode("utf-8")
            lines += [json.loads(line) for line in text.splitlines()]
        return lines

    def state_keys(self, campaign_id: str) -> list[str]:
        s3 = self.stack.resources.client("s3")
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=f"state/{campaign_id}/").get("Contents", [])
        return sorted(i["Key"] for i in listed)


@pytest.fixture
def engine(stack: Stack) -> Iterator[Engine]:
    import planner

    stack.simulator.set_templates(str(SECRET["appkey"]), str(SECRET["business_phone"]), [ORDER_UPDATE])
    clock = Clock()
    planner.reset()
    built = planner.planner()
    built.clock = clock
    res = stack.resources
    found = Engine(stack, clock, CampaignStore(res.client("dynamodb"), res.campaigns_table), res.campaign_bucket)

    def record(params: dict[str, Any], **_: Any) -> None:
        (found.batches if "Entries" in params else found.ticks).append(params)

    built.sqs.meta.events.register("provide-client-params.sqs.SendMessageBatch", record)
    built.sqs.meta.events.register("provide-client-params.sqs.SendMessage", record)
    yield found
    planner.reset()


MIXED = (
    "to,body.1,ref\n"
    "+86 138 0013 8000,A-1,r1\n"  # row 2: valid
    "8613800138001,A-2,r2\n"  # 3: valid
    "0086 138-0013-8000,A-3,r3\n"  # 4: a duplicate of row 2, written otherwise
    "12345,A-4,r4\n"  # 5: not a number
    "8613800138002,,r5\n"  # 6: empty body.1
    '8613800138003,"A-6\n'  # 7: an unterminated quote (the line is invalid, the next still read)
    "8613800138004,A-7,r7,extra\n"  # 8: a field too many
    "+8613800138001,A-8,r8\n"  # 9: a duplicate of row 3
    "8613800138005,A-9,r9\n"  # 10: valid
)


def test_a_pass_queues_each_valid_row_once_in_its_envelope_and_logs_every_row(engine: Engine) -> None:
    campaign = engine.campaign(MIXED)
    engine.run(campaign.campaign_id)

    queued = engine.queued()
    tags = [unwrap(body) for body, _ in queued]
    assert [(tag.row, tag.ref) for tag, _ in tags if tag] == [(2, "r1"), (3, "r2"), (10, "r9")]
    cid = campaign.campaign_id
    assert [m["idempotency_key"] for _, m in tags] == [
        f"campaign:{cid}:8613800138000",
        f"campaign:{cid}:8613800138001",
        f"campaign:{cid}:8613800138005",
    ]
    first = tags[0][1]
    assert first["to"] == "8613800138000"
    assert first["template"] == {
        "name": "order_update",
        "language": {"code": "en_US", "policy": "deterministic"},
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-1"}]}],
    }
    assert [delay for _, delay in queued] == [0, 0, 0]  # 1000/s: the whole pass fits in its first second
    received = engine.stack.peek(engine.stack.resources.send_queue_url)
    assert sorted(json.loads(m["Body"])["nxwa_campaign"]["row"] for m in received) == [2, 3, 10]

    stored = engine.store.get(cid)
    assert stored.checkpoint.planned
    assert stored.status is Status.RUNNING  # the sender completes it when the queued rows settle
    counts = {k: v for k, v in stored.counts.items() if v}
    assert counts == {"rows": 9, "queued": 3, "invalid": 4, "duplicate": 2}

    log = {line["row"]: line for line in engine.row_log(cid)}
    assert sorted(log) == [2, 3, 4, 5, 6, 7, 8, 9, 10]
    assert log[4] == {
        "row": 4,
        "ref": "r3",
        "to": "8613800138000",
        "state": "duplicate",
        "reason": "the same number as row 2",
    }
    assert log[9]["reason"] == "the same number as row 3"
    assert log[5]["state"] == log[6]["state"] == log[7]["state"] == log[8]["state"] == "invalid"
    assert log[5]["to"] == "12345" and "to" in log[5]["reason"]
    assert "body.1" in log[6]["reason"]
    assert "quote" in log[7]["reason"]
    assert "3 fields" in log[8]["reason"] or "4 fields" in log[8]["reason"]
    assert log[2] == {"row": 2, "ref": "r1", "to": "8613800138000", "state": "valid", "reason": None}


def test_the_pass_spreads_its_messages_over_its_window_at_the_campaigns_rate(engine: Engine) -> None:
    rows = "".join(f"86138001390{n:02d},A-{n}\n" for n in range(12))
    campaign = engine.campaign("to,body.1\n" + rows, rate=0.1)  # 6 rows a pass (60 s), one each 10 s

    import planner

    first = planner.planner().run(tick(campaign.campaign_id))
    assert [delay for _, delay in engine.queued()] == [0, 10, 20, 30, 40, 50]
    assert first.next_tick == 60
    [next_tick] = engine.ticks
    assert next_tick["DelaySeconds"] == 60
    assert json.loads(next_tick["MessageBody"]) == {"campaign_id": campaign.campaign_id, "tick": 1}


def test_many_passes_resume_where_each_stopped_and_count_every_row_once(engine: Engine) -> None:
    numbers = [f"86138001{n:05d}" for n in range(40)]
    spelled = [f"+{n[:2]} {n[2:]}" if i % 2 else f"00{n}" for i, n in enumerate(numbers)]
    lines = [f"{to},X{i}" for i, to in enumerate(spelled)] + [f"{numbers[3]},again", "bad,row"]
    campaign = engine.campaign("to,body.1\r\n" + "\r\n".join(lines) + "\r\n", rate=0.1)

    passes = engine.run(campaign.campaign_id)

    assert passes == 7  # 40 valid rows at 6 a pass: the 7th queues 4 and reads the two trailing rows
    keys = [unwrap(body)[1]["idempotency_key"] for body, _ in engine.queued()]
    assert keys == [f"campaign:{campaign.campaign_id}:{n}" for n in numbers]
    stored = engine.store.get(campaign.campaign_id)
    assert stored.checkpoint.planned and stored.checkpoint.tick == passes
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 42, "queued": 40, "duplicate": 1, "invalid": 1}
    assert [line["row"] for line in engine.row_log(campaign.campaign_id)] == list(range(2, 44))
    assert engine.state_keys(campaign.campaign_id)[-1] == f"state/{campaign.campaign_id}/seen-{passes - 1}.bin"
    assert sum(k.endswith(".bin") for k in engine.state_keys(campaign.campaign_id)) == 1  # older snapshots deleted


def test_a_planner_killed_after_queueing_redoes_only_that_pass(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner

    numbers = [f"86138002{n:05d}" for n in range(15)]
    campaign = engine.campaign("to,body.1\n" + "".join(f"{n},x\n" for n in numbers), rate=0.1)
    engine.tick(tick(campaign.campaign_id))  # pass 0: rows 0-5
    store = planner.planner().store
    advance = store.advance

    def killed(*_: Any, **__: Any) -> Any:
        raise RuntimeError("killed")

    monkeypatch.setattr(store, "advance", killed)
    body = engine.ticks.pop(0)["MessageBody"]
    assert len(engine.tick(body)["batchItemFailures"]) == 1  # Lambda reports the tick failed: SQS hands it over again
    assert engine.store.get(campaign.campaign_id).checkpoint.tick == 1  # the killed pass moved nothing
    monkeypatch.setattr(store, "advance", advance)
    engine.tick(body)  # SQS hands the same tick over again
    while engine.ticks:
        engine.tick(engine.ticks.pop(0)["MessageBody"])

    keys = [unwrap(b)[1]["idempotency_key"].rsplit(":", 1)[1] for b, _ in engine.queued()]
    assert keys == numbers[:6] + numbers[6:12] + numbers[6:12] + numbers[12:]
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 15, "queued": 15}


def test_a_killed_pass_is_reported_failed_to_the_event_source(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner

    campaign = engine.campaign("to,body.1\n8613800138000,x\n")
    monkeypatch.setattr(planner.planner().store, "advance", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("x")))
    response = engine.tick(tick(campaign.campaign_id))
    assert len(response["batchItemFailures"]) == 1
    assert engine.store.get(campaign.campaign_id).counts["rows"] == 0


def test_a_duplicate_pass_counts_nothing(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner

    campaign = engine.campaign("to,body.1\n8613800138000,x\n8613800138001,y\n", rate=0.01)  # 1 row a pass
    engine.tick(tick(campaign.campaign_id))
    before = engine.store.get(campaign.campaign_id)
    assert before.counts["queued"] == 1
    # The same pass again, as a twin that read the campaign before the first advanced (a duplicate delivery).
    monkeypatch.setattr(planner.planner().store, "get", lambda *_a, **_k: campaign_as_read(engine, campaign))
    result = planner.planner().run(tick(campaign.campaign_id, 0))
    assert result.outcome == "duplicate pass: the checkpoint moved"
    monkeypatch.undo()
    after = engine.store.get(campaign.campaign_id)
    assert after.counts == before.counts
    assert after.checkpoint == before.checkpoint
    # A numbered tick for the pass already taken is dropped before reading anything.
    assert planner.planner().run(tick(campaign.campaign_id, 0)).outcome == "stale tick"


def campaign_as_read(engine: Engine, campaign: Campaign) -> Campaign:
    """The running campaign as a twin pass read it, before the first pass moved the checkpoint."""
    return replace(engine.store.get(campaign.campaign_id), checkpoint=campaign.checkpoint, counts=campaign.counts)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("delete", "the audience file was deleted"),
        ("replace", "the audience file was replaced (its ETag changed) after the campaign was created"),
    ],
)
def test_a_deleted_or_replaced_file_pauses_the_campaign_with_the_reason(
    engine: Engine, change: str, reason: str
) -> None:
    numbers = "".join(f"86138003{n:05d},x\n" for n in range(10))
    campaign = engine.campaign("to,body.1\n" + numbers, rate=0.1)
    engine.tick(tick(campaign.campaign_id))
    s3 = engine.stack.resources.client("s3")
    if change == "delete":
        s3.delete_object(Bucket=engine.bucket, Key=campaign.audience_key)
    else:
        engine.upload("to,body.1\n8613800138000,other\n" + numbers, campaign.audience_key)
    engine.tick(engine.ticks.pop(0)["MessageBody"])

    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.PAUSED
    assert stored.status_reason == reason
    assert stored.counts["queued"] == 6  # the first pass's rows only
    assert not engine.ticks  # resume queues the next tick


def test_a_future_start_waits_then_starts(engine: Engine) -> None:
    campaign = engine.campaign("to,body.1\n8613800138000,x\n", start_at=_iso(NOW + 3600))
    engine.tick(tick(campaign.campaign_id))
    assert engine.store.get(campaign.campaign_id).status is Status.SCHEDULED
    assert [t["DelaySeconds"] for t in engine.ticks] == [900]  # SQS's longest delay, then it looks again
    assert not engine.batches

    engine.clock.now = NOW + 3000
    engine.tick(engine.ticks.pop(0)["MessageBody"])
    assert [t["DelaySeconds"] for t in engine.ticks] == [600]

    engine.clock.now = NOW + 3600
    engine.tick(engine.ticks.pop(0)["MessageBody"])
    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.RUNNING
    assert stored.started_at is not None
    assert len(engine.queued()) == 1


def test_rows_left_at_expiry_end_expired_and_are_never_queued(engine: Engine) -> None:
    numbers = [f"86138004{n:05d}" for n in range(9)]
    lines = "".join(f"{n},x\n" for n in numbers) + f"{numbers[0]},again\nnope,x\n"
    campaign = engine.campaign("to,body.1\n" + lines, rate=0.1, expires_at=_iso(NOW + 30))
    engine.tick(tick(campaign.campaign_id))  # 6 rows queued
    engine.clock.now = NOW + 60  # expired before the next pass
    engine.tick(engine.ticks.pop(0)["MessageBody"])

    assert len(engine.queued()) == 6
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {
        "rows": 11,
        "queued": 6,
        "expired": 3,
        "duplicate": 1,
        "invalid": 1,
    }
    log = engine.row_log(campaign.campaign_id)
    assert [line["state"] for line in log[6:]] == ["expired"] * 3 + ["duplicate", "invalid"]
    assert log[6]["reason"] == "not sent by expires_at"
    assert stored.checkpoint.planned and stored.status is Status.RUNNING  # the 6 queued rows are not final yet


def test_a_file_with_no_row_to_send_completes_the_campaign(engine: Engine) -> None:
    campaign = engine.campaign("to,body.1\nnot-a-number,x\n8613800138000,\n")
    engine.run(campaign.campaign_id)
    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.COMPLETED
    assert stored.finished_at is not None
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 2, "invalid": 2}
    assert not engine.batches


def test_columns_that_no_longer_fit_the_template_pause_with_the_problem(engine: Engine) -> None:
    campaign = engine.campaign("to,body.1,body.2\n8613800138000,x,y\n")
    engine.run(campaign.campaign_id)
    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.PAUSED
    assert "takes 1 body parameter" in (stored.status_reason or "")
    assert not engine.batches


def test_an_unavailable_catalogue_puts_the_pass_off(engine: Engine) -> None:
    engine.stack.simulator.clear_templates()
    campaign = engine.campaign("to,body.1\n8613800138000,x\n")
    engine.tick(tick(campaign.campaign_id))
    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.RUNNING and stored.checkpoint.tick == 0
    assert [(json.loads(t["MessageBody"]), t["DelaySeconds"]) for t in engine.ticks] == [
        ({"campaign_id": campaign.campaign_id, "tick": 0}, 60)
    ]


@pytest.mark.parametrize("status", ["pause", "cancel"])
def test_a_stopped_campaign_drops_its_tick(engine: Engine, status: str) -> None:
    campaign = engine.campaign("to,body.1\n8613800138000,x\n")
    engine.store.apply(campaign, Action(status), _iso(NOW))
    engine.tick(tick(campaign.campaign_id))
    assert not engine.batches and not engine.ticks


def test_a_jsonl_file_plans_as_a_csv_does(engine: Engine) -> None:
    rows = [{"to": f"+86 138 0013 {n:04d}", "body.1": f"J{n}", "ref": f"j{n}"} for n in range(8)]
    rows.append({"to": "8613800130001", "body.1": "again"})
    text = "\n".join(json.dumps(r) for r in rows) + "\n{not json\n"
    campaign = engine.campaign(text, key="audiences/a.jsonl", rate=0.1)
    engine.run(campaign.campaign_id)
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 10, "queued": 8, "duplicate": 1, "invalid": 1}
    assert [unwrap(b)[0].ref for b, _ in engine.queued()] == [f"j{n}" for n in range(8)]  # type: ignore[union-attr]


def test_a_tick_that_is_not_one_is_dropped(engine: Engine) -> None:
    assert engine.tick('{"campaign": "x"}') == {"batchItemFailures": []}
    assert engine.tick(tick("c-nosuchcampaign")) == {"batchItemFailures": []}


def test_the_tick_queues_event_source_drives_the_planner_end_to_end(engine: Engine) -> None:
    """The local stack's driver: the real tick queue, polled as Lambda's event source does, the handler invoked."""
    import planner
    from local_stack.emulators import Invoker, QueuePoller

    campaign = engine.campaign("to,body.1\n+86 138 0013 8000,x\n0086 138 0013 8000,y\n8613800138001,z\n")
    sqs, res = engine.stack.sqs, engine.stack.resources
    sqs.send_message(QueueUrl=res.campaign_tick_queue_url, MessageBody=tick(campaign.campaign_id))
    poller = QueuePoller(sqs, res.campaign_tick_queue_url, Invoker(planner.lambda_handler), batch_size=1)

    assert poller.poll_once(wait_seconds=1) == 1
    assert not poller.errors
    assert engine.stack.queue_depth(res.campaign_tick_queue_url) == 0  # the tick was handled and deleted
    received = engine.stack.peek(res.send_queue_url)
    assert sorted(json.loads(m["Body"])["message"]["to"] for m in received) == ["8613800138000", "8613800138001"]
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 3, "queued": 2, "duplicate": 1}


NIGHT_IN_CHINA = datetime(2026, 3, 2, 14, 0, tzinfo=UTC).timestamp()  # 22:00 in Shanghai, 14:00 in London
MORNING_IN_CHINA = datetime(2026, 3, 3, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai
QUIET = {"start": "21:00", "end": "09:00"}


def _quiet_campaign(engine: Engine) -> Campaign:
    engine.clock.now = NIGHT_IN_CHINA
    rows = [f"86138005{n:05d},cn{n}" for n in range(5)] + [f"4479111234{n:02d},uk{n}" for n in range(3)]
    return engine.campaign("to,body.1\n" + "\n".join(rows) + "\n", quiet_hours=QUIET, start_at=_iso(NIGHT_IN_CHINA))


def test_rows_inside_the_quiet_hours_are_held_and_queued_when_the_window_ends(engine: Engine) -> None:
    campaign = _quiet_campaign(engine)
    sent_at: dict[str, float] = {}

    def tick_at(now: float, body: str) -> None:
        engine.clock.now = now
        before = len(engine.queued())
        engine.tick(body)
        for message, delay in engine.queued()[before:]:
            sent_at[unwrap(message)[1]["to"]] = now + delay

    tick_at(NIGHT_IN_CHINA, tick(campaign.campaign_id))
    assert sorted(sent_at) == [f"4479111234{n:02d}" for n in range(3)]  # London is at 14:00: sent now
    stored = engine.store.get(campaign.campaign_id)
    assert not stored.checkpoint.planned  # the file is read, but five rows are held
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 8, "queued": 3}
    [held] = [k for k in engine.state_keys(campaign.campaign_id) if "/held-" in k]
    assert held.endswith(f"held-{int(MORNING_IN_CHINA):011d}-00000000.jsonl")
    assert [t["DelaySeconds"] for t in engine.ticks] == [900]  # no spinning: one tick every 15 minutes at most

    tick_at(MORNING_IN_CHINA - 60, engine.ticks.pop(0)["MessageBody"])  # a minute early: nothing released
    assert len(sent_at) == 3
    assert [t["DelaySeconds"] for t in engine.ticks] == [60]
    tick_at(MORNING_IN_CHINA, engine.ticks.pop(0)["MessageBody"])

    assert sorted(sent_at) == sorted([f"86138005{n:05d}" for n in range(5)] + [f"4479111234{n:02d}" for n in range(3)])
    assert all(at >= MORNING_IN_CHINA for to, at in sent_at.items() if to.startswith("86"))  # never inside
    stored = engine.store.get(campaign.campaign_id)
    assert stored.checkpoint.planned
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 8, "queued": 8}
    log = engine.row_log(campaign.campaign_id)
    assert [line["row"] for line in log] == list(range(2, 10))  # each row once, in file order (the report merges)
    assert {line["state"] for line in log} == {"valid"}
    assert not engine.ticks


def test_a_killed_release_is_redone_without_counting_twice(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import planner

    campaign = _quiet_campaign(engine)
    engine.tick(tick(campaign.campaign_id))
    engine.ticks.clear()
    engine.clock.now = MORNING_IN_CHINA
    store = planner.planner().store
    advance = store.advance
    monkeypatch.setattr(store, "advance", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    assert len(engine.tick(tick(campaign.campaign_id, 1))["batchItemFailures"]) == 1
    monkeypatch.setattr(store, "advance", advance)
    engine.tick(tick(campaign.campaign_id, 1))  # SQS hands the tick over again
    engine.clock.now += 5
    while engine.ticks:
        engine.tick(engine.ticks.pop(0)["MessageBody"])

    keys = [unwrap(b)[1]["idempotency_key"] for b, _ in engine.queued()]
    assert len(keys) == 3 + 5 + 5 and len(set(keys)) == 8  # the killed try's five again, with the same keys
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 8, "queued": 8}
    assert stored.checkpoint.planned
    assert not [k for k in engine.state_keys(campaign.campaign_id) if "/held-" in k or "/released-" in k]


def test_held_rows_past_expiry_go_to_the_sender_which_ends_them_expired(engine: Engine) -> None:
    """Held rows were logged when read; past ``expires_at`` they are queued at once, and the sender (which checks
    the campaign's expiry before each send) settles them ``expired`` with their outcome, as any row that is late."""
    engine.clock.now = NIGHT_IN_CHINA
    rows = "".join(f"86138006{n:05d},x\n" for n in range(4)) + "8613800600000,dup\n"
    campaign = engine.campaign(
        "to,body.1\n" + rows, quiet_hours=QUIET, start_at=_iso(NIGHT_IN_CHINA), expires_at=_iso(NIGHT_IN_CHINA + 3600)
    )
    engine.tick(tick(campaign.campaign_id))
    assert not engine.batches
    engine.clock.now = NIGHT_IN_CHINA + 3600
    engine.tick(engine.ticks.pop(0)["MessageBody"])

    assert len(engine.queued()) == 4
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 5, "queued": 4, "duplicate": 1}
    assert stored.checkpoint.planned and stored.status is Status.RUNNING
    assert [line["state"] for line in engine.row_log(campaign.campaign_id)] == ["valid"] * 4 + ["duplicate"]


def test_the_planners_logs_never_hold_a_number(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    import planner

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(planner.logger.registered_formatter)
    planner.logger.addHandler(handler)
    try:
        campaign = engine.campaign(MIXED, rate=1 / 30)  # two rows a pass
        engine.tick(tick(campaign.campaign_id))
        engine.upload("to,body.1\n8613800138009,x\n", campaign.audience_key)  # replaced: the pause is logged
        engine.tick(engine.ticks.pop(0)["MessageBody"])
    finally:
        planner.logger.removeHandler(handler)
    assert engine.store.get(campaign.campaign_id).status is Status.PAUSED
    logged = buffer.getvalue() + capsys.readouterr().out
    assert "pass done" in logged and "campaign paused by the planner" in logged
    for digits in ("13800138000", "13800138001", "13800138009"):
        assert digits not in logged


def test_a_campaign_resumed_before_its_start_still_waits_for_it(engine: Engine) -> None:
    campaign = engine.campaign("to,body.1\n8613800138000,x\n", start_at=_iso(NOW + 600))
    paused = engine.store.apply(campaign, Action.PAUSE, _iso(NOW))
    resumed = engine.store.apply(paused, Action.RESUME, _iso(NOW))
    assert resumed.status is Status.RUNNING
    engine.tick(tick(campaign.campaign_id))  # the resume's tick
    assert not engine.batches
    assert [t["DelaySeconds"] for t in engine.ticks] == [600]
    engine.clock.now = NOW + 600
    engine.tick(engine.ticks.pop(0)["MessageBody"])
    assert len(engine.queued()) == 1


@pytest.mark.parametrize("kill_after", [0, 1, 3])
def test_a_planner_killed_at_any_batch_ends_with_every_row_queued_and_counted_once(
    engine: Engine, kill_after: int
) -> None:
    """The second pass killed after ``kill_after`` of its four SendMessageBatch calls went out, then run on."""
    import planner

    numbers = [f"86138007{n:05d}" for n in range(100)]
    lines = [f"{n},x" for n in numbers] + [f"{numbers[5]},dup", "junk,x"]
    campaign = engine.campaign("to,body.1\n" + "\n".join(lines) + "\n", rate=1)  # 60 rows a pass
    engine.tick(tick(campaign.campaign_id))
    client = planner.planner().sqs
    calls = {"n": 0}

    def kill(**_: Any) -> None:
        calls["n"] += 1
        if calls["n"] > kill_after:
            raise RuntimeError("killed")

    client.meta.events.register("provide-client-params.sqs.SendMessageBatch", kill)
    body = engine.ticks.pop(0)["MessageBody"]
    assert len(engine.tick(body)["batchItemFailures"]) == 1
    client.meta.events.unregister("provide-client-params.sqs.SendMessageBatch", kill)
    engine.tick(body)  # handed over again
    while engine.ticks:
        engine.tick(engine.ticks.pop(0)["MessageBody"])

    keys = [unwrap(b)[1]["idempotency_key"].rsplit(":", 1)[1] for b, _ in engine.queued()]
    assert sorted(set(keys)) == sorted(numbers)
    # Only the killed try's batches come twice (the recorder also saw the call it died in, before it went out).
    assert len(keys) - len(set(keys)) == 10 * (kill_after + 1)
    stored = engine.store.get(campaign.campaign_id)
    assert {k: v for k, v in stored.counts.items() if v} == {"rows": 102, "queued": 100, "duplicate": 1, "invalid": 1}
    assert stored.checkpoint.planned


def test_a_twin_pass_that_finishes_second_leaves_the_state_objects_alone(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import planner

    campaign = engine.campaign("to,body.1\n8613800138000,x\n8613800138001,y\n", rate=0.01)  # 1 row a pass
    engine.tick(tick(campaign.campaign_id))
    store = planner.planner().store
    reads = iter([campaign_as_read(engine, campaign)])
    real_get = store.get
    monkeypatch.setattr(store, "get", lambda *a, **k: next(reads, None) or real_get(*a, **k))
    puts: list[str] = []
    s3 = planner.planner().s3
    s3.meta.events.register("provide-client-params.s3.PutObject", lambda params, **_: puts.append(params["Key"]))

    result = planner.planner().run(tick(campaign.campaign_id, 0))

    assert result.outcome == "duplicate pass: the checkpoint moved"
    assert puts == []  # it saw the checkpoint moved before writing anything
    assert engine.store.get(campaign.campaign_id).counts["queued"] == 1


def test_a_cancelled_campaigns_unread_rows_end_cancelled_and_none_is_queued(engine: Engine) -> None:
    numbers = [f"86138005{n:05d}" for n in range(9)]
    lines = "".join(f"{n},x\n" for n in numbers) + f"{numbers[0]},again\nnope,x\n"
    campaign = engine.campaign("to,body.1\n" + lines, rate=0.1)
    engine.tick(tick(campaign.campaign_id))  # 6 rows queued (a 60 s window at 0.1/s)
    engine.ticks.clear()  # the pass's next tick is still due when a person cancels
    engine.store.apply(engine.store.get(campaign.campaign_id), Action.CANCEL, _iso(NOW + 1))
    engine.run(campaign.campaign_id)  # the cancel's tick: the rest of the file is read and ended

    assert len(engine.queued()) == 6
    stored = engine.store.get(campaign.campaign_id)
    assert stored.status is Status.CANCELLED and stored.checkpoint.planned
    assert {k: v for k, v in stored.counts.items() if v} == {
        "rows": 11,
        "queued": 6,
        "cancelled": 3,
        "duplicate": 1,
        "invalid": 1,
    }
    log = engine.row_log(campaign.campaign_id)
    assert [line["state"] for line in log[6:]] == ["cancelled"] * 3 + ["duplicate", "invalid"]
    assert log[6]["reason"] == "the campaign was cancelled"
    assert not engine.ticks
