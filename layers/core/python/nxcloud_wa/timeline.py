"""Each message's timeline: the reads and writes of the messages table (its items' format is
``nxcloud_wa.messages_table``).

The webhook stores callbacks through :meth:`Timeline.record_status` and :meth:`Timeline.record_click`; the query API
answers from :meth:`Timeline.find` (by idempotency key through the key's idempotency record:
``nxcloud_wa.idempotency_keys.sent_message_id``); the publisher joins status changes to their sends with
:meth:`Timeline.send_records`. The sender writes its send records itself, in its idempotency settlement.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from .dynamo import CONDITION_FAILED, batch_get, error_code, plain, text
from .idempotency_keys import sent_message_id
from .messages_table import (
    SKIP_PREFIX,
    STATUS_PREFIX,
    Attempt,
    RetryMark,
    SendRecord,
    SkipRecord,
    StatusItem,
    Update,
    attempt_link_id,
    click_write,
    record_from_image,
    status_updates,
    view,
)

if TYPE_CHECKING:  # only the webhook function builds them: the sender's cold start does not pay for their models
    from .callbacks import InboundMessage, StatusCallback

DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class SendRecords:
    """The send records found, by message id, and the ids DynamoDB left unread after every attempt."""

    found: dict[str, SendRecord]
    unread: frozenset[str]


@dataclass(frozen=True, slots=True)
class StatusMove:
    """A status callback that became the message's current status, and the one it replaced (None: the first)."""

    previous: str | None


class Timeline:
    """Reads and writes the messages table. ``retention_days`` is how long an item lives after its first write;
    ``idempotency_table`` is where :meth:`find` looks a key's sent message up (without it, a key finds only a skip)."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        retention_days: int,
        idempotency_table: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.table = table
        self.retention_days = retention_days
        self.idempotency_table = idempotency_table
        self._clock = clock
        self._sleep = sleep
        self._jitter = jitter

    def expiration(self) -> int:
        return int(self._clock()) + self.retention_days * DAY

    # --- callbacks

    def record_status(self, callback: StatusCallback, retry: RetryMark | None = None) -> bool:
        """Store one status callback (a failure with the retry scheduled for it, if any); True when it changed the
        current status. A repeat changes nothing."""
        return self.record_status_move(callback, retry) is not None

    def record_status_move(self, callback: StatusCallback, retry: RetryMark | None = None) -> StatusMove | None:
        """:meth:`record_status`, saying what the current status was when this one replaced it (None: it did not:
        a repeat, or outranked). The old status comes back with the write (``UPDATED_OLD``), at no extra cost."""
        current, earlier = status_updates(callback, self.expiration(), retry)
        try:
            answer = self.client.update_item(**current.request(self.table), ReturnValues="UPDATED_OLD")
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            self._update(earlier)
            return None
        return StatusMove(text(answer.get("Attributes", {}), "status"))

    def record_click(self, message: InboundMessage) -> bool:
        """Store one button click, linked to the message it answers when it names one; False for a repeat."""
        write = click_write(message, self.expiration())
        if isinstance(write, Update):
            return self._update(write)
        try:
            self.client.put_item(TableName=self.table, Item=write, ConditionExpression="attribute_not_exists(id)")
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            return False
        return True

    def _update(self, update: Update) -> bool:
        """One conditional update; False when the condition failed (the item already says as much)."""
        try:
            self.client.update_item(**update.request(self.table))
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    # --- reading

    def find(self, message_id_or_key: str) -> dict[str, Any] | None:
        """The message as the query API shows it, by NXCloud's message id or by idempotency key; None if unknown. A
        131049 retry is shown as its original message, with every attempt.

        A key is looked up through its idempotency record (``nxcloud_wa.idempotency_keys``), not an index: the
        message it was sent as, else its skip record. A key skipped, then sent after the recipient opted back in,
        has both: the send is what happened last. The record lives ``IDEMPOTENCY_EXPIRY_SECONDS`` after the send
        (until DynamoDB's TTL deletes it), the messages ``retention_days``: past the record, only the id finds a send.
        """
        items = self._items(message_id_or_key)
        if items is None:
            key, table = message_id_or_key, self.idempotency_table
            message_id = sent_message_id(self.client, table, key) if table else None
            items = (self._items(message_id) if message_id else None) or self._items(SKIP_PREFIX + key)
        if items is None:
            return None
        send, status = items
        if isinstance(send, SendRecord) and send.retry_of:
            original = self._items(send.retry_of)
            if original is not None:
                send, status = original
        return view(send, status, self.retries(send, status) if isinstance(send, SendRecord) else ())

    def retries(self, send: SendRecord, status: StatusItem | None) -> list[Attempt]:
        """The 131049 retries of the original message ``send``, in order, as far as they were sent: each found through
        its ``attempt#`` link (a retry scheduled and not sent yet has none)."""
        found: list[Attempt] = []
        while status is not None and status.retry is not None and len(found) < status.retry.attempt:
            link = self._item(attempt_link_id(send.message_id, status.retry.attempt))
            attempt = self._items(str(link["message_id"])) if link else None
            if attempt is None or isinstance(attempt[0], SkipRecord):
                break
            found.append((attempt[0], attempt[1]))
            status = attempt[1]
        return found

    def _item(self, item_id: str) -> dict[str, Any] | None:
        """One item, strongly consistent (through BatchGetItem: the readers' roles allow that one)."""
        answer = self.client.batch_get_item(
            RequestItems={self.table: {"Keys": [{"id": {"S": item_id}}], "ConsistentRead": True}}
        )
        items = answer.get("Responses", {}).get(self.table, [])
        return plain(items[0]) if items else None

    def attempt(self, message_id: str) -> tuple[SendRecord | None, StatusItem | None]:
        """One attempt's send record and status item (strongly consistent): what a retry's marker is checked against."""
        items = self._items(message_id)
        if items is None or isinstance(items[0], SkipRecord):
            return None, items[1] if items else None
        return items[0], items[1]

    def _items(self, message_id: str) -> tuple[SendRecord | SkipRecord | None, StatusItem | None] | None:
        """The send record and the status item of ``message_id`` (strongly consistent); None when neither exists."""
        answer = self.client.batch_get_item(
            RequestItems={
                self.table: {
                    "Keys": [{"id": {"S": message_id}}, {"id": {"S": STATUS_PREFIX + message_id}}],
                    "ConsistentRead": True,
                }
            }
        )
        found = {image["id"]: image for image in map(plain, answer.get("Responses", {}).get(self.table, []))}
        send, status = found.get(message_id), found.get(STATUS_PREFIX + message_id)
        if not send and not status:
            return None
        return (record_from_image(send) if send else None, StatusItem.from_image(status) if status else None)

    def send_records(self, message_ids: list[str]) -> SendRecords:
        """The send records of these messages (those that have one), in as few reads as allowed.

        What DynamoDB leaves unprocessed is asked for again, a few times with backoff; what is still unread then is
        reported, not mistaken for a message without a send record.
        """
        unique = [m for m in dict.fromkeys(message_ids) if m]
        items, unread, _ = batch_get(
            self.client, self.table, [{"id": {"S": m}} for m in unique], sleep=self._sleep, jitter=self._jitter
        )
        found = {record.message_id: record for record in (SendRecord.from_image(plain(item)) for item in items)}
        return SendRecords(found, frozenset(str(key["id"]["S"]) for key in unread))
