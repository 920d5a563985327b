"""Campaign-file mode (``make soak MODE=campaign-file N=10000 RATE=10``): one campaign of a generated audience file
through the real API, planner, sender, webhook and publisher (``make run``'s local stack, the functions each in
processes of their own: :mod:`soak.containers`), under faults. docs/soak.md#campaign-file-mode.

The run:

1. generates the file (:mod:`soak.audience_gen`: valid rows in two countries, numbers again in other spellings,
   broken lines of every kind, undeliverable recipients) and measures the API alone: :data:`API_MESSAGES` sends
   through ``POST /messages`` to the campaign's business number, one every :data:`API_EVERY_S`;
2. uploads the file through ``POST /audiences`` and creates the campaign at ``rate``, with quiet hours that are open
   in China now and close :data:`QUIET_MINUTES` later, a minute more when the clock is late in its minute
   (:data:`MIN_QUIET_OPEN_S`; the window is the minutes on China's wall clock, and the UK's is 8 hours behind, outside
   it), so the Chinese rows are held and the British ones go;
3. while it runs: NXCloud answers a share of sends 503 or 429 (:data:`FAULTS`: put back, sent later); the planner
   runs in a process killed (SIGKILL, as a Lambda timeout) at random points of :data:`PLANNER_KILL_SHARE` of its
   passes, and surely on its second; the campaign is paused once a fifth of its sends are done and resumed after
   :data:`PAUSE_HOLD_S`; API messages keep coming, and their latency is measured again;
4. once completed and every callback is in (files of at most :data:`CALLBACK_ROWS` rows get callbacks): the report
   is fetched and compared with the truth.

Ledger (:class:`CampaignFileLedger`): the guarantees must be 0 (rows lost, recipients sent twice, report lines unlike
the truth, counts unlike the report, sends inside quiet hours, sends more than 5 s into the pause), and the figures
(drain time against the ideal, the API's p99 during the campaign against alone, the planner's peak memory) are
printed with their goals.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TextIO
from zoneinfo import ZoneInfo

from waops.campaigns import ENDED, Api, fetch_report, upload
from waops.targets import Targets

from local_stack.emulators import QueuePoller
from local_stack.runner import Runner
from local_stack.template import function_environment, function_setting
from nxcloud_wa.campaigns import FINAL_STATES, final_totals
from soak.audience_gen import CHINA, ZONES, Audience, Row, country_of, generate
from soak.containers import Slot, SlotPool
from soak.ledger import nearest_rank

TEMPLATE: Final = {"name": "order_update", "language": {"code": "en_US"}}
QUIET_MINUTES: Final = 2
MIN_QUIET_OPEN_S: Final = 30
"""The window stays open at least this long after the campaign is created (a minute more when the clock is late in
its minute), so the planner's first passes meet it and hold rows; with a 1-minute window created at hh:mm:55 they
would not."""
PAUSE_AT: Final = 0.2
"""The pause comes once this share of the rows to send are sent."""
PAUSE_HOLD_S: Final = 8.0
PAUSE_GRACE_S: Final = 5.0
"""The contract: a pause stops new sends within 5 seconds. A send NXCloud received later in the pause is counted."""
HANDLERS: Final = {"PlannerFunction": "planner", "SenderFunction": "app", "WebhookFunction": "webhook"}
PLANNER_KILL_SHARE: Final = 0.15
PLANNER_CHAOS_S: Final = (0.05, 3.0)
FAULTS: Final = (
    {"kind": "http_status", "status": 503, "probability": 0.03, "template": TEMPLATE["name"]},
    {"kind": "http_status", "status": 429, "retry_after": "1", "probability": 0.02, "template": TEMPLATE["name"]},
)
"""NXCloud's faults, on the campaign's template only: the API's messages measure the wait for a slot, not a retry."""
API_TEMPLATE: Final = {"name": "demo_flaky", "language": {"code": "en_US"}}
"""The API's messages' template: another one of the account's catalogue, so the faults above miss it (the local
stack's one fault of this template, a 500 on its first send, is cleared before the run)."""
API_MESSAGES: Final = 30
API_EVERY_S: Final = 0.5
API_CONCURRENCY: Final = 2
"""The API's concurrent executions, each a process of its own as a Lambda execution environment is: the API's
messages and the operator's calls (the campaign's status, pause, resume) do not wait for the queue's batches."""
QUEUE_CONCURRENCY: Final = 4
"""The send queue's executions (Lambda's poller runs several): one execution paces nothing faster than its own
batches, and against moto each batch of a paced queue holds one or two messages."""
WEBHOOK_CONCURRENCY: Final = 3
"""The webhook's executions: NXCloud's callbacks (one POST per message here) keep pace with the sends."""
API_RECIPIENT_PREFIX: Final = "4478"
"""The API's own recipients (the campaign's are 86138… and 4479…)."""
SLOT_MS: Final = 1000 / float(function_environment("SenderFunction")["MESSAGES_PER_SECOND"])
"""One slot of the business number's rate (MessagesPerSecond's default): an API message beside a campaign at its
default share may wait that much more for its turn, not more."""
DRAIN_GOAL: Final = 1.10
API_P99_GOAL: Final = 1.2
CALLBACK_ROWS: Final = 500
"""Files up to this size get NXCloud's callbacks and the report's delivery column is checked; bigger ones get none
(the simulator posts nothing) and the column must stay empty. The local webhook stores about 3 callbacks a second on
this machine while the sends go on (moto answers every call in one process), so a 10,000-row run would spend most
of its time waiting for them."""
CALLBACK_WAIT_S: Final = 120.0
CALLBACK_TIMEOUT_S: Final = 60.0
"""How long the simulator waits for the webhook's answer (its default, 5 s, is for the lifecycle soak's faults): the
local webhook answers late when the machine is busy, and a callback given up for that would be moto's slowness
counted as the stack's loss."""
PROGRESS_EVERY_S: Final = 15.0


@dataclass
class CampaignFileLedger:
    """One campaign-file run: its guarantees (each 0 when kept) and its figures."""

    rows: int
    rate: float
    seed: int
    expires_in: float = 0.0
    """Seconds from the campaign's creation to its ``expires_at`` (0: none). A file bigger than the local stack can
    send in a run's time still goes through the whole engine: the rows not sent by then end ``expired``."""
    campaign_id: str = ""
    status: str = "not created"
    report_lines: int = 0
    rows_lost: int = 0
    """Rows without a report line in a final state."""
    sent_twice: int = 0
    """Recipients NXCloud accepted more than one campaign send for."""
    unlike_truth: int = 0
    """Report lines whose state, message_id or delivery is not what the file and NXCloud say."""
    unlike_truth_examples: list[str] = field(default_factory=list)
    counts_unlike_report: dict[str, list[int]] = field(default_factory=dict)
    """Counts whose GET /campaigns/{id} figure differs from the report's tally: name -> [counts, report]."""
    quiet_sends: int = 0
    """Campaign sends NXCloud received while the recipient's wall clock was inside the quiet hours."""
    held_rows: int = 0
    """Rows to send whose recipient's zone (China's) was inside the quiet hours when the campaign started: held for
    the window's end (or, in a campaign that expires first, expired)."""
    paused_sends: int = 0
    """Campaign sends NXCloud received more than 5 s into the pause."""
    sent_in_grace: int = 0
    planner_invocations: int = 0
    planner_kills: int = 0
    planner_peak_mb: float = 0.0
    planner_cpu_s: float = 0.0
    faults_applied: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    drain_s: float = math.nan
    ideal_s: float = math.nan
    api_alone_ms: list[float] = field(default_factory=list)
    api_during_ms: list[float] = field(default_factory=list)
    api_failed: list[str] = field(default_factory=list)
    """The API messages that were not accepted: their status and error."""
    api_wait_alone_ms: list[float] = field(default_factory=list)
    """Each API message's wait for its number's slot (the function's ``rate_wait_ms``), alone and during."""
    api_wait_during_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    error: str = ""

    def failures(self) -> list[str]:
        """The guarantees that failed (the figures have goals, shown, not failed on: a loaded machine moves them)."""
        checks = {
            "completed": self.status == "completed",
            "rows lost 0": self.rows_lost == 0 and self.report_lines == self.rows,
            "recipients sent twice 0": self.sent_twice == 0,
            "report = truth": self.unlike_truth == 0,
            "counts = report": not self.counts_unlike_report,
            "sends inside quiet hours 0": self.quiet_sends == 0,
            "sends >5 s into the pause 0": self.paused_sends == 0,
            "planner killed": self.planner_kills > 0,
            "rows held for quiet hours": self.held_rows > 0,
            "API answered": not self.api_failed,
        }
        return [name for name, ok in checks.items() if not ok] + ([self.error] if self.error else [])

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {
            "failures": self.failures(),
            "api_alone_p99_ms": p99(self.api_alone_ms),
            "api_during_p99_ms": p99(self.api_during_ms),
        }


class _ApiWaits:
    """The API's sends (outcome ``sent`` without an SQS message id) and each one's wait for its number's slot
    (``rate_wait_ms``), from the outcome lines the API's containers logged, as an operator reads them in CloudWatch."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waits: list[tuple[float, float]] = []

    def __call__(self, _event: Any, _response: Any, outcomes: list[dict[str, Any]], _killed: str | None) -> None:
        with self._lock:
            self.waits += [
                (time.time(), float(line.get("rate_wait_ms") or 0.0))
                for line in outcomes
                if line.get("outcome") == "sent" and line.get("sqs_message_id") is None
            ]

    def between(self, start: float, end: float) -> list[float]:
        with self._lock:
            return [wait for at, wait in self.waits if start <= at < end]


def p99(values: list[float]) -> float:
    """The 99th percentile (nearest rank): with 30 samples, the largest."""
    return nearest_rank(values, 0.99)


def run(ledger: CampaignFileLedger, progress: TextIO | None = sys.stderr) -> CampaignFileLedger:
    """One campaign-file run on a fresh local stack, filling ``ledger`` (as far as it got when the run breaks)."""
    started, saved = time.monotonic(), dict(os.environ)
    try:
        with Runner() as runner:
            soak = _CampaignSoak(runner, generate(ledger.rows, ledger.seed), ledger, progress)
            try:
                soak.run()
            finally:
                soak.close()
    finally:
        ledger.wall_s = time.monotonic() - started
        os.environ.clear()  # the stack pointed this process's AWS clients at itself; it is gone now
        os.environ.update(saved)
    return ledger


class _CampaignSoak:
    def __init__(self, runner: Runner, audience: Audience, ledger: CampaignFileLedger, progress: TextIO | None) -> None:
        assert runner.api is not None and runner.ticks is not None
        self.runner, self.audience, self.ledger, self.progress = runner, audience, ledger, progress
        self.sim = runner.stack.simulator
        self.api = Api(Targets(api_url=runner.api.url, api_key=runner.api.api_key))
        self.api_waits = _ApiWaits()
        self.planner = self._slot("planner", "PlannerFunction", kill_probability=PLANNER_KILL_SHARE)
        self.api_slots = [self._slot(f"api{n}", "SenderFunction", self.api_waits) for n in range(API_CONCURRENCY)]
        self.webhook_slots = [self._slot(f"webhook{n}", "WebhookFunction") for n in range(WEBHOOK_CONCURRENCY)]
        self.sender_slots = [self._slot(f"sqs{n}", "SenderFunction") for n in range(QUEUE_CONCURRENCY)]
        assert runner.poller is not None
        runner.poller.stop()  # the queue's executions are the processes below
        sqs = runner.stack.res.client("sqs")
        self.pollers = [
            QueuePoller(
                sqs,
                runner.stack.res.send_queue_url,
                slot,  # type: ignore[arg-type] # any callable(event) -> response
                batch_size=runner.stack.queue.batch_size,
                retry_delay=runner.retry_delay,
            ).start()
            for slot in self.sender_slots
        ]
        runner.ticks.invoke = self._plan  # type: ignore[assignment]
        runner.api.invoke = SlotPool(self.api_slots)  # type: ignore[assignment]
        runner.api.webhook = SlotPool(self.webhook_slots)  # type: ignore[assignment]
        self._api_serial = 0
        self.callbacks = ledger.rows <= CALLBACK_ROWS
        self.created_at = self.paused_at = self.resumed_at = math.nan
        self.window: tuple[str, str] = ("", "")
        self.quiet_end = math.nan

    def _slot(self, name: str, function: str, on_result: Any = None, *, kill_probability: float = 0.0) -> Slot:
        """One execution of ``function`` in its own process (:class:`soak.containers.Slot`), this stack's settings."""
        return Slot(
            dict(os.environ),
            name,
            function_timeout=float(function_setting(function, "Timeout")),
            kill_probability=kill_probability,
            seed=self.ledger.seed,
            on_result=on_result or (lambda *_: None),
            handler=HANDLERS[function],
            chaos_deadline=PLANNER_CHAOS_S,
            sure_kill_at=2 if kill_probability else 0,
        )

    def _plan(self, event: dict[str, Any]) -> Any:
        """The tick queue's invocation of the planner, in its killable container; its peak memory read after."""
        try:
            return self.planner(event)
        finally:
            if self.planner.container is not None:
                peak = _peak_rss_mb(self.planner.container.process.pid)
                self.ledger.planner_peak_mb = max(self.ledger.planner_peak_mb, peak)

    def close(self) -> None:
        self.ledger.planner_invocations = self.planner.invocations
        self.ledger.planner_kills = sum(self.planner.kills.values())
        self.ledger.planner_cpu_s = self.planner.cpu_s
        self.planner.close()
        for poller in self.pollers:
            poller.stop()
        for slot in [*self.api_slots, *self.webhook_slots, *self.sender_slots]:
            slot.close()

    def say(self, text: str) -> None:
        if self.progress is not None:
            print(f"[campaign-file {time.strftime('%H:%M:%S')}] {text}", file=self.progress, flush=True)

    def run(self) -> None:
        waits = self.api_waits
        self._prepare_simulator()
        self._api_messages(1)  # the API's cold start is not its latency
        self.say(f"API alone: {API_MESSAGES} messages")
        alone_from = time.time()
        self.ledger.api_alone_ms = self._api_messages(API_MESSAGES)
        self.ledger.api_wait_alone_ms = waits.between(alone_from, time.time())
        for fault in FAULTS:
            self.sim.add_fault(**fault)
        campaign_id = self._create()
        self.ledger.campaign_id = campaign_id
        during: list[float] = []
        spread = max(API_EVERY_S, self._expected_s() / API_MESSAGES)  # over the whole campaign
        api = threading.Thread(target=lambda: during.extend(self._api_messages(API_MESSAGES, spread)), daemon=True)
        api.start()
        self._pause_and_resume()
        final = self._until_ended()
        api.join(timeout=spread * API_MESSAGES + 120)
        self.ledger.api_during_ms = during
        self.ledger.api_wait_during_ms = waits.between(self.created_at, time.time())
        self.ledger.faults_applied = sum(f.applied for f in self.sim.faults)
        self.sim.clear_faults()
        if self.callbacks:
            self.say("waiting for the callbacks")
            self.runner.wait_for_callbacks(timeout=CALLBACK_WAIT_S)
        self.ledger.status = str(final["status"])
        self.ledger.counts = dict(self._read()["counts"])
        report = fetch_report(self.api, campaign_id, timeout=600)
        self._judge(report)

    # --- setting up

    def _prepare_simulator(self) -> None:
        """No fault but the run's own (:data:`FAULTS`, added once the API was measured alone). Undeliverable
        recipients fail after ``sent``; everyone else stops at ``delivered``, and a message's callbacks come in one
        body, to keep the webhook's work per message small (:data:`CALLBACK_TIMEOUT_S`)."""
        self.sim.clear_faults()
        for row in self.audience.rows:
            if row.undeliverable:
                self.sim.add_outcome(to=row.digits, final="failed", code=131026, after_sent=True)
        self.sim.add_outcome(template=TEMPLATE["name"], final="delivered")
        self.sim.configure_callbacks(batch=1.0, timeout=CALLBACK_TIMEOUT_S)
        if not self.callbacks:
            self.sim.set_webhook_url(None)

    def _create(self) -> str:
        grant = self.api.audience("csv")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "soak.csv"
            path.write_text(self.audience.text, encoding="utf-8")
            upload(grant.body, path)
        now = datetime.now(UTC)
        china = now.astimezone(ZoneInfo(ZONES[CHINA][0]))
        start = china.replace(second=0, microsecond=0)
        end = start + timedelta(minutes=QUIET_MINUTES)
        if (end - now).total_seconds() < MIN_QUIET_OPEN_S:  # late in the minute: keep it open for the first passes
            end += timedelta(minutes=1)
        self.window = (start.strftime("%H:%M"), end.strftime("%H:%M"))
        self.quiet_end = end.timestamp()
        body = {
            "name": f"soak {self.ledger.rows} rows",
            "template": TEMPLATE,
            "audience": {"key": grant.body["key"]},
            "rate": self.ledger.rate,
            "quiet_hours": {"start": self.window[0], "end": self.window[1]},
        }
        if self.ledger.expires_in:
            body["expires_at"] = (now + timedelta(seconds=self.ledger.expires_in)).isoformat()
        self.created_at = time.time()
        answer = self.api.create(body)
        if answer.status != 201:
            raise RuntimeError(f"POST /campaigns: http {answer.status}: {answer.error}")
        self.say(f"campaign {answer.body['campaign_id']} created, quiet hours {self.window} in China")
        return str(answer.body["campaign_id"])

    # --- while it runs

    def _pause_and_resume(self) -> None:
        to_send = len(self.audience.sent())
        if self.ledger.expires_in:
            to_send = min(to_send, int(self.ledger.rate * self.ledger.expires_in / 2))
        self._until(lambda c: c["counts"]["sent"] >= PAUSE_AT * to_send or c["status"] in ENDED, "the pause point")
        self.paused_at = time.time()
        self._act("pause")
        time.sleep(PAUSE_HOLD_S)
        self.resumed_at = time.time()
        self._act("resume")

    def _until_ended(self) -> dict[str, Any]:
        return self._until(lambda campaign: campaign["status"] in ENDED, "the end")

    def _until(self, done: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60 + 4 * self.ledger.rows / self.ledger.rate
        campaign, said = self._read(), time.monotonic()
        while not done(campaign):
            if time.monotonic() - said > PROGRESS_EVERY_S:
                said = time.monotonic()
                self.say(f"{campaign['status']}: {json.dumps(campaign['counts'])}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the campaign did not reach {what}: {campaign['status']} {campaign['counts']}")
            time.sleep(0.5)
            campaign = self._read()
        return campaign

    def _expected_s(self) -> float:
        """How long the campaign should send: its rows at its rate, or until it expires."""
        sending = self.ledger.rows / self.ledger.rate
        return min(sending, self.ledger.expires_in) if self.ledger.expires_in else sending

    def _api_messages(self, count: int, every: float = API_EVERY_S) -> list[float]:
        """``count`` API sends, one every ``every`` seconds; each one's answer time in ms."""
        times = []
        for _ in range(count):
            self._api_serial += 1
            body = {
                "to": f"{API_RECIPIENT_PREFIX}{self._api_serial:08d}",
                "template": API_TEMPLATE
                | {"components": [{"type": "body", "parameters": [{"type": "text", "text": "x"}]}]},
            }
            began = time.perf_counter()
            status, answer = self.runner.post(json.dumps(body))
            times.append((time.perf_counter() - began) * 1000)
            if status not in (200, 201, 202):
                self.ledger.api_failed.append(f"http {status} {json.dumps(answer)[:200]}")
            time.sleep(every)
        return times

    def _act(self, action: str) -> None:
        answer = self.api.act(self.ledger.campaign_id, action)
        if answer.status != 200:
            raise RuntimeError(f"campaign {action}: http {answer.status}: {answer.error}")
        self.say(action)

    def _read(self) -> dict[str, Any]:
        answer = self.api.get(self.ledger.campaign_id)
        if answer.status != 200:
            raise RuntimeError(f"GET /campaigns/{self.ledger.campaign_id}: http {answer.status}: {answer.error}")
        return dict(answer.body)

    # --- judging

    def _judge(self, report: bytes) -> None:
        lines = list(csv.DictReader(io.StringIO(report.decode("utf-8"))))
        ledger = self.ledger
        ledger.report_lines = len(lines)
        by_row = {int(line["row"]): line for line in lines}
        sends = [r for r in self.sim.accepted if r.template == TEMPLATE["name"]]  # the API's have API_TEMPLATE
        accepted: dict[str, list[str]] = {}
        for record in sends:
            accepted.setdefault(str(record.to), []).append(str(record.message_id))
        ledger.sent_twice = sum(1 for ids in accepted.values() if len(ids) > 1)
        final = {state.value for state in FINAL_STATES}
        for row in self.audience.rows:
            line = by_row.get(row.line)
            if line is None or line["state"] not in final:
                ledger.rows_lost += 1
                continue
            wrong = _unlike(
                row, line, accepted.get(row.digits, []), may_expire=bool(ledger.expires_in), callbacks=self.callbacks
            )
            if wrong:
                ledger.unlike_truth += 1
                if len(ledger.unlike_truth_examples) < 5:
                    ledger.unlike_truth_examples.append(f"line {row.line}: {wrong}")
        self._judge_counts(lines)
        self._judge_clock(sends)

    def _judge_counts(self, lines: list[dict[str, str]]) -> None:
        """The counts against the report's tally: by final state as the report shows them (the project's rule,
        :func:`nxcloud_wa.campaigns.final_totals`), the rows, and the deliveries."""
        states = Counter(line["state"] for line in lines)
        deliveries = Counter(line["delivery"] for line in lines if line["delivery"])
        counts = self.ledger.counts
        shown = final_totals(counts) | {name: counts.get(name, -1) for name in ("rows", "failed", "delivered")}
        tally = {name: states.get(name, 0) for name in final_totals(counts)}
        tally |= {
            "rows": len(lines),
            "failed": deliveries.get("failed", 0),
            "delivered": deliveries.get("delivered", 0),
        }
        for name, value in tally.items():
            if shown[name] != value:
                self.ledger.counts_unlike_report[name] = [shown[name], value]

    def _judge_clock(self, sends: Iterable[Any]) -> None:
        """Quiet hours, the pause, the drain time."""
        start, end = (datetime.strptime(t, "%H:%M").time() for t in self.window)
        ledger = self.ledger
        to_send = self.audience.sent()
        ledger.held_rows = sum(1 for row in to_send if row.country == CHINA)
        times = []
        for record in sends:
            at = record.received_at
            times.append(at)
            for zone in ZONES[country_of(str(record.to))]:
                local = datetime.fromtimestamp(at, ZoneInfo(zone)).time()
                if _inside(local, start, end):
                    ledger.quiet_sends += 1
            if self.paused_at + PAUSE_GRACE_S < at < self.resumed_at:
                ledger.paused_sends += 1
            elif self.paused_at <= at < self.resumed_at:
                ledger.sent_in_grace += 1
        if times and not ledger.expires_in:  # an expired campaign stopped sending when it expired
            ledger.drain_s = max(times) - self.created_at
        ledger.ideal_s = ideal_drain(
            self.ledger.rate,
            len(to_send) - ledger.held_rows,
            ledger.held_rows,
            self.quiet_end - self.created_at,
            (self.paused_at - self.created_at, self.resumed_at - self.created_at),
        )


def _unlike(
    row: Row, line: dict[str, str], accepted: list[str], *, may_expire: bool = False, callbacks: bool = True
) -> str:
    """Why a report line is not the row's truth ('' when it is). A row to send may end ``expired`` in a campaign
    with an ``expires_at`` (``may_expire``), and then NXCloud must have accepted nothing for it. Without NXCloud's
    callbacks a sent row's delivery stays empty."""
    if may_expire and row.expect == "sent" and line["state"] == "expired":
        return f"expired, yet NXCloud accepted {accepted}" if accepted else ""
    if line["state"] != row.expect:
        return f"state {line['state']} ({line['reason']}), expected {row.expect}"
    if row.expect != "sent":
        return ""
    delivery = ("failed" if row.undeliverable else "delivered") if callbacks else ""
    checks = (
        (line["to"] == row.digits, f"to {line['to']}, expected {row.digits}"),
        (accepted == [line["message_id"]], f"message_id {line['message_id']}, NXCloud accepted {accepted}"),
        (line["delivery"] == delivery, f"delivery {line['delivery'] or '(none)'}, expected {delivery}"),
    )
    return next((why for ok, why in checks if not ok), "")


def _inside(local: Any, start: Any, end: Any) -> bool:
    """Inside a wall-clock window, start included, end excluded (it may cross midnight)."""
    return start <= local < end if start <= end else local >= start or local < end


def ideal_drain(rate: float, free: int, held: int, held_until: float, pause: tuple[float, float]) -> float:
    """Seconds a perfect pacer takes from the campaign's creation: one send every 1/rate, none in the pause, the held
    rows not before ``held_until`` (the others go first)."""
    base, sent = 0.0, 0  # the n-th slot since the last jump is at base + n / rate (no float drift)

    def now() -> float:
        return base + sent / rate

    while free or held:
        if pause[0] <= now() < pause[1]:
            base, sent = pause[1], 0
            continue
        if free:
            free -= 1
        elif now() >= held_until:
            held -= 1
        else:
            base, sent = held_until, 0
            continue
        sent += 1
    t = now()
    return t


def _peak_rss_mb(pid: int | None) -> float:
    """A process's peak resident memory (``VmHWM``) in MB; 0 where unreadable."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def render(ledger: CampaignFileLedger) -> str:
    """The ledger as a table: the guarantees, then the figures with their goals."""
    alone, during = p99(ledger.api_alone_ms), p99(ledger.api_during_ms)
    ratio = ledger.drain_s / ledger.ideal_s if ledger.ideal_s else math.nan
    rows = [
        (
            "rows in the file",
            f"{ledger.rows}" + (f", expiring {ledger.expires_in:g} s in" if ledger.expires_in else ""),
            "",
        ),
        ("campaign", f"{ledger.campaign_id} {ledger.status}", "completed"),
        ("counts", json.dumps(ledger.counts), ""),
        ("rows lost", f"{ledger.rows_lost} ({ledger.report_lines} report lines)", "0"),
        ("recipients sent twice", f"{ledger.sent_twice}", "0"),
        ("report lines unlike the truth", f"{ledger.unlike_truth} {ledger.unlike_truth_examples or ''}", "0"),
        ("counts unlike the report", f"{len(ledger.counts_unlike_report)} {ledger.counts_unlike_report or ''}", "0"),
        ("sends inside quiet hours", f"{ledger.quiet_sends} (rows to send in its zone: {ledger.held_rows})", "0"),
        ("sends >5 s into the pause", f"{ledger.paused_sends} (in its first 5 s: {ledger.sent_in_grace})", "0"),
        ("planner passes / killed", f"{ledger.planner_invocations} / {ledger.planner_kills}", "killed > 0"),
        ("NXCloud faults answered (503, 429)", f"{ledger.faults_applied}", ""),
        (
            "drain / ideal at the rate",
            f"{ledger.drain_s:.1f} s / {ledger.ideal_s:.1f} s = {ratio:.2f}x"
            if not ledger.expires_in
            else "n/a: the campaign expired before its rows were sent",
            f"<= {DRAIN_GOAL:.2f}x",
        ),
        ("API slot wait p50 / p99 alone", _ms(ledger.api_wait_alone_ms), ""),
        ("API slot wait p50 / p99 during", _ms(ledger.api_wait_during_ms), f"p99 <= alone's + {SLOT_MS:.1f} ms"),
        ("API answer p50 / p99 alone", _ms(ledger.api_alone_ms), ""),
        (
            "API answer p50 / p99 during",
            _ms(ledger.api_during_ms) + f" ({during / alone:.2f}x p99)",
            f"<= {API_P99_GOAL:.1f}x; see docs/soak.md",
        ),
        ("API messages not accepted", f"{len(ledger.api_failed)} {ledger.api_failed[:3] or ''}", "0"),
        ("planner peak memory (VmHWM)", f"{ledger.planner_peak_mb:.0f} MB, CPU {ledger.planner_cpu_s:.1f} s", "flat"),
        ("wall time", f"{ledger.wall_s:.0f} s", ""),
    ]
    width = max(len(r[0]) for r in rows)
    text = "\n".join(f"{name:<{width}}  {value}" + (f"   (goal {goal})" if goal else "") for name, value, goal in rows)
    failures = ledger.failures()
    return text + ("\nFAILED: " + "; ".join(failures) if failures else "\nall guarantees kept")


def _file(ledger: CampaignFileLedger) -> str:
    callbacks = "with callbacks" if ledger.rows <= CALLBACK_ROWS else f"no callbacks (over {CALLBACK_ROWS} rows)"
    expiry = f", expiring {ledger.expires_in:g} s after creation" if ledger.expires_in else ""
    return f"{ledger.rows} at {ledger.rate:g}/s, seed {ledger.seed}, {callbacks}{expiry}"


def _ms(values: list[float]) -> str:
    if not values:
        return "none"
    return f"{statistics.median(values):.0f} / {p99(values):.0f} ms ({len(values)} messages)"


def main(rows: int, seed: int, rate: float, *, expires_in: float = 0.0, as_json: bool = False) -> int:
    ledger = CampaignFileLedger(rows=rows, rate=rate, seed=seed, expires_in=expires_in)
    try:
        with open(os.devnull, "w", encoding="utf-8") as devnull, contextlib.redirect_stdout(devnull):
            run(ledger)  # the functions' log lines and metrics go to stdout, as to CloudWatch
    except Exception as error:  # the run broke: the ledger says where
        ledger.error = f"{type(error).__name__}: {error}"
    print(json.dumps(ledger.as_dict(), indent=2) if as_json else render(ledger))
    return 1 if ledger.failures() else 0
