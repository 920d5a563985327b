"""One idempotent delivery: the only place a message is handed to NXCloud from the function.

Both triggers call :meth:`Delivery.deliver` with the message and its idempotency key. Powertools Idempotency (on
DynamoDB) makes a second call with the same key return the first call's stored result instead of sending again.

What is stored (a final outcome) and what is not (an exception; a later attempt may send):

* ``sent``: NXCloud's ``message_id`` and ``traceId``.
* ``unknown_outcome``, only under ``UNKNOWN_OUTCOME_POLICY=dead_letter``: NXCloud may have sent it, so a redelivery
  must not send it again.
* If the send ended but storing its outcome failed (DynamoDB unavailable), storing it is tried once more, and the
  outcome is returned either way: a message NXCloud accepted is reported sent, not retried into a duplicate. If the
  second try fails too, the key stays ``INPROGRESS`` until the in-progress expiry (logged).
* Permanent rejections are raised, not stored: nothing was sent, and a message redriven after its cause was fixed
  (a template created, a number corrected) must be tried again.
* Retryable errors are raised, not stored.

An attempt that started and never finished (the Lambda timed out or was killed between marking the key
``INPROGRESS`` and storing the outcome) leaves its record ``INPROGRESS`` until the in-progress expiry, which
Powertools ties to that invocation's deadline. Powertools then lets the next attempt take the key over and send again:
right for ``retry`` (at least once), a duplicate for ``dead_letter`` if NXCloud had accepted the first attempt. Under
``dead_letter`` the table therefore never hands over such a key: the delivery is an ``unknown_outcome`` (reason
``interrupted``), dead-lettered like any other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyItemAlreadyExistsError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import STATUS_CONSTANTS, DataRecord
from botocore.exceptions import ClientError

from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import UnknownOutcomeError
from nxcloud_wa.models import SendRequest
from nxcloud_wa.sender import Sender
from observability import logger

KEY_PREFIX: Final = "nxcloud-wa-send"
"""Stable prefix of stored keys: Powertools would otherwise derive it from the module and function name."""

SENT: Final = "sent"
UNKNOWN_OUTCOME: Final = "unknown_outcome"


class InterruptedDeliveryError(Exception):
    """An earlier attempt with this key was marked in progress and never finished: it may have sent the message."""


class AtMostOnceDynamoDBPersistenceLayer(DynamoDBPersistenceLayer):
    """Powertools' DynamoDB store, except that an expired ``INPROGRESS`` record is never taken over.

    Powertools' own ``_put_record`` overwrites a record whose in-progress expiry has passed and runs the function
    again. Here the condition leaves that case out: the write fails, and an expired ``INPROGRESS`` record raises
    :class:`InterruptedDeliveryError` instead of being handed to a new attempt. Everything else (a free key, an
    expired record, a completed or still-running one, payload validation) is as Powertools does it.
    """

    def _put_record(self, data_record: DataRecord) -> None:
        item: dict[str, Any] = {
            **self._get_key(data_record.idempotency_key),
            self.expiry_attr: {"N": str(data_record.expiry_timestamp)},
            self.status_attr: {"S": data_record.status},
        }
        if data_record.in_progress_expiry_timestamp is not None:
            item[self.in_progress_expiry_attr] = {"N": str(data_record.in_progress_expiry_timestamp)}
        if self.payload_validation_enabled and data_record.payload_hash:
            item[self.validation_key_attr] = {"S": data_record.payload_hash}
        now = time.time()
        try:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#id) OR #expiry < :now",
                ExpressionAttributeNames={"#id": self.key_attr, "#expiry": self.expiry_attr},
                ExpressionAttributeValues={":now": {"N": str(int(now))}},
                **self.return_value_on_condition,  # type: ignore[arg-type]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            old_item = exc.response.get("Item")  # type: ignore[typeddict-item]
            if old_item is None:
                raise IdempotencyItemAlreadyExistsError() from exc
            old = self._item_to_data_record(old_item)
            self._validate_payload(data_payload=data_record, stored_data_record=old)
            expiry = old.in_progress_expiry_timestamp
            if old.status == STATUS_CONSTANTS["INPROGRESS"] and expiry is not None and expiry < int(now * 1000):
                raise InterruptedDeliveryError(data_record.idempotency_key) from exc
            self._save_to_cache(data_record=old)
            raise IdempotencyItemAlreadyExistsError(old_data_record=old) from exc


def _mark_replayed(response: Any, record: DataRecord) -> Any:
    """Powertools calls this only when it returns a stored result: say so, so callers don't count it twice."""
    return {**response, "replayed": True} if isinstance(response, dict) else response


class Delivery:
    """Sends through a :class:`Sender`, deduplicated by key in the idempotency table."""

    def __init__(
        self,
        sender: Sender,
        *,
        table_name: str,
        expiry_seconds: int,
        policy: UnknownOutcomePolicy,
        dynamodb_client: Any = None,
    ) -> None:
        self.sender = sender
        self.policy = policy
        self.config = IdempotencyConfig(
            event_key_jmespath="idempotency_key",
            payload_validation_jmespath="message",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=expiry_seconds,
            response_hook=_mark_replayed,
        )
        layer = (
            AtMostOnceDynamoDBPersistenceLayer
            if policy is UnknownOutcomePolicy.DEAD_LETTER
            else DynamoDBPersistenceLayer
        )
        self._store = layer(table_name=table_name, boto3_client=dynamodb_client)
        # Configured here, on one thread, before any record can use it. Powertools configures a store on its first
        # use and marks it configured before compiling the key and validation expressions, so the first SQS batch of
        # a container, fanned out on several threads, could send with a half-configured store (a record stored
        # without its payload hash, so its redelivery was refused as a reused key). Later calls return at once.
        self._store.configure(config=self.config, key_prefix=KEY_PREFIX)
        self._deliver = idempotent_function(
            data_keyword_argument="delivery", config=self.config, persistence_store=self._store, key_prefix=KEY_PREFIX
        )(self._send)

    def deliver(
        self,
        request: SendRequest,
        key: str,
        credentials: Credentials,
        on_unknown: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Send once per key. Returns the (possibly stored) outcome; raises for what must not be stored.

        ``on_unknown`` (dead_letter policy) is called with a fresh unknown outcome before it is stored; what it
        returns is stored with it as ``dead_lettered``, so a replay knows whether the dead letter was written.
        """
        payload = request.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"})
        delivery = {"idempotency_key": key, "message": payload}
        finished: list[dict[str, Any]] = []
        try:
            return self._deliver(  # type: ignore[no-any-return]
                delivery=delivery,
                request=request,
                credentials=credentials,
                finished=finished,
                on_unknown=on_unknown,
            )
        except IdempotencyPersistenceLayerError as exc:
            if isinstance(exc.__cause__, InterruptedDeliveryError):
                return _interrupted()
            if finished:  # the send ended and only storing its outcome failed: the outcome stands
                self._store_again(delivery, finished[0])
                return finished[0]
            raise

    def _store_again(self, delivery: dict[str, Any], outcome: dict[str, Any]) -> None:
        """One more try at storing an outcome after Powertools' store failed (botocore retried it already).

        Left unstored, the key stays ``INPROGRESS``; once its in-progress expiry passes, another delivery of the
        same key (an SQS duplicate, a producer's retry) is an interrupted one: dead-lettered under dead_letter,
        sent again under retry.
        """
        try:
            self._store.save_success(data=delivery, result=outcome)
        except Exception as exc:
            logger.warning(
                "the outcome could not be stored in the idempotency table; the key stays in progress until its "
                "in-progress expiry",
                extra={"idempotency": "unrecorded", "status": outcome.get("status"), "problem": type(exc).__name__},
            )

    def _send(
        self,
        delivery: dict[str, Any],
        request: SendRequest,
        credentials: Credentials,
        finished: list[dict[str, Any]] | None = None,
        on_unknown: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Send; return the outcome to store. ``finished`` receives it too, for when storing it fails."""
        started = time.perf_counter()
        outcome: dict[str, Any]
        try:
            result = self.sender.send(request, credentials)
        except UnknownOutcomeError as exc:
            if self.policy is UnknownOutcomePolicy.RETRY:
                raise
            outcome = {"status": UNKNOWN_OUTCOME, "error": exc.as_dict(), "at": _now()}
            if on_unknown is not None:
                outcome["dead_lettered"] = bool(on_unknown(outcome))
        else:
            outcome = {
                "status": SENT,
                "message_id": result.message_id,
                "trace_id": result.trace_id,
                "at": _now(),
                "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            }
        if finished is not None:
            finished.append(outcome)
        return outcome


def _interrupted() -> dict[str, Any]:
    error = UnknownOutcomeError(
        "an earlier attempt with this idempotency key started and never finished (the function timed out or was "
        "stopped); NXCloud may have sent the message",
        reason="interrupted",
    )
    return {"status": UNKNOWN_OUTCOME, "error": error.as_dict(), "at": _now()}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
