"""Reading and redriving the dead-letter queue.

Listing receives messages with a short visibility timeout and makes them visible again at the end, so nothing is
consumed. Redrive prefers SQS's own message-move task (it keeps bodies and attributes and is resumable); where the
endpoint has none (moto, old regions) it moves messages itself: send to the send queue, then delete from the DLQ,
so a message is never lost (at worst moved twice; the idempotency key stops a double send).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import ClientError

LIST_VISIBILITY: Final = 30
CARRIED_ATTRIBUTES: Final = ("idempotency_key",)
"""Attributes kept when redriving by hand: the failure attributes describe the last attempt, not the message."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    receive_count: int
    sent_timestamp_ms: int

    @classmethod
    def from_sqs(cls, message: dict[str, Any]) -> DeadLetter:
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            attributes={k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()},
            receive_count=int(message.get("Attributes", {}).get("ApproximateReceiveCount", "0")),
            sent_timestamp_ms=int(message.get("Attributes", {}).get("SentTimestamp", "0")),
        )

    @property
    def reason(self) -> str:
        """Our reason, or the redrive policy's doing when the function never wrote one (retries exhausted)."""
        return self.attributes.get("reason") or "retries_exhausted"


def queue_size(sqs: Any, url: str) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"])


def peek(sqs: Any, dlq_url: str, limit: int | None = None) -> Iterator[DeadLetter]:
    """Yield dead letters without consuming them (each once); they are visible again when the generator ends."""
    seen: dict[str, DeadLetter] = {}
    try:
        while limit is None or len(seen) < limit:
            batch = _receive(sqs, dlq_url, 10 if limit is None else limit - len(seen))
            fresh = [DeadLetter.from_sqs(m) for m in batch if m["MessageId"] not in seen]
            if not fresh:
                return
            for letter in fresh:
                seen[letter.message_id] = letter
                yield letter
    finally:
        for letter in seen.values():
            release(sqs, dlq_url, letter.receipt_handle)


def release(sqs: Any, url: str, receipt_handle: str) -> None:
    """Make a received message visible again at once."""
    with contextlib.suppress(ClientError):  # already deleted or the handle expired: visible again by itself
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=receipt_handle, VisibilityTimeout=0)


def start_move_task(sqs: Any, dlq_url: str, queue_url: str) -> str | None:
    """Start SQS's message-move task; return its handle, or None where the endpoint does not offer it."""
    arn = _arn(sqs, dlq_url)
    destination = _arn(sqs, queue_url)
    try:
        return str(sqs.start_message_move_task(SourceArn=arn, DestinationArn=destination)["TaskHandle"])
    except (ClientError, NotImplementedError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        if code in ("", "InternalFailure", "NotImplemented", "UnsupportedOperation", "InvalidAction", "500"):
            return None
        raise


def move(sqs: Any, letter: DeadLetter, dlq_url: str, queue_url: str) -> str:
    """Move one message by hand: send (body unchanged, idempotency key kept), then delete from the DLQ."""
    attributes = {
        name: {"DataType": "String", "StringValue": value}
        for name, value in letter.attributes.items()
        if name in CARRIED_ATTRIBUTES and value
    }
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=letter.body, MessageAttributes=attributes)
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
    return str(sent["MessageId"])


def take(sqs: Any, dlq_url: str) -> Iterator[DeadLetter]:
    """Yield dead letters to move, each once: it stays hidden long enough to be moved and deleted by :func:`move`."""
    while batch := _receive(sqs, dlq_url, 10):
        for message in batch:
            yield DeadLetter.from_sqs(message)


def _receive(sqs: Any, url: str, wanted: int) -> list[dict[str, Any]]:
    """Up to ``wanted`` (at most 10) messages with their attributes, hidden for ``LIST_VISIBILITY`` seconds."""
    return list(
        sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(10, wanted)),
            VisibilityTimeout=LIST_VISIBILITY,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
    )


def _arn(sqs: Any, url: str) -> str:
    return str(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])
