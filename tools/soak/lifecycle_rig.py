"""The delivery lifecycle wired into a soak run, the way ``make run`` wires it, but killable and under faults.

    simulator (callbacks) --HTTP--> ApiServer /webhooks/nxcloud/{token} --> SlotPool (W slots) --> webhook container
    webhook container --boto3--> moto's fault port: UpdateItem on the messages table, SendMessage to the kept queue
    stream loop: StreamReader (the soak's clean port) --> publisher slot --> publisher container
    publisher container --boto3--> moto's fault port: BatchGetItem, PutEvents --> bus --rule--> events queue
    events drainer <--receive/delete-- events queue (clean port)

The webhook and the publisher run in the same killable containers as the sender (:mod:`soak.containers`), with
their template timeouts; a chaos kill ends an invocation at a random point of its work (a webhook request then
answers 502; the stream hands a killed publisher's batch over again). The stream loop waits the template's batching
window between batches that are not full, as the event source mapping does.

When the sends have settled, :meth:`LifecycleRig.finish` waits for the simulator to post every callback, replays
whatever the webhook kept with the operator's own tool (``nxwa webhooks replay``), lets the publisher read the
stream to its end, takes the last events off the queue, and reads the messages table and the whole stream to build
the lifecycle's ledger (:mod:`soak.lifecycle`).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import threading
import time
from collections import Counter, defaultdict
from typing import Any, Final

from local_stack.aws import queue_depth
from local_stack.stack import LOCAL_SECRET, LocalStack
from local_stack.streams import StreamReader, batching_window
from local_stack.template import function_setting
from soak.containers import Slot, SlotPool
from soak.journal import TallyJournal
from soak.lifecycle import (
    EventTally,
    LifecycleLedger,
    Posted,
    Stored,
    Truth,
    build_lifecycle,
    status_change,
    stored_item,
)
from soak.messages import TEMPLATE
from soak.mix import BUTTONS, CALLBACKS, OPT_OUT_BUTTON, OUTCOMES, Mix, opt_out_rules
from soak.retries import LIMIT_OUTCOME

WEBHOOK_CHAOS: Final = (0.002, 0.05)
"""A chaos-killed webhook invocation dies this many seconds in: it takes tens of milliseconds (more on a busy machine),
so the kill lands anywhere in its work: before, between or after its writes."""
PUBLISHER_CHAOS: Final = (0.005, 0.2)
"""The publisher reads the send records, then puts ten events at a time: a kill lands before, between or after."""
SURE_KILL_AT: Final = 3
"""The invocation of the first webhook slot and of the publisher killed whatever the draw (``Slot.sure_kill_at``): a
short run's few chaos kills may all land after the invocation answered, on a quiet machine, and kill nothing."""
REPLAY_ROUNDS: Final = 5
REPLAYED: Final = re.compile(r"HTTP (\d+): (\d+)")


class InFlight:
    """Counts the webhook requests being handled, so the ledger is read only once none is left.

    NXCloud (the simulator) may give up on a slow answer while the request still waits for a free webhook
    execution, as API Gateway and Lambda go on with a request whose caller went away: its write lands later."""

    def __init__(self, invoke: SlotPool) -> None:
        self.invoke = invoke
        self.count = 0
        self._cond = threading.Condition()

    def __call__(self, event: dict[str, Any]) -> Any:
        with self._cond:
            self.count += 1
        try:
            return self.invoke(event)
        finally:
            with self._cond:
                self.count -= 1
                self._cond.notify_all()

    def wait_idle(self, deadline: float) -> bool:
        """Wait until no request is being handled (False: the deadline, a ``time.monotonic()``, came first)."""
        with self._cond:
            while self.count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class LifecycleRig:
    """The webhook's and the publisher's containers, the stream loop and the events drainer of one soak run."""

    def __init__(
        self,
        stack: LocalStack,
        journal: TallyJournal,
        mix: Mix,
        *,
        env: dict[str, str],
        seed: int,
        webhook_concurrency: int = 4,
        opt_outs: dict[str, int] | None = None,
    ) -> None:
        self.stack, self.journal, self.mix = stack, journal, mix
        self.opt_outs = opt_outs or {}
        """Recipients per opt-out group (:func:`soak.messages.opt_out_recipients`): their failures come first."""
        self.env, self.seed = env, seed
        self.webhook_concurrency = webhook_concurrency
        self.webhook_slots: list[Slot] = []
        self.webhook: InFlight | None = None
        self.publisher_slot: Slot | None = None
        self.reader: StreamReader | None = None
        self.events = EventTally()
        self.counts: dict[str, Counter[str]] = {"webhook": Counter(), "publisher": Counter()}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.webhook_url = ""
        self.replay_rounds: list[str] = []

    # --- wiring

    def start(self) -> InFlight:
        """Configure the simulator's callbacks, start the publisher's side; return the webhook's invoker (for the
        ApiServer). Callbacks start once :meth:`connect` gives the simulator the webhook's URL."""
        simulator = self.stack.simulator
        simulator.configure_callbacks(**CALLBACKS)
        for outcome in (*opt_out_rules(self.opt_outs), LIMIT_OUTCOME, *OUTCOMES):
            simulator.add_outcome(**outcome)
        for button in BUTTONS:
            simulator.add_button(template=TEMPLATE, **button)
        simulator.add_button(**OPT_OUT_BUTTON)
        self.webhook_slots = [
            self._slot(
                "webhook", f"webhook{n}", self.mix.webhook_kill_probability, WEBHOOK_CHAOS, SURE_KILL_AT * (n == 0)
            )
            for n in range(self.webhook_concurrency)
        ]
        self.publisher_slot = self._slot(
            "publisher", "publisher", self.mix.publisher_kill_probability, PUBLISHER_CHAOS, SURE_KILL_AT
        )
        self.reader = StreamReader(self.stack.res)
        for target, name in ((self._publish_loop, "stream-loop"), (self._drain_events_loop, "events-drainer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.webhook = InFlight(SlotPool(self.webhook_slots))
        return self.webhook

    def connect(self, webhook_url: str) -> None:
        """Point the simulator's callbacks at the webhook (its URL without the token)."""
        self.webhook_url = webhook_url
        self.stack.simulator.set_webhook_url(webhook_url + str(LOCAL_SECRET["webhook_token"]))

    def _slot(
        self, handler: str, name: str, kill_probability: float, chaos: tuple[float, float], sure_kill_at: int = 0
    ) -> Slot:
        function = {"webhook": "WebhookFunction", "publisher": "PublisherFunction"}[handler]
        env = self.env | {"POWERTOOLS_SERVICE_NAME": f"nxcloud-wa-{handler}"}

        def on_result(event: dict[str, Any], response: Any, outcomes: list[dict[str, Any]], killed: str | None) -> None:
            with self._lock:
                counts = self.counts[handler]
                counts["invocations"] += 1
                counts["killed"] += killed in ("chaos", "timeout")
                counts["killed at the timeout"] += killed == "timeout"
                counts["errors"] += killed == "error"
                if isinstance(response, dict) and response.get("batchItemFailures"):
                    counts["records reported failed"] += len(response["batchItemFailures"])

        return Slot(
            env,
            name,
            function_timeout=float(function_setting(function, "Timeout")),
            kill_probability=kill_probability,
            seed=self.seed,
            on_result=on_result,
            handler=handler,
            chaos_deadline=chaos,
            sure_kill_at=sure_kill_at if kill_probability else 0,
        )

    def progress(self) -> str:
        counts = self.stack.simulator.callback_counts
        return f"{counts['posted']} callbacks posted ({counts['pending']} pending)"

    # --- while the soak runs

    def _publish_loop(self) -> None:
        """The stream's event source mapping: a batch whenever one is ready, the batching window otherwise."""
        assert self.reader is not None and self.publisher_slot is not None
        window = batching_window()
        while not self._stop.is_set():
            try:
                handed = self.reader.deliver(self.publisher_slot)
            except Exception:  # killed or failed: the reader hands the same batch over again
                self._stop.wait(0.2)
                continue
            if handed < self.reader.batch_size:
                self._stop.wait(window)

    def _drain_events_loop(self) -> None:
        sqs = self.stack.res.client("sqs")
        while not self._stop.is_set():
            try:
                self._drain_events_once(sqs, wait=1)
            except Exception:  # keep draining; a moto hiccup must not end the soak
                self._stop.wait(0.5)

    def _drain_events_once(self, sqs: Any, wait: int) -> int:
        url = self.stack.res.events_queue_url
        found = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=wait).get("Messages", [])
        for message in found:
            self.events.add(json.loads(message["Body"]))
        if found:
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(found)]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        return len(found)

    # --- after the sends

    def finish(self, time_limit: float) -> LifecycleLedger:
        """Let every callback, replay and event through (within ``time_limit`` seconds), then build the ledger."""
        started = time.monotonic()
        deadline = started + time_limit
        unsettled: list[str] = []
        if not self.stack.simulator.drain(max(1.0, deadline - time.monotonic())):
            unsettled.append("the simulator still had callbacks to post")
        assert self.webhook is not None
        if not self.webhook.wait_idle(deadline):
            unsettled.append("the webhook was still handling callbacks")
        kept, replayed, left = self._replay(deadline)
        self.webhook.wait_idle(deadline)  # a replayed POST that timed out may still be handled
        self._stop_threads()
        if not self._catch_up(deadline):
            unsettled.append("the publisher did not read the stream to its end")
        sqs = self.stack.res.client("sqs")
        while self._drain_events_once(sqs, wait=0):
            pass
        stored, sends = self._scan()
        ledger = build_lifecycle(
            {m: Truth(tuple(t.statuses), frozenset(t.acknowledged)) for m, t in self.stack.simulator.truth.items()},
            (
                Posted(r.message_id, r.status, r.event_id, r.http_status, r.error, r.duplicate)
                for r in self.stack.simulator.callbacks
            ),
            stored=stored,
            send_records=sends,
            changes=self._changes(),
            events=self.events,
            answer_lost=self.journal.answer_lost,
        )
        ledger.kept, ledger.replayed, ledger.kept_left = kept, replayed, left
        ledger.replay_rounds = list(self.replay_rounds)
        ledger.webhook, ledger.publisher = self.counts["webhook"], self.counts["publisher"]
        ledger.unsettled = unsettled
        ledger.catch_up_s = time.monotonic() - started
        return ledger

    def _replay(self, deadline: float) -> tuple[Counter[str], Counter[str], int]:
        """``nxwa webhooks replay`` until the kept-callbacks queue is empty: (kept by reason, answers, left). Each
        round is noted in :attr:`replay_rounds`."""
        from waops import cli, dlq

        sqs, url = self.stack.res.client("sqs"), self.stack.res.kept_callbacks_queue_url
        kept = Counter(k.attributes.get("reason", "") for k in dlq.peek(sqs, url))
        answers: Counter[str] = Counter()
        arguments = [
            *("--endpoint-url", self.stack.res.endpoint_url, "--region", self.stack.res.region),
            *("--kept-callbacks-queue-url", url, "--webhook-url", self.webhook_url),
            *("--webhook-token", str(LOCAL_SECRET["webhook_token"]), "webhooks", "replay"),
        ]
        left = sum(kept.values())
        for _ in range(REPLAY_ROUNDS):
            if not left or not _until_visible(sqs, url, deadline):
                break
            before = _queue_counts(sqs, url)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                cli.main(arguments)
            summary = next((line for line in printed.getvalue().splitlines() if line.startswith("replayed:")), "-")
            self.replay_rounds.append(f"{before[0]}+{before[1]} -> {summary.removeprefix('replayed: ')}")
            for status, count in REPLAYED.findall(printed.getvalue()):
                answers[f"HTTP {status}"] += int(count)
            left = queue_depth(sqs, url)  # hidden bodies too: a body another receive holds is still kept
        return kept, answers, left

    def _stop_threads(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()  # an invocation in flight ends by its function's timeout at the latest
        self._threads = []

    def _catch_up(self, deadline: float) -> bool:
        """Hand the rest of the stream to the publisher until a read finds nothing new and nothing put back."""
        assert self.reader is not None and self.publisher_slot is not None
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):  # killed or failed: handed over again on the next round
                self.reader.deliver(self.publisher_slot)
                if self.reader.caught_up:
                    return True
        return False

    def _scan(self) -> tuple[dict[str, Stored], set[str]]:
        """The messages table: status items by message id, and the ids that have a send record."""
        dynamodb = self.stack.res.client("dynamodb")
        stored: dict[str, Stored] = {}
        sends: set[str] = set()
        request: dict[str, Any] = {"TableName": self.stack.res.messages_table, "ConsistentRead": True}
        while True:
            page = dynamodb.scan(**request)
            for item in page.get("Items", []):
                item_id = item["id"]["S"]
                if item_id.startswith("status#"):
                    stored[item_id.removeprefix("status#")] = stored_item(item)
                elif item.get("kind", {}).get("S") == "send":
                    sends.add(item_id)
            if "LastEvaluatedKey" not in page:
                return stored, sends
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _changes(self) -> dict[str, list[tuple[str | None, str]]]:
        """Every change of a current status in the stream, by message, in the order the writes landed."""
        streams = self.stack.res.client("dynamodbstreams")
        arn = self.stack.res.stream_arn()
        changes: defaultdict[str, list[tuple[str | None, str]]] = defaultdict(list)
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                answer = streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in answer.get("Records", []):
                    change = status_change(record)
                    if change is not None:
                        changes[change[0]].append(change[1:])
                if not answer.get("Records"):
                    break
                iterator = answer.get("NextShardIterator")
        return dict(changes)

    def stop(self) -> None:
        """Stop the threads and the containers (idempotent)."""
        self._stop_threads()
        for slot in self.slots:
            slot.close()

    @property
    def slots(self) -> list[Slot]:
        return [*self.webhook_slots, *([self.publisher_slot] if self.publisher_slot else [])]


def _queue_counts(sqs: Any, url: str) -> tuple[int, int]:
    """The queue's visible and hidden bodies."""
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return int(attributes.get(names[0], 0)), int(attributes.get(names[1], 0))


def _until_visible(sqs: Any, url: str, deadline: float) -> bool:
    """Wait until some kept body is visible (a receive's visibility timeout ends within 30 s); False at the deadline
    or when none is left."""
    while time.monotonic() < deadline:
        visible, hidden = _queue_counts(sqs, url)
        if visible or not hidden:
            return bool(visible)
        time.sleep(0.5)
    return False
