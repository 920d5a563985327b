"""Logging, metrics and tracing, configured once (Powertools), with the project's privacy rules built in.

* Logger: JSON, correlation id per message; recipient numbers only ever logged through ``mask_phone``
  (``mask_valid_phone`` for a validated one: the same text, cheaper).
* Metrics (EMF): ``MessagesSent``, ``MessagesDeadLettered``, ``MessagesRetried`` (each also broken down by
  ``error_class`` and ``error_code``) and ``UpstreamLatency``; the template check's ``TemplateCheckSkipped`` (sent
  unchecked: the catalogue was unavailable) and ``TemplateCheckWarnings`` (sent although it does not fit, under
  ``TEMPLATE_CHECK=warn``), counted by :mod:`template_gate`. Throughput (docs/throughput.md): ``MessagesDelayed``
  (put back on the queue for a throttle, by code), ``MessagesThrottled`` (refused upstream for a rate, by code),
  ``MessagesRateLimited`` (found its number at its rate: waited for its slot or was held back; the alarm's metric),
  ``RateLimitWait`` (ms a message waited for its slot) and ``RateLimiterErrors`` (the limiter failed open). Audience
  (docs/audience.md): ``MessagesSkipped`` (dimension ``Reason``: ``suppressed``, ``frequency_cap``, and a campaign
  row's ``campaign_cancelled``, ``campaign_expired``), and ``SuppressionCheckFailed`` (dimension ``Action``: ``send``
  or ``retry_later``: the list could not be read). Campaigns (docs/campaigns.md): ``CampaignRowsUnrecorded``
  (dimension ``What``: ``row`` or ``counts``: a settled row the campaign's counts may miss).
* Tracer: created only when tracing is on. ``Tracer()`` imports the X-Ray SDK (~0.8 s of cold start) even when
  disabled, so outside Lambda or with ``POWERTOOLS_TRACE_DISABLED=true`` a no-op stands in and costs nothing.
* The Logger and Metrics are built as the three functions build them (``nxcloud_wa.telemetry``), which also holds
  botocore's loggers at INFO: at DEBUG they would print the NXCloud secret and the bodies of dead letters.
* With ``POWERTOOLS_DEBUG=true`` Powertools logs its internals, one line of which prints the API route's arguments
  (the parsed message): phone numbers are masked in that logger's lines. tests/security checks every path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, Final, TypeVar

from aws_lambda_powertools.metrics import MetricUnit, single_metric

from incoming import Incoming
from nxcloud_wa.audience import WhenUnreadable
from nxcloud_wa.error_codes import RATE_LIMITED, THROTTLED
from nxcloud_wa.failures import Failure
from nxcloud_wa.models import SendRequest
from nxcloud_wa.phone import mask_valid_phone, redact_numbers
from nxcloud_wa.telemetry import Telemetry
from outcomes import DeadLettered, Delayed, Outcome, Rejected, RetryLater, Sent, Skipped

TELEMETRY: Final = Telemetry.of("nxcloud-wa-sender")
SERVICE: Final = TELEMETRY.service
NAMESPACE: Final = TELEMETRY.namespace
logger = TELEMETRY.logger
metrics = TELEMETRY.metrics


class _MaskNumbers(logging.Filter):
    """Masks phone numbers in a record's text; runs only for records that pass the level check (DEBUG here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_numbers(record.getMessage()), None
        return True


# "Calling API Route Handler: {'message': SendRequest(... to='86...')}" (POWERTOOLS_DEBUG only).
logging.getLogger("aws_lambda_powertools.event_handler.api_gateway").addFilter(_MaskNumbers())

F = TypeVar("F", bound=Callable[..., Any])


class _NoTracer:
    """Stands in for Powertools' Tracer when tracing is off: same calls, no X-Ray import."""

    def capture_lambda_handler(self, handler: F) -> F:
        return handler

    def put_annotation(self, key: str, value: str | int | bool) -> None:
        """Nothing to record without tracing."""


def tracing_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """On in a real Lambda unless disabled; off under ``sam local``, tests and local tools (as Powertools decides)."""
    disabled = environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    in_lambda = bool(environ.get("LAMBDA_TASK_ROOT")) and not environ.get("AWS_SAM_LOCAL")
    return in_lambda and not disabled


def _make_tracer() -> Any:
    if not tracing_enabled():
        return _NoTracer()
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


tracer = _make_tracer()


def count(name: str, *, error_class: str | None = None, error_code: str | int | None = None) -> None:
    """Add 1 to ``name`` (service dimension) and, for failures, to its breakdown by class and code.

    Must be called from the invocation's main thread: Powertools' metric set is not thread-safe.
    """
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if error_class is None:
        return
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name="error_class", value=str(error_class))
        metric.add_dimension(name="error_code", value=str(error_code if error_code is not None else "none"))


def count_by(name: str, dimension: str, value: str, amount: int = 1) -> None:
    """Add ``amount`` to ``name`` broken down by one dimension (with the service's). Main thread only."""
    with single_metric(name=name, unit=MetricUnit.Count, value=amount, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name=dimension, value=value)


def upstream_latency(milliseconds: float) -> None:
    metrics.add_metric(name="UpstreamLatency", unit=MetricUnit.Milliseconds, value=round(milliseconds, 1))


def report(
    outcome: Outcome, request: SendRequest | None, key: str | None, incoming: Incoming, *, waited_ms: float = 0.0
) -> None:
    """The one log line and the metrics of a message's outcome (``waited_ms``: how long it waited for its number's
    rate). Main thread only (see :func:`count`)."""
    queued = incoming.queued
    where: dict[str, object] = {"sqs_message_id": incoming.source_id} if queued else {}
    _throughput(outcome, waited_ms)
    if waited_ms:
        where["rate_wait_ms"] = waited_ms
    if isinstance(outcome, Sent):
        count("MessagesSent")
        if outcome.latency_ms is not None and not outcome.replayed:
            upstream_latency(outcome.latency_ms)
        logger.info(
            "message sent",
            extra={
                "outcome": "sent",
                "to": mask_valid_phone(request.to) if request is not None else None,
                "message_id": outcome.message_id,
                "nxcloud_trace_id": outcome.trace_id,
                "idempotency_key": key,
                "replayed": outcome.replayed,
                **where,
            },
        )
        return
    if isinstance(outcome, Skipped):
        _skipped(outcome, request, key, where)
        return
    failure = outcome.failure
    if isinstance(outcome, Delayed):
        count("MessagesDelayed", error_class=failure.error_class, error_code=failure.error_code)
        where |= {
            "delay_seconds": outcome.delay_seconds,
            "queue_message_id": outcome.queue_message_id,
            "times_put_back": incoming.times_put_back + 1,
        }
        log_failure("message put back with a delay", "delayed", failure, request, idempotency_key=key, **where)
        return
    if isinstance(outcome, DeadLettered):
        metric, text, label = "MessagesDeadLettered", "message dead-lettered", "dead_lettered"
        where |= {"dlq_message_id": outcome.dlq_message_id, "replayed": outcome.replayed}
    elif isinstance(outcome, RetryLater) and queued:
        metric, text, label = "MessagesRetried", "message will be retried", "retry"
        where["receive_count"] = incoming.receive_count
    else:
        rejected = isinstance(outcome, Rejected)
        metric, text, label = (
            ("MessagesRejected", "message not sent", "rejected")
            if rejected
            else (
                "MessagesFailed",
                "message not sent",
                "failed",
            )
        )
        where["status"] = failure.api_status
    count(metric, error_class=failure.error_class, error_code=failure.error_code)
    log_failure(text, label, failure, request, idempotency_key=key, **where)


def _skipped(outcome: Skipped, request: SendRequest | None, key: str | None, where: dict[str, object]) -> None:
    """A message skipped on purpose (its recipient is suppressed, or capped; its campaign cancelled or expired): not
    a failure, so no error class or code."""
    count_by("MessagesSkipped", "Reason", outcome.reason)
    why: dict[str, object]
    if outcome.cap:
        text, why = "message skipped: the recipient has reached the marketing frequency cap", {"cap": outcome.cap}
    elif outcome.suppression_reason:
        text = "message skipped: the recipient is suppressed"
        why = {
            "suppression_reason": outcome.suppression_reason,
            "scope": outcome.scope,
            "source": redact_numbers(outcome.source),
        }
    else:
        text, why = f"message skipped: {outcome.failure.error_message}", {}
    logger.info(
        text,
        extra={
            "outcome": "skipped",
            "reason": outcome.reason,
            **why,
            "to": mask_valid_phone(request.to) if request is not None else None,
            "business_phone": mask_valid_phone(request.business_phone)
            if request is not None and request.business_phone
            else None,
            "template": request.template.name if request is not None else None,
            "category": outcome.category,
            "idempotency_key": key,
            **where,
        },
    )


def log_uncounted(lost: int) -> None:
    """Pairs whose frequency cap count the settlement could not write: their next marketing message may pass the cap
    once more than it allows."""
    if lost:
        logger.warning(
            "the marketing frequency cap's count could not be recorded: the recipients' next marketing messages may "
            "pass the cap",
            extra={"frequency_cap": "unrecorded", "pairs": lost},
        )


def suppression_check_failed(error: BaseException, *, sent: int, retried: int) -> None:
    """The suppression list could not be read for a batch: ``sent`` messages went on unchecked (utility,
    authentication), ``retried`` were kept back to be tried again (marketing, unknown). One line per batch."""
    logger.warning(
        "the suppression list could not be read: utility and authentication messages are sent unchecked, the others "
        "retried later",
        extra={
            "suppression_check": "failed",
            "error": redact_numbers(str(error))[:300],
            "sent": sent,
            "retried": retried,
        },
    )
    if sent:
        count_by("SuppressionCheckFailed", "Action", WhenUnreadable.SEND, sent)
    if retried:
        count_by("SuppressionCheckFailed", "Action", WhenUnreadable.RETRY_LATER, retried)


def _throughput(outcome: Outcome, waited_ms: float) -> None:
    """The rate's metrics: a throttle upstream, a message held back or made to wait by the limiter."""
    failure = None if isinstance(outcome, Sent | Skipped) else outcome.failure
    if failure is not None and failure.reason == THROTTLED.reason:
        count("MessagesThrottled", error_class=failure.error_class, error_code=failure.error_code)
    held = failure is not None and failure.reason == RATE_LIMITED.reason
    if held or waited_ms:
        count("MessagesRateLimited")
    if waited_ms:
        metrics.add_metric(name="RateLimitWait", unit=MetricUnit.Milliseconds, value=waited_ms)


def rate_limiter_failed(error: BaseException) -> None:
    """The limiter could not reach its table: the batch was sent without it (NXCloud's throttles still delay)."""
    logger.warning("the rate limiter failed: sending without it", extra={"error": f"{type(error).__name__}: {error}"})
    count("RateLimiterErrors")


def log_failure(text: str, outcome: str, failure: Failure, request: SendRequest | None, **extra: Any) -> None:
    """The one log line of a message that was not sent: numbers masked, NXCloud's text redacted of numbers."""
    logger.warning(
        text,
        extra={
            "outcome": outcome,
            "reason": failure.reason,
            "error_class": str(failure.error_class),
            "error_code": failure.error_code,
            "error_message": redact_numbers(failure.error_message),
            "nxcloud_trace_id": failure.trace_id,
            "to": mask_valid_phone(request.to) if request is not None else None,
            **extra,
        },
    )


def log_unrecorded(outcome: Outcome | None, key: str | None) -> None:
    """An outcome stands but its idempotency record could not be written (DynamoDB failing)."""
    logger.warning(
        "the outcome could not be stored in the idempotency table; the key stays in progress until its "
        "in-progress expiry",
        extra={"idempotency": "unrecorded", "outcome": type(outcome).__name__, "idempotency_key": key},
    )


def campaign_rows_unrecorded(rows: int, what: str, error: BaseException) -> None:
    """Campaign rows whose outcome item (``what`` = ``row``) or count (``counts``) the settlement could not write:
    the campaign's counts fall short of its report by ``rows`` (docs/campaigns.md, "Sending")."""
    logger.warning(
        "campaign rows could not be recorded: the campaign's counts may fall short of its report",
        extra={"campaign_rows": "unrecorded", "what": what, "rows": rows, "error": type(error).__name__},
    )
    count_by("CampaignRowsUnrecorded", "What", what, rows)
