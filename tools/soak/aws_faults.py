"""AWS-side faults: errors from DynamoDB, Secrets Manager and SQS, injected between the function's boto3 and moto.

The function reads ``AWS_ENDPOINT_URL``; the soak points it at the fault port of :mod:`soak.aws_service`, while the
emulated event source and the soak's own clients use the clean port of the same moto. All three services use
botocore's JSON protocol here (``X-Amz-Target: DynamoDB_20120810.PutItem``, ``secretsmanager.GetSecretValue``,
``AmazonSQS.SendMessage``), so one header names the operation.

A rule matches an operation (``DynamoDB.PutItem``, ``SecretsManager.GetSecretValue``, ``SQS.SendMessage``) and, for
SQS, optionally the queue (a substring of ``QueueUrl``), and fires with a seeded probability. Kinds:

* ``error``: HTTP 500 with the service's internal-error JSON (``InternalServerError``, ``InternalServiceError``,
  ``InternalError``); the request never reaches moto: nothing happened in AWS.
* ``throttle``: HTTP 400 ``ThrottlingException``, likewise without reaching moto.
* ``lost_response``: moto carries the request out (the operation HAPPENS), then the connection is closed without an
  answer.

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

SERVICE_OF_PREFIX: Final = {"DynamoDB_20120810": "DynamoDB", "secretsmanager": "SecretsManager", "AmazonSQS": "SQS"}
ERRORS: Final = {
    "DynamoDB": (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
    "SecretsManager": (500, "InternalServiceError"),
    "SQS": (500, "com.amazonaws.sqs#InternalError"),
}
THROTTLES: Final = {
    "DynamoDB": (400, "com.amazonaws.dynamodb.v20120810#ThrottlingException"),
    "SecretsManager": (400, "ThrottlingException"),
    "SQS": (400, "com.amazonaws.sqs#ThrottlingException"),
}
KINDS: Final = frozenset({"error", "throttle", "lost_response"})
STICKY_MEMORY: Final = 20_000


@dataclass(frozen=True, slots=True)
class AwsFault:
    """One rule: ``operation`` is ``Service.Operation``; ``queue`` (SQS only) a substring of the QueueUrl."""

    operation: str
    kind: str
    probability: float
    sticky: bool = False
    queue: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}")
        if not 0 <= self.probability <= 1:
            raise ValueError("probability must be within [0, 1]")
        if self.operation.split(".")[0] not in ERRORS:
            raise ValueError(f"operation must start with one of {sorted(ERRORS)}")

    @property
    def label(self) -> str:
        where = f"({self.queue})" if self.queue else ""
        return f"{self.operation}{where} {self.kind}{' sticky' if self.sticky else ''}"

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

    def decide(self, headers: Any, body: bytes) -> AwsFault | None:
        operation = operation_of(headers)
        queue_url = _queue_url(body) if operation.startswith("SQS.") else None
        invocation_id = headers.get("amz-sdk-invocation-id")
        with self._lock:
            self.calls[operation] += 1
            for index, rule in enumerate(self.rules):
                if rule.operation != operation or (rule.queue and rule.queue not in (queue_url or "")):
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

    def stats(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {"injected": dict(self.injected), "calls": dict(self.calls)}


def operation_of(headers: Any) -> str:
    target = headers.get("X-Amz-Target") or ""
    prefix, _, name = target.partition(".")
    return f"{SERVICE_OF_PREFIX.get(prefix, prefix or 'unknown')}.{name}"


def _queue_url(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    value = document.get("QueueUrl") if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
