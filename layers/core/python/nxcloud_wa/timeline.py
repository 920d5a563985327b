"""Each message's timeline in the messages table (``MESSAGES_TABLE``: partition key ``id``, TTL ``expiration``).

Three kinds of items, each with one kind of writer, so no write can undo another:

* ``<message_id>``: the send's record (``kind`` ``send``), written once, in the same request that settles the batch's
  idempotency records: template, idempotency key, business number, recipient, when NXCloud accepted it. The table's
  index ``by_idempotency_key`` finds it by key.
* ``status#<id>``: what the callbacks said about message ``id`` (``kind`` ``status``): the current status and its
  rank, the first time of each status, the errors of a failure, the template buttons clicked. Written only by
  conditional updates, so callbacks may arrive late, twice and in any order (``nxcloud_wa.statuses``): a status
  replaces the current one only if it ranks higher, a status's time is the earliest reported, a repeat changes
  nothing. A callback whose ``id`` matches no send is kept the same way, under its own id.
* ``click#<event id>``: a button click that names no message (``kind`` ``click``).

The table's stream feeds the event publisher (``functions/publisher``): every change of a ``status#`` item's status
is one status event; every click is one click event.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from .phone import mask_phone
from .statuses import ACCEPTED, STATUS_RANK, rank

if TYPE_CHECKING:  # only the webhook function builds them: the sender's cold start does not pay for their models
    from .callbacks import InboundMessage, StatusCallback

STATUS_PREFIX: Final = "status#"
CLICK_PREFIX: Final = "click#"
KEY_INDEX: Final = "by_idempotency_key"
DAY: Final = 86_400

Item = dict[str, Any]
"""A DynamoDB item in the low-level client's typed form."""


@dataclass(frozen=True, slots=True)
class SendRecord:
    """What the send knows about a message NXCloud accepted."""

    message_id: str
    idempotency_key: str
    template_name: str
    template_language: str
    business_phone: str | None
    tenant_id: int | None
    recipient: str
    accepted_at: str

    def item(self, expiration: int) -> Item:
        item: Item = {
            "id": {"S": self.message_id},
            "kind": {"S": "send"},
            "idempotency_key": {"S": self.idempotency_key},
            "template_name": {"S": self.template_name},
            "template_language": {"S": self.template_language},
            "recipient": {"S": self.recipient},
            "at_accepted": {"S": self.accepted_at},
            "expiration": {"N": str(expiration)},
        }
        if self.business_phone:
            item["business_phone"] = {"S": self.business_phone}
        if self.tenant_id is not None:
            item["tenant_id"] = {"N": str(self.tenant_id)}
        return item

    @classmethod
    def from_item(cls, item: Item) -> SendRecord:
        return cls(
            message_id=_s(item, "id") or "",
            idempotency_key=_s(item, "idempotency_key") or "",
            template_name=_s(item, "template_name") or "",
            template_language=_s(item, "template_language") or "",
            business_phone=_s(item, "business_phone"),
            tenant_id=int(item["tenant_id"]["N"]) if "tenant_id" in item else None,
            recipient=_s(item, "recipient") or "",
            accepted_at=_s(item, "at_accepted") or "",
        )


class Timeline:
    """Reads and writes the messages table. ``retention_days`` is how long an item lives after its first write."""

    def __init__(self, client: Any, table: str, *, retention_days: int, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.table = table
        self.retention_days = retention_days
        self._clock = clock

    def expiration(self) -> int:
        return int(self._clock()) + self.retention_days * DAY

    # --- callbacks

    def record_status(self, callback: StatusCallback) -> bool:
        """Store one status callback; True when it changed the current status.

        First a conditional update that sets the status if it ranks above the stored one; when it does not, a second
        one that only moves the status's time earlier (a late duplicate may carry an earlier time). A repeat changes
        nothing.
        """
        item_id = STATUS_PREFIX + callback.id
        common, names, values = self._status_attributes(callback)
        names |= {"#at": f"at_{callback.status}"}
        values |= {":at": {"S": callback.at}}
        if self._update(
            item_id,
            f"SET #status = :status, #rank = :rank, #at = :at, {common}",
            "attribute_not_exists(#rank) OR #rank < :rank",
            names | {"#status": "status", "#rank": "status_rank"},
            values | {":status": {"S": callback.status}, ":rank": {"N": str(rank(callback.status))}},
        ):
            return True
        self._update(item_id, f"SET #at = :at, {common}", "attribute_not_exists(#at) OR #at > :at", names, values)
        return False

    def _status_attributes(self, callback: StatusCallback) -> tuple[str, dict[str, str], dict[str, Any]]:
        """What every status write sets when it is first: the item's kind, lifetime, recipient and errors."""
        parts = ["#kind = :kind", "#expiration = if_not_exists(#expiration, :expiration)"]
        names = {"#kind": "kind", "#expiration": "expiration"}
        values: dict[str, Any] = {":kind": {"S": "status"}, ":expiration": {"N": str(self.expiration())}}
        if callback.recipient_id:
            parts.append("#recipient = if_not_exists(#recipient, :recipient)")
            names["#recipient"] = "recipient"
            values[":recipient"] = {"S": callback.recipient_id}
        if callback.errors:
            parts.append("#errors = if_not_exists(#errors, :errors)")
            names["#errors"] = "errors"
            values[":errors"] = {
                "L": [{"M": {"code": {"N": str(e.code)}, "title": {"S": e.title}}} for e in callback.errors]
            }
        return ", ".join(parts), names, values

    def record_click(self, message: InboundMessage) -> bool:
        """Store one button click, linked to the message it answers when it names one; False for a repeat."""
        assert message.button is not None
        click: dict[str, Any] = {
            "id": {"S": message.id},
            "from": {"S": message.from_},
            "payload": {"S": message.button.payload},
            "text": {"S": message.button.text},
            "at": {"S": message.at},
        }
        for name, value in message.template().items():
            if value is not None:
                click[name] = {"S": value if isinstance(value, str) else _json(value)}
        answered = message.context.id if message.context else None
        if not answered:
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=click
                    | {"id": {"S": CLICK_PREFIX + message.id}, "kind": {"S": "click"}}
                    | {"expiration": {"N": str(self.expiration())}},
                    ConditionExpression="attribute_not_exists(id)",
                )
            except ClientError as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise
                return False
            return True
        return self._update(
            STATUS_PREFIX + answered,
            "SET #buttons = list_append(if_not_exists(#buttons, :none), :click), #kind = :kind, "
            "#expiration = if_not_exists(#expiration, :expiration) ADD #clicks :click_id",
            "attribute_not_exists(#clicks) OR NOT contains(#clicks, :click_id_text)",
            {"#buttons": "buttons", "#clicks": "click_ids", "#kind": "kind", "#expiration": "expiration"},
            {
                ":none": {"L": []},
                ":click": {"L": [{"M": click}]},
                ":click_id": {"SS": [message.id]},
                ":click_id_text": {"S": message.id},
                ":kind": {"S": "status"},
                ":expiration": {"N": str(self.expiration())},
            },
        )

    def _update(self, item_id: str, expression: str, condition: str, names: Mapping[str, str], values: Item) -> bool:
        """One conditional update; False when the condition failed (the item already says as much)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"id": {"S": item_id}},
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if _error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- reading

    def find(self, message_id_or_key: str) -> dict[str, Any] | None:
        """The message as the query API shows it, by NXCloud's message id or by idempotency key; None if unknown."""
        items = self._items(message_id_or_key)
        if items is None:
            message_id = self.message_id_for_key(message_id_or_key)
            items = self._items(message_id) if message_id else None
        return view(*items) if items else None

    def _items(self, message_id: str) -> tuple[Item | None, Item | None] | None:
        """The send record and the status item of ``message_id`` (strongly consistent); None when neither exists."""
        answer = self.client.batch_get_item(
            RequestItems={
                self.table: {
                    "Keys": [{"id": {"S": message_id}}, {"id": {"S": STATUS_PREFIX + message_id}}],
                    "ConsistentRead": True,
                }
            }
        )
        found = {_s(item, "id"): item for item in answer.get("Responses", {}).get(self.table, [])}
        send, status = found.get(message_id), found.get(STATUS_PREFIX + message_id)
        return (send, status) if send or status else None

    def message_id_for_key(self, key: str) -> str | None:
        answer = self.client.query(
            TableName=self.table,
            IndexName=KEY_INDEX,
            KeyConditionExpression="idempotency_key = :key",
            ExpressionAttributeValues={":key": {"S": key}},
            Limit=1,
        )
        items = answer.get("Items", [])
        return _s(items[0], "id") if items else None

    def send_records(self, message_ids: list[str]) -> dict[str, SendRecord]:
        """The send records of these messages (those that have one), by message id, in as few reads as allowed."""
        records: dict[str, SendRecord] = {}
        unique = [m for m in dict.fromkeys(message_ids) if m]
        for start in range(0, len(unique), 100):
            keys = [{"id": {"S": m}} for m in unique[start : start + 100]]
            request: Item = {self.table: {"Keys": keys}}
            while request:
                answer = self.client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    records[_s(item, "id") or ""] = SendRecord.from_item(item)
                request = answer.get("UnprocessedKeys") or {}
        return records


def view(send: Item | None, status: Item | None) -> dict[str, Any]:
    """The query API's answer for one message, from its send record and its status item."""
    record = SendRecord.from_item(send) if send else None
    status = status or {}
    times = {ACCEPTED: record.accepted_at} if record else {}
    times |= {s: _s(status, f"at_{s}") or "" for s in STATUS_RANK if s != ACCEPTED and f"at_{s}" in status}
    timeline = [{"status": s, "at": at} for s, at in sorted(times.items(), key=lambda entry: entry[1])]
    recipient = record.recipient if record else _s(status, "recipient") or ""
    return {
        "message_id": record.message_id if record else (_s(status, "id") or "").removeprefix(STATUS_PREFIX),
        "idempotency_key": record.idempotency_key if record else None,
        "status": _s(status, "status") or ACCEPTED,
        "matched": record is not None,
        "template": {"name": record.template_name, "language": record.template_language} if record else None,
        "to": mask_phone(recipient) if recipient else None,
        "timeline": timeline,
        "errors": [
            {"code": int(e["M"]["code"]["N"]), "title": e["M"]["title"]["S"]}
            for e in status.get("errors", {}).get("L", [])
        ],
        "buttons": [
            {"payload": _s(b["M"], "payload"), "text": _s(b["M"], "text"), "at": _s(b["M"], "at")}
            for b in status.get("buttons", {}).get("L", [])
        ],
    }


def _s(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
