"""One soak run: the local stack with faults injected, N messages pushed through it, waited for, accounted for.

Wiring (everything on 127.0.0.1):

    producer --SendMessageBatch--> moto (send queue) <--receive/delete-- QueuePoller x Q --> Slot --> container process
    API callers --HTTP--> ApiServer --> SlotPool (A slots) --> container process
    container process: the real handler --boto3--> moto's fault port;  --urllib3--> NXCloud simulator
    DLQ drainer <--receive/delete-- moto (dead-letter queue)
    NXCloud simulator --callbacks--> ApiServer webhook route --> webhook containers; stream --> publisher container

moto runs in its own process (:mod:`soak.aws_service`), the functions in container processes
(:mod:`soak.containers`); the simulator, the emulated triggers, the producer and the callers run here. The delivery
lifecycle (callbacks, the webhook, the stream, the publisher, the events) is :mod:`soak.lifecycle_rig`; once the
sends have settled it is let through to its end and accounted for in the ledger's lifecycle rows.

Campaign mode (``mode="campaign"``, :mod:`soak.campaign`) puts the N messages on the queue at once (up to 10,000
waiting), spread over ``numbers`` business numbers, with the simulator enforcing ``rate`` messages per second per
number and the function's limiter set to the same rate, without the lifecycle, and adds the campaign's rows to the
ledger.

The queue's event source and the REST API are :mod:`local_stack.emulators`; the resources come from template.yaml
through :class:`local_stack.stack.LocalStack` (moto's redrive policy does ``maxReceiveCount``). Retried records
come back after ``retry_delay`` seconds instead of the 210 s visibility timeout; it is kept at least the function's
timeout, so, as in AWS, a redelivered record never meets the in-progress record of an invocation still running.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Final, TextIO

from local_stack.emulators import ApiServer, QueuePoller, json_body
from local_stack.stack import LOCAL_SECRET, LocalStack
from local_stack.suppression_entries import all_entries
from nxcloud_simulator.rates import RateLimit
from nxcloud_simulator.server import NXCloudSimulator
from soak import audience, campaign, frequency_cap, retries
from soak.audience import EntryWatch
from soak.aws_service import AwsService
from soak.containers import InvocationKilled, Slot, SlotPool
from soak.journal import TallyJournal
from soak.ledger import FINAL_API_REJECTIONS, Ledger, Tracker, build_ledger
from soak.lifecycle import LifecycleLedger
from soak.lifecycle_rig import LifecycleRig
from soak.messages import API_ASYNC, QUEUE, Message, catalogue, follow_ups, generate, opt_out_recipients
from soak.mix import get_mix

MAX_STRETCH: Final = 4.0
LIFECYCLE_BASE_S: Final = 120.0
LIFECYCLE_PER_MESSAGE_S: Final = 0.2
"""About three and a half callbacks per message, stored at 20 a second or more even on a busy machine."""
ENTRY_WAIT_S: Final = 60.0
"""How long the producer waits for an opt-out recipient's entry before it sends the opt-out follow-ups."""


def load_stretch() -> float:
    """How much busier than its CPUs this machine is now: the 1-minute load average per CPU, within 1..MAX_STRETCH."""
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on Linux
        return 1.0
    return min(MAX_STRETCH, max(1.0, load / (os.cpu_count() or 1)))


@dataclass(frozen=True, slots=True)
class SoakSettings:
    messages: int = 1000
    seed: int = 1
    mix: str = "default"
    policy: str = "dead_letter"
    queue_concurrency: int = 8
    """Concurrent queue invocations (SqsMaximumConcurrency; the template's default is 5). 8 keeps this machine's two
    cores busiest: more containers make moto, which takes requests one at a time, slower per request."""
    api_concurrency: int = 2
    api_callers: int = 4
    function_timeout: float = 3.0
    retry_delay: int = 3
    read_timeout: float = 0.3
    secret_cache_seconds: int = 2
    max_backlog: int = 120
    """The producer waits while more messages than this are on the send queue (visible or in flight), as a steady
    stream of traffic would; time to settle then measures handling and retries, not a queue of 10 000 waiting."""
    time_limit: float = 900.0
    api_give_up: float = 60.0
    mode: str = "standard"
    """``standard``, or ``campaign``: all messages at once (up to ``campaign.BACKLOG`` waiting), at ``numbers``
    business numbers' ``rate``. A campaign leaves the delivery lifecycle out (no callbacks, webhook or publisher): it
    measures how fast the sends drain at the rate, and on this machine the lifecycle's three callbacks per message
    would take the CPU and moto, which serves one request at a time, from the sends (a deployed webhook has its own).
    The standard soak covers it."""
    rate: int = 50
    """Campaign mode: each business number's messages per second, enforced by the simulator and the function's
    limiter alike (the function's ``MESSAGES_PER_SECOND``)."""
    numbers: int = 1
    cap: str = ""
    """The marketing frequency cap (``MARKETING_CAP_PER_RECIPIENT``, ``1/24h``); empty: off, as the template's default.
    With a cap the ledger adds the cap's rows (:mod:`soak.frequency_cap`)."""
    webhook_concurrency: int = 4
    """Concurrent webhook executions; the publisher has one, as Lambda gives one per stream shard."""
    lifecycle_time_limit: float | None = None
    """Seconds, once the sends have settled, for the last callbacks, the replay and the publisher to finish; None:
    :data:`LIFECYCLE_BASE_S` plus :data:`LIFECYCLE_PER_MESSAGE_S` per message. Callbacks fall behind while the sends
    keep moto busy (a 10 000-message run still had 25 000 to post when its sends settled), so the backlog, and the
    time it needs, grows with N."""
    stretch: float | None = None
    """Factor on the function timeout, the retry delay, the API callers' patience and the time limits; None: the load
    average per CPU when the run starts (:func:`load_stretch`). A Lambda function has its CPU to itself; here some
    twenty processes share this machine's cores with whatever else runs on it, and a cold container that the machine
    starves would be killed at every timeout, cold again each time: the timeout is there to cut invocations that run
    long, not ones the machine did not run. NXCloud's read timeout and the faults are never stretched."""

    def lifecycle_limit(self) -> float:
        """The lifecycle's time limit in seconds, unstretched."""
        if self.lifecycle_time_limit is not None:
            return self.lifecycle_time_limit
        return LIFECYCLE_BASE_S + LIFECYCLE_PER_MESSAGE_S * self.messages

    def stretched(self) -> SoakSettings:
        """These settings with ``stretch`` decided and applied (a retry never comes before the timeout)."""
        factor = self.stretch if self.stretch is not None else load_stretch()
        timeout = self.function_timeout * factor
        return replace(
            self,
            stretch=factor,
            function_timeout=timeout,
            retry_delay=max(math.ceil(self.retry_delay * factor), math.ceil(timeout)),
            api_give_up=self.api_give_up * factor,
            time_limit=self.time_limit * factor,
            lifecycle_time_limit=self.lifecycle_limit() * factor,
        )

    @property
    def campaign(self) -> bool:
        return self.mode == "campaign"


def run_soak(settings: SoakSettings, progress: TextIO | None = sys.stderr) -> Ledger:
    """Run one soak; return its ledger (never raises for what it finds: the ledger says)."""
    return _Soak(settings.stretched(), progress).run()


class _Soak:
    def __init__(self, settings: SoakSettings, progress: TextIO | None) -> None:
        self.s = settings
        self.progress = progress
        self.mix = get_mix(settings.mix)
        digest = hashlib.sha256(f"{settings.seed}-{settings.policy}-{settings.mix}".encode()).hexdigest()
        self.run_id = digest[:6]
        numbers = campaign.BUSINESS_NUMBERS[: settings.numbers] if settings.campaign else ()
        shares = campaign.shares(self.mix.shares) if settings.campaign else self.mix.shares
        self.messages = generate(
            settings.messages,
            seed=settings.seed,
            run=self.run_id,
            shares=shares,
            business_phones=numbers if len(numbers) > 1 else (),  # one: the secret's default number
        )
        self.opt_outs = opt_out_recipients(settings.messages, shares)
        accounts = [(str(LOCAL_SECRET["appkey"]), phone) for phone in numbers or (str(LOCAL_SECRET["business_phone"]),)]
        self.tracker = Tracker(self.messages)
        self.journal = TallyJournal(read_timeout=settings.read_timeout)
        self.stack = LocalStack(retry_visibility=settings.retry_delay, demo_faults=False, prefix=f"soak-{self.run_id}")
        self.stack.simulator = NXCloudSimulator(
            accounts={LOCAL_SECRET["accessKey"]: LOCAL_SECRET["accessSecret"]},
            seed=settings.seed,
            max_records=1,
            max_callback_records=None,  # the lifecycle ledger reads every callback's answer
            templates={account: catalogue() for account in accounts},
            rate_limit=RateLimit(per_second=settings.rate) if settings.campaign else None,
        )
        self.stack.simulator._journal = self.journal  # type: ignore[assignment] # the same methods, per-token tallies
        self.aws = AwsService(list(self.mix.aws), seed=settings.seed)
        self.stack.moto = self.aws  # type: ignore[assignment] # same interface; see soak.aws_service
        self.queue_slots: list[Slot] = []
        self.api_slots: list[Slot] = []
        self.pollers: list[QueuePoller] = []
        self.api: ApiServer | None = None
        self.rig: LifecycleRig | None = None
        self.lifecycle: LifecycleLedger | None = None
        self.watch: EntryWatch | None = None
        self.entry_wait_s = 0.0
        """How long the producer waited for an opt-out entry (:meth:`_await_an_entry`)."""
        self.firer: retries.RetryFirer | None = None
        self.retries = retries.RetryTally()
        self._stop = threading.Event()
        self._drainer: threading.Thread | None = None

    # --- lifecycle

    def run(self) -> Ledger:
        started = time.monotonic()
        self._cpu_started = time.process_time()
        unsettled = True
        try:
            self._start()
            futures = self._produce()
            limit_from = started + self.entry_wait_s  # the time limit is for settling: the producer's wait is not in it
            unsettled = not self._wait_until_settled(futures, limit_from)
            if self.rig is not None:
                unsettled |= not self._settle_retries(limit_from)
                self.lifecycle = self.rig.finish(self.s.lifecycle_limit())
                self.retries = retries.tally(
                    self.stack.res.client("dynamodb"),
                    self.stack.res.messages_table,
                    self.stack.res.table_name,
                    frozenset(self.tracker.dead_retries),
                )
            if self.watch is not None:
                self.watch.stop()  # its last read of the list, after the last callback was stored
        finally:
            self._stop_all()
        ledger = build_ledger(
            self.tracker,
            self.journal,
            policy=self.s.policy,
            mix=self.s.mix,
            seed=self.s.seed,
            unsettled=unsettled,
            resent=self.retries.resent,
            capped=bool(self.s.cap),
        )
        ledger.lifecycle = self.lifecycle
        if self.s.cap:
            ledger.cap = frequency_cap.account(
                self.s.cap,
                self.tracker.journeys.values(),
                self.journal.get,
                business_phone=str(LOCAL_SECRET["business_phone"]),
                resent=self.retries.resent,
            )
        stats = self.aws.stats()
        if self.watch is not None and self.lifecycle is not None:
            ledger.audience = audience.account(
                self.tracker.journeys.values(),
                self.journal.get,
                self.watch,
                opt_out_recipients=self.opt_outs,
                list_reads=stats.get("table_calls", {}).get(
                    f"DynamoDB.BatchGetItem {self.stack.res.suppressions_table}", 0
                ),
            )
            ledger.audience.retries = self.retries
        ledger.settings = {
            "stretch": self.s.stretch or 1.0,
            "function_timeout": self.s.function_timeout,
            "retry_delay": self.s.retry_delay,
        }
        ledger.wall_s = time.monotonic() - started
        ledger.aws_faults = Counter(stats["injected"])
        ledger.aws_calls = Counter(stats["calls"])
        slots = self.queue_slots + self.api_slots + (self.rig.slots if self.rig else [])
        ledger.container_starts = sum(s.starts for s in slots)
        ledger.cpu_s = {
            "soak process": time.process_time() - self._cpu_started,
            "moto": float(stats.get("cpu_s", 0.0)),
            "function containers": sum(s.cpu_s for s in slots),
        }
        ledger.function_errors = sum(s.errors for s in self.queue_slots + self.api_slots)
        if self.s.campaign:
            ledger.campaign = campaign.account(
                self.tracker.journeys.values(),
                rate=self.s.rate,
                numbers=self.s.numbers,
                upstream_requests=self.journal.requests,
                upstream_faults=self.journal.faults,
                limiter_requests=stats.get("table_calls", {}).get(
                    f"{campaign.LIMITER_OPERATION} {self.stack.res.rate_table}", 0
                ),
            )
        ledger.poller_errors = [
            f"{type(e).__name__}: {e}" for p in self.pollers for e in p.errors if not isinstance(e, InvocationKilled)
        ]
        return ledger

    def _start(self) -> None:
        self.stack.start()
        for rule in self.mix.simulator_rules():
            self.stack.simulator.add_fault(**rule)
        env = {
            **self.stack.function_env(),
            "AWS_ENDPOINT_URL": self.aws.fault_url,
            "UNKNOWN_OUTCOME_POLICY": self.s.policy,
            "NXCLOUD_READ_TIMEOUT": str(self.s.read_timeout),
            "NXCLOUD_CONNECT_TIMEOUT": "1",
            "SECRET_CACHE_SECONDS": str(self.s.secret_cache_seconds),
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
        if self.s.campaign:
            env["MESSAGES_PER_SECOND"] = str(self.s.rate)
        if self.s.cap:
            env["MARKETING_CAP_PER_RECIPIENT"] = self.s.cap

        def slot(name: str) -> Slot:
            return Slot(
                env,
                name,
                function_timeout=self.s.function_timeout,
                kill_probability=self.mix.kill_probability,
                seed=self.s.seed,
                on_result=self.tracker.invocation,
                on_start=self.tracker.started,
            )

        self.queue_slots = [slot(f"sqs{i}") for i in range(self.s.queue_concurrency)]
        self.api_slots = [slot(f"api{i}") for i in range(self.s.api_concurrency)]
        res = self.stack.res
        self.pollers = [
            QueuePoller(
                res.client("sqs"),
                res.send_queue_url,
                s,  # type: ignore[arg-type] # any callable(event) -> response
                batch_size=self.stack.queue.batch_size,
                retry_delay=self.s.retry_delay,
            ).start()
            for s in self.queue_slots
        ]
        webhook = None
        if not self.s.campaign:  # a campaign measures the sends alone (SoakSettings.mode)
            self.rig = LifecycleRig(
                self.stack,
                self.journal,
                self.mix,
                env=env,
                seed=self.s.seed,
                webhook_concurrency=self.s.webhook_concurrency,
                opt_outs=self.opt_outs,
            )
            webhook = self.rig.start()
            self.watch = EntryWatch(lambda: all_entries(self.stack.res)).start()
            self.firer = retries.RetryFirer(self.stack).start()
        self.api = ApiServer(SlotPool(self.api_slots), webhook=webhook).start()  # type: ignore[arg-type]
        if self.rig is not None:
            self.rig.connect(self.api.webhook_url)
        self._drainer = threading.Thread(target=self._drain_dlq, name="dlq-drainer", daemon=True)
        self._drainer.start()

    def _stop_all(self) -> None:
        self._stop.set()
        if self.firer is not None:
            self.firer.stop()
        stopping = [threading.Thread(target=poller.stop) for poller in self.pollers]  # each ends its long poll
        for thread in stopping:
            thread.start()
        for thread in stopping:
            thread.join()
        if self.api is not None:
            self.api.stop()
        if self._drainer is not None:
            self._drainer.join(10)
        if self.rig is not None:
            self.rig.stop()
        for slot in self.queue_slots + self.api_slots:
            slot.close()
        self.stack.stop()

    # --- pushing messages

    def _produce(self) -> list[Future[None]]:
        sqs = self.stack.res.client("sqs")
        callers = ThreadPoolExecutor(max_workers=self.s.api_callers, thread_name_prefix="api-caller")
        futures: list[Future[None]] = []
        batch: list[Message] = []
        again: list[Message] = []  # the producer's retries: the same message once more, in the next batch
        last_report = time.monotonic()
        later = follow_ups(self.messages)
        for index, message in enumerate(self.messages):
            if index == min(later, default=-1):  # the opt-out follow-ups: only once an entry can stop them
                if batch:
                    self._send_batch(sqs, batch)
                    batch, again = again, []
                self._await_an_entry({self.messages[i].to for i in later})
            if message.path == QUEUE:
                batch.append(message)
                if message.resend:
                    again.append(message)
                if len(batch) >= 10:
                    self._send_batch(sqs, batch)
                    batch, again = again, []
            else:
                futures.append(callers.submit(self._call_api, message, random.Random(f"{self.s.seed}-{index}")))
            if index % 100 == 99 and self.s.campaign:
                self._wait_for_backlog(sqs, campaign.BACKLOG, poll=1.0)  # each poll scans moto's long queue
            elif index % 100 == 99:
                self._wait_for_backlog(sqs, self.s.max_backlog, poll=0.1)
            if self.progress is not None and time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                self._report(f"pushed {index + 1}/{len(self.messages)}")
        for rest in (batch, again):
            if rest:
                self._send_batch(sqs, rest)
        callers.shutdown(wait=False)
        return futures

    def _await_an_entry(self, recipients: set[str]) -> None:
        """Wait (at most :data:`ENTRY_WAIT_S`, stretched) until one of ``recipients`` has a suppression entry, so the
        run exercises a send stopped by the list; a run that gives up here says so in its ledger (no skip). The time
        waited (:attr:`entry_wait_s`) is left out of the run's time limit."""
        if self.watch is None:
            return
        began = time.monotonic()
        deadline = began + ENTRY_WAIT_S * (self.s.stretch or 1.0)
        try:
            while time.monotonic() < deadline and not self._stop.is_set():
                if any(self.watch.stored(to, audience.MARKETING) is not None for to in recipients):
                    return
                time.sleep(0.2)
        finally:
            self.entry_wait_s = time.monotonic() - began
        print(f"[{self.s.policy}] no opt-out entry after {ENTRY_WAIT_S:.0f} s: follow-ups sent anyway", file=sys.stderr)

    def _send_batch(self, sqs: Any, batch: list[Message]) -> None:
        entries = [
            {
                "Id": str(i),
                "MessageBody": m.body,
                "MessageAttributes": {k: {"DataType": "String", "StringValue": v} for k, v in m.attributes.items()},
            }
            for i, m in enumerate(batch)
        ]
        self.tracker.entered([m.token for m in batch], time.time())
        answer = sqs.send_message_batch(QueueUrl=self.stack.res.send_queue_url, Entries=entries)
        if answer.get("Failed"):
            raise RuntimeError(f"SendMessageBatch failed: {answer['Failed']}")

    def _wait_for_backlog(self, sqs: Any, backlog: int, *, poll: float) -> None:
        deadline = time.monotonic() + 120
        while self._queue_depth(sqs, self.stack.res.send_queue_url) > backlog:
            if time.monotonic() > deadline:
                return
            time.sleep(poll)

    def _call_api(self, message: Message, rng: random.Random) -> None:
        """A well-behaved client: same key on every try, retries 409 and 5xx with backoff, stops at a final answer."""
        assert self.api is not None
        headers = {"Content-Type": "application/json", "x-api-key": self.api.api_key}
        if message.key_where == "header" and message.idempotency_key:
            headers["Idempotency-Key"] = message.idempotency_key
        if message.path == API_ASYNC:
            headers["Prefer"] = "respond-async"
        self.tracker.entered([message.token], time.time())
        started = time.monotonic()
        for attempt in range(1, 1000):
            status, answer = _post(f"{self.api.url}/messages", message.body.encode("utf-8"), headers)
            error = answer.get("error") if isinstance(answer, dict) else None
            final = (
                status in (200, 202) or status in FINAL_API_REJECTIONS or (status == 504 and error == "unknown_outcome")
            )
            gave_up = not final and time.monotonic() - started > self.s.api_give_up
            self.tracker.api_answer(message.token, status, error, final or gave_up, gave_up)
            if final or gave_up or self._stop.is_set():
                return
            time.sleep(min(1.0, 0.05 * 2**attempt) * rng.uniform(0.5, 1.0))

    # --- the dead-letter queue

    def _drain_dlq(self) -> None:
        sqs = self.stack.res.client("sqs")
        while not self._stop.is_set():
            try:
                self._drain_once(sqs, wait=1)
            except Exception as exc:  # keep draining; a moto hiccup must not end the soak
                print(f"dlq drainer: {exc!r}", file=sys.stderr)
                time.sleep(0.5)

    def _drain_once(self, sqs: Any, wait: int) -> int:
        url = self.stack.res.dlq_url
        found = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait, MessageAttributeNames=["All"]
        ).get("Messages", [])
        now = time.time()
        for m in found:
            attributes = {k: v.get("StringValue", "") for k, v in (m.get("MessageAttributes") or {}).items()}
            self.tracker.dead_letter(m["Body"], attributes, now)
        if found:
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(found)]
            )
        return len(found)

    # --- settling

    def _wait_until_settled(self, futures: list[Future[None]], started: float) -> bool:
        sqs = self.stack.res.client("sqs")
        res = self.stack.res
        quiet = 0
        last_report = time.monotonic()
        while time.monotonic() - started < self.s.time_limit:
            if all(f.done() for f in futures):
                depth = self._queue_depth(sqs, res.send_queue_url) + self._queue_depth(sqs, res.dlq_url)
                quiet = quiet + 1 if depth == 0 else 0
                if quiet >= 3:
                    return True
            if self.progress is not None and time.monotonic() - last_report > 10:
                last_report = time.monotonic()
                self._report("settling")
            time.sleep(0.5)
        return False

    def _settle_retries(self, started: float) -> bool:
        """Until no 131049 retry is left to fire: the callbacks in flight stored (they create the schedules), what is
        due fired, and the queue quiet again (the retries sent or skipped)."""
        assert self.rig is not None and self.rig.webhook is not None and self.firer is not None
        while time.monotonic() - started < self.s.time_limit:
            self.stack.simulator.drain(max(1.0, self.s.time_limit - (time.monotonic() - started)))
            self.rig.webhook.wait_idle(started + self.s.time_limit)
            if not self.firer.fire() and not self.firer.pending():
                return True
            if not self._wait_until_settled([], started):
                return False
        return False

    @staticmethod
    def _queue_depth(sqs: Any, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        names.append("ApproximateNumberOfMessagesDelayed")
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(n, 0)) for n in names)

    def _report(self, what: str) -> None:
        journeys = self.tracker.journeys.values()
        done = sum(1 for j in journeys if j.sent_at is not None or j.dead or j.api_final)
        kills = sum(self.tracker.kills.values())
        callbacks = f", {self.rig.progress()}" if self.rig is not None else ""
        print(
            f"[{self.s.policy}] {what}: {done} settled, {self.journal.accepted} accepted by NXCloud, "
            f"{self.tracker.dlq_entries} dead letters, {kills} invocations killed{callbacks}",
            file=self.progress,
            flush=True,
        )


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - 127.0.0.1 only
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json_body(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json_body(error.read())
    except (urllib.error.URLError, OSError) as error:
        return 0, {"error": f"connection: {error}"}


def ledger_json(ledger: Ledger) -> str:
    from soak.ledger import to_json

    return json.dumps(to_json(ledger), indent=2)
