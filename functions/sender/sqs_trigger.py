"""The SQS trigger: a batch of records, delivered together, each ending sent, skipped, dead-lettered now, put back,
or retried.

* sent: NXCloud returned a ``message_id`` (or the idempotency table says an earlier delivery did).
* skipped: its recipient is on the suppression list for its template's category, or has reached the marketing
  frequency cap (docs/audience.md): not sent, not a failure, the record is done (recorded in the messages table,
  never dead-lettered).
* dead-lettered now: invalid, permanently rejected, key reused for another message, or an unknown outcome under
  the dead-letter policy. We write it to the DLQ ourselves, body unchanged, reason in attributes; the record is done.
* put back: throttled (its business number at its rate, or NXCloud refusing for a rate). A delayed copy is on the
  queue (:mod:`requeue`) and the record is done, so the throttle spends none of the message's receives.
* retried: listed in ``batchItemFailures``; SQS redelivers it after the visibility timeout and, after
  ``maxReceiveCount`` receives, the redrive policy moves it to the same DLQ. A failed DLQ write lands here too, so
  no record is ever dropped.

The whole batch goes through :mod:`delivery` at once (one idempotency claim and one settlement for all of it, the
sends concurrent), which Powertools' per-record batch processor cannot express; the answer is the partial batch
response it would build.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

import requeue
from incoming import Incoming
from outcomes import RetryLater
from runtime import Runtime


def handle_batch(event: dict[str, Any], context: LambdaContext, rt: Runtime) -> dict[str, Any]:
    """Process one SQS event; return the partial batch response. Raises ValueError for an event SQS cannot send."""
    records = event["Records"]
    check_records(records)
    messages = [_incoming(record) for record in records]
    outcomes = rt.delivery.deliver(
        messages, remaining_ms=context.get_remaining_time_in_millis(), dead_letter_rejections=True
    )
    return {
        "batchItemFailures": [
            {"itemIdentifier": m.source_id}
            for m, outcome in zip(messages, outcomes, strict=True)
            if isinstance(outcome, RetryLater)
        ]
    }


def check_records(records: list[dict[str, Any]]) -> None:
    """Refuse, before anything is sent, a batch no queue delivers: every record has a messageId and a body, strings.

    A hand-made or misrouted event gets this error, naming the record and the field (never the value), instead of a
    KeyError or a record that could be neither reported for retry nor dead-lettered as is.
    """
    for index, record in enumerate(records):
        for name in ("messageId", "body"):
            value = record.get(name)
            if not isinstance(value, str) or not value:
                what = "missing" if value is None else "empty" if value == "" else f"of type {type(value).__name__}"
                raise ValueError(f"malformed SQS event: record {index}'s {name} is {what}, not a non-empty string")


def _incoming(record: dict[str, Any]) -> Incoming:
    """A record as the delivery sees it. Its key is never a hash of the record: the receipt handle and receive
    count change on every redelivery, so the SQS message id is the key of last resort."""
    message_attributes = _mapping(record.get("messageAttributes"))
    attribute = message_attributes.get(requeue.KEY_ATTRIBUTE)
    key = attribute.get("stringValue") if isinstance(attribute, dict) else None
    receive_count = _mapping(record.get("attributes")).get("ApproximateReceiveCount")
    return Incoming(
        body=record["body"],
        source="sqs",
        source_id=record["messageId"],
        key=key if isinstance(key, str) and key else None,
        receive_count=int(receive_count)
        if isinstance(receive_count, str) and receive_count.isascii() and receive_count.isdecimal()
        else None,
        earlier_failures=requeue.carried(message_attributes, requeue.FAILED_RECEIVES),
        times_put_back=requeue.carried(message_attributes, requeue.THROTTLED),
    )


def _mapping(value: Any) -> dict[str, Any]:
    """A record's attributes as a dict; anything else (only a hand-made event has it) as none."""
    return value if isinstance(value, dict) else {}
