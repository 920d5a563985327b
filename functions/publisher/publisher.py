"""Publishes delivery status changes and button clicks to EventBridge, from the messages table's stream.

The stream is the outbox: a callback is stored first (``functions/webhook``), and every change of a ``status#`` item
reaches this function afterwards, even if it died or EventBridge failed in between, because Lambda hands a stream
batch over again until the function reports it done. So every stored status change gets its event at least once;
``dedupe_id`` (the message and the status, hashed) is the same on every repeat, for consumers to drop repeats.

* ``WhatsApp Message Status Changed``: when a message's current status changes (never for a repeat or a status
  outranked by the current one), for the statuses in ``PUBLISH_STATUSES``.
* ``WhatsApp Template Button Clicked``: once per click.

Events go to the customer's own bus (``EVENT_BUS_NAME``), so they carry the full recipient number, which the
customer needs to act on them; logs never do. A ``PutEvents`` entry that fails is retried, never ignored; one that
still fails reports its stream record as failed, and Lambda hands the batch over again from there.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from nxcloud_wa.config import EnvReader
from nxcloud_wa.statuses import ACCEPTED, CALLBACK_STATUSES
from nxcloud_wa.telemetry import Telemetry
from nxcloud_wa.timeline import CLICK_PREFIX, STATUS_PREFIX, SendRecord, Timeline

SOURCE: Final = "nxcloud.whatsapp"
STATUS_CHANGED: Final = "WhatsApp Message Status Changed"
BUTTON_CLICKED: Final = "WhatsApp Template Button Clicked"
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
class Change:
    """One thing a stream record says happened: a status change or a click, of ``message_id``."""

    sequence_number: str
    message_id: str
    kind: str
    """``status`` or ``click``."""
    new: Mapping[str, Any]
    old: Mapping[str, Any]
    click: Mapping[str, Any] | None = None


class Publisher:
    def __init__(self, settings: PublisherSettings) -> None:
        import boto3

        session = boto3.session.Session()
        self.settings = settings
        self.timeline = Timeline(session.client("dynamodb"), settings.messages_table, retention_days=1)
        self.events = session.client("events")

    def publish(self, records: list[dict[str, Any]]) -> list[str]:
        """Publish what the records changed; return the sequence numbers of the records whose events failed."""
        changes = [change for record in records for change in _changes(record)]
        if not changes:
            return []
        sends = self.timeline.send_records([c.message_id for c in changes])
        entries: list[tuple[Change, dict[str, Any]]] = []
        for change in changes:
            entry = self._entry(change, sends.get(change.message_id))
            if entry is not None:
                entries.append((change, entry))
        failed = self._put([e for _, e in entries])
        metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=len(entries) - len(failed))
        if failed:
            metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=len(failed))
        return sorted({entries[i][0].sequence_number for i in failed})

    def _entry(self, change: Change, send: SendRecord | None) -> dict[str, Any] | None:
        """The event for one change (None for a status not published), counting what the dashboards show."""
        if change.kind == "click":
            assert change.click is not None
            return self._event(BUTTON_CLICKED, _click_detail(change, send))
        status = _s(change.new, "status") or ""
        _count("StatusChanged", status=status)
        if send is None:
            metrics.add_metric(name="StatusCallbacksUnmatched", unit=MetricUnit.Count, value=1)
        errors = _errors(change.new)
        if status == "failed":
            _count("DeliveryFailed", error_code=str(errors[0]["code"]) if errors else "none")
        if status not in self.settings.publish_statuses:
            return None
        previous = _s(change.old, "status") or (ACCEPTED if send else None)
        detail = {
            "message_id": change.message_id,
            "idempotency_key": send.idempotency_key if send else None,
            "status": status,
            "previous_status": previous,
            "template": {"name": send.template_name, "language": send.template_language} if send else None,
            "recipient": send.recipient if send else _s(change.new, "recipient"),
            "business_phone": send.business_phone if send else None,
            "errors": errors,
            "at": _s(change.new, f"at_{status}"),
            "unmatched": send is None,
            "dedupe_id": dedupe_id(change.message_id, status),
        }
        return self._event(STATUS_CHANGED, detail)

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


def _changes(record: Mapping[str, Any]) -> Iterator[Change]:
    """What one stream record changed: a status, clicks, or nothing (a repeat, a time moved earlier)."""
    stream = record.get("dynamodb") or {}
    item_id = _s(stream.get("Keys") or {}, "id") or ""
    new, old = stream.get("NewImage") or {}, stream.get("OldImage") or {}
    sequence = str(stream.get("SequenceNumber", ""))
    if item_id.startswith(STATUS_PREFIX):
        message_id = item_id.removeprefix(STATUS_PREFIX)
        if _s(new, "status") and _s(new, "status") != _s(old, "status"):
            yield Change(sequence, message_id, "status", new, old)
        seen = {_s(c.get("M", {}), "id") for c in old.get("buttons", {}).get("L", [])}
        for click in new.get("buttons", {}).get("L", []):
            if _s(click.get("M", {}), "id") not in seen:
                yield Change(sequence, message_id, "click", new, old, click.get("M", {}))
    elif item_id.startswith(CLICK_PREFIX) and record.get("eventName") == "INSERT":
        yield Change(sequence, "", "click", new, old, new)


def _click_detail(change: Change, send: SendRecord | None) -> dict[str, Any]:
    click = change.click or {}
    click_id = (_s(click, "id") or "").removeprefix(CLICK_PREFIX)
    return {
        "message_id": change.message_id if send else None,
        "context_message_id": change.message_id or None,
        "from": _s(click, "from"),
        "payload": _s(click, "payload"),
        "text": _s(click, "text"),
        "template_id": _s(click, "template_id"),
        "template_name": _s(click, "template_name"),
        "parameters": json.loads(_s(click, "parameters") or "null"),
        "at": _s(click, "at"),
        "dedupe_id": hashlib.sha256(f"click:{click_id}".encode()).hexdigest()[:32],
    }


def dedupe_id(message_id: str, status: str) -> str:
    """The same for every repeat of one status change of one message."""
    return hashlib.sha256(f"{message_id}:{status}".encode()).hexdigest()[:32]


def _errors(image: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        {"code": int(e["M"]["code"]["N"]), "title": e["M"]["title"]["S"]} for e in image.get("errors", {}).get("L", [])
    ]


def _s(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


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
    failed = _publisher.publish(event.get("Records") or [])
    return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
