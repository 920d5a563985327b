"""What the delivery writes to a queue itself, and the one writer for it: dead letters, and put-back copies.

* a :class:`DeadLetter` goes to the dead-letter queue: the record's body exactly as received, so the message can be
  redriven unchanged, and why it failed in message attributes (SQS allows ten): class, code, message, NXCloud's
  traceId, where it came from and when. Credentials and signatures are never among them.
* a :class:`PutBackCopy` goes back to the send queue after a throttle, delayed (:mod:`requeue` says what it carries).

:func:`send_all` writes either kind in as few requests as SQS allows, and reports each entry's fate on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from nxcloud_wa.exceptions import DeadLetterRefusedError
from nxcloud_wa.failures import Failure
from nxcloud_wa.sqs import string_attributes
from outcomes import now

MAX_ATTRIBUTE_TEXT: Final = 1000
SQS_BATCH: Final = 10
SQS_BATCH_BYTES: Final = 256 * 1024
"""Most entries ``SendMessageBatch`` takes, and most bytes all of them may hold together."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message for the dead-letter queue: its body as received and the attributes saying why."""

    body: str
    attributes: dict[str, dict[str, str]]

    @classmethod
    def of(cls, body: str, failure: Failure, *, source: str, source_id: str, idempotency_key: str) -> DeadLetter:
        """The letter of a message received from ``source`` (``sqs``, ``api``) as ``source_id``."""
        return cls(body, dead_letter_attributes(failure, source, source_id, idempotency_key))


@dataclass(frozen=True, slots=True)
class PutBackCopy:
    """A throttled message's copy for the send queue, visible in ``delay_seconds`` (:func:`requeue.copy_of`)."""

    body: str
    attributes: dict[str, dict[str, str]]
    delay_seconds: int


Entry = DeadLetter | PutBackCopy


def dead_letter_attributes(
    failure: Failure, source: str, source_message_id: str | None, idempotency_key: str | None
) -> dict[str, dict[str, str]]:
    """The SQS message attributes describing ``failure``; empty values are left out (SQS rejects them)."""
    return string_attributes(
        {
            "reason": failure.reason,
            "error_class": str(failure.error_class),
            "error_code": failure.error_code,
            "error_message": failure.error_message[:MAX_ATTRIBUTE_TEXT],
            "nxcloud_trace_id": failure.trace_id,
            "source": source,
            "source_message_id": source_message_id,
            "idempotency_key": idempotency_key,
            "failed_at": now(),
        }
    )


def send_all(sqs: Any, queue_url: str, entries: Sequence[Entry]) -> list[str | BaseException]:
    """Put every entry on the queue, as few requests as SQS allows; return each one's message id, or why it failed.

    One entry's failure never stops the others: SQS reports refused entries one by one, and a request refused as a
    whole (one entry SQS cannot take makes some errors fail the batch) is sent again one entry at a time.
    """
    results: list[str | BaseException] = []
    for chunk in _requests(entries):
        batch = [{"Id": str(i), **_fields(entry)} for i, entry in enumerate(chunk)]
        try:
            answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=batch)
        except Exception as exc:
            results += [_send_one(sqs, queue_url, entry) for entry in chunk] if len(chunk) > 1 else [exc]
            continue
        sent = {item["Id"]: str(item["MessageId"]) for item in answer.get("Successful", [])}
        failed = {item["Id"]: item for item in answer.get("Failed", [])}
        for i in range(len(chunk)):
            problem = failed.get(str(i), {"Code": "missing", "Message": "SQS did not report this entry"})
            refused = DeadLetterRefusedError(f"{problem.get('Code')}: {problem.get('Message')}")
            results.append(sent.get(str(i)) or refused)
    return results


def _fields(entry: Entry) -> dict[str, Any]:
    """The entry as ``SendMessage`` takes it (``SendMessageBatch`` adds an ``Id``)."""
    fields: dict[str, Any] = {"MessageBody": entry.body, "MessageAttributes": entry.attributes}
    if isinstance(entry, PutBackCopy):
        fields["DelaySeconds"] = entry.delay_seconds
    return fields


def _send_one(sqs: Any, queue_url: str, entry: Entry) -> str | BaseException:
    try:
        answer = sqs.send_message(QueueUrl=queue_url, **_fields(entry))
    except Exception as exc:
        return exc
    return str(answer["MessageId"])


def _size(entry: Entry) -> int:
    """What SQS counts against a batch's size: the body and every attribute's name, type and value."""
    attributes = sum(len(k) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in entry.attributes.items())
    return len(entry.body.encode("utf-8", "surrogatepass")) + attributes


def _requests(entries: Sequence[Entry]) -> list[list[Entry]]:
    """Entries in request-sized groups: at most ten, and at most ``SQS_BATCH_BYTES`` of bodies and attributes."""
    groups: list[list[Entry]] = []
    size = 0
    for entry in entries:
        entry_size = _size(entry)
        if not groups or len(groups[-1]) == SQS_BATCH or size + entry_size > SQS_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(entry)
        size += entry_size
    return groups
