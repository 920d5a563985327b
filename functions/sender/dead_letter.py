"""Writing a message to the dead-letter queue ourselves, with the reason.

The body is the record's body exactly as received, so the message can be redriven unchanged. Why it failed travels
in message attributes (SQS allows ten): class, code, message, NXCloud's traceId, where it came from and when.
Credentials and signatures are never among them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from nxcloud_wa.exceptions import DeadLetterRefusedError
from nxcloud_wa.sqs import sqs_text
from outcomes import Failure

MAX_ATTRIBUTE_TEXT: Final = 1000
SQS_BATCH: Final = 10
SQS_BATCH_BYTES: Final = 256 * 1024
"""Most entries ``SendMessageBatch`` takes, and most bytes all of them may hold together."""


def attributes(
    failure: Failure, *, source: str, source_message_id: str | None, idempotency_key: str | None
) -> dict[str, dict[str, str]]:
    """The SQS message attributes describing ``failure``; empty values are left out (SQS rejects them)."""
    values = {
        "reason": failure.reason,
        "error_class": str(failure.error_class),
        "error_code": failure.error_code,
        "error_message": failure.error_message[:MAX_ATTRIBUTE_TEXT],
        "nxcloud_trace_id": failure.trace_id,
        "source": source,
        "source_message_id": source_message_id,
        "idempotency_key": idempotency_key,
        "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return {name: {"DataType": "String", "StringValue": sqs_text(value)} for name, value in values.items() if value}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message for the dead-letter queue: its body as received and the attributes saying why.

    :func:`send_all` also puts throttled messages back on the send queue (:mod:`requeue`): then ``delay_seconds``
    says when the copy becomes visible."""

    body: str
    attributes: dict[str, dict[str, str]]
    delay_seconds: int = 0

    def size(self) -> int:
        """What SQS counts against a batch's size: the body and every attribute's name, type and value."""
        attributes = sum(
            len(k) + len(v["DataType"]) + len(v["StringValue"].encode()) for k, v in self.attributes.items()
        )
        return len(self.body.encode("utf-8", "surrogatepass")) + attributes


def send_all(sqs: Any, queue_url: str, letters: Sequence[DeadLetter]) -> list[str | BaseException]:
    """Put every letter on the queue, as few requests as SQS allows; return each one's message id, or why it failed.

    One letter's failure never stops the others: SQS reports refused entries one by one, and a request refused as a
    whole (one entry SQS cannot take makes some errors fail the batch) is sent again one letter at a time.
    """
    results: list[str | BaseException] = []
    for chunk in _requests(letters):
        entries = [_entry(str(i), letter) for i, letter in enumerate(chunk)]
        try:
            answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        except Exception as exc:
            results += [_send_one(sqs, queue_url, letter) for letter in chunk] if len(chunk) > 1 else [exc]
            continue
        sent = {entry["Id"]: str(entry["MessageId"]) for entry in answer.get("Successful", [])}
        failed = {entry["Id"]: entry for entry in answer.get("Failed", [])}
        for i in range(len(chunk)):
            problem = failed.get(str(i), {"Code": "missing", "Message": "SQS did not report this entry"})
            refused = DeadLetterRefusedError(f"{problem.get('Code')}: {problem.get('Message')}")
            results.append(sent.get(str(i)) or refused)
    return results


def _entry(entry_id: str, letter: DeadLetter) -> dict[str, Any]:
    entry: dict[str, Any] = {"Id": entry_id, "MessageBody": letter.body, "MessageAttributes": letter.attributes}
    if letter.delay_seconds:
        entry["DelaySeconds"] = letter.delay_seconds
    return entry


def _send_one(sqs: Any, queue_url: str, letter: DeadLetter) -> str | BaseException:
    entry = _entry("", letter)
    del entry["Id"]
    try:
        answer = sqs.send_message(QueueUrl=queue_url, **entry)
    except Exception as exc:
        return exc
    return str(answer["MessageId"])


def _requests(letters: Sequence[DeadLetter]) -> list[list[DeadLetter]]:
    """Letters in request-sized groups: at most ten, and at most ``SQS_BATCH_BYTES`` of bodies and attributes."""
    groups: list[list[DeadLetter]] = []
    size = 0
    for letter in letters:
        letter_size = letter.size()
        if not groups or len(groups[-1]) == SQS_BATCH or size + letter_size > SQS_BATCH_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(letter)
        size += letter_size
    return groups
