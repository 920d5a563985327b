"""Idempotency records in DynamoDB, claimed and settled a whole batch at a time.

Why not Powertools' idempotency utility: it guards one call at a time, so a batch of ten costs twenty DynamoDB
requests (a conditional put and an update per message), about two thirds of the function's CPU per message. Here a
batch costs two: one ``BatchExecuteStatement`` claims every key (a PartiQL ``INSERT`` each, 1 write unit), one
``BatchWriteItem`` settles them (the outcome stored, or the claim released). A key claimed once is never sent twice
while its record lives.

Why PartiQL ``INSERT``: it is the cheapest write that refuses an existing key (1 write unit; a
``TransactWriteItems`` put costs 2), and each statement succeeds or fails alone. Its refusal (``DuplicateItem``)
carries no old item, so the keys refused, and only they, are read in one consistent ``BatchGetItem`` and interpreted;
a refused key whose record is stale (expired, or an interrupted claim under ``retry``) is taken with a conditional
``PutItem`` on the same condition a lone key's claim has, so of two deliveries racing for it one wins. A statement
refused for any other reason (throttled, ...) leaves its key :class:`Unclaimed`, treated as a claim that failed.
The local stack's DynamoDB refuses a duplicate ``INSERT`` as DynamoDB does (``local_stack.moto_fixes``), and the soak
proves the guarantee against it. A single key (the API) is claimed with a conditional ``PutItem`` (1 write unit),
whose failed condition returns the old item at once.

Records keep Powertools' format (attribute names, key ``<prefix>#md5(json(key))`` (``nxcloud_wa.idempotency_keys``,
which GET /messages/{id} reads a key's message through), payload hash, ``INPROGRESS`` / ``COMPLETED``, in-progress
expiry in ms), so records written by earlier versions of this function, which used
Powertools, are honoured across a deploy; tests prove that Powertools reads ours and this reads Powertools'.

Rules (``UNKNOWN_OUTCOME_POLICY``):

* a free or expired key is claimed (``INPROGRESS`` until the invocation's deadline);
* ``COMPLETED`` returns the stored outcome; a different payload under the same key is refused;
* ``INPROGRESS`` before its deadline is in progress elsewhere;
* ``INPROGRESS`` past its deadline means an attempt started and never finished: under ``retry`` the key is taken
  over (at least once), under ``dead_letter`` it is reported interrupted and never handed over (at most once).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from nxcloud_wa.dynamo import CONDITION_FAILED, Item, batch_get, error_code, text
from nxcloud_wa.idempotency_keys import COMPLETED, powertools_hash, record_id

INPROGRESS: Final = "INPROGRESS"
BATCH_WRITE_LIMIT: Final = 25
"""Most writes one ``BatchWriteItem`` takes, over all its tables."""
STATEMENT_LIMIT: Final = 25
"""Most statements one ``BatchExecuteStatement`` takes."""
DUPLICATE_ITEM: Final = "DuplicateItem"
"""A ``BatchExecuteStatement`` entry's error code for an ``INSERT`` whose key exists (it carries no item)."""
SETTLE_ATTEMPTS: Final = 3
"""``BatchWriteItem`` calls per settlement: the first, then retries of what DynamoDB left unprocessed (throttling)."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One idempotency key and the payload it guards, hashed as Powertools hashes them."""

    record_id: str
    payload_hash: str

    @classmethod
    def of(cls, key: str, payload: Mapping[str, Any]) -> Claim:
        return cls(record_id(key), powertools_hash(payload))


@dataclass(frozen=True, slots=True)
class Claimed:
    """The key is ours until the outcome is settled."""


@dataclass(frozen=True, slots=True)
class Completed:
    """An earlier delivery stored this outcome (the stored data, as :mod:`idempotency_record` wrote it)."""

    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InProgress:
    """Another delivery holds the key and has time left."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """An earlier delivery claimed the key and never finished: it may have sent the message."""


@dataclass(frozen=True, slots=True)
class KeyReused:
    """The key was used for a different message."""


@dataclass(frozen=True, slots=True)
class Unclaimed:
    """DynamoDB refused this key's claim for a reason of its own (its statement throttled, the read of its record
    failed, ...) while others of the batch were claimed: ``error`` is what a claim that raised would have raised,
    and the caller treats it as such (the message is tried again)."""

    error: Exception


ClaimResult = Claimed | Completed | InProgress | Interrupted | KeyReused | Unclaimed


class IdempotencyStore:
    """Claims and settles keys in one DynamoDB table (partition key ``id``, TTL attribute ``expiration``)."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        expiry_seconds: int,
        take_over_interrupted: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        self.expiry_seconds = expiry_seconds
        self.take_over_interrupted = take_over_interrupted
        self._clock = clock

    # --- claim

    def claim(self, claims: Sequence[Claim], in_progress_until_ms: int) -> dict[str, ClaimResult]:
        """Claim every key (distinct record ids); return each one's result.

        A lone key: one conditional ``PutItem``, which raises what boto3 raises. Several: one
        ``BatchExecuteStatement`` of ``INSERT``; then, only when some keys were taken, one consistent ``BatchGetItem``
        of those, and a conditional ``PutItem`` for each whose record is stale. Never raises once a key may have
        been claimed: a key that could not be claimed is :class:`Unclaimed`, and the keys claimed stand.
        """
        token = uuid.uuid4().hex
        if len(claims) == 1:
            return {claims[0].record_id: self._put_claim(claims[0], in_progress_until_ms, token)}
        results, refused = self._insert(claims, in_progress_until_ms, token)
        if refused:
            results |= self._claim_refused(refused, in_progress_until_ms, token)
        return results

    def _insert(self, claims: Sequence[Claim], until_ms: int, token: str) -> tuple[dict[str, ClaimResult], list[Claim]]:
        """``INSERT`` the claims, 25 statements a request: the results of the keys claimed or refused for a failure
        of their own, and the claims whose key exists (``DuplicateItem``, which returns no item)."""
        now = self._clock()
        results: dict[str, ClaimResult] = {}
        refused: list[Claim] = []
        for start in range(0, len(claims), STATEMENT_LIMIT):
            chunk = claims[start : start + STATEMENT_LIMIT]
            items = [self._in_progress_item(c, now, until_ms, token) for c in chunk]
            try:
                answer = self.client.batch_execute_statement(Statements=[self._statement(item) for item in items])
            except (ClientError, BotoCoreError) as exc:
                if not start:
                    raise  # nothing written yet: the caller's failure, as for any call that raised
                results |= {c.record_id: Unclaimed(exc) for c in chunk}
                continue
            for claim, response in zip(chunk, answer.get("Responses") or [], strict=True):
                error = response.get("Error")
                if error is None:
                    results[claim.record_id] = Claimed()
                elif error.get("Code") == DUPLICATE_ITEM:
                    refused.append(claim)
                else:
                    results[claim.record_id] = Unclaimed(ClientError({"Error": error}, "BatchExecuteStatement"))
        return results, refused

    def _statement(self, item: Item) -> dict[str, Any]:
        """One ``INSERT`` of ``item``, its values bound as parameters (the names are this module's own)."""
        names = ", ".join(f"'{name}': ?" for name in item)
        return {"Statement": f'INSERT INTO "{self.table}" VALUE {{{names}}}', "Parameters": list(item.values())}

    def _claim_refused(self, refused: Sequence[Claim], until_ms: int, token: str) -> dict[str, ClaimResult]:
        """The keys an ``INSERT`` found taken: each record read (consistently) and interpreted, a stale one (or one
        gone since) claimed as a lone key is (:meth:`_put_claim`), so that of two deliveries racing for it one wins."""
        try:
            read = batch_get(self.client, self.table, [_key(c) for c in refused], consistent=True)
        except (ClientError, BotoCoreError) as exc:
            return {c.record_id: Unclaimed(exc) for c in refused}
        found = {text(item, "id"): item for item in read.items}
        unread = {text(key, "id") for key in read.unread}
        now = self._clock()
        results: dict[str, ClaimResult] = {}
        for claim in refused:
            old = found.get(claim.record_id)
            if claim.record_id in unread:
                results[claim.record_id] = Unclaimed(_unread(claim))
            elif old is not None and not self._stale(old, now):
                results[claim.record_id] = self._interpret(claim, old, token)
            else:
                try:
                    results[claim.record_id] = self._put_claim(claim, until_ms, token)
                except (ClientError, BotoCoreError) as exc:
                    results[claim.record_id] = Unclaimed(exc)
        return results

    def _put_claim(self, claim: Claim, until_ms: int, token: str) -> ClaimResult:
        """One conditional ``PutItem`` (:meth:`_condition`); a failed condition returns the record it met. Raises what
        boto3 raises."""
        now = self._clock()
        try:
            self.client.put_item(
                TableName=self.table,
                Item=self._in_progress_item(claim, now, until_ms, token),
                ConditionExpression=self._condition(),
                ExpressionAttributeNames=_NAMES if self.take_over_interrupted else _NAMES_NOT_TAKEN_OVER,
                ExpressionAttributeValues=self._condition_values(now),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            return self._interpret(claim, exc.response.get("Item"), token)
        return Claimed()

    def _condition(self) -> str:
        """When a claim may replace a record: none, an expired one, or (under ``retry``) an interrupted claim.
        :meth:`_stale` is the same rule, read from a record in hand: change both together."""
        free = "attribute_not_exists(#id) OR #expiry < :now"
        if not self.take_over_interrupted:
            return free
        return f"{free} OR (#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)"

    def _condition_values(self, now: float) -> dict[str, dict[str, str]]:
        values = {":now": {"N": str(int(now))}}
        if self.take_over_interrupted:
            values |= {":now_ms": {"N": str(int(now * 1000))}, ":inprogress": {"S": INPROGRESS}}
        return values

    def _stale(self, old: Item, now: float) -> bool:
        """Whether :meth:`_condition` would let a claim replace the existing record ``old`` at ``now`` (a test holds
        the two to the same answers). A stale record read is only a hint: the conditional put decides."""
        expiry = _number(old, "expiration")
        if expiry is not None and expiry < int(now):
            return True
        return self.take_over_interrupted and _interrupted(old, now)

    def _in_progress_item(self, claim: Claim, now: float, until_ms: int, token: str) -> Item:
        return {
            "id": {"S": claim.record_id},
            "expiration": {"N": str(int(now) + self.expiry_seconds)},
            "status": {"S": INPROGRESS},
            "in_progress_expiration": {"N": str(until_ms)},
            "validation": {"S": claim.payload_hash},
            "claim": {"S": token},
        }

    def _interpret(self, claim: Claim, old: Item | None, token: str) -> ClaimResult:
        """What an existing record means for a delivery that could not claim its key."""
        if old is None:
            return InProgress()
        if text(old, "claim") == token:  # our own write, retried by botocore after its answer was lost
            return Claimed()
        if text(old, "validation") != claim.payload_hash:
            return KeyReused()
        if text(old, "status") == COMPLETED:
            return Completed(json.loads(text(old, "data") or "{}"))
        if not self.take_over_interrupted and _interrupted(old, self._clock()):
            return Interrupted()
        return InProgress()

    # --- settle

    def settle(
        self,
        completed: Sequence[tuple[Claim, Mapping[str, Any]]],
        released: Sequence[Claim],
        also: Mapping[str, Sequence[Item]] | None = None,
    ) -> set[str]:
        """Store outcomes and release claims in one request; return the ids of the items that could not be written.

        ``also`` adds puts of other tables' items to the same request (the messages table's send records), so they
        cost no request of their own. Never raises: a write that fails leaves its key ``INPROGRESS`` until its
        in-progress expiry, which the caller logs (the outcome stands; a later delivery of the key is then in
        progress, or interrupted).
        """
        expiration = str(int(self._clock()) + self.expiry_seconds)
        pending: list[tuple[str, dict[str, Any]]] = [
            (self.table, {"PutRequest": {"Item": self._completed_item(claim, data, expiration)}})
            for claim, data in completed
        ]
        pending += [(self.table, {"DeleteRequest": {"Key": {"id": {"S": claim.record_id}}}}) for claim in released]
        pending += [(table, {"PutRequest": {"Item": item}}) for table, items in (also or {}).items() for item in items]
        unwritten: set[str] = set()
        for start in range(0, len(pending), BATCH_WRITE_LIMIT):
            unwritten |= self._write(pending[start : start + BATCH_WRITE_LIMIT])
        return unwritten

    def _write(self, requests: list[tuple[str, dict[str, Any]]]) -> set[str]:
        """One ``BatchWriteItem`` (at most 25 writes), then retries of what DynamoDB left unprocessed or failed."""
        request_items: dict[str, list[dict[str, Any]]] = {}
        for table, request in requests:
            request_items.setdefault(table, []).append(request)
        for attempt in range(SETTLE_ATTEMPTS):
            if attempt:
                time.sleep(0.05 * 2**attempt)
            try:
                answer = self.client.batch_write_item(RequestItems=request_items)
            except (ClientError, BotoCoreError):
                continue  # botocore retried it already; one more call, as for what was left unprocessed
            request_items = answer.get("UnprocessedItems") or {}
            if not request_items:
                return set()
        return {_request_id(r) for requests_of_table in request_items.values() for r in requests_of_table}

    @staticmethod
    def _completed_item(claim: Claim, data: Mapping[str, Any], expiration: str) -> Item:
        return {
            "id": {"S": claim.record_id},
            "expiration": {"N": expiration},
            "status": {"S": COMPLETED},
            "data": {"S": json.dumps(data, sort_keys=True)},
            "validation": {"S": claim.payload_hash},
        }


_NAMES_NOT_TAKEN_OVER: Final = {"#id": "id", "#expiry": "expiration"}
_NAMES: Final = {**_NAMES_NOT_TAKEN_OVER, "#status": "status", "#ipe": "in_progress_expiration"}


def _key(claim: Claim) -> Item:
    return {"id": {"S": claim.record_id}}


def _number(item: Item, name: str) -> int | None:
    value = item.get(name, {}).get("N")
    return int(value) if value is not None else None


def _interrupted(old: Item, now: float) -> bool:
    """Whether ``old`` is a claim whose delivery stopped before it settled: still in progress past its deadline (the
    invocation that took it has ended). Under ``retry`` such a record may be taken over; under ``dead_letter`` it is
    an unknown outcome."""
    deadline = _number(old, "in_progress_expiration")
    return text(old, "status") == INPROGRESS and deadline is not None and deadline < int(now * 1000)


def _unread(claim: Claim) -> ClientError:
    """What a key ``BatchGetItem`` left unprocessed after its retries is refused with (DynamoDB's throttling code)."""
    error = {"Code": "ProvisionedThroughputExceededException", "Message": f"{claim.record_id} left unread"}
    return ClientError({"Error": error}, "BatchGetItem")


def _request_id(request: Mapping[str, Any]) -> str:
    put = request.get("PutRequest")
    item = put["Item"] if put else request["DeleteRequest"]["Key"]
    return str(item["id"]["S"])
