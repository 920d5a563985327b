"""The suppression list (env ``SUPPRESSIONS_TABLE``): who must not be messaged from which business number, and why.

This module is the table's one owner: the item format (encoded and decoded here only) and every request made to it.
The rules that decide *when* an entry is added or removed, and which messages it stops, are in
:mod:`nxcloud_wa.audience`; docs/audience.md is the contract.

One item per (business number, recipient):

* ``id``: ``{business_phone}#{recipient}``, both as digits with the country code (:func:`nxcloud_wa.phone.
  normalize_phone`), so ``+86 138-0013-8000`` and ``8613800138000`` are one entry;
* ``business_phone`` and ``recipient`` (the same digits): the key of the index ``by_business_phone``, so one number's
  list is a paged Query, never a Scan;
* ``scope`` (:class:`Scope`), ``reason`` (:class:`Reason`), ``source`` (the button payload, ``keyword:<word>``, the
  WhatsApp error code, ``api``, ``import``), ``at`` (ISO 8601, UTC);
* ``expiration`` (epoch seconds, DynamoDB's TTL attribute) only on a temporary entry. DynamoDB deletes an expired
  item lazily, up to days later, so every read here compares ``expiration`` with the clock and treats an expired
  entry as absent.

Which entry wins when one exists already (:meth:`SuppressionStore.put`): a permanent entry beats a temporary one, then
``all`` beats ``marketing``; an equal one replaces it (the newest reason, source and expiry). So a later ``marketing``
entry never narrows an ``all`` one, and a 30-day ``undeliverable`` entry never replaces a permanent opt-out (which
would then expire with it); an expired entry is replaced by anything. The rule is one conditional PutItem: no read
first, so two callbacks racing cannot both win.

The same table holds the marketing frequency cap's counts (``MARKETING_CAP_PER_RECIPIENT``; the rule is
:class:`nxcloud_wa.audience.FrequencyCap`), one item per (business number, recipient) that was sent a marketing
template inside the window: ``id`` ``cap#{business_phone}#{recipient}``, ``sent`` (a map of each message's tag,
:func:`send_tag`, to when it went out, epoch seconds: at most the cap's count, trimmed to the window on every write)
and ``expiration`` (when its newest send leaves the window). It carries no ``business_phone`` or ``recipient``
attribute, so the index (and every listing) never sees it.
The sender reads it in the check's one BatchGetItem (:meth:`SuppressionStore.read`) and writes it in its settlement's
BatchWriteItem (:func:`encode_sends`): a Put of the whole count, no request of its own.

Reads are strongly consistent (``ConsistentRead``): an entry stored before a batch is read is seen by that read, which
is what makes "nothing claimed after the entry was stored is sent" hold. The index (``list``) is eventually consistent
by DynamoDB's design: a listing may lag a write by a moment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from .dynamo import CONDITION_FAILED, READ_ATTEMPTS, Item, batch_get, error_code
from .exceptions import SuppressionsUnavailableError
from .phone import E164_MAX_DIGITS, E164_MIN_DIGITS, normalize_phone

INDEX: Final = "by_business_phone"
"""The index of one business number's entries (partition ``business_phone``, sort ``recipient``)."""
CAP_PREFIX: Final = "cap#"
"""The id prefix of a pair's marketing sends (:func:`sends_id`), which are not entries."""
MAX_PAGE: Final = 1000
"""Most entries one :meth:`SuppressionStore.list` page may ask for."""


class Scope(StrEnum):
    """Which messages an entry stops: ``marketing`` templates only, or ``all`` (every category)."""

    MARKETING = "marketing"
    ALL = "all"


class Reason(StrEnum):
    """Why the entry exists: the recipient asked (``opted_out``), WhatsApp said the user stopped marketing messages
    (131050, ``marketing_stopped``), the number cannot receive (131026, ``undeliverable``), or a person said so
    through the API, the CLI or an import (``manual``)."""

    OPTED_OUT = "opted_out"
    MARKETING_STOPPED = "marketing_stopped"
    UNDELIVERABLE = "undeliverable"
    MANUAL = "manual"


OPT_IN_REMOVES: Final = frozenset({Reason.OPTED_OUT, Reason.MARKETING_STOPPED})
"""The reasons an opt-in (a button or keyword of the recipient's) removes. Not ``undeliverable``: an opt-in proves
nothing about whether the number can receive (and comes from a number WhatsApp just said it cannot reach only in a
race). Not ``manual``: a person put it there, and only a person (API, CLI) takes it away."""

E = TypeVar("E", bound=StrEnum)
Key = tuple[str, str]
"""(business number, recipient), both as :func:`~nxcloud_wa.phone.normalize_phone` digits."""


def key_of(business_phone: str, recipient: str) -> Key:
    """Both numbers as digits with the country code; ``ValueError`` saying which one is not a number."""
    try:
        business = normalize_phone(business_phone)
    except ValueError as exc:
        raise ValueError(f"business_phone {exc}") from None
    try:
        to = normalize_phone(recipient)
    except ValueError as exc:
        raise ValueError(f"recipient {exc}") from None
    return business, to


def _checked(key: Key) -> Key:
    """``key`` when both numbers have the normaliser's shape (7 to 15 ASCII digits); ``ValueError`` otherwise."""
    if not all(
        number.isascii() and number.isdecimal() and E164_MIN_DIGITS <= len(number) <= E164_MAX_DIGITS for number in key
    ):
        raise ValueError("a suppression key is two numbers as digits with the country code: use key_of()")
    return key


def item_id(key: Key) -> str:
    """The table's key for normalised numbers: ``{business_phone}#{recipient}``."""
    return f"{key[0]}#{key[1]}"


def sends_id(key: Key) -> str:
    """The key of the pair's marketing sends (the frequency cap's count): ``cap#{business_phone}#{recipient}``."""
    return CAP_PREFIX + item_id(key)


@dataclass(frozen=True, slots=True)
class Suppression:
    """One entry. Build it with normalised numbers (:func:`key_of`); ``expiration`` only on a temporary entry."""

    business_phone: str
    recipient: str
    scope: Scope
    reason: Reason
    source: str
    at: str
    """When it was stored, ISO 8601 UTC (``2026-12-06T04:30:00.000+00:00``)."""
    expiration: int | None = None
    """Epoch seconds after which the entry no longer applies; None: permanent."""

    @property
    def key(self) -> Key:
        return self.business_phone, self.recipient

    @property
    def permanent(self) -> bool:
        return self.expiration is None

    def expired(self, now: float) -> bool:
        """Whether the entry no longer applies at ``now`` (epoch seconds), whether or not DynamoDB deleted it yet."""
        return self.expiration is not None and self.expiration <= now

    def outranks(self, other: Suppression) -> bool:
        """Whether storing this entry over ``other`` (unexpired) keeps every message ``other`` stops stopped for at
        least as long: permanent before temporary, then ``all`` before ``marketing`` (see the module's docstring)."""
        return _rank(self.permanent, self.scope) >= _rank(other.permanent, other.scope)


def _rank(permanent: bool, scope: Scope) -> tuple[bool, bool]:
    return permanent, scope is Scope.ALL


def now_iso(now: float) -> str:
    """``at``'s format, the project's: ISO 8601 in UTC with milliseconds."""
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")


# --- the item format --------------------------------------------------------------------------------------------------


def encode(entry: Suppression) -> dict[str, Any]:
    """The DynamoDB item (low-level attribute values) of an entry."""
    item: dict[str, Any] = {
        "id": {"S": item_id(entry.key)},
        "business_phone": {"S": entry.business_phone},
        "recipient": {"S": entry.recipient},
        "scope": {"S": str(entry.scope)},
        "reason": {"S": str(entry.reason)},
        "source": {"S": entry.source},
        "at": {"S": entry.at},
    }
    if entry.expiration is not None:
        item["expiration"] = {"N": str(entry.expiration)}
    return item


def decode(item: Mapping[str, Any]) -> Suppression:
    """An entry from its item. Forgiving in the safe direction only: an item written by hand or by an older version
    with an unknown ``scope`` stops everything (``all``), an unknown ``reason`` reads as ``manual`` (which no opt-in
    removes), and the numbers come from ``id`` when their own attributes are missing. ``ValueError`` when even ``id``
    is unreadable."""
    business, _, recipient = _text(item, "id").partition("#")
    if not business or not recipient:
        raise ValueError("a suppression item's id is not {business_phone}#{recipient}")
    expiration = item.get("expiration", {}).get("N")
    return Suppression(
        business_phone=_text(item, "business_phone") or business,
        recipient=_text(item, "recipient") or recipient,
        scope=_member(Scope, _text(item, "scope"), Scope.ALL),
        reason=_member(Reason, _text(item, "reason"), Reason.MANUAL),
        source=_text(item, "source"),
        at=_text(item, "at"),
        expiration=int(float(expiration)) if expiration is not None else None,
    )


def send_tag(idempotency_key: str) -> str:
    """How a count names a message: 16 hex digits of its idempotency key's SHA-256. Short, so a count stays a small
    item; hashed, so a key (up to 128 characters of the caller's) is never stored there. The same message sent again
    (a redelivery, a repeated API call) has the same tag, so it is not counted twice."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:16]


def encode_sends(key: Key, sends: Mapping[str, int], expiration: int) -> Item:
    """The item of a pair's marketing sends inside the cap's window (message tag: epoch seconds)."""
    return {
        "id": {"S": sends_id(key)},
        "sent": {"M": {tag: {"N": str(at)} for tag, at in sends.items()}},
        "expiration": {"N": str(expiration)},
    }


def decode_sends(item: Mapping[str, Any]) -> tuple[Key, dict[str, int]]:
    """A pair and its sends from their item; ``ValueError`` when its id is not ``cap#{business}#{recipient}``. A time
    that is not a number is left out (the count errs low only for an item written by hand)."""
    business, _, recipient = _text(item, "id").removeprefix(CAP_PREFIX).partition("#")
    if not business or not recipient:
        raise ValueError("a sends item's id is not cap#{business_phone}#{recipient}")
    values = item.get("sent", {}).get("M", {})
    sends = {tag: int(float(v["N"])) for tag, v in values.items() if isinstance(v, Mapping) and "N" in v}
    return (business, recipient), sends


def _text(item: Mapping[str, Any], name: str) -> str:
    value = item.get(name, {})
    return str(value.get("S", "")) if isinstance(value, Mapping) else ""


def _member(enum: type[E], value: str, default: E) -> E:
    try:
        return enum(value)
    except ValueError:
        return default


# --- the store --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lookup:
    """What one read of a batch's pairs found: the entries in force, and each pair's marketing sends as stored (the
    frequency cap trims them to its window); a pair without either is absent from it."""

    entries: dict[Key, Suppression]
    sends: dict[Key, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a business number's entries; ``cursor`` asks for the next (None: this was the last)."""

    entries: list[Suppression]
    cursor: str | None


class SuppressionStore:
    """The table's requests. ``client`` is a boto3 DynamoDB client; ``clock`` gives epoch seconds (what expiry is
    compared with) and ``sleep`` waits between retries of unprocessed keys: tests pass controlled ones.

    ``requests`` counts the DynamoDB requests made (what the bench and the soak report).
    """

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        attempts: int = READ_ATTEMPTS,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.sleep = sleep
        self.attempts = attempts
        self.jitter = jitter
        self.requests = 0

    # reads

    def lookup(self, keys: Iterable[Key]) -> dict[Key, Suppression]:
        """The entries in force for ``keys``, (business number, recipient) pairs already normalised (:func:`key_of`,
        or a validated message's fields, which went through the same normaliser); a key without an entry is absent.
        The keys are checked for shape (digits) but not parsed again: parsing costs about 0.14 ms a number, more than
        the rest of the check. One strongly consistent BatchGetItem per 100 distinct keys; keys DynamoDB leaves
        unprocessed are asked for again (:func:`nxcloud_wa.dynamo.batch_get`: bounded, backing off). Raises
        :class:`~nxcloud_wa.exceptions.SuppressionsUnavailableError` when the table cannot be read or keys stay
        unread, so the caller applies its fail-open / retry-later rule (:func:`nxcloud_wa.audience.when_unreadable`);
        ``ValueError`` for a key that is not two numbers' digits."""
        return self.read(keys).entries

    def read(self, keys: Iterable[Key], *, entries: bool = True, sends: bool = False) -> Lookup:
        """:meth:`lookup`'s read, for the pairs' entries, their marketing sends (the frequency cap's count), or both
        in the same requests (two keys a pair, so 50 pairs a request when both are read)."""
        distinct = list(dict.fromkeys(_checked(key) for key in keys))
        ids = [item_id(key) for key in distinct] if entries else []
        ids += [sends_id(key) for key in distinct] if sends else []
        now = self.clock()
        found = Lookup({}, {})
        for item in self._batch_get(ids):
            if _text(item, "id").startswith(CAP_PREFIX):
                key, sent = decode_sends(item)
                found.sends[key] = sent
                continue
            entry = decode(item)
            if not entry.expired(now):
                found.entries[entry.key] = entry
        return found

    def _batch_get(self, ids: list[str]) -> list[Item]:
        if not ids:
            return []
        try:
            items, unread, calls = batch_get(
                self.client,
                self.table,
                [{"id": {"S": i}} for i in ids],
                consistent=True,
                attempts=self.attempts,
                sleep=self.sleep,
                jitter=self.jitter,
            )
        except ClientError as exc:
            raise SuppressionsUnavailableError(f"batch_get_item failed: {error_code(exc) or 'ClientError'}") from exc
        except BotoCoreError as exc:
            raise SuppressionsUnavailableError(f"batch_get_item failed: {type(exc).__name__}") from exc
        self.requests += calls
        if unread:
            raise SuppressionsUnavailableError(f"{len(unread)} of {len(ids)} suppression keys stayed unprocessed")
        return items

    def get(self, business_phone: str, recipient: str) -> Suppression | None:
        """The entry in force for one pair, or None (absent or expired). Strongly consistent."""
        key = key_of(business_phone, recipient)
        answer = self._call("get_item", TableName=self.table, Key={"id": {"S": item_id(key)}}, ConsistentRead=True)
        item = answer.get("Item")
        entry = decode(item) if item else None
        return entry if entry is not None and not entry.expired(self.clock()) else None

    # writes

    def put(self, entry: Suppression) -> bool:
        """Store ``entry`` unless an unexpired entry that outranks it is there (:meth:`Suppression.outranks`): True
        when stored, False when the stronger one was kept. One conditional PutItem."""
        request = {"TableName": self.table, "Item": encode(entry), **_may_replace(entry, int(self.clock()))}
        try:
            self._call("put_item", **request)
        except _ConditionFailedError:
            return False
        return True

    def remove(self, business_phone: str, recipient: str, *, only_reasons: Iterable[Reason] | None = None) -> bool:
        """Delete a pair's entry; with ``only_reasons``, only when its reason is one of them (an opt-in passes
        :data:`OPT_IN_REMOVES`). True when an entry was deleted."""
        key = key_of(business_phone, recipient)
        request: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"id": {"S": item_id(key)}},
            "ReturnValues": "ALL_OLD",
        }
        if only_reasons is not None:
            reasons = sorted(set(only_reasons))
            if not reasons:
                return False
            names = [f":r{n}" for n in range(len(reasons))]
            request |= {
                "ConditionExpression": f"#reason IN ({', '.join(names)})",
                "ExpressionAttributeNames": {"#reason": "reason"},
                "ExpressionAttributeValues": {name: {"S": str(r)} for name, r in zip(names, reasons, strict=True)},
            }
        try:
            answer = self._call("delete_item", **request)
        except _ConditionFailedError:
            return False
        return bool(answer.get("Attributes"))

    def _call(self, operation: str, **request: Any) -> dict[str, Any]:
        """One request, counted; a failed condition is :class:`_ConditionFailedError`, any other failure
        :class:`~nxcloud_wa.exceptions.SuppressionsUnavailableError`."""
        self.requests += 1
        try:
            answer: dict[str, Any] = getattr(self.client, operation)(**request)
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise _ConditionFailedError from None
            raise SuppressionsUnavailableError(f"{operation} failed: {error_code(exc) or 'ClientError'}") from exc
        except BotoCoreError as exc:
            raise SuppressionsUnavailableError(f"{operation} failed: {type(exc).__name__}") from exc
        return answer

    def list(self, business_phone: str, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of a business number's entries in force, by recipient, through the index (eventually
        consistent). A page may hold fewer than ``limit`` entries while more follow (expired ones are left out);
        stop when ``cursor`` is None. ``ValueError`` for a bad number, limit or cursor."""
        business = normalize_phone(business_phone)
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1 to {MAX_PAGE}")
        now = self.clock()
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": INDEX,
            "KeyConditionExpression": "business_phone = :b",
            "FilterExpression": "attribute_not_exists(#exp) OR #exp > :now",
            "ExpressionAttributeNames": {"#exp": "expiration"},
            "ExpressionAttributeValues": {":b": {"S": business}, ":now": {"N": str(int(now))}},
            "Limit": limit,
        }
        if cursor:
            request["ExclusiveStartKey"] = _decode_cursor(cursor, business)
        answer = self._call("query", **request)
        entries = [entry for entry in map(decode, answer.get("Items", [])) if not entry.expired(now)]
        last = answer.get("LastEvaluatedKey")
        return Page(entries, _encode_cursor(last) if last else None)


class _ConditionFailedError(Exception):
    """A conditional write found an entry it must not replace (or no entry to delete)."""


def _may_replace(entry: Suppression, now: int) -> dict[str, Any]:
    """The condition under which ``entry`` may overwrite what is stored, as PutItem's parameters (empty: always).

    The stored entry may be replaced when there is none, when it has expired, or when ``entry`` outranks it: the rank
    rule of :meth:`Suppression.outranks` written as a condition on the stored item (temporary: it has
    ``expiration``; ``marketing``: its scope says so, anything else counts as ``all``, as :func:`decode` reads it).
    """
    temporary, marketing = "attribute_exists(#exp)", "#scope = :marketing"
    outranked = {
        (True, Scope.ALL): "",
        (True, Scope.MARKETING): f"{temporary} OR {marketing}",
        (False, Scope.ALL): temporary,
        (False, Scope.MARKETING): f"({temporary} AND {marketing})",
    }[(entry.permanent, entry.scope)]
    if not outranked:
        return {}
    names, values = {"#id": "id", "#exp": "expiration"}, {":now": {"N": str(now)}}
    if marketing in outranked:  # DynamoDB refuses names and values a condition does not use
        names["#scope"], values[":marketing"] = "scope", {"S": str(Scope.MARKETING)}
    return {
        "ConditionExpression": f"attribute_not_exists(#id) OR #exp <= :now OR {outranked}",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


def _encode_cursor(last_key: Mapping[str, Any]) -> str:
    """The index's LastEvaluatedKey as an opaque token (URL-safe base64 of compact JSON)."""
    plain = {name: value["S"] for name, value in last_key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, business_phone: str) -> dict[str, Any]:
    """A token of :func:`_encode_cursor` back into ExclusiveStartKey; ``ValueError`` unless it is one, for this
    business number (a caller cannot page another number's list with it)."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("cursor is not one this API gave") from None
    names = {"id", "business_phone", "recipient"}
    if (
        not isinstance(plain, dict)
        or set(plain) != names
        or not all(isinstance(v, str) for v in plain.values())
        or plain["business_phone"] != business_phone
        or plain["id"] != f"{business_phone}#{plain['recipient']}"
    ):
        raise ValueError("cursor is not one this API gave")
    return {name: {"S": value} for name, value in plain.items()}
