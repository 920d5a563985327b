"""Writing a message to the dead-letter queue ourselves, with the reason.

The body is the record's body exactly as received, so the message can be redriven unchanged. Why it failed travels
in message attributes (SQS allows ten): class, code, message, NXCloud's traceId, where it came from and when.
Credentials and signatures are never among them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from outcomes import Failure

MAX_ATTRIBUTE_TEXT: Final = 1000
NOT_SQS_TEXT: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters SQS refuses in a message body or attribute value (it then refuses the whole message)."""


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
    return {name: {"DataType": "String", "StringValue": sqs_text(value)} for name, value in values.items() if value}


def sqs_text(value: str) -> str:
    """``value`` with the characters SQS refuses written as ``\\uXXXX``.

    The reason's text can quote an invalid message: a field name with a control character (valid JSON as ``\\b``,
    so the body itself is fine), a lone surrogate, U+FFFE. Left as they are, SQS would refuse the dead letter and the
    record would be retried until the redrive policy moved it without its reason.
    """
    return NOT_SQS_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def send_to_dlq(sqs: Any, queue_url: str, body: str, message_attributes: dict[str, dict[str, str]]) -> str:
    """Put the message on the dead-letter queue; return its new message id. Raises what boto3 raises."""
    response = sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=message_attributes)
    return str(response["MessageId"])
