"""The SQS trigger: a batch of records, sent concurrently, each ending sent, dead-lettered now, or retried.

* sent: NXCloud returned a ``message_id`` (or the idempotency table says an earlier delivery did).
* dead-lettered now: invalid, permanently rejected, key reused for another message, or an unknown outcome under
  the dead-letter policy. We write it to the DLQ ourselves, body unchanged, reason in attributes; the record is done.
* retried: listed in ``batchItemFailures``; SQS redelivers it after the visibility timeout and, after
  ``maxReceiveCount`` receives, the redrive policy moves it to the same DLQ. A failed DLQ write lands here too, so
  no record is ever dropped.

Records run concurrently on the runtime's thread pool (one urllib3 pool underneath), so a batch of ten takes about
one upstream round trip. Powertools' AsyncBatchProcessor builds the partial batch response.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.batch import AsyncBatchProcessor, EventType, async_process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from dead_letter import attributes, send_to_dlq
from delivery import SENT
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import PermanentSendError
from nxcloud_wa.models import InvalidMessageError, SendRequest, parse_message
from observability import count, log_failure, log_sent, logger, upstream_latency
from outcomes import Failure, failure_for, failure_for_unknown_outcome
from runtime import Runtime

DEAD_LETTERED = "dead_lettered"


class RetryLater(Exception):
    """Raised for a record that SQS must deliver again; carries the failure for metrics and logs."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.reason}: {failure.error_code}")
        self.failure = failure


@dataclass(frozen=True, slots=True)
class RecordResult:
    status: str
    failure: Failure | None = None
    latency_ms: float | None = None


def handle_batch(event: dict[str, Any], context: LambdaContext, rt: Runtime) -> dict[str, Any]:
    """Process one SQS event; return the partial batch response. Raises ValueError for an event SQS cannot send."""
    check_records(event["Records"])
    try:
        credentials = rt.sender.credentials()  # once, before fanning out: the cache does not stop a stampede
    except Exception as exc:
        logger.exception("could not load the NXCloud credentials: every record of the batch will be retried")
        failure = failure_for(exc)
        for _ in event.get("Records") or ():
            count("MessagesRetried", error_class=failure.error_class, error_code=failure.error_code)
        return {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in event.get("Records") or ()]}

    async def record_handler(record: SQSRecord) -> RecordResult:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(rt.executor, process_record, record, rt, credentials)
        except RetryLater as exc:
            count("MessagesRetried", error_class=exc.failure.error_class, error_code=exc.failure.error_code)
            raise
        _count(result)
        return result

    processor = AsyncBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return async_process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )


def check_records(records: list[dict[str, Any]]) -> None:
    """Refuse, before anything is sent, a batch no queue delivers: every record has a messageId and a body, strings.

    A hand-made or misrouted event gets this error, naming the record and the field (never the value), instead of a
    KeyError from the batch processor or a record that could be neither reported for retry nor dead-lettered as is.
    """
    for index, record in enumerate(records):
        for name in ("messageId", "body"):
            value = record.get(name)
            if not isinstance(value, str) or not value:
                what = "missing" if value is None else "empty" if value == "" else f"of type {type(value).__name__}"
                raise ValueError(f"malformed SQS event: record {index}'s {name} is {what}, not a non-empty string")


def _count(result: RecordResult) -> None:
    if result.status == SENT:
        count("MessagesSent")
        if result.latency_ms is not None:
            upstream_latency(result.latency_ms)
    elif result.failure is not None:
        count("MessagesDeadLettered", error_class=result.failure.error_class, error_code=result.failure.error_code)


def process_record(record: SQSRecord, rt: Runtime, credentials: Credentials) -> RecordResult:
    """Handle one record on a worker thread. Returns its final result or raises :class:`RetryLater`."""
    logger.thread_safe_append_keys(sqs_message_id=record.message_id)
    try:
        return _process(record, rt, credentials)
    finally:
        logger.thread_safe_clear_keys()


def _process(record: SQSRecord, rt: Runtime, credentials: Credentials) -> RecordResult:
    request: SendRequest | None = None
    key: str | None = None
    try:
        request = parse_message(record.body)
        key = idempotency_key(request, record)
        outcome = rt.delivery.deliver(request, key, credentials)
    except (InvalidMessageError, PermanentSendError, IdempotencyValidationError) as exc:
        return _dead_letter(record, failure_for(exc), rt, key, request)
    except Exception as exc:
        failure = failure_for(exc)
        if failure.reason == "internal_error":
            logger.exception("unexpected error: the record will be retried")
        log_failure("message will be retried", "retry", failure, request, receive_count=_receive_count(record))
        raise RetryLater(failure) from exc
    if outcome.get("status") == SENT:
        log_sent(request, outcome, key)
        return RecordResult(SENT, latency_ms=None if outcome.get("replayed") else outcome.get("latency_ms"))
    return _dead_letter(record, failure_for_unknown_outcome(outcome), rt, key, request)


def idempotency_key(request: SendRequest, record: SQSRecord) -> str:
    """The payload's key, else the ``idempotency_key`` message attribute, else the SQS message id.

    Never a hash of the whole record: the receipt handle and receive count change on every redelivery.
    """
    if request.idempotency_key:
        return request.idempotency_key
    attribute = _mapping(record.raw_event.get("messageAttributes")).get("idempotency_key")
    if isinstance(attribute, dict) and isinstance(attribute.get("stringValue"), str) and attribute["stringValue"]:
        return str(attribute["stringValue"])
    return record.message_id


def _dead_letter(
    record: SQSRecord, failure: Failure, rt: Runtime, key: str | None, request: SendRequest | None
) -> RecordResult:
    message_attributes = attributes(
        failure, source="sqs", source_message_id=record.message_id, idempotency_key=key or record.message_id
    )
    try:
        dlq_message_id = send_to_dlq(rt.sqs, rt.settings.dlq_url, record.body, message_attributes)
    except Exception as exc:
        logger.exception("could not write to the dead-letter queue: the record will be retried")
        raise RetryLater(Failure("dlq_write_failed", failure.error_class, failure.error_code, str(exc))) from exc
    log_failure("message dead-lettered", DEAD_LETTERED, failure, request, dlq_message_id=dlq_message_id)
    return RecordResult(DEAD_LETTERED, failure=failure)


def _receive_count(record: SQSRecord) -> int | None:
    raw = _mapping(record.raw_event.get("attributes")).get("ApproximateReceiveCount")
    return int(raw) if isinstance(raw, str) and raw.isascii() and raw.isdigit() else None


def _mapping(value: Any) -> dict[str, Any]:
    """A record's attributes as a dict; anything else (only a hand-made event has it) as none."""
    return value if isinstance(value, dict) else {}
