"""One idempotent delivery: the only place a message is handed to NXCloud from the function.

Both triggers call :meth:`Delivery.deliver` with the message and its idempotency key. Powertools Idempotency (on
DynamoDB) makes a second call with the same key return the first call's stored result instead of sending again.

What is stored (a final outcome) and what is not (an exception; a later attempt may send):

* ``sent``: NXCloud's ``message_id`` and ``traceId``.
* ``unknown_outcome``, only under ``UNKNOWN_OUTCOME_POLICY=dead_letter``: NXCloud may have sent it, so a redelivery
  must not send it again.
* Permanent rejections are raised, not stored: nothing was sent, and a message redriven after its cause was fixed
  (a template created, a number corrected) must be tried again.
* Retryable errors are raised, not stored.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import UnknownOutcomeError
from nxcloud_wa.models import SendRequest
from nxcloud_wa.sender import Sender

KEY_PREFIX: Final = "nxcloud-wa-send"
"""Stable prefix of stored keys: Powertools would otherwise derive it from the module and function name."""

SENT: Final = "sent"
UNKNOWN_OUTCOME: Final = "unknown_outcome"


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
        store = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=dynamodb_client)
        self._deliver = idempotent_function(
            data_keyword_argument="delivery", config=self.config, persistence_store=store, key_prefix=KEY_PREFIX
        )(self._send)

    def deliver(self, request: SendRequest, key: str, credentials: Credentials) -> dict[str, Any]:
        """Send once per key. Returns the (possibly stored) outcome; raises for what must not be stored."""
        payload = request.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"})
        return self._deliver(  # type: ignore[no-any-return]
            delivery={"idempotency_key": key, "message": payload}, request=request, credentials=credentials
        )

    def _send(self, delivery: dict[str, Any], request: SendRequest, credentials: Credentials) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            result = self.sender.send(request, credentials)
        except UnknownOutcomeError as exc:
            if self.policy is UnknownOutcomePolicy.RETRY:
                raise
            return {"status": UNKNOWN_OUTCOME, "error": exc.as_dict(), "at": _now()}
        return {
            "status": SENT,
            "message_id": result.message_id,
            "trace_id": result.trace_id,
            "at": _now(),
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
