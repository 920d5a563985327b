"""Idempotency records in DynamoDB, claimed and settled a whole batch at a time.

Why not Powertools' idempotency utility: it guards one call at a time, so a batch of ten costs twenty DynamoDB
requests (a conditional put and an update per message), about two thirds of the function's CPU per message. Here a
batch costs two: one ``TransactWriteItems`` claims every key (one conditional put each), one ``BatchWriteItem``
settles them (the outcome stored, or the claim released). A key claimed once is never sent twice while its record
lives.

Why ``TransactWriteItems`` for the claim: it is the only multi-item write with a condition per item whose failure
reports which item failed and what it held (``CancellationReasons`` with the old item), and it is what the local
stack (moto) implements faithfully. ``BatchExecuteStatement`` with PartiQL ``INSERT`` would cost half as much per
claim (1 write unit instead of 2), and the local stack now refuses a duplicate ``INSERT`` as DynamoDB does
(``local_stack.moto_fixes``), but a duplicate's error carries no old item, so the claim would need a read to tell a
replay from a reuse; the price is written down in ``docs/costs.md``. A single key (the API) is claimed
with a conditional ``PutItem`` (1 write unit).

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

from nxcloud_wa.dynamo import CONDITION_FAILED, Item, error_code, text
from nxcloud_wa.idempotency_keys import COMPLETED, powertools_hash, record_id

INPROGRESS: Final = "INPROGRESS"
BATCH_WRITE_LIMIT: Final = 25
"""Most writes one ``BatchWriteItem`` takes, over all its tables."""
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


ClaimResult = Claimed | Completed | InProgress | Interrupted | KeyReused


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
        """Claim every key (distinct record ids); return each one's result. Raises what boto3 raises.

        One request when every key is free; one more for the keys left after some were found taken (a transaction
        with a failed condition writes nothing).
        """
        token = uuid.uuid4().hex
        results: dict[str, ClaimResult] = {}
        pending = list(claims)
        while pending:
            failed = self._put_claims(pending, in_progress_until_ms, token)
            for claim in pending:
                if claim.record_id in failed:
                    results[claim.record_id] = self._interpret(claim, failed[claim.record_id], token)
                elif not failed:
                    results[claim.record_id] = Claimed()
            pending = [c for c in pending if c.record_id not in results]
        return results

    def _put_claims(self, claims: Sequence[Claim], until_ms: int, token: str) -> dict[str, Item | None]:
        """Write the claims; return {record id: its old item} for those whose condition failed (none: all written).

        A condition that failed for another reason than an existing item (a concurrent transaction on the same key)
        maps to ``None``: that key is in progress elsewhere.
        """
        now = self._clock()
        put = {
            "TableName": self.table,
            "ConditionExpression": self._condition(),
            "ExpressionAttributeNames": _NAMES if self.take_over_interrupted else _NAMES_NOT_TAKEN_OVER,
            "ExpressionAttributeValues": self._condition_values(now),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        items = [self._in_progress_item(c, now, until_ms, token) for c in claims]
        if len(items) == 1:
            try:
                self.client.put_item(Item=items[0], **put)
            except ClientError as exc:
                if error_code(exc) != CONDITION_FAILED:
                    raise
                return {claims[0].record_id: exc.response.get("Item")}
            return {}
        try:
            self.client.transact_write_items(TransactItems=[{"Put": {"Item": item, **put}} for item in items])
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons") or []
            failed = {
                claim.record_id: reason.get("Item")
                for claim, reason in zip(claims, reasons, strict=False)
                if reason.get("Code") not in (None, "None")
            }
            if len(reasons) != len(claims) or not failed:  # cancelled, and not for an item's sake: retry later
                raise
            return failed
        return {}

    def _condition(self) -> str:
        free = "attribute_not_exists(#id) OR #expiry < :now"
        if not self.take_over_interrupted:
            return free
        return f"{free} OR (#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)"

    def _condition_values(self, now: float) -> dict[str, dict[str, str]]:
        values = {":now": {"N": str(int(now))}}
        if self.take_over_interrupted:
            values |= {":now_ms": {"N": str(int(now * 1000))}, ":inprogress": {"S": INPROGRESS}}
        return values

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
        deadline = old.get("in_progress_expiration", {}).get("N")
        if deadline is not None and int(deadline) < int(self._clock() * 1000) and not self.take_over_interrupted:
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


def _request_id(request: Mapping[str, Any]) -> str:
    put = request.get("PutRequest")
    item = put["Item"] if put else request["DeleteRequest"]["Key"]
    return str(item["id"]["S"])
