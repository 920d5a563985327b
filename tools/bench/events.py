"""SQS events for the bench, built in memory in the shape the event source mapping delivers.

Built rather than received from the queue: receiving and deleting is the event source mapping's work, not the
function's, and would put boto3 calls of the bench itself into the handler's CPU time. Every record gets a fresh
message id, which is also its idempotency key, so every message really goes through the idempotency table and
the simulator (nothing is answered from a stored result).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:bench-send"


def message_body(index: int) -> str:
    """A valid message relying on the secret's defaults (tenant, appkey, business phone), as the tests send."""
    return json.dumps(
        {
            "to": f"86138{index % 100_000_000:08d}",
            "template": {
                "name": "order_update",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": f"bench {index}"}]}],
            },
        }
    )


def sqs_record(body: str, *, queue_arn: str = QUEUE_ARN) -> dict[str, Any]:
    """One ``aws:sqs`` record with a new message id (first receive)."""
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": now_ms,
            "SenderId": "AIDAEXAMPLE",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }


def sqs_event(size: int, *, start: int = 0) -> dict[str, Any]:
    """A batch of ``size`` valid messages, numbered from ``start``."""
    return {"Records": [sqs_record(message_body(start + i)) for i in range(size)]}
