"""Each sample event of ``events/`` through one path, against a fresh corner of one local stack, observed.

One local stack (moto's server and the NXCloud simulator on 127.0.0.1) serves the whole run; every event gets queues,
a table and a secret of its own and a simulator reset to the demo faults, which the function cannot tell from a new
stack. What the stack saw during the invocations (simulator requests, dead letters, the send queue, the callbacks in the
messages table and on the kept-callbacks queue, the events on the bus, the AWS calls moto answered) is collected into
an :class:`~sam_local.outcomes.Observation`.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any, Final

from local_stack.aws import Resources, provision
from local_stack.lambda_events import receive_sqs_event, settle_sqs_batch
from local_stack.stack import DEMO_FAULTS, LOCAL_SECRET, LocalStack, seed_audience, seed_suppressions
from nxcloud_wa.messages_table import CLICK_PREFIX, STATUS_PREFIX
from sam_local.outcomes import Observation, event_summary
from sam_local.paths import Invoked, InvokePath

EVENTS: Final = Path(__file__).resolve().parents[2] / "events"


ONE_OF_EACH_PATH: Final = (
    "sqs-mixed-batch.json",
    "api-idempotent-repeat.json",
    "api-send-async.json",
    "webhook-callback.json",
    "publisher-stream.json",
)
"""One sample of each path (a queue batch, a repeated and a queued API request, a callback, a stream batch): the ones
the tests run twice, or under both make invoke and sam local invoke, to compare the summaries."""


def manifest() -> dict[str, dict[str, Any]]:
    """events/expected.json's entries, in its order."""
    return json.loads((EVENTS / "expected.json").read_text(encoding="utf-8"))["events"]


class EventRunner:
    """Runs sample events through a path against the stack and collects what happened."""

    def __init__(self, stack: LocalStack, work: Path) -> None:
        self.stack = stack
        self.work = work
        self.calls = stack.moto.record_calls()

    def fresh(self) -> tuple[Resources, Path]:
        """New queues, tables and bucket (the suppression list and the audience file seeded as ``make run``'s) and
        secret, a reset simulator, and the env-vars file pointing at them."""
        resources = provision(
            self.stack.moto.url,
            prefix=f"sl{uuid.uuid4().hex[:10]}",
            secret=LOCAL_SECRET,
            max_receive_count=self.stack.queue.max_receive_count,
            visibility_timeout=self.stack.queue.visibility_timeout,
        )
        seed_suppressions(resources)
        seed_audience(resources)
        self.stack.simulator.reset()
        for fault in DEMO_FAULTS:
            self.stack.simulator.add_fault(**fault)
        env_file = self.work / f"env-{resources.table_name}.json"
        env_file.write_text(json.dumps(self.stack.sam_env_vars(resources), indent=2), encoding="utf-8")
        return resources, env_file

    def observe(self, name: str, spec: dict[str, Any], path: InvokePath) -> tuple[Observation, list[Invoked]]:
        """The event through ``path`` (``repeat.invocations`` times), then its queued message, if any, delivered."""
        resources, env_file = self.fresh()
        times = int(spec.get("repeat", {}).get("invocations", 1))
        started = time.monotonic()
        invoked = [path(EVENTS / name, env_file) for _ in range(times)]
        seen = self.snapshot(resources, invoked, (started, time.monotonic()), since=0)
        if "final" in spec:
            delivered, final = self.deliver_queued(resources, env_file, path)
            seen.final, invoked = final, [*invoked, *delivered]
        seen.dead_letters = self.drain_dead_letters(resources)
        return seen, invoked

    def snapshot(
        self, resources: Resources, invoked: list[Invoked], window: tuple[float, float], since: int
    ) -> Observation:
        """What the stack saw: AWS calls within ``window`` (the invocations'), simulator requests from ``since``."""
        aws_calls = self.calls.between(*window)  # before this method's own calls to moto
        requests = self.stack.simulator.requests[since:]
        return Observation(
            results=[i.result for i in invoked],
            logs=[line for i in invoked for line in i.logs],
            nxcloud=[(r.to, r.template, r.accepted) for r in requests],
            dead_letters=[],
            queued=queue_depth(resources),
            aws_calls=aws_calls,
            seconds=[i.seconds for i in invoked],
            stored=stored_callbacks(resources),
            kept=depth(resources, resources.kept_callbacks_queue_url),
            published=drain_events(resources),
        )

    def deliver_queued(self, resources: Resources, env_file: Path, path: InvokePath) -> tuple[list[Invoked], Any]:
        """What the SQS event source would do next: the queued message as an SQS event, through the same path."""
        sqs = resources.client("sqs")
        event = receive_sqs_event(sqs, resources.send_queue_url, batch_size=self.stack.queue.batch_size)
        event_file = self.work / f"delivery-{resources.table_name}.json"
        event_file.write_text(json.dumps(event), encoding="utf-8")
        since = len(self.stack.simulator.requests)
        started = time.monotonic()
        invoked = [path(event_file, env_file)]
        final = self.snapshot(resources, invoked, (started, time.monotonic()), since)
        if isinstance(invoked[0].result, dict):
            settle_sqs_batch(sqs, resources.send_queue_url, event, invoked[0].result, retry_delay=0)
        return invoked, final

    def drain_dead_letters(self, resources: Resources) -> list[dict[str, str]]:
        sqs, found = resources.client("sqs"), {}
        while batch := sqs.receive_message(
            QueueUrl=resources.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", []):
            found.update({m["MessageId"]: m for m in batch})
            sqs.delete_message_batch(
                QueueUrl=resources.dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )
        return [
            {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items() if "StringValue" in v}
            for m in found.values()
        ]


def queue_depth(resources: Resources) -> int:
    return depth(resources, resources.send_queue_url)


def depth(resources: Resources, queue_url: str) -> int:
    """Visible and in-flight messages of one of the stack's queues."""
    attributes = resources.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def stored_callbacks(resources: Resources) -> dict[str, str]:
    """The messages table's callback items (status and click items; not the sends' records, keyed on NXCloud's
    fresh message ids): item id to its current status, or to ``click`` for an unlinked click."""
    dynamodb, found = resources.client("dynamodb"), {}
    for page in dynamodb.get_paginator("scan").paginate(TableName=resources.messages_table, ConsistentRead=True):
        for item in page["Items"]:
            item_id = item["id"]["S"]
            if item_id.startswith((STATUS_PREFIX, CLICK_PREFIX)):
                found[item_id] = item.get("status", item.get("kind", {})).get("S", "")
    return dict(sorted(found.items()))


def drain_events(resources: Resources) -> list[dict[str, Any]]:
    """Every event put on the stack's bus since the last drain (a rule copies each to the capture queue), summarised."""
    sqs, found = resources.client("sqs"), {}
    while batch := sqs.receive_message(
        QueueUrl=resources.events_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        found.update({m["MessageId"]: json.loads(m["Body"]) for m in batch})
        sqs.delete_message_batch(
            QueueUrl=resources.events_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return [event_summary(event) for event in found.values()]
