"""What a callback body implies for the suppression list, and storing it (docs/audience.md, "Where entries come from").

The rules are :mod:`nxcloud_wa.audience`'s (:func:`~nxcloud_wa.audience.click_action`,
:func:`~nxcloud_wa.audience.text_action`, :func:`~nxcloud_wa.audience.status_action`) and the table's requests
:mod:`nxcloud_wa.suppressions`'; this module finds the (business number, recipient) pair each change is for and hands
the change to the store:

* the recipient: a click's or a text's ``from``; a status's ``recipient_id``, else its send record's recipient;
* the business number: the body's ``business_phone``; else the entry's ``context.from`` (the business number that
  sent the message a click answers); else the business number of the message's send record in the messages table
  (one BatchGetItem per body, for every entry that needs it); else the deployment's default (``DEFAULT_BUSINESS_PHONE``,
  else the secret's ``business_phone``), which is the one the sender used for a message that named none.

A change whose pair cannot be made (no business number anywhere, a number that is not one) is returned as
:class:`Unkeyed`, never raised: the callback itself is stored, and the webhook logs it masked and counts it. A read
or write that fails raises, and the webhook keeps the whole body for replay: replaying is idempotent (an equal entry
replaces itself, a removal finds nothing the second time).

A 131049 failure's :class:`~nxcloud_wa.audience.RetryLater` is not a suppression and is not handled here: the
failed status is stored as any other, and whatever schedules the retry reads it from the same rule.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .audience import AddEntry, AudienceSettings, RemoveEntry, click_action, status_action, text_action
from .suppressions import Key, SuppressionStore, key_of
from .timeline import SendRecords

if TYPE_CHECKING:  # only the webhook function builds them
    from .callbacks import InboundMessage, StatusCallback, WebhookBody

Change = AddEntry | RemoveEntry
Entry = Literal["status", "click", "text"]


class SendRecordsUnreadError(Exception):
    """DynamoDB left send records unread after every retry: the business number of an entry could not be learnt, so
    the body is kept for replay rather than its change dropped or stored under a guessed number."""


@dataclass(frozen=True, slots=True)
class Implied:
    """One change a callback entry asks for, and what the entry says about whose list it is."""

    entry: Entry
    entry_id: str
    change: Change
    recipient: str | None
    business_phone: str | None
    message_id: str | None
    """The message whose send record can name the business number (and a status's recipient), if any."""


@dataclass(frozen=True, slots=True)
class Keyed:
    implied: Implied
    key: Key


@dataclass(frozen=True, slots=True)
class Unkeyed:
    """A change that cannot be stored: ``why`` names what is missing or malformed (never a number)."""

    implied: Implied
    recipient: str | None
    why: str


@dataclass(frozen=True, slots=True)
class Applied:
    """A change handed to the store: ``done`` when it changed the list (an entry stored, an entry removed); not done
    when a stronger entry was kept, or there was nothing an opt-in may remove."""

    keyed: Keyed
    done: bool


def implied(body: WebhookBody, settings: AudienceSettings) -> list[Implied]:
    """Every change the body's entries ask for, statuses first, then messages, each in the body's order."""
    found = [change for status in body.statuses for change in _from_status(status, body.business_phone, settings)]
    for message in body.messages:
        change = _from_message(message, body.business_phone, settings)
        if change is not None:
            found.append(change)
    return found


def _from_status(status: StatusCallback, business: str | None, settings: AudienceSettings) -> Iterator[Implied]:
    if status.status != "failed":
        return
    for error in status.errors:
        action = status_action(settings, error.code)
        if isinstance(action, AddEntry | RemoveEntry):  # a RetryLater (131049) is not a suppression
            yield Implied("status", status.id, action, status.recipient_id, business, status.id)


def _from_message(message: InboundMessage, business: str | None, settings: AudienceSettings) -> Implied | None:
    entry: Entry
    if message.is_button_click:
        assert message.button is not None
        action, entry = click_action(settings, message.button.payload, message.button.text), "click"
    elif message.text_body is not None:
        action, entry = text_action(settings, message.text_body), "text"
    else:
        return None
    if action is None:
        return None
    context = message.context
    return Implied(
        entry,
        message.id,
        action,
        message.from_,
        business or (context.from_ if context else None),
        context.id if context else None,
    )


def keyed(
    changes: list[Implied],
    send_records: Callable[[list[str]], SendRecords],
    default_business_phone: Callable[[], str | None],
) -> tuple[list[Keyed], list[Unkeyed]]:
    """Each change's pair: from the entry itself, else from the send records (one call for all the changes that need
    one), else the default business number (asked for only when needed). ``SendRecordsUnreadError`` when a send
    record that was needed stayed unread."""
    needed = [c.message_id for c in changes if c.message_id and not (c.business_phone and c.recipient)]
    records = send_records(needed) if needed else SendRecords({}, frozenset())
    if records.unread:
        raise SendRecordsUnreadError(f"{len(records.unread)} send record(s) stayed unread")
    default: list[str | None] = []  # asked for once, lazily
    ready: list[Keyed] = []
    unkeyed: list[Unkeyed] = []
    for change in changes:
        record = records.found.get(change.message_id or "")
        recipient = change.recipient or (record.recipient if record else None)
        business = change.business_phone or (record.business_phone if record else None)
        if not business:
            if not default:
                default.append(default_business_phone())
            business = default[0]
        if not recipient or not business:
            unkeyed.append(Unkeyed(change, recipient, "no recipient" if not recipient else "no business number"))
            continue
        try:
            ready.append(Keyed(change, key_of(business, recipient)))
        except ValueError as exc:  # says which of the two, never the number
            unkeyed.append(Unkeyed(change, recipient, str(exc)))
    return ready, unkeyed


def apply(changes: Iterable[Keyed], store: SuppressionStore) -> Iterator[Applied]:
    """Hand each change to the store, in order, yielding each once it is stored (so a caller reports what was done
    before a later one failed). A failed write raises
    :class:`~nxcloud_wa.exceptions.SuppressionsUnavailableError`."""
    for change in changes:
        action, key = change.implied.change, change.key
        if isinstance(action, AddEntry):
            done = store.put(action.entry(key, store.clock()))
        else:
            done = store.remove(key[0], key[1], only_reasons=action.only_reasons)
        yield Applied(change, done)
