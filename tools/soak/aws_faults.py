"""AWS-side faults: errors from DynamoDB, Secrets Manager, SQS and EventBridge, injected between the functions'
boto3 and moto.

The functions (sender, webhook, publisher) read ``AWS_ENDPOINT_URL``; the soak points it at the fault port of
:mod:`soak.aws_service`, while the emulated event sources and the soak's own clients use the clean port of the same
moto. All four services use botocore's JSON protocol here (``X-Amz-Target: DynamoDB_20120810.PutItem``,
``secretsmanager.GetSecretValue``, ``AmazonSQS.SendMessage``, ``AWSEvents.PutEvents``), so one header names the
operation.

A rule matches an operation (``DynamoDB.PutItem``, ``SecretsManager.GetSecretValue``, ``SQS.SendMessage``,
``EventBridge.PutEvents``) and optionally, for SQS, the queue (a substring of ``QueueUrl``) or, for DynamoDB, the
table (a substring of ``TableName`` or of a table named in ``RequestItems``/``TransactItems``), and fires with a
seeded probability. Kinds:

* ``error``: HTTP 500 with the service's internal-error JSON (``InternalServerError``, ``InternalServiceError``,
  ``InternalError``, ``InternalException``); the request never reaches moto: nothing happened in AWS.
* ``throttle``: HTTP 400 ``ThrottlingException``, likewise without reaching moto.
* ``lost_response``: moto carries the request out (the operation HAPPENS), then the connection is closed without an
  answer.
* ``partial`` (``EventBridge.PutEvents`` and ``DynamoDB.BatchExecuteStatement`` only): what those calls really do
  when some entries fail. The call succeeds (HTTP 200), a seeded share of the entries (at least one) fail and only
  the others reach moto (it gets a request without the failed ones); the answer keeps the request's order and
  length. PutEvents: ``FailedEntryCount`` > 0, a failed entry has a retryable ``ErrorCode`` (``InternalFailure`` or
  ``ThrottlingException``) and an ``ErrorMessage``, the others their ``EventId``. BatchExecuteStatement: a failed
  statement's response is ``{"Error": {"Code": ..., "Message": ...}}`` with a code of DynamoDB's
  ``BatchStatementError`` that is not about the item (``ThrottlingError``, ``ProvisionedThroughputExceeded``,
  ``InternalServerError``), the others moto's.

``sticky`` decides once per logical call, keyed on botocore's ``amz-sdk-invocation-id`` header (the same on every
retry attempt of one call): a sticky fault fails every attempt, so the function sees the error after botocore's
retries, as in a real outage. A non-sticky fault is drawn per attempt; botocore's retries usually absorb it.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Final

SERVICE_OF_PREFIX: Final = {
    "DynamoDB_20120810": "DynamoDB",
    "secretsmanager": "SecretsManager",
    "AmazonSQS": "SQS",
    "AWSEvents": "EventBridge",
}
ERRORS: Final = {
    "DynamoDB": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
    "SecretsManager": (500, "InternalServiceError"),
    "SQS": (500, "com.amazonaws.sqs#InternalError"),
    "EventBridge": (500, "InternalException"),
}
THROTTLES: Final = {
    "DynamoDB": (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
    "SecretsManager": (400, "ThrottlingException"),
    "SQS": (400, "com.amazonaws.sqs#ThrottlingException"),
    "EventBridge": (400, "ThrottlingException"),
}
KINDS: Final = frozenset({"error", "throttle", "lost_response", "partial"})
PARTIAL_SHARE: Final = 0.5
"""Of a request a ``partial`` fault hits, the share of entries that fail (at least one)."""
ENTRY_ERRORS: Final = {
    "EventBridge.PutEvents": (
        ("InternalFailure", "The request processing has failed because of an unknown error, exception or failure."),
        ("ThrottlingException", "The request was denied due to request throttling."),
    ),
    "DynamoDB.BatchExecuteStatement": (
        ("ThrottlingError", "Throughput exceeds the current capacity of your table or index."),
        ("ProvisionedThroughputExceeded", "The level of configured provisioned throughput for the table was exceeded."),
        ("InternalServerError", "Internal server error"),
    ),
}
"""Per operation a ``partial`` fault applies to, the per-entry errors it answers (PutEventsResultEntry's retryable
codes; BatchStatementError's codes that are not about the item), with AWS's descriptions as messages."""
ENTRIES: Final = {"EventBridge.PutEvents": "Entries", "DynamoDB.BatchExecuteStatement": "Statements"}
"""Where a request of each such operation lists its entries."""
STICKY_MEMORY: Final = 20_000


@dataclass(frozen=True, slots=True)
class AwsFault:
    """One rule: ``operation`` is ``Service.Operation``; ``queue`` (SQS only) a substring of the QueueUrl, ``table``
    (DynamoDB only) a substring of a table the request names."""

    operation: str
    kind: str
    probability: float
    sticky: bool = False
    queue: str | None = None
    table: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be within [0, 1]")
        service = self.operation.split(".")[0]
        if service not in ERRORS:
            raise ValueError(f"operation must start with one of {sorted(ERRORS)}")
        if self.kind == "partial" and self.operation not in ENTRY_ERRORS:
            raise ValueError(f"partial failures are {' and '.join(ENTRY_ERRORS)}'s only")
        if (self.queue and service != "SQS") or (self.table and service != "DynamoDB"):
            raise ValueError("queue is for SQS operations, table for DynamoDB operations")

    @property
    def label(self) -> str:
        where = f"({self.queue or self.table})" if self.queue or self.table else ""
        return f"{self.operation}{where} {self.kind}{' sticky' if self.sticky else ''}"

    def matches(self, operation: str, resources: tuple[str, ...]) -> bool:
        """Whether this rule is about this operation on (one of) these queues or tables."""
        wanted = self.queue or self.table
        return self.operation == operation and (wanted is None or any(wanted in r for r in resources))

    def error_answer(self) -> tuple[int, bytes]:
        """Status and JSON body of the injected error (``error`` / ``throttle``)."""
        service = self.operation.split(".")[0]
        status, error_type = (ERRORS if self.kind == "error" else THROTTLES)[service]
        document = {"__type": error_type, "message": f"injected by the soak ({self.label})"}
        return status, json.dumps(document).encode()


class FaultDecider:
    """Thread-safe: which rule, if any, fires for one attempt; counts what it injected and what it saw."""

    def __init__(self, rules: list[AwsFault], seed: int) -> None:
        self.rules = list(rules)
        self._rng = random.Random(f"aws-{seed}")
        self._lock = threading.Lock()
        self._sticky: OrderedDict[tuple[str, int], bool] = OrderedDict()
        self.injected: Counter[str] = Counter()
        """Faults applied, by rule label (one count per attempt failed or cut)."""
        self.calls: Counter[str] = Counter()
        """Attempts seen, by operation (botocore's retries included)."""
        self.table_calls: Counter[str] = Counter()
        """DynamoDB attempts, by operation and table (``DynamoDB.UpdateItem <table>``): one table's share of an
        operation others use too (the limiter's UpdateItem beside the webhook's)."""

    def decide(self, headers: Any, body: bytes) -> AwsFault | None:
        operation = operation_of(headers)
        resources = _resources(body) if operation.startswith(("SQS.", "DynamoDB.")) else ()
        invocation_id = headers.get("amz-sdk-invocation-id")
        with self._lock:
            self.calls[operation] += 1
            if operation.startswith("DynamoDB."):
                self.table_calls.update(f"{operation} {table}" for table in resources)
            for index, rule in enumerate(self.rules):
                if not rule.matches(operation, resources):
                    continue
                if rule.sticky and invocation_id:
                    key = (invocation_id, index)
                    fires = self._sticky.get(key)
                    if fires is None:
                        fires = self._sticky[key] = self._rng.random() < rule.probability
                        if len(self._sticky) > STICKY_MEMORY:
                            self._sticky.popitem(last=False)
                else:
                    fires = self._rng.random() < rule.probability
                if fires:
                    self.injected[rule.label] += 1
                    return rule
        return None

    def failing_entries(self, rule: AwsFault, count: int) -> list[tuple[int, str, str]]:
        """For a ``partial`` fault on a request of ``count`` entries: which fail (at least one), each with its error
        code and message; counted under the rule's label and ``: entries failed``."""
        with self._lock:
            failing = [i for i in range(count) if self._rng.random() < PARTIAL_SHARE]
            if not failing and count:
                failing = [self._rng.randrange(count)]
            self.injected[f"{rule.label}: entries failed"] += len(failing)
            return [(i, *self._rng.choice(ENTRY_ERRORS[rule.operation])) for i in failing]

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"injected": dict(self.injected), "calls": dict(self.calls), "table_calls": dict(self.table_calls)}


def operation_of(headers: Any) -> str:
    target = headers.get("X-Amz-Target") or ""
    prefix, _, name = target.partition(".")
    return f"{SERVICE_OF_PREFIX.get(prefix, prefix or 'unknown')}.{name}"


def _resources(body: bytes) -> tuple[str, ...]:
    """The queue URL or the table names a request is about (empty when it names none)."""
    try:
        document = json.loads(body)
    except ValueError:
        return ()
    if not isinstance(document, dict):
        return ()
    names = [document.get("QueueUrl"), document.get("TableName")]
    names += list(document.get("RequestItems") or {})
    for item in document.get("TransactItems") or []:
        names += [part.get("TableName") for part in item.values() if isinstance(part, dict)]
    return tuple(n for n in names if isinstance(n, str))


# ---------------------------------------------------------------------------------------------------------------------
# PutEvents with some entries failed, as AWS answers it


def entry_count(operation: str, body: bytes) -> int:
    """How many entries a request of a ``partial`` fault's operation lists."""
    return len(json.loads(body).get(ENTRIES[operation]) or [])


def request_without(operation: str, body: bytes, failing: list[tuple[int, str, str]]) -> bytes | None:
    """The request with the failing entries left out (what reaches moto); None when all fail."""
    request = json.loads(body)
    dropped = {index for index, _, _ in failing}
    kept = [entry for n, entry in enumerate(request.get(ENTRIES[operation]) or []) if n not in dropped]
    return json.dumps({**request, ENTRIES[operation]: kept}).encode() if kept else None


def partial_answer(operation: str, count: int, failing: list[tuple[int, str, str]], delivered: bytes | None) -> bytes:
    """The answer of a ``partial`` fault's operation for ``count`` entries."""
    if operation == "DynamoDB.BatchExecuteStatement":
        return batch_statements_answer(count, failing, delivered)
    return put_events_answer(count, failing, delivered)


def batch_statements_answer(count: int, failing: list[tuple[int, str, str]], delivered: bytes | None) -> bytes:
    """BatchExecuteStatement's answer for ``count`` statements: moto's responses for those ``delivered`` (in order),
    the failing ones in their places as ``{"Error": {"Code": ..., "Message": ...}}``."""
    passed = iter(json.loads(delivered)["Responses"] if delivered is not None else [])
    errors = {index: (code, message) for index, code, message in failing}
    responses = [
        {"Error": {"Code": errors[n][0], "Message": errors[n][1]}} if n in errors else next(passed)
        for n in range(count)
    ]
    if next(passed, None) is not None:
        raise ValueError("moto answered for more statements than were sent")
    return json.dumps({"Responses": responses}).encode()


def put_events_answer(count: int, failing: list[tuple[int, str, str]], delivered: bytes | None) -> bytes:
    """PutEvents' answer for ``count`` entries: moto's answer for those ``delivered`` (in order), the failing ones
    in their places with ``ErrorCode`` and ``ErrorMessage``, and ``FailedEntryCount`` counting every failure."""
    passed = iter(json.loads(delivered)["Entries"] if delivered is not None else [])
    errors = {index: (code, message) for index, code, message in failing}
    entries = [
        {"ErrorCode": errors[n][0], "ErrorMessage": errors[n][1]} if n in errors else next(passed) for n in range(count)
    ]
    if next(passed, None) is not None:
        raise ValueError("moto answered for more entries than were sent")
    failed = sum(1 for entry in entries if "ErrorCode" in entry)
    return json.dumps({"FailedEntryCount": failed, "Entries": entries}).encode()
