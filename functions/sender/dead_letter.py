"""Writing a message to the dead-letter queue ourselves, with the reason.

The body is the record's body exactly as received, so the message can be redriven unchanged. Why it failed travels
in message attributes (SQS allows ten): class, code, message, NXCloud's traceId, where it came from and when.
Credentials and signatures are never among them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from outcomes import Failure

MAX_ATTRIBUTE_TEXT: Final = 1000


def attributes(
    failure: Failure, *, source: str, source_message_id: str | None, idempotency_key: str | None
) -> dict[str, dict[str, str]]:
    """The SQS message attributes describing ``failure``; empty values are left out (SQS rejects them)."""
    values = {
        "reason": failure.reason,
        "error_class": failure.error_class,
        "error_code": failure.error_code,
        "error_message": failure.error_message[:MAX_ATTRIBUTE_TEXT],
        "nxcloud_trace_id": failure.trace_id,
        "source": source,
        "source_message_id": source_message_id,
        "idempotency_key": idempotency_key,
        "failed_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items() if value}


def send_to_dlq(sqs: Any, queue_url: str, body: str, message_attributes: dict[str, dict[str, str]]) -> str:
    """Put the message on the dead-letter queue; return its new message id. Raises what boto3 raises."""
    response = sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=message_attributes)
    return str(response["MessageId"])
