"""A key's idempotency record as any function finds and reads it: which record a key has, and the message it names.

The sender's ``idempotency`` module claims and settles the records and its ``idempotency_record`` writes what a
settled one stores; this module is the one place that says where a key's record is (``record_id``, Powertools'
``<prefix>#md5(json(key))``) and which NXCloud message a settled record says the key was sent as
(:func:`sent_message_id`). A record sent as a message maps its key to the message's id for as long as it lives
(``IDEMPOTENCY_EXPIRY_SECONDS`` after the send, until DynamoDB's TTL deletes it), so a message is found by its key
with one ``GetItem`` and no index on the messages table (docs/lifecycle.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from .dynamo import text

KEY_PREFIX: Final = "nxcloud-wa-send"
"""Stable prefix of stored keys (the ``key_prefix`` the Powertools-based versions used)."""
COMPLETED: Final = "COMPLETED"
"""A settled record's ``status`` (Powertools' name): its ``data`` holds the outcome."""
SENT: Final = "sent"
"""The outcome's ``status`` in ``data`` when NXCloud accepted the message (its id is ``data["message_id"]``)."""


def powertools_hash(value: Any) -> str:
    """Powertools' hash of a key or payload: md5 of the JSON text with sorted keys."""
    return hashlib.md5(json.dumps(value, sort_keys=True).encode(), usedforsecurity=False).hexdigest()


def record_id(key: str) -> str:
    """The id of the idempotency record of ``key``."""
    return f"{KEY_PREFIX}#{powertools_hash(key)}"


def sent_message(data: Mapping[str, Any]) -> str | None:
    """The message id a stored outcome (a record's ``data``) says the key was sent as; None when it was not sent."""
    return str(data.get("message_id")) if data.get("status") == SENT else None


def sent_message_id(client: Any, table: str, key: str) -> str | None:
    """The NXCloud message id ``key`` was sent as, read from its idempotency record (strongly consistent); None when
    the key has no record (never sent, released, or deleted by its TTL), is in progress, or ended unknown."""
    item = client.get_item(
        TableName=table,
        Key={"id": {"S": record_id(key)}},
        ConsistentRead=True,
        ProjectionExpression="#status, #data",
        ExpressionAttributeNames={"#status": "status", "#data": "data"},
    ).get("Item")
    if not item or text(item, "status") != COMPLETED:
        return None
    data = json.loads(text(item, "data") or "{}")
    return sent_message(data) if isinstance(data, dict) else None
