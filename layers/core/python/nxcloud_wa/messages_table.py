"""The messages table's items: the one place their attributes are named, written (encoded) and read back (decoded).

The table (``MESSAGES_TABLE``: partition key ``id``, TTL ``expiration``, no index) holds five kinds of items, each
with one kind of writer, so no write can undo another:

* ``<message_id>``: the send's record (``kind`` ``send``, :class:`SendRecord`), written once by the sender, in the
  same request that settles the batch's idempotency records: template, idempotency key, business number, tenant,
  recipient, when NXCloud accepted it (``at_accepted``). A key finds it through the key's idempotency record, which
  maps the key to the message id (``nxcloud_wa.idempotency_keys``): an index would cost a write unit per send.
* ``status#<id>``: what the callbacks said about message ``id`` (``kind`` ``status``, :class:`StatusItem`): the
  current ``status``, the first time of each status (``at_<status>``), the ``errors`` of a failure, the
  ``recipient``, the template ``buttons`` clicked and their event ids (``click_ids``). Written only by the webhook's
  conditional updates (:func:`status_updates`, :func:`click_write`), so callbacks may arrive late, twice and in any
  order: a status replaces the current one only if it outranks it (``nxcloud_wa.statuses``), a status's time is the
  earliest reported, a repeat changes nothing. A callback whose ``id`` matches no send is kept the same way, under
  its own id. (Items written before the current rule also carry ``status_rank``, which nothing reads.)
* ``click#<event id>``: a button click that names no message (``kind`` ``click``, :class:`Click`).
* ``attempt#<message_id>#<n>``: the link to a message's n-th 131049 retry (``kind`` ``attempt``,
  :func:`attempt_link`), written by the sender with the retry's send record, which names the original (``retry_of``)
  and the attempt. An original's send record keeps its request (``retry_request``) when a retry could apply, and the
  failure's status item holds the retry it scheduled (:class:`RetryMark`, set by the webhook with the failure).
* ``skip#<idempotency key>``: a message the sender skipped, unsent (``kind`` ``skip``, :class:`SkipRecord`: the
  suppression entry's ``suppression_reason``, ``scope`` and ``source``, or the frequency ``cap`` it reached): it has
  no NXCloud message id, so it is keyed by its idempotency key, which finds it with no lookup. Written by the
  sender in the same request as the send records; a later skip of the same key writes the same item again. No
  callback ever names it, and the publisher's stream filter passes it by (docs/lifecycle.md).

Writes are encoded in the low-level client's typed form (:data:`nxcloud_wa.dynamo.Item`); reads are decoded from
Python values (``nxcloud_wa.dynamo.plain``), the form Powertools' ``DynamoDBStreamEvent`` gives the stream's images
in: the query API (``Timeline``) and the event publisher read items through the same decoders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .dynamo import Item
from .phone import mask_phone, redact_numbers
from .statuses import ACCEPTED, STATUS_RANK, outranked_by

if TYPE_CHECKING:  # only the webhook function builds them: the sender's cold start does not pay for their models
    from .callbacks import InboundMessage, StatusCallback

STATUS_PREFIX: Final = "status#"
CLICK_PREFIX: Final = "click#"
SKIP_PREFIX: Final = "skip#"
ATTEMPT_PREFIX: Final = "attempt#"
RETRY_SCHEDULED: Final = "retry_scheduled"
"""A failed attempt that will be sent again (131049): its timeline entry, its event's status, and the message's
status in the query API until the retry is sent."""
SKIPPED: Final = "skipped"
"""A skipped message's status in the query API (never a callback's)."""


# --- the send's record


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
    retry_request: str | None = None
    """The request as first given (``nxcloud_wa.retries.request_text``), kept only when a 131049 retry could apply
    (retries on, a marketing or unknown-category template): what a retry sends again."""
    retry_of: str | None = None
    """A retry's original message id (None: this is the original)."""
    attempt: int = 0
    """0 for the original, n for its n-th retry."""
    campaign_id: str | None = None
    """The campaign whose row this message is (docs/campaigns.md), so its events name it."""
    campaign_ref: str | None = None
    """The row's ``ref`` (the customer's own reference), echoed in its events."""

    def item(self, expiration: int) -> Item:
        """The item the sender writes (``expiration``: when DynamoDB may delete it, in epoch seconds)."""
        item: Item = {
            "id": {"S": self.message_id},
            "kind": {"S": "send"},
            **_message_item(self),
            "at_accepted": {"S": self.accepted_at},
            "expiration": {"N": str(expiration)},
        }
        if self.retry_request:
            item["retry_request"] = {"S": self.retry_request}
        if self.retry_of:
            item["retry_of"] = {"S": self.retry_of}
            item["attempt"] = {"N": str(self.attempt)}
        if self.campaign_id:
            item["campaign_id"] = {"S": self.campaign_id}
        if self.campaign_ref:
            item["campaign_ref"] = {"S": self.campaign_ref}
        return item

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> SendRecord:
        return cls(
            message_id=str(image.get("id", "")),
            accepted_at=str(image.get("at_accepted", "")),
            retry_request=image.get("retry_request"),
            retry_of=image.get("retry_of"),
            attempt=int(image.get("attempt", 0)),
            campaign_id=image.get("campaign_id"),
            campaign_ref=image.get("campaign_ref"),
            **_message_fields(image),
        )


def attempt_link_id(original_message_id: str, attempt: int) -> str:
    """The id of the item that links a message to its ``attempt``-th retry."""
    return f"{ATTEMPT_PREFIX}{original_message_id}#{attempt}"


def attempt_link(record: SendRecord, expiration: int) -> Item:
    """The ``attempt#<original>#<n>`` item of a retry's send record: how the original's timeline finds the retry's
    message id (NXCloud gives it only at the retry's send). Written by the sender with the send record."""
    assert record.retry_of is not None
    return {
        "id": {"S": attempt_link_id(record.retry_of, record.attempt)},
        "kind": {"S": "attempt"},
        "message_id": {"S": record.message_id},
        "expiration": {"N": str(expiration)},
    }


# --- a message skipped, unsent


@dataclass(frozen=True, slots=True)
class SkipRecord:
    """What the sender knows about a message it skipped: why (``reason`` ``suppressed``, the entry's reason, scope
    and source; or ``frequency_cap``, the cap), and the message's template, numbers and key."""

    idempotency_key: str
    template_name: str
    template_language: str
    business_phone: str | None
    tenant_id: int | None
    recipient: str
    skipped_at: str
    reason: str
    suppression_reason: str = ""
    scope: str = ""
    source: str = ""
    cap: str = ""
    """A message skipped by the marketing frequency cap (``reason`` ``frequency_cap``): the cap (``1/24h``), which
    its item holds instead of an entry's reason, scope and source."""

    @property
    def item_id(self) -> str:
        return SKIP_PREFIX + self.idempotency_key

    def item(self, expiration: int) -> Item:
        """The item the sender writes (``expiration``: when DynamoDB may delete it, in epoch seconds)."""
        why: Item = (
            {"cap": {"S": self.cap}}
            if self.cap
            else {
                "suppression_reason": {"S": self.suppression_reason},
                "scope": {"S": self.scope},
                "source": {"S": self.source},
            }
        )
        return {
            "id": {"S": self.item_id},
            "kind": {"S": "skip"},
            **_message_item(self),
            "at_skipped": {"S": self.skipped_at},
            "skip_reason": {"S": self.reason},
            **why,
            "expiration": {"N": str(expiration)},
        }

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> SkipRecord:
        return cls(
            skipped_at=str(image.get("at_skipped", "")),
            reason=str(image.get("skip_reason", "")),
            suppression_reason=str(image.get("suppression_reason", "")),
            scope=str(image.get("scope", "")),
            source=str(image.get("source", "")),
            cap=str(image.get("cap", "")),
            **_message_fields(image),
        )


def _message_item(record: SendRecord | SkipRecord) -> Item:
    """The attributes both of the sender's records hold: the message's key, template and numbers."""
    item: Item = {
        "idempotency_key": {"S": record.idempotency_key},
        "template_name": {"S": record.template_name},
        "template_language": {"S": record.template_language},
        "recipient": {"S": record.recipient},
    }
    if record.business_phone:
        item["business_phone"] = {"S": record.business_phone}
    if record.tenant_id is not None:
        item["tenant_id"] = {"N": str(record.tenant_id)}
    return item


def _message_fields(image: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`_message_item`'s attributes read back from a plain image, as the records' field values."""
    return {
        "idempotency_key": str(image.get("idempotency_key", "")),
        "template_name": str(image.get("template_name", "")),
        "template_language": str(image.get("template_language", "")),
        "business_phone": image.get("business_phone"),
        "tenant_id": int(image["tenant_id"]) if "tenant_id" in image else None,
        "recipient": str(image.get("recipient", "")),
    }


def record_from_image(image: Mapping[str, Any]) -> SendRecord | SkipRecord:
    """The sender's record of a message, by its ``kind``: a send, or a skip."""
    return SkipRecord.from_image(image) if image.get("kind") == "skip" else SendRecord.from_image(image)


# --- what the callbacks said


@dataclass(frozen=True, slots=True)
class Update:
    """One conditional ``UpdateItem`` of an item, as its parts."""

    item_id: str
    expression: str
    condition: str
    names: dict[str, str]
    values: Item

    def request(self, table: str) -> dict[str, Any]:
        """The ``UpdateItem`` arguments."""
        return {
            "TableName": table,
            "Key": {"id": {"S": self.item_id}},
            "UpdateExpression": self.expression,
            "ConditionExpression": self.condition,
            "ExpressionAttributeNames": self.names,
            "ExpressionAttributeValues": self.values,
        }


@dataclass(frozen=True, slots=True)
class RetryMark:
    """A failed attempt's retry (131049), as its status item holds it: which attempt, when it is due, when it was
    scheduled. Written with the failed status itself, so no reader sees the failure without it."""

    attempt: int
    retry_at: str
    scheduled_at: str

    def attributes(self) -> tuple[list[str], dict[str, str], Item]:
        """The update's parts: set once (a repeat keeps the first)."""
        names = {"#retry_attempt": "retry_attempt", "#retry_at": "retry_at", "#retry_scheduled": "retry_scheduled_at"}
        parts = [f"{n} = if_not_exists({n}, :{n[1:]})" for n in names]
        values: Item = {
            ":retry_attempt": {"N": str(self.attempt)},
            ":retry_at": {"S": self.retry_at},
            ":retry_scheduled": {"S": self.scheduled_at},
        }
        return parts, names, values

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> RetryMark | None:
        if "retry_attempt" not in image:
            return None
        return cls(
            int(image["retry_attempt"]), str(image.get("retry_at", "")), str(image.get("retry_scheduled_at", ""))
        )


def status_updates(callback: StatusCallback, expiration: int, retry: RetryMark | None = None) -> tuple[Update, Update]:
    """The two writes of a status callback: the first sets it as the current status if the stored one is among those
    it outranks; when that condition fails, the second only moves the status's time earlier (a late duplicate may
    carry an earlier time). Both keep the first errors, recipient and lifetime, so a status that does not become
    current (a ``failed`` after ``read``) is still in the timeline with its errors; and both set a failure's
    ``retry`` mark (131049) if it has none."""
    common, names, values = _status_attributes(callback, expiration)
    if retry is not None:
        parts, retry_names, retry_values = retry.attributes()
        common = ", ".join([common, *parts])
        names |= retry_names
        values |= retry_values
    names |= {"#at": f"at_{callback.status}"}
    values |= {":at": {"S": callback.at}}
    below = outranked_by(callback.status)
    below_values = {f":below{i}": {"S": status} for i, status in enumerate(below)}
    current = Update(
        STATUS_PREFIX + callback.id,
        f"SET #status = :status, #at = :at, {common}",
        f"attribute_not_exists(#status) OR #status IN ({', '.join(below_values)})",
        names | {"#status": "status"},
        values | below_values | {":status": {"S": callback.status}},
    )
    earlier = Update(
        STATUS_PREFIX + callback.id,
        f"SET #at = :at, {common}",
        "attribute_not_exists(#at) OR #at > :at",
        names,
        values,
    )
    return current, earlier


def _status_attributes(callback: StatusCallback, expiration: int) -> tuple[str, dict[str, str], Item]:
    """What every status write sets when it is first: the item's kind, lifetime, recipient and errors."""
    parts = ["#kind = :kind", "#expiration = if_not_exists(#expiration, :expiration)"]
    names = {"#kind": "kind", "#expiration": "expiration"}
    values: Item = {":kind": {"S": "status"}, ":expiration": {"N": str(expiration)}}
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


def click_write(message: InboundMessage, expiration: int) -> Update | Item:
    """A button click's write: an update of the status item of the message it answers (each click once, by its
    event id), or, when it names no message, a ``click#`` item of its own (to put only if it does not exist)."""
    assert message.button is not None
    click: Item = {
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
        return click | {
            "id": {"S": CLICK_PREFIX + message.id},
            "kind": {"S": "click"},
            "expiration": {"N": str(expiration)},
        }
    return Update(
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
            ":expiration": {"N": str(expiration)},
        },
    )


@dataclass(frozen=True, slots=True)
class DeliveryError:
    """One error a ``failed`` callback reported (WhatsApp's code and title)."""

    code: int
    title: str


@dataclass(frozen=True, slots=True)
class Click:
    """One template button click: a ``click#`` item, or an entry of a status item's ``buttons``."""

    event_id: str
    from_: str | None
    payload: str | None
    text: str | None
    at: str | None
    template_id: str | None
    template_name: str | None
    parameters: Any
    """``wa_ext``'s components, as NXCloud sent them (None when it sent none)."""

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> Click:
        return cls(
            event_id=str(image.get("id", "")).removeprefix(CLICK_PREFIX),
            from_=image.get("from"),
            payload=image.get("payload"),
            text=image.get("text"),
            at=image.get("at"),
            template_id=image.get("template_id"),
            template_name=image.get("template_name"),
            parameters=_unjson(image.get("parameters")),
        )


@dataclass(frozen=True, slots=True)
class StatusItem:
    """A ``status#`` item: what the callbacks said about one message."""

    message_id: str
    status: str | None
    """The current status; None for an item that holds only clicks."""
    times: dict[str, str]
    """The first reported time of each status stored."""
    recipient: str | None
    errors: tuple[DeliveryError, ...]
    clicks: tuple[Click, ...]
    retry: RetryMark | None = None
    """The failure's retry (131049), when one was scheduled."""

    @classmethod
    def from_image(cls, image: Mapping[str, Any]) -> StatusItem:
        return cls(
            message_id=str(image.get("id", "")).removeprefix(STATUS_PREFIX),
            status=image.get("status"),
            times={s: str(image[f"at_{s}"]) for s in STATUS_RANK if s != ACCEPTED and f"at_{s}" in image},
            recipient=image.get("recipient"),
            errors=tuple(DeliveryError(int(e["code"]), str(e["title"])) for e in image.get("errors", [])),
            clicks=tuple(Click.from_image(b) for b in image.get("buttons", [])),
            retry=RetryMark.from_image(image),
        )

    @property
    def shown_status(self) -> str | None:
        """The status a reader is told: ``retry_scheduled`` for a failure that will be sent again."""
        return RETRY_SCHEDULED if self.status == "failed" and self.retry is not None else self.status


# --- the query API's view of a message


Attempt = tuple[SendRecord | None, StatusItem | None]
"""One attempt of a message: its send record and its status item (either may be missing)."""


def view(
    send: SendRecord | SkipRecord | None, status: StatusItem | None, retries: Sequence[Attempt] = ()
) -> dict[str, Any]:
    """The query API's answer for one message (``GET /messages/{id}``), from its send record and its status item, and
    those of its 131049 retries, in order: one timeline, the current status the last attempt's."""
    if isinstance(send, SkipRecord):
        return _skipped_view(send)
    recipient = send.recipient if send else status.recipient if status else None
    _, last_status = retries[-1] if retries else (send, status)
    timeline = _timeline(send, status)
    for n, (retry_send, retry_status) in enumerate(retries, start=1):
        timeline += [entry | {"attempt": n} for entry in _timeline(retry_send, retry_status)]
    answer: dict[str, Any] = {
        "message_id": send.message_id if send else status.message_id if status else "",
        "idempotency_key": send.idempotency_key if send else None,
        "status": (last_status.shown_status if last_status else None) or ACCEPTED,
        "matched": send is not None,
        "template": {"name": send.template_name, "language": send.template_language} if send else None,
        "to": mask_phone(recipient) if recipient else None,
        "timeline": timeline,
        "errors": _errors(last_status),
        "buttons": [_button(c) for _, s in [(send, status), *retries] if s for c in s.clicks],
    }
    if retries:
        answer["attempts"] = [
            {
                "attempt": n,
                "message_id": s.message_id if s else st.message_id if st else None,
                "status": (st.shown_status if st else None) or ACCEPTED,
                "errors": _errors(st),
            }
            for n, (s, st) in enumerate([(send, status), *retries])
        ]
    return answer


def _timeline(send: SendRecord | None, status: StatusItem | None) -> list[dict[str, Any]]:
    """One attempt's entries: accepted and each status first reported, by time; then its retry, if one was scheduled
    (last whatever the clocks say: NXCloud's failure time and the webhook's clock are not the same clock)."""
    times = {ACCEPTED: send.accepted_at} if send else {}
    times |= status.times if status else {}
    entries: list[dict[str, Any]] = [{"status": s, "at": at} for s, at in sorted(times.items(), key=lambda e: e[1])]
    if status is not None and status.retry is not None:
        retry = status.retry
        entries.append({"status": RETRY_SCHEDULED, "at": retry.scheduled_at, "retry_at": retry.retry_at})
    return entries


def _errors(status: StatusItem | None) -> list[dict[str, Any]]:
    return [{"code": e.code, "title": e.title} for e in status.errors] if status else []


def _button(click: Click) -> dict[str, Any]:
    return {"payload": click.payload, "text": click.text, "at": click.at}


def _skipped_view(skip: SkipRecord) -> dict[str, Any]:
    """A skipped message: status ``skipped`` and why; its ``message_id`` is its item's id (NXCloud gave it none)."""
    return {
        "message_id": skip.item_id,
        "idempotency_key": skip.idempotency_key,
        "status": SKIPPED,
        "matched": True,
        "template": {"name": skip.template_name, "language": skip.template_language},
        "to": mask_phone(skip.recipient) if skip.recipient else None,
        "timeline": [{"status": SKIPPED, "at": skip.skipped_at}],
        "errors": [],
        "buttons": [],
        "skipped": {"reason": skip.reason, "cap": skip.cap}
        if skip.cap
        else {
            "reason": skip.reason,
            "suppression_reason": skip.suppression_reason,
            "scope": skip.scope,
            "source": redact_numbers(skip.source),
        },
    }


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _unjson(value: str | None) -> Any:
    """A value :func:`click_write` stored as JSON text; a plain string NXCloud sent is returned as it is."""
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value
