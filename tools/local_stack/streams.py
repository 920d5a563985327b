"""A DynamoDB stream read the way Lambda's event source mapping reads it, for the publisher function.

The publisher reads two streams, each an event of ``PublisherFunction`` in template.yaml: the messages table's
(``TimelineChanges``) and the campaigns table's (``CampaignChanges``). A reader keeps one iterator per shard, hands
over only records its event's filter lets through (``FilterCriteria``: ids beginning ``status#`` or ``click#``; the
campaign items, ``sk`` ``campaign``), at most the template's ``BatchSize`` at a time, and,
like Lambda with ``ReportBatchItemFailures``, hands a batch over again from the first record the function reports
failed; when the invocation fails (the handler raises, or its container is killed) the whole batch is handed over
again. (Lambda would also split a failing batch, ``BisectBatchOnFunctionError``, and give up after
``MaximumRetryAttempts``; here a failing batch is retried whole, without limit.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from local_stack.aws import Resources
from local_stack.template import resource_properties

TIMELINE: Final = "TimelineChanges"
CAMPAIGNS: Final = "CampaignChanges"
_TABLES: Final = {TIMELINE: "messages_table", CAMPAIGNS: "campaigns_table"}
"""Each stream event's table, as a :class:`~local_stack.aws.Resources` field."""


def _stream_event(event: str = TIMELINE) -> dict[str, Any]:
    """One of the publisher's DynamoDB event sources, as template.yaml declares it."""
    return dict(resource_properties("PublisherFunction")["Events"][event]["Properties"])


def _key_filter(event: str = TIMELINE) -> dict[str, list[Any]]:
    """The event's filter on the record's keys: attribute name -> the accepted values (a string, or a prefix)."""
    [pattern] = _stream_event(event)["FilterCriteria"]["Filters"]
    keys = json.loads(pattern["Pattern"])["dynamodb"]["Keys"]
    return {name: list(value["S"]) for name, value in keys.items()}


def filter_prefixes() -> tuple[str, ...]:
    """The ``id`` prefixes of the messages stream's filter, read from template.yaml."""
    return tuple(p["prefix"] for p in _key_filter()["id"])


def batch_size(event: str = TIMELINE) -> int:
    """The most records the publisher gets in one invocation (``BatchSize`` of its stream event)."""
    return int(_stream_event(event)["BatchSize"])


def batching_window(event: str = TIMELINE) -> float:
    """Seconds the mapping waits to fill a batch (``MaximumBatchingWindowInSeconds`` of the publisher's stream)."""
    return float(_stream_event(event).get("MaximumBatchingWindowInSeconds", 0))


def _accepts(accepted: list[Any], value: str) -> bool:
    return any(value == a if isinstance(a, str) else value.startswith(a["prefix"]) for a in accepted)


class StreamReader:
    """Reads one of the publisher's streams (by default the messages table's) from its start (``TRIM_HORIZON``, as
    the template's mapping does)."""

    def __init__(self, resources: Resources, event: str = TIMELINE) -> None:
        self.client = resources.client("dynamodbstreams")
        self.arn = resources.stream_arn(getattr(resources, _TABLES[event]))
        self.keys = _key_filter(event)
        self.batch_size = batch_size(event)
        self._iterators: dict[str, str] = {}
        self._pending: list[dict[str, Any]] = []
        self.caught_up = False
        """True when the last :meth:`poll` read no new record from any shard and nothing was left to hand over."""

    def poll(self) -> list[dict[str, Any]]:
        """The next batch: records not handed over yet (first those a failed batch put back), filtered, as Lambda's
        event has them, at most ``batch_size``."""
        fresh = 0
        shards = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            iterator = (
                self._iterators.get(shard_id)
                or self.client.get_shard_iterator(
                    StreamArn=self.arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            )
            answer = self.client.get_records(ShardIterator=iterator)
            self._iterators[shard_id] = answer.get("NextShardIterator") or iterator
            records = answer.get("Records", [])
            fresh += len(records)
            self._pending += [self._as_event(r) for r in records if self._passes(r)]
        self.caught_up = fresh == 0 and not self._pending
        batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
        return batch

    def deliver(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
        """Poll and call ``handler`` with the batch; a reported failure puts that record and the rest back, and so
        does a failed invocation (the handler raised: the exception is raised again) with the whole batch."""
        batch = self.poll()
        if not batch:
            return 0
        try:
            answer = handler({"Records": batch}) or {}
        except BaseException:
            self._pending = batch + self._pending
            self.caught_up = False
            raise
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        if failed:
            first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            self._pending = batch[first:] + self._pending
            self.caught_up = False
        return len(batch)

    def _passes(self, record: dict[str, Any]) -> bool:
        keys = record.get("dynamodb", {}).get("Keys", {})
        return all(_accepts(accepted, keys.get(name, {}).get("S", "")) for name, accepted in self.keys.items())

    def _as_event(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "eventSource": "aws:dynamodb", "eventSourceARN": self.arn}
