"""A DynamoDB stream read the way Lambda's event source mapping reads it, for the publisher function.

It keeps one iterator per shard, hands over only records the template's filter lets through (``FilterCriteria`` of
``PublisherFunction``: ids beginning ``status#`` or ``click#``), and, like Lambda with ``ReportBatchItemFailures``,
hands a batch over again from the first record the function reports failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from local_stack.aws import Resources
from local_stack.template import resource_properties


def filter_prefixes() -> tuple[str, ...]:
    """The ``id`` prefixes of the publisher's event filter, read from template.yaml."""
    event = next(iter(resource_properties("PublisherFunction")["Events"].values()))["Properties"]
    [pattern] = event["FilterCriteria"]["Filters"]
    return tuple(p["prefix"] for p in json.loads(pattern["Pattern"])["dynamodb"]["Keys"]["id"]["S"])


class StreamReader:
    """Reads the messages table's stream from its start (``TRIM_HORIZON``, as the template's mapping does)."""

    def __init__(self, resources: Resources) -> None:
        self.client = resources.client("dynamodbstreams")
        self.arn = resources.stream_arn()
        self.prefixes = filter_prefixes()
        self._iterators: dict[str, str] = {}
        self._pending: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """The records not handed over yet (and those the last batch failed), filtered, as Lambda's event has them."""
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
            self._pending += [self._as_event(r) for r in answer.get("Records", []) if self._passes(r)]
        batch, self._pending = self._pending, []
        return batch

    def deliver(self, handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
        """Poll and call ``handler`` with the batch; a reported failure puts that record and the rest back."""
        batch = self.poll()
        if not batch:
            return 0
        answer = handler({"Records": batch}) or {}
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        if failed:
            first = min(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in failed)
            self._pending = batch[first:] + self._pending
        return len(batch)

    def _passes(self, record: dict[str, Any]) -> bool:
        item_id = record.get("dynamodb", {}).get("Keys", {}).get("id", {}).get("S", "")
        return item_id.startswith(self.prefixes)

    def _as_event(self, record: dict[str, Any]) -> dict[str, Any]:
        return {**record, "eventSource": "aws:dynamodb", "eventSourceARN": self.arn}
