"""The webhook NXCloud calls: ``POST /webhooks/nxcloud/{token}``, status callbacks and template button clicks.

NXCloud signs nothing, so the path's ``token`` is the only proof a caller knows the secret: it must equal the
``webhook_token`` of the NXCloud secret (at least 32 characters), compared in constant time. Anything else is a 404
and nothing more happens (no body is read, nothing is kept), so the URL does not even confirm it exists.

An accepted body answers ``200 {"received": n}`` only once every entry is durably kept: stored in the messages
table (``nxcloud_wa.timeline``), and what it implies stored in the suppression list
(``nxcloud_wa.suppression_sources``: opt-out and opt-in clicks and texts, 131050 and 131026 failures), or, if any of
those writes fails, the whole raw body put on the kept-callbacks queue to be replayed (``nxwa webhooks replay``; every
write is idempotent); if that fails too, 503. A body that is not JSON or not NXCloud's shape is a 400 and is kept the
same way with its reason, and so is an oversized one (413, first 64 KiB): never dropped silently. A status that
changes a campaign message's current status adds to its campaign's ``delivered``, ``read`` or ``failed`` count
(:meth:`Receiver.count_campaigns`). The token never
appears in a log line, a metric or an answer; phone numbers only masked.
"""

from __future__ import annotations

import base64
import hmac
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from nxcloud_wa.audience import AddEntry, AudienceSettings, RetryLater, status_action
from nxcloud_wa.callbacks import StatusCallback, WebhookBody, parse_callback
from nxcloud_wa.campaigns import delivery_counts
from nxcloud_wa.campaigns_table import CampaignStore
from nxcloud_wa.config import EnvReader, env_defaults, merge_defaults
from nxcloud_wa.credentials import Credentials, load_credentials
from nxcloud_wa.exceptions import InvalidCallbackError
from nxcloud_wa.messages_table import RetryMark, SendRecord
from nxcloud_wa.models import Defaults
from nxcloud_wa.phone import mask_phone, mask_valid_phone, redact_numbers
from nxcloud_wa.retries import RetryScheduler, ScheduleTarget, next_attempt
from nxcloud_wa.sqs import sqs_text
from nxcloud_wa.suppression_sources import Applied, Unkeyed, apply, implied, keyed
from nxcloud_wa.suppressions import SuppressionStore
from nxcloud_wa.telemetry import Telemetry
from nxcloud_wa.timeline import SendRecords, StatusMove, Timeline

MAX_BODY_BYTES: Final = 64 * 1024
MIN_TOKEN_LENGTH: Final = 32
TOKEN_REFRESH_SECONDS: Final = 60.0
"""A token that does not match re-reads the secret (a rotated token) at most this often: guessing must not cost
Secrets Manager calls."""
DEFAULT_SECRET_MAX_AGE: Final = 300
DEFAULT_RETENTION_DAYS: Final = 30

TELEMETRY: Final = Telemetry.of("nxcloud-wa-webhook")  # botocore held at INFO: at DEBUG it would log the secret
logger, metrics = TELEMETRY.logger, TELEMETRY.metrics


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    secret_id: str
    messages_table: str
    kept_queue_url: str
    retention_days: int
    secret_max_age: int
    audience: AudienceSettings
    defaults: Defaults
    """``DEFAULT_BUSINESS_PHONE``: the business number of a callback that names none (over the secret's)."""
    retry_target: ScheduleTarget | None = None
    """Where 131049 retries are scheduled (``RETRY_SCHEDULE_GROUP``, ``RETRY_QUEUE_ARN``, ``RETRY_ROLE_ARN``); None
    when the stack gives none: every 131049 failure is then final."""
    campaigns_table: str = ""
    """Where a campaign message's delivered, read and failed counts are added (``CAMPAIGNS_TABLE``,
    docs/campaigns.md); empty: none are counted."""

    @classmethod
    def from_env(cls) -> WebhookSettings:
        env = EnvReader()
        settings = cls(
            secret_id=env.required("NXCLOUD_SECRET_ID", "the Secrets Manager id of the NXCloud secret"),
            messages_table=env.required("MESSAGES_TABLE", "the messages table's name"),
            kept_queue_url=env.required("KEPT_CALLBACKS_QUEUE_URL", "the queue that keeps unstored callbacks"),
            retention_days=env.positive_int("MESSAGE_RETENTION_DAYS", DEFAULT_RETENTION_DAYS),
            secret_max_age=env.positive_int("SECRET_CACHE_SECONDS", DEFAULT_SECRET_MAX_AGE),
            audience=AudienceSettings.read(env),
            defaults=env_defaults(env),
            retry_target=_retry_target(env),
            campaigns_table=env.text("CAMPAIGNS_TABLE"),
        )
        env.required("SUPPRESSIONS_TABLE", "the suppression list's table, where callbacks' opt-outs are stored")
        env.check()
        return settings


def _retry_target(env: EnvReader) -> ScheduleTarget | None:
    group, queue, role = (env.text(n) for n in ("RETRY_SCHEDULE_GROUP", "RETRY_QUEUE_ARN", "RETRY_ROLE_ARN"))
    return ScheduleTarget(group, queue, role) if group and queue and role else None


class Receiver:
    """What a container builds once: settings, the table, the queue client, the token check."""

    def __init__(self, settings: WebhookSettings, clock: Callable[[], float] = time.time) -> None:
        import boto3

        self.settings = settings
        session = boto3.session.Session()
        dynamodb = session.client("dynamodb")
        self.timeline = Timeline(dynamodb, settings.messages_table, retention_days=settings.retention_days)
        self.suppressions = SuppressionStore(dynamodb, settings.audience.suppressions_table)
        self.sqs = session.client("sqs")
        target = settings.retry_target
        self.scheduler = RetryScheduler(session.client("scheduler"), target) if target is not None else None
        table = settings.campaigns_table
        self.campaigns = CampaignStore(dynamodb, table) if table else None
        self.clock = clock
        self._refreshed_at = 0.0

    def token_matches(self, token: str) -> bool:
        """Constant-time comparison with the secret's ``webhook_token``; a miss re-reads the secret now and then."""
        if self._matches(token, refresh=False):
            return True
        if time.monotonic() - self._refreshed_at < TOKEN_REFRESH_SECONDS:
            return False
        self._refreshed_at = time.monotonic()
        return self._matches(token, refresh=True)

    def _credentials(self, *, refresh: bool = False) -> Credentials:
        return load_credentials(self.settings.secret_id, max_age=self.settings.secret_max_age, refresh=refresh)

    def _matches(self, token: str, *, refresh: bool) -> bool:
        expected = self._credentials(refresh=refresh).webhook_token
        if not expected or len(expected) < MIN_TOKEN_LENGTH:
            logger.warning("the NXCloud secret has no webhook_token of at least 32 characters: the webhook is closed")
            return False
        return hmac.compare_digest(token.encode("utf-8", "replace"), expected.encode("utf-8", "replace"))

    def store(self, body: WebhookBody) -> None:
        """Store every entry, then what the body implies for the suppression list (each write is idempotent, so a
        replay of the same body changes nothing more). Raises when a write fails: the caller keeps the body."""
        changed: list[tuple[StatusCallback, StatusMove]] = []
        retries = self.schedule_retries(body)
        for status in body.statuses:
            move = self.timeline.record_status_move(status, retries.get(status.id))
            if move is not None:
                changed.append((status, move))
        clicks = [m for m in body.messages if m.is_button_click]
        for click in clicks:
            self.timeline.record_click(click)
        texts = sum(1 for m in body.messages if m.text_body is not None)
        metrics.add_metric(name="StatusCallbacksReceived", unit=MetricUnit.Count, value=len(body.statuses))
        metrics.add_metric(name="ButtonClicksReceived", unit=MetricUnit.Count, value=len(clicks))
        logger.info(
            "callback stored",
            extra={
                "statuses": [f"{s.status}" for s in body.statuses],
                "status_changes": len(changed),
                "clicks": len(clicks),
                "texts": texts,
                "ignored_messages": len(body.messages) - len(clicks) - texts,
                "recipients": sorted({mask_phone(s.recipient_id) for s in body.statuses if s.recipient_id}),
            },
        )
        send_records = SendRecordsOnce(self.timeline)
        self.count_campaigns([(s, move) for s, move in changed if s.id not in retries], send_records)
        self.record_suppressions(body, send_records)

    def count_campaigns(
        self, changed: list[tuple[StatusCallback, StatusMove]], send_records: Callable[[list[str]], SendRecords]
    ) -> None:
        """Add the campaign messages' new current statuses to their campaigns' ``delivered``, ``read`` and ``failed``
        counts (:func:`nxcloud_wa.campaigns.delivery_counts`): one read of the changed messages' send records, one
        ``ADD`` per campaign. Only a status that changed the message's current status counts (its conditional write
        is the token), so a repeated or replayed callback counts nothing, and a 131049 failure that will be retried
        is not ``failed``. At most once: a failure here is logged and counted (``CampaignCountsLost``), not raised,
        since a replay of the body would count nothing."""
        counted = [(s, names) for s, move in changed if (names := delivery_counts(s.status, move.previous))]
        if self.campaigns is None or not counted:
            return
        try:
            sends = send_records([s.id for s, _ in counted]).found
            by_campaign: dict[str, Counter[str]] = {}
            for status, names in counted:
                send = sends.get(status.id)
                if send is not None and send.campaign_id:
                    by_campaign.setdefault(send.campaign_id, Counter()).update(names)
        except Exception:
            logger.exception("could not read the send records of a callback's statuses: campaign counts lost")
            metrics.add_metric(name="CampaignCountsLost", unit=MetricUnit.Count, value=len(counted))
            return
        for campaign_id, counts in by_campaign.items():
            try:
                self.campaigns.add_counts(campaign_id, counts)
            except Exception:
                logger.exception("could not add a campaign's delivery counts", extra={"campaign_id": campaign_id})
                metrics.add_metric(name="CampaignCountsLost", unit=MetricUnit.Count, value=sum(counts.values()))

    def schedule_retries(self, body: WebhookBody) -> dict[str, RetryMark]:
        """Schedule the retry each 131049 failure asks for (``nxcloud_wa.retries``) before its status is stored, and
        return the marks to store with the statuses, by message id. A failure whose status item already has its mark
        (a repeated or replayed callback) is not scheduled again; a schedule that exists already (a concurrent
        repeat) is not an error. Raises when a read or a schedule fails: the body is kept for replay."""
        if self.scheduler is None:
            return {}
        asked = {
            s.id: action
            for s in body.statuses
            if s.status == "failed"
            for action in (status_action(self.settings.audience, e.code) for e in s.errors)
            if isinstance(action, RetryLater)
        }
        marks: dict[str, RetryMark] = {}
        for message_id, action in asked.items():
            record, status = self.timeline.attempt(message_id)
            if status is not None and status.retry is not None:
                marks[message_id] = status.retry
                continue
            now = datetime.fromtimestamp(self.clock(), UTC)
            plan = next_attempt(action, record, now)
            if plan is None:
                metrics.add_metric(name="RetriesNotScheduled", unit=MetricUnit.Count, value=1)
                continue
            created = self.scheduler.schedule(plan)
            marks[message_id] = RetryMark(plan.marker.attempt, _iso(plan.retry_at), _iso(now))
            logger.info(
                "131049: retry scheduled" if created else "131049: retry already scheduled",
                extra={"message_id": message_id, "attempt": plan.marker.attempt, "retry_at": _iso(plan.retry_at)},
            )
            if created:
                metrics.add_metric(name="RetriesScheduled", unit=MetricUnit.Count, value=1)
        return marks

    def record_suppressions(self, body: WebhookBody, send_records: Callable[[list[str]], SendRecords]) -> None:
        """Add and remove the suppression list's entries the body implies, each reported as it is done."""
        changes = implied(body, self.settings.audience)
        if not changes:
            return
        ready, unkeyed = keyed(changes, send_records, self.default_business_phone)
        for missing in unkeyed:
            _report_unkeyed(missing)
        for applied in apply(ready, self.suppressions):
            _report_applied(applied)

    def default_business_phone(self) -> str | None:
        """The business number the sender uses for a message that names none: ``DEFAULT_BUSINESS_PHONE``, else the
        secret's ``business_phone``."""
        return merge_defaults(self.settings.defaults, self._credentials().defaults).business_phone

    def keep(self, text: str, reason: str, problem: str, *, encoding: str = "text") -> bool:
        """Put a raw callback on the kept-callbacks queue with why; False (logged) when even that fails."""
        attributes = {
            "reason": reason,
            "error_message": problem[:1000],
            "encoding": encoding,
            "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "source": "webhook",
        }
        try:
            self.sqs.send_message(
                QueueUrl=self.settings.kept_queue_url,
                MessageBody=sqs_text(text) or "(empty)",
                MessageAttributes={
                    k: {"DataType": "String", "StringValue": sqs_text(v)} for k, v in attributes.items()
                },
            )
        except Exception:
            logger.exception("could not keep the callback on the kept-callbacks queue", extra={"reason": reason})
            metrics.add_metric(name="CallbacksLost", unit=MetricUnit.Count, value=1)
            return False
        metrics.add_metric(name="CallbacksKept", unit=MetricUnit.Count, value=1)
        logger.warning("callback kept for replay", extra={"reason": reason, "problem": problem[:300]})
        return True


class SendRecordsOnce:
    """A callback body's send records, each read at most once: the campaign counts and the suppression list's keys
    often need the same messages', and one read serves both."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self._found: dict[str, SendRecord] = {}
        self._unread: set[str] = set()
        self._asked: set[str] = set()

    def __call__(self, message_ids: list[str]) -> SendRecords:
        missing = [m for m in dict.fromkeys(message_ids) if m not in self._asked]
        if missing:
            read = self._timeline.send_records(missing)
            self._found |= read.found
            self._unread |= read.unread
            self._asked |= set(missing)
        return SendRecords(
            {m: self._found[m] for m in message_ids if m in self._found},
            frozenset(m for m in message_ids if m in self._unread),
        )


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _report_applied(applied: Applied) -> None:
    """One log line (numbers masked) and one metric per change of the list. A change that changed nothing (the
    stored entry outranks it; no entry an opt-in may remove) is logged at debug level only and not counted."""
    implied_, (business, recipient) = applied.keyed.implied, applied.keyed.key
    change = implied_.change
    line: dict[str, object] = {
        "business_phone": mask_valid_phone(business),
        "recipient": mask_valid_phone(recipient),
        "entry": implied_.entry,
        "source": redact_numbers(change.source),
    }
    if isinstance(change, AddEntry):
        line |= {"scope": str(change.scope), "reason": str(change.reason), "expires_after": change.expires_after}
        if not applied.done:
            logger.debug("suppression kept: the stored entry outranks this one", extra=line)
            return
        logger.info("suppression added", extra=line)
        with single_metric(
            name="SuppressionsAdded", unit=MetricUnit.Count, value=1, namespace=TELEMETRY.namespace
        ) as metric:
            metric.add_dimension(name="service", value=TELEMETRY.service)
            metric.add_dimension(name="Reason", value=str(change.reason))
    elif applied.done:
        logger.info("suppression removed", extra=line)
        metrics.add_metric(name="SuppressionsRemoved", unit=MetricUnit.Count, value=1)
    else:
        logger.debug("suppression not removed: no entry an opt-in removes", extra=line)


def _report_unkeyed(missing: Unkeyed) -> None:
    """A change the callback asked for that cannot be stored: the callback is still acknowledged (nothing to retry)."""
    logger.warning(
        "suppression not recorded: its (business number, recipient) pair is unknown",
        extra={
            "why": missing.why,
            "entry": missing.implied.entry,
            "recipient": mask_phone(missing.recipient) if missing.recipient else None,
            "source": redact_numbers(missing.implied.change.source),
        },
    )
    metrics.add_metric(name="SuppressionsUnkeyed", unit=MetricUnit.Count, value=1)


_receiver: Receiver | None = None


def receiver() -> Receiver:
    global _receiver
    if _receiver is None:
        _receiver = Receiver(WebhookSettings.from_env())
    return _receiver


def reset() -> None:
    """Forget the container's receiver (tests, local tools): the next request reads the environment again."""
    global _receiver
    _receiver = None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    token = (event.get("pathParameters") or {}).get("token")
    rx = receiver()
    if not isinstance(token, str) or not rx.token_matches(token):
        metrics.add_metric(name="WebhookRefused", unit=MetricUnit.Count, value=1)
        return _answer(404, {"message": "Not Found"})
    text, encoding, size = _body(event)
    if size > MAX_BODY_BYTES:
        kept = rx.keep(text[:MAX_BODY_BYTES], "too_large", f"the body is {size} bytes; at most {MAX_BODY_BYTES}")
        return _answer(413 if kept else 503, {"error": "too_large", "message": f"at most {MAX_BODY_BYTES} bytes"})
    try:
        body = parse_callback(text if encoding == "text" else "")
    except InvalidCallbackError as exc:
        kept = rx.keep(text, exc.reason, exc.message, encoding=encoding)
        return _answer(400 if kept else 503, {"error": exc.reason, "message": exc.message})
    try:
        rx.store(body)
    except Exception as exc:
        logger.exception("could not store the callback (messages table or suppression list)")
        if not rx.keep(text, "store_failed", type(exc).__name__):
            return _answer(503, {"error": "unavailable", "message": "the callback could not be kept; send it again"})
    return _answer(200, {"received": body.entries})


def _body(event: dict[str, Any]) -> tuple[str, str, int]:
    """The body as text (``text``), or as base64 when it is not UTF-8 (``base64``), and its size in bytes."""
    raw = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return raw, "text", len(raw.encode("utf-8", "surrogatepass"))
    data = base64.b64decode(raw, validate=False)
    try:
        return data.decode("utf-8"), "text", len(data)
    except UnicodeDecodeError:
        return raw, "base64", len(data)


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}
