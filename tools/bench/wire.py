"""AWS requests counted on the wire: what moto's server received, not what the code says it sends.

moto's recorder (``/moto-api/recorder/...``) appends every request it receives to a file while recording; each line
holds the request's headers, and the JSON protocols name their operation in ``X-Amz-Target``
(``DynamoDB_20120810.TransactWriteItems``, ``AmazonSQS.SendMessageBatch``, ``secretsmanager.GetSecretValue``). A
retried request is counted each time it arrives, as AWS bills it.
"""

from __future__ import annotations

import base64
import collections
import json
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from bench.events import sqs_event

SERVICES = {"DynamoDB": "dynamodb", "AmazonSQS": "sqs", "secretsmanager": "secretsmanager"}
"""Target prefixes and the service each names."""


def operation(headers: dict[str, str]) -> str:
    """``service:Operation`` of a recorded request (``other`` for what has no JSON-protocol target)."""
    target = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "")
    prefix, _, name = target.partition(".")
    service = SERVICES.get(prefix.split("_")[0])
    return f"{service}:{name}" if service and name else "other"


@cache
def messages_index_keys() -> frozenset[str]:
    """The attributes that key the messages table's indexes in template.yaml (none since issue 19 removed
    ``by_idempotency_key``): an item carrying one is written to the index too, one more write unit that the request
    itself does not show. Read from the template, so the same count holds for a template with or without one."""
    from local_stack.template import resource_properties

    indexes = resource_properties("MessagesTable").get("GlobalSecondaryIndexes") or []
    return frozenset(key["AttributeName"] for index in indexes for key in index["KeySchema"])


def write_units(op: str, body: dict[str, Any], index_keys: frozenset[str] | None = None) -> int:
    """DynamoDB write request units of one request, items up to 1 KB (ours are ~0.3 KB): a transactional write
    costs 2 per item, any other write 1 per item, plus 1 per item written to an index (an item carrying one of
    ``index_keys``, by default :func:`messages_index_keys`); reads and other services 0."""
    if op == "dynamodb:TransactWriteItems":
        return 2 * len(body.get("TransactItems") or [])
    if op == "dynamodb:BatchWriteItem":
        keys = messages_index_keys() if index_keys is None else index_keys
        requests = [r for table_requests in (body.get("RequestItems") or {}).values() for r in table_requests]
        indexed = sum(1 for r in requests if keys & set((r.get("PutRequest") or {}).get("Item", {})))
        return len(requests) + indexed
    if op in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        return 1
    if op == "dynamodb:BatchExecuteStatement":
        return len(body.get("Statements") or [])
    return 0


def count(lines: Iterable[str]) -> tuple[collections.Counter[str], int]:
    """Requests per ``service:Operation`` in the recorder's file (one JSON document per line), and the DynamoDB
    write units they cost."""
    counts: collections.Counter[str] = collections.Counter()
    units = 0
    for line in lines:
        if not line.strip():
            continue
        entry = json.loads(line)
        op = operation(entry.get("headers") or {})
        counts[op] += 1
        if op.startswith("dynamodb:"):
            units += write_units(op, _body(entry))
    return counts, units


def _body(entry: dict[str, Any]) -> dict[str, Any]:
    raw = entry.get("body") or ""
    text = base64.b64decode(raw).decode("utf-8") if entry.get("body_encoded") else raw
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


@dataclass(frozen=True, slots=True)
class WireCount:
    """The requests moto received while ``batches`` SQS batches of ``batch_size`` new messages were handled."""

    batches: int
    batch_size: int
    operations: dict[str, int]
    write_units: int

    def per_batch(self, service: str) -> float:
        return sum(n for op, n in self.operations.items() if op.startswith(f"{service}:")) / self.batches

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "batch_size": self.batch_size,
            "requests": dict(sorted(self.operations.items())),
            "dynamodb_requests_per_batch": self.per_batch("dynamodb"),
            "sqs_requests_per_batch": self.per_batch("sqs"),
            "secretsmanager_requests_per_batch": self.per_batch("secretsmanager"),
            "dynamodb_write_units_per_message": self.write_units_per_message,
        }

    @property
    def write_units_per_message(self) -> float:
        return self.write_units / (self.batches * self.batch_size)


def _recorder(moto_url: str, action: str) -> None:
    request = urllib.request.Request(f"{moto_url}/moto-api/recorder/{action}", data=b"", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - http://127.0.0.1 only
        pass


def measure(
    invoke: Callable[[dict[str, Any]], None], moto_url: str, recording_path: str, *, batches: int, batch_size: int = 10
) -> WireCount:
    """Handle ``batches`` batches of new messages (the handler already warm) while moto records what it receives."""
    events = [sqs_event(batch_size, start=50_000 + i * batch_size) for i in range(batches)]
    _recorder(moto_url, "reset-recording")
    _recorder(moto_url, "start-recording")
    try:
        for event in events:
            invoke(event)
    finally:
        _recorder(moto_url, "stop-recording")
    with open(recording_path, encoding="utf-8") as handle:
        operations, units = count(handle)
    return WireCount(batches, batch_size, dict(operations), units)
