"""Publishes delivery status changes and button clicks to EventBridge, from the messages table's stream.

The stream is the outbox: a callback is stored first (``functions/webhook``), and every change of a ``status#`` item
reaches this function afterwards, even if it died or EventBridge failed in between, because Lambda hands a stream
batch over again until the function reports it done. So every stored status change gets its event at least once;
``dedupe_id`` (the message and the status, hashed) is the same on every repeat, for consumers to drop repeats.

* ``WhatsApp Message Status Changed``: when a message's current status changes (never for a repeat or a status
  outranked by the current one), for the statuses in ``PUBLISH_STATUSES``. A ``failed`` stored with a 131049 retry
  (``nxcloud_wa.retries``) is published as ``retry_scheduled``, so a subscriber's fallback does not fire for it;
  a retry's events name the original message (``retry_of``) and the attempt.
* ``WhatsApp Template Button Clicked``: once per click.
* ``WhatsApp Campaign Status Changed``: when a campaign's status moves, from the campaigns table's stream (its other
  changes, the counts, publish nothing); ``dedupe_id`` is the campaign and its status version.

Both events of a campaign's message carry ``campaign_id`` and ``ref`` (the row's reference), from its send record.

Events go to the customer's own bus (``EVENT_BUS_NAME``), so they carry the full recipient number, which the
customer needs to act on them; logs never do. A ``PutEvents`` entry that fails is retried, never ignored; one that
still fails reports its stream record as failed, and Lambda hands the batch over again from there. So does a record
whose send record DynamoDB left unread after a few attempts (``Timeline.send_records``): it is not published as
unmatched.

The batch arrives as Powertools' ``DynamoDBStreamEvent``, and its images are read through the messages table's own
decoders (``nxcloud_wa.messages_table``). Powertools' ``BatchProcessor`` is not used: it calls a handler per record,
which would cost one ``BatchGetItem`` and one ``PutEvents`` per record, where the whole batch costs one read and one
``PutEvents`` per ten events; the answer is the same ``batchItemFailures`` by sequence number.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
    DynamoDBStreamEvent,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from nxcloud_wa.campaigns_table import CAMPAIGN_SK, Campaign, from_image
from nxcloud_wa.config import EnvReader
from nxcloud_wa.messages_table import CLICK_PREFIX, RETRY_SCHEDULED, STATUS_PREFIX, Click, SendRecord, StatusItem
from nxcloud_wa.statuses import ACCEPTED, CALLBACK_STATUSES
from nxcloud_wa.telemetry import Telemetry
from nxcloud_wa.timeline import Timeline

SOURCE: Final = "nxcloud.whatsapp"
STATUS_CHANGED: Final = "WhatsApp Message Status Changed"
BUTTON_CLICKED: Final = "WhatsApp Template Button Clicked"
CAMPAIGN_STATUS_CHANGED: Final = "WhatsApp Campaign Status Changed"
PUT_EVENTS_LIMIT: Final = 10
PUT_ATTEMPTS: Final = 4
TELEMETRY: Final = Telemetry.of("nxcloud-wa-publisher")
NAMESPACE: Final = TELEMETRY.namespace
SERVICE: Final = TELEMETRY.service
logger, metrics = TELEMETRY.logger, TELEMETRY.metrics


@dataclass(frozen=True, slots=True)
class PublisherSettings:
    messages_table: str
    event_bus: str
    publish_statuses: frozenset[str]

    @classmethod
    def from_env(cls) -> PublisherSettings:
        env = EnvReader()
        statuses = frozenset(s.strip() for s in env.text("PUBLISH_STATUSES", ",".join(CALLBACK_STATUSES)).split(","))
        if not statuses <= CALLBACK_STATUSES:
            env.problems.append(f"PUBLISH_STATUSES must list statuses among {', '.join(sorted(CALLBACK_STATUSES))}")
        settings = cls(
            messages_table=env.required("MESSAGES_TABLE", "the messages table's name"),
            event_bus=env.text("EVENT_BUS_NAME", "default"),
            publish_statuses=statuses - {""},
        )
        env.check()
        return settings


@dataclass(frozen=True, slots=True)
class StatusChange:
    """A stream record that changed a message's current status."""

    sequence_number: str
    message_id: str
    item: StatusItem
    """The status item after the change."""
    previous: str | None
    """The current status before it (None: the item had none)."""


@dataclass(frozen=True, slots=True)
class Clicked:
    """A button click a stream record added, to the status item of ``message_id`` or (``""``) as a ``click#`` item."""

    sequence_number: str
    message_id: str
    click: Click


@dataclass(frozen=True, slots=True)
class CampaignMoved:
    """A stream record that moved a campaign's status."""

    sequence_number: str
    campaign: Campaign
    """The campaign after the move."""
    previous: str | None


Change = StatusChange | Clicked | CampaignMoved


def _message_of(change: Change) -> str:
    """The message a change concerns ("" for a campaign's)."""
    return "" if isinstance(change, CampaignMoved) else change.message_id


class Publisher:
    def __init__(self, settings: PublisherSettings) -> None:
        import boto3

        session = boto3.session.Session()
        self.settings = settings
        self.timeline = Timeline(session.client("dynamodb"), settings.messages_table, retention_days=1)
        self.events = session.client("events")

    def publish(self, records: Iterable[DynamoDBRecord]) -> list[str]:
        """Publish what the records changed; return the sequence numbers of the records whose events failed."""
        changes = [change for record in records for change in _changes(record)]
        if not changes:
            return []
        message_ids = [c.message_id for c in changes if not isinstance(c, CampaignMoved)]
        sends = self.timeline.send_records(message_ids) if message_ids else None
        unread = {c.sequence_number for c in changes if sends is not None and _message_of(c) in sends.unread}
        if unread:
            logger.warning(
                "send records left unread: the stream hands their records over again", extra={"n": len(unread)}
            )
        entries: list[tuple[Change, dict[str, Any]]] = []
        for change in changes:
            send = sends.found.get(_message_of(change)) if sends is not None else None
            entry = None if change.sequence_number in unread else self._entry(change, send)
            if entry is not None:
                entries.append((change, entry))
        failed = self._put([e for _, e in entries])
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=len(entries) - len(failed))
        if failed:
            metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=len(failed))
        return sorted(unread | {entries[i][0].sequence_number for i in failed})

    def _entry(self, change: Change, send: SendRecord | None) -> dict[str, Any] | None:
        """The event for one change (None for a status not published), counting what the dashboards show."""
        if isinstance(change, CampaignMoved):
            return self._event(CAMPAIGN_STATUS_CHANGED, campaign_detail(change))
        if isinstance(change, Clicked):
            return self._event(BUTTON_CLICKED, _click_detail(change, send))
        item = change.item
        status = item.status or ""
        shown = item.shown_status or ""  # a failure that will be sent again (131049) is retry_scheduled
        _count("StatusChanged", status=shown)
        if send is None:
            metrics.add_metric(name="StatusCallbacksUnmatched", unit=MetricUnit.Count, value=1)
        if status == "failed":
            _count("DeliveryFailed", error_code=str(item.errors[0].code) if item.errors else "none")
        if status not in self.settings.publish_statuses:
            return None
        detail: dict[str, Any] = {
            "message_id": change.message_id,
            "idempotency_key": send.idempotency_key if send else None,
            "status": shown,
            "previous_status": change.previous or (ACCEPTED if send else None),
            "template": {"name": send.template_name, "language": send.template_language} if send else None,
            "recipient": send.recipient if send else item.recipient,
            "business_phone": send.business_phone if send else None,
            "errors": [{"code": e.code, "title": e.title} for e in item.errors],
            "at": item.times.get(status),
            "unmatched": send is None,
            "dedupe_id": dedupe_id(change.message_id, shown),
        }
        if item.retry is not None and shown == RETRY_SCHEDULED:
            detail["retry"] = {"attempt": item.retry.attempt, "retry_at": item.retry.retry_at}
        if send is not None and send.retry_of:
            detail |= {"retry_of": send.retry_of, "attempt": send.attempt}
        return self._event(STATUS_CHANGED, detail | _campaign(send))

    def _event(self, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
        return {
            "Source": SOURCE,
            "DetailType": detail_type,
            "Detail": json.dumps(detail, ensure_ascii=False),
            "EventBusName": self.settings.event_bus,
        }

    def _put(self, entries: list[dict[str, Any]]) -> list[int]:
        """PutEvents, ten at a time; failed entries are sent again with backoff. Returns the indexes still failed."""
        pending = list(range(len(entries)))
        for attempt in range(PUT_ATTEMPTS):
            if not pending:
                break
            if attempt:
                time.sleep(0.1 * 2**attempt)
            still: list[int] = []
            for start in range(0, len(pending), PUT_EVENTS_LIMIT):
                chunk = pending[start : start + PUT_EVENTS_LIMIT]
                try:
                    answer = self.events.put_events(Entries=[entries[i] for i in chunk])
                except Exception:
                    logger.exception("PutEvents failed", extra={"entries": len(chunk), "attempt": attempt + 1})
                    still += chunk
                    continue
                still += [
                    i for i, result in zip(chunk, answer.get("Entries", []), strict=False) if "ErrorCode" in result
                ]
            pending = still
        if pending:
            logger.error(
                "events not published after retries: the stream hands them over again", extra={"n": len(pending)}
            )
        return pending


def _changes(record: DynamoDBRecord) -> Iterator[Change]:
    """What one stream record changed: the current status, clicks, or nothing (a repeat, a time moved earlier, a
    status that does not outrank the current one: a ``failed`` after ``read`` is in the item, not a change)."""
    stream = record.dynamodb
    if stream is None:
        return
    item_id = str(stream.keys.get("id", ""))
    sequence = stream.sequence_number or ""
    if item_id.startswith(STATUS_PREFIX):
        message_id = item_id.removeprefix(STATUS_PREFIX)
        new, old = StatusItem.from_image(stream.new_image), StatusItem.from_image(stream.old_image)
        if new.status and new.status != old.status:
            yield StatusChange(sequence, message_id, new, old.status)
        seen = {click.event_id for click in old.clicks}
        for click in new.clicks:
            if click.event_id not in seen:
                yield Clicked(sequence, message_id, click)
    elif item_id.startswith(CLICK_PREFIX) and record.event_name is DynamoDBRecordEventName.INSERT:
        yield Clicked(sequence, "", Click.from_image(stream.new_image))
    elif stream.keys.get("sk") == CAMPAIGN_SK and stream.new_image:
        yield from _campaign_moved(sequence, stream.new_image, stream.old_image)


def _campaign_moved(sequence: str, new_image: dict[str, Any], old_image: dict[str, Any]) -> Iterator[CampaignMoved]:
    """A campaign's status move (not a counts or checkpoint update, which leave the status as it was)."""
    campaign = from_image(new_image)
    previous = str(old_image["status"]) if old_image.get("status") else None
    if campaign.status.value != previous:
        yield CampaignMoved(sequence, campaign, previous)


def campaign_detail(change: CampaignMoved) -> dict[str, Any]:
    """A campaign status event's detail: who moved where, why, and its counts then."""
    campaign = change.campaign
    return {
        "campaign_id": campaign.campaign_id,
        "name": campaign.name,
        "status": campaign.status.value,
        "previous_status": change.previous,
        "reason": campaign.status_reason,
        "counts": dict(campaign.counts),
        "at": campaign.changed_at or campaign.created_at,
        "dedupe_id": hashlib.sha256(f"campaign:{campaign.campaign_id}:{campaign.version}".encode()).hexdigest()[:32],
    }


def _campaign(send: SendRecord | None) -> dict[str, Any]:
    """A campaign message's ``campaign_id`` and ``ref`` (docs/campaigns.md); nothing for any other message."""
    if send is None or not send.campaign_id:
        return {}
    return {"campaign_id": send.campaign_id, "ref": send.campaign_ref}


def _click_detail(change: Clicked, send: SendRecord | None) -> dict[str, Any]:
    click = change.click
    return _campaign(send) | {
        "message_id": change.message_id if send else None,
        "context_message_id": change.message_id or None,
        "from": click.from_,
        "payload": click.payload,
        "text": click.text,
        "template_id": click.template_id,
        "template_name": click.template_name,
        "parameters": click.parameters,
        "at": click.at,
        "dedupe_id": hashlib.sha256(f"click:{click.event_id}".encode()).hexdigest()[:32],
    }


def dedupe_id(message_id: str, status: str) -> str:
    """The same for every repeat of one status change of one message."""
    return hashlib.sha256(f"{message_id}:{status}".encode()).hexdigest()[:32]


def _count(name: str, **dimensions: str) -> None:
    with single_metric(name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


_publisher: Publisher | None = None


def reset() -> None:
    """Forget the container's publisher (tests, local tools)."""
    global _publisher
    _publisher = None


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _publisher
    if _publisher is None:
        _publisher = Publisher(PublisherSettings.from_env())
    failed = _publisher.publish(DynamoDBStreamEvent(event).records if event.get("Records") else [])
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
