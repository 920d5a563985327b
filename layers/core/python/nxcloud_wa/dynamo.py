"""What every table's code shares about DynamoDB items: the item's type, reading an attribute, a failed call's code.

The functions talk to DynamoDB through the low-level client (the resource layer's conversions cost CPU the sender
measures per message), so items travel in its typed form: ``{"id": {"S": "m-1"}, "expiration": {"N": "1800"}}``.
Each table's own module (``nxcloud_wa.messages_table``, the sender's ``idempotency`` and ``rate_limiter``) names
its attributes; this module knows only the form.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from botocore.exceptions import ClientError

Item = dict[str, dict[str, Any]]
"""A DynamoDB item (or key, or expression values) in the low-level client's typed form: name -> {type: value}."""

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
"""The error code of a write whose condition did not hold."""

_DESERIALIZER: Final = TypeDeserializer()


def text(item: Mapping[str, Any], name: str) -> str | None:
    """The string attribute ``name`` of a typed item; None when it is missing or not a string."""
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A typed item as Python values (numbers as ``Decimal``, sets as ``set``): the form Powertools'
    ``DynamoDBStreamEvent`` gives a stream's images in, with the same deserializer, so one decoder reads both."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def error_code(exc: ClientError) -> str:
    """The DynamoDB error code of a failed call (``ConditionalCheckFailedException``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


BATCH_GET_LIMIT: Final = 100
"""Most keys one ``BatchGetItem`` takes."""
READ_ATTEMPTS: Final = 4
"""``BatchGetItem`` calls per chunk of keys: the first, then retries of what DynamoDB left unprocessed (throttling)."""
BACKOFF_SECONDS: Final = 0.05
"""The first retry waits up to this long, each next one up to twice as long (full jitter)."""


class BatchRead(NamedTuple):
    """What :func:`batch_get` read: the items found, the keys left unread, and the requests it took."""

    items: list[Item]
    unread: list[Item]
    calls: int


def batch_get(
    client: Any,
    table: str,
    keys: Sequence[Item],
    *,
    consistent: bool = False,
    attempts: int = READ_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> BatchRead:
    """The items of ``keys`` (those that exist) and the keys still unread after ``attempts`` calls per chunk of 100.

    DynamoDB may leave keys unprocessed (throttling); they are asked for again with exponential backoff and full
    jitter, as AWS advises for BatchGetItem, a bounded number of times: the caller decides what an unread key means.
    """
    found: list[Item] = []
    unread: list[Item] = []
    calls = 0
    for start in range(0, len(keys), BATCH_GET_LIMIT):
        chunk = list(keys[start : start + BATCH_GET_LIMIT])
        for attempt in range(attempts):
            if attempt:
                sleep(jitter() * BACKOFF_SECONDS * 2 ** (attempt - 1))
            request: dict[str, Any] = {"Keys": chunk, **({"ConsistentRead": True} if consistent else {})}
            calls += 1
            answer = client.batch_get_item(RequestItems={table: request})
            found.extend(answer.get("Responses", {}).get(table, []))
            chunk = (answer.get("UnprocessedKeys") or {}).get(table, {}).get("Keys", [])
            if not chunk:
                break
        unread.extend(chunk)
    return BatchRead(found, unread, calls)
