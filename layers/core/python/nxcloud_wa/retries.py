"""Meta's per-user marketing limit (131049): one more attempt of the same message later, scheduled durably.

docs/audience.md ("Meta's marketing limit") is the contract. A ``failed`` status with 131049 is not final when
:func:`nxcloud_wa.audience.status_action` says :class:`~nxcloud_wa.audience.RetryLater` (``MARKETING_LIMIT_RETRY_HOURS``
> 0) and the failed attempt's send record can be sent again (it holds the request: the sender stores it only for a
marketing or unknown-category template, :func:`keeps_request`) and has had fewer than ``MARKETING_LIMIT_RETRIES``
retries (:func:`next_attempt`). Then:

1. the webhook creates an EventBridge Scheduler one-time schedule (:class:`RetryScheduler`): a name made of the
   original message id and the attempt (:func:`schedule_name`), so a repeated callback finds it already there
   (``ConflictException``: already scheduled); ``at(...)`` in UTC; deleted by Scheduler after it ran; its target the
   send queue, its input the :func:`envelope`: the request as first sent, with a key derived from the original's
   (:func:`retry_key`), so a schedule delivered twice is sent once, and a :class:`RetryMarker`;
2. the webhook stores the failed status with the retry's mark (:class:`~nxcloud_wa.messages_table.RetryMark`) in the
   same conditional write, so the publisher's event for it says ``retry_scheduled``, never ``failed``;
3. the sender takes the envelope off the queue (:func:`unwrap`), checks the marker against the messages table
   (:func:`marker_problem`: a forged marker is refused, dead-lettered as ``invalid_message`` / ``invalid_retry``), and
   sends it as any message (template check, suppression list, rate, claim); its send record names the original
   (``retry_of``) and the attempt, and a link item ``attempt#<original>#<n>`` lets the original's timeline find it.

Everything here but :class:`RetryScheduler` is pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ClientError

from .audience import AudienceSettings, RetryLater, is_marketing
from .dynamo import error_code
from .messages_table import SendRecord, StatusItem
from .models import MAX_IDEMPOTENCY_KEY, SendRequest

ENVELOPE_KEY: Final = "nxwa_retry"
"""The queue body of a retry: ``{"nxwa_retry": <marker>, "message": <the send request>}``."""
KEY_SUFFIX: Final = "#retry"
SCHEDULE_PREFIX: Final = "nxwa-retry-"
CONFLICT: Final = "ConflictException"


@dataclass(frozen=True, slots=True)
class RetryMarker:
    """What a retry's queue body says of itself: the original message, the attempt it follows, its number (1...)."""

    original_message_id: str
    after: str
    """The message id of the attempt that failed with 131049 (the original, for attempt 1)."""
    attempt: int

    def data(self) -> dict[str, Any]:
        return {"original_message_id": self.original_message_id, "after": self.after, "attempt": self.attempt}

    @classmethod
    def of(cls, data: Any) -> RetryMarker | None:
        """The marker in ``data``; None when it is not one (the body is then refused as invalid)."""
        if not isinstance(data, dict) or set(data) != {"original_message_id", "after", "attempt"}:
            return None
        original, after, attempt = data["original_message_id"], data["after"], data["attempt"]
        if not (isinstance(original, str) and original and isinstance(after, str) and after):
            return None
        if not isinstance(attempt, int) or isinstance(attempt, bool) or not 1 <= attempt <= 99:
            return None
        return cls(original, after, attempt)


class InvalidEnvelopeError(ValueError):
    """A body that names ``nxwa_retry`` but is not a retry envelope."""


def keeps_request(settings: AudienceSettings, category: str | None) -> bool:
    """Whether the sender keeps a message's request on its send record: only when a 131049 retry could apply (retries
    on, a marketing or unknown-category template), since it costs write units on every send."""
    return settings.marketing_limit_retry_hours > 0 and is_marketing(category)


def request_text(request: SendRequest) -> str:
    """The request as its send record keeps it, to be sent again: the message as the caller gave it (defaults are
    filled in again at the retry's send), without its key. No secret is in it: ``appkey`` names the account."""
    return json.dumps(
        request.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"}),
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )


def root_key(record: SendRecord) -> str:
    """The original message's idempotency key, from any attempt's send record."""
    suffix = f"{KEY_SUFFIX}{record.attempt}"
    if record.attempt and record.idempotency_key.endswith(suffix):
        return record.idempotency_key.removesuffix(suffix)
    return record.idempotency_key


def retry_key(original_key: str, attempt: int) -> str:
    """The idempotency key of attempt ``attempt``: ``<original key>#retry<n>``, or the key's hash in its place when
    that would be longer than a key may be. Deterministic, so a schedule delivered twice is claimed once."""
    suffix = f"{KEY_SUFFIX}{attempt}"
    if len(original_key) + len(suffix) <= MAX_IDEMPOTENCY_KEY:
        return original_key + suffix
    return hashlib.sha256(original_key.encode()).hexdigest() + suffix


def schedule_name(original_message_id: str, attempt: int) -> str:
    """The schedule of attempt ``attempt`` of a message: the same for every callback that asks for it (64
    characters at most, ``[0-9a-zA-Z-_.]``)."""
    digest = hashlib.sha256(original_message_id.encode()).hexdigest()[:40]
    return f"{SCHEDULE_PREFIX}{digest}-{attempt}"


@dataclass(frozen=True, slots=True)
class PlannedRetry:
    """A retry the webhook is to schedule for a failed attempt."""

    failed_message_id: str
    marker: RetryMarker
    key: str
    request: str
    """The request as the send record keeps it (:func:`request_text`)."""
    retry_at: datetime

    @property
    def name(self) -> str:
        return schedule_name(self.marker.original_message_id, self.marker.attempt)

    def body(self) -> str:
        """The queue body the schedule delivers."""
        return envelope(self.marker, json.loads(self.request) | {"idempotency_key": self.key})


def next_attempt(action: RetryLater, record: SendRecord | None, now: datetime) -> PlannedRetry | None:
    """The retry a 131049 failure of ``record``'s message asks for, or None: final (no send record, as without
    delivery tracking; no request kept, as for a utility template; retries used up)."""
    if record is None or not record.retry_request or record.attempt >= action.max_retries:
        return None
    original = record.retry_of or record.message_id
    attempt = record.attempt + 1
    return PlannedRetry(
        failed_message_id=record.message_id,
        marker=RetryMarker(original, record.message_id, attempt),
        key=retry_key(root_key(record), attempt),
        request=record.retry_request,
        retry_at=(now + timedelta(seconds=action.delay)).replace(microsecond=0),
    )


def envelope(marker: RetryMarker, message: dict[str, Any]) -> str:
    return json.dumps({ENVELOPE_KEY: marker.data(), "message": message}, ensure_ascii=False, separators=(",", ":"))


def unwrap(body: str) -> tuple[RetryMarker | None, str | dict[str, Any]]:
    """A queue body as (marker, message): a retry envelope's parts, or (None, the body) for any other message.
    ``InvalidEnvelopeError`` for a body that names the envelope's key at its top and is not one."""
    if ENVELOPE_KEY not in body:  # the common case: not parsed twice
        return None, body
    try:
        data = json.loads(body)
    except ValueError:
        return None, body
    if not isinstance(data, dict) or ENVELOPE_KEY not in data:
        return None, body
    marker, message = RetryMarker.of(data.get(ENVELOPE_KEY)), data.get("message")
    if marker is None or set(data) != {ENVELOPE_KEY, "message"} or not isinstance(message, dict):
        raise InvalidEnvelopeError("nxwa_retry must be a retry marker beside a message")
    return marker, message


def marker_problem(
    marker: RetryMarker, request: SendRequest, key: str, failed: SendRecord | None, status: StatusItem | None
) -> str | None:
    """Why a retry's marker is not one the webhook scheduled (None: it is): the failed attempt it names must have a
    send record that keeps this very request, a status item marked with this retry, and the key must be the one
    derived for it. So a marker written into a customer's message can neither attach a send to another message's
    timeline nor send anything that was not already sent once under the same key."""
    if failed is None or status is None:
        return "the failed attempt it names is not recorded"
    if status.retry is None or status.retry.attempt != marker.attempt:
        return "no such retry was scheduled"
    if (failed.retry_of or failed.message_id) != marker.original_message_id or failed.attempt + 1 != marker.attempt:
        return "it does not follow the attempt it names"
    if key != retry_key(root_key(failed), marker.attempt):
        return "its idempotency key is not the retry's"
    if failed.retry_request != request_text(request):
        return "its message is not the one first sent"
    return None


def schedule_expression(at: datetime) -> str:
    """EventBridge Scheduler's one-time expression, in UTC."""
    return f"at({at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')})"


@dataclass(frozen=True, slots=True)
class ScheduleTarget:
    """Where the schedules go: their group, the send queue's ARN, the role Scheduler sends with."""

    group: str
    queue_arn: str
    role_arn: str


class RetryScheduler:
    """Creates the one-time schedules (the webhook's Scheduler client)."""

    def __init__(self, client: Any, target: ScheduleTarget) -> None:
        self.client = client
        self.target = target

    def schedule(self, retry: PlannedRetry) -> bool:
        """Create the retry's schedule; False when it exists already (a repeated or replayed callback). Raises on any
        other error: the webhook then keeps the body for replay."""
        try:
            self.client.create_schedule(**self.request(retry))
        except ClientError as exc:
            if error_code(exc) == CONFLICT:
                return False
            raise
        return True

    def request(self, retry: PlannedRetry) -> dict[str, Any]:
        """The ``CreateSchedule`` arguments."""
        return {
            "Name": retry.name,
            "GroupName": self.target.group,
            "ScheduleExpression": schedule_expression(retry.retry_at),
            "ScheduleExpressionTimezone": "UTC",
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "ActionAfterCompletion": "DELETE",
            "Target": {"Arn": self.target.queue_arn, "RoleArn": self.target.role_arn, "Input": retry.body()},
            "Description": f"131049 retry {retry.marker.attempt}",
        }
