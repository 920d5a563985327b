"""The campaigns table (env ``CAMPAIGNS_TABLE``): each campaign, its progress and its rows' outcomes.

This module is the table's one owner: the item format (encoded and decoded here only) and every request made to it.
The rules (statuses, row states, counts) are :mod:`nxcloud_wa.campaigns`'; docs/campaigns.md is the contract.

Key ``campaign_id`` (partition) and ``sk`` (sort):

* ``sk = "campaign"``: the campaign (:class:`Campaign`). Besides what it was created with it holds ``status``,
  ``version`` (raised by every status change, so a planner tick can tell that the campaign moved under it), the
  planner's checkpoint (``cp_offset``, ``cp_line``, ``cp_rows``, ``cp_tick``, ``planned``) and one number attribute per
  count (``n_<count>``, :data:`nxcloud_wa.campaigns.COUNTS`). Counts only ever grow by ``ADD``: one UpdateItem per
  batch, never a scan. ``listed`` (a constant) and ``created`` (``created_at#campaign_id``) key the index
  ``by_created``, so ``GET /campaigns`` is a Query, newest first.
* ``sk = "row#<row, 9 digits>"``: a sent row's outcome as the sender settled it (:class:`RowOutcome`), written by
  :meth:`CampaignStore.insert_rows` (PartiQL ``INSERT``: the first outcome stored is the row's, and the item is the
  token that counts the row once). Invalid and duplicate rows have no item: the planner's row log holds them.
* ``sk = "retry#<round, 3 digits>#<row, 9 digits>"``: the outcome of a row re-sent by retry round ``round`` (1 and
  on), inserted the same way, so each round's settlement is counted once and none overwrites another. A
  dead-lettered row that may pass on a retry keeps the message to re-send (``message``) in its item. The campaign
  item's ``retry_round`` and ``retry_cursor`` are the retry's scan of the previous round's items
  (:class:`RetryScan`); the scan is going while a retried campaign's engine is not done (``planned`` false).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from .campaigns import COUNTS, RETRIED, Action, RowState, Status, check_retry, transition
from .dynamo import CONDITION_FAILED, Item, batch_get, error_code

CAMPAIGN_SK: Final = "campaign"
ROW_PREFIX: Final = "row#"
RETRY_PREFIX: Final = "retry#"
INDEX: Final = "by_created"
LISTED: Final = "campaign"
MAX_PAGE: Final = 100
STATEMENT_LIMIT: Final = 25
"""Most statements one ``BatchExecuteStatement`` takes."""
DUPLICATE_ITEM: Final = "DuplicateItem"
"""A ``BatchExecuteStatement`` entry's error code for an ``INSERT`` whose key exists."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the planner stands: the next record's byte ``offset``, ``line`` and the ``rows`` read before it; ``tick``
    counts the planner's passes (a pass is taken only from the checkpoint it read); ``planned``: the file is read."""

    offset: int = 0
    line: int = 1
    rows: int = 0
    tick: int = 0
    planned: bool = False


@dataclass(frozen=True, slots=True)
class RetryScan:
    """Where a retry stands: its ``round`` (0: never retried), whether its scan of the previous round's row items
    is still going (``scanning``: read as a retried campaign whose engine is not done, ``planned`` false; not stored)
    and the sort key read last (``cursor``; None: from the first)."""

    round: int = 0
    scanning: bool = False
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class Campaign:
    """A campaign as stored. Times are ISO 8601 strings with an offset; ``quiet_hours`` is ``{"start", "end"}``."""

    campaign_id: str
    name: str
    template_name: str
    language: str
    audience_key: str
    created_at: str
    start_at: str
    rate: float
    status: Status = Status.SCHEDULED
    business_phone: str | None = None
    tenant_id: str | None = None
    appkey: str | None = None
    expires_at: str | None = None
    quiet_hours: Mapping[str, str] | None = None
    audience_etag: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    status_reason: str | None = None
    changed_at: str | None = None
    """When the status last moved."""
    version: int = 0
    checkpoint: Checkpoint = field(default_factory=Checkpoint)
    counts: Mapping[str, int] = field(default_factory=dict)
    retry: RetryScan = field(default_factory=RetryScan)


_TEXT: Final = (
    "name",
    "template_name",
    "language",
    "audience_key",
    "created_at",
    "start_at",
    "business_phone",
    "tenant_id",
    "appkey",
    "expires_at",
    "audience_etag",
    "started_at",
    "finished_at",
    "status_reason",
    "changed_at",
)


def campaign_key(campaign_id: str) -> Item:
    return {"campaign_id": {"S": campaign_id}, "sk": {"S": CAMPAIGN_SK}}


def round_prefix(round_: int) -> str:
    """The sort keys' prefix of one round's row items: ``row#`` for the file's pass, ``retry#<round>#`` after."""
    return ROW_PREFIX if round_ == 0 else f"{RETRY_PREFIX}{round_:03d}#"


def row_sk(row: int, round_: int = 0) -> str:
    """A row item's sort key: ``row#<row>`` (the file's pass) or ``retry#<round>#<row>``."""
    return f"{round_prefix(round_)}{row:09d}"


def row_key(campaign_id: str, row: int, round_: int = 0) -> Item:
    return {"campaign_id": {"S": campaign_id}, "sk": {"S": row_sk(row, round_)}}


def _row_and_round(sk: str) -> tuple[int, int]:
    if sk.startswith(RETRY_PREFIX):
        round_, row = sk.removeprefix(RETRY_PREFIX).split("#")
        return int(row), int(round_)
    return int(sk.removeprefix(ROW_PREFIX)), 0


def encode(campaign: Campaign) -> Item:
    """The whole item of a new campaign: every count at 0, so ``ADD`` and the API read one shape."""
    item: Item = {
        **campaign_key(campaign.campaign_id),
        "status": {"S": campaign.status.value},
        "rate": {"N": repr(campaign.rate)},
        "version": {"N": str(campaign.version)},
        "listed": {"S": LISTED},
        "created": {"S": f"{campaign.created_at}#{campaign.campaign_id}"},
        **_checkpoint_item(campaign.checkpoint),
        **{f"n_{name}": {"N": str(campaign.counts.get(name, 0))} for name in COUNTS},
    }
    for name in _TEXT:
        value = getattr(campaign, name)
        if value is not None:
            item[name] = {"S": value}
    if campaign.quiet_hours:
        item["quiet_hours"] = {"M": {k: {"S": v} for k, v in campaign.quiet_hours.items()}}
    return item


def decode(item: Mapping[str, Any]) -> Campaign:
    """The campaign a stored item holds."""
    texts = {name: item[name]["S"] for name in _TEXT if name in item}
    quiet = item.get("quiet_hours", {}).get("M")
    return Campaign(
        campaign_id=item["campaign_id"]["S"],
        status=Status(item["status"]["S"]),
        rate=float(item["rate"]["N"]),
        version=int(item["version"]["N"]),
        quiet_hours={k: v["S"] for k, v in quiet.items()} if quiet else None,
        checkpoint=Checkpoint(
            offset=_number(item, "cp_offset"),
            line=_number(item, "cp_line", 1),
            rows=_number(item, "cp_rows"),
            tick=_number(item, "cp_tick"),
            planned=bool(item.get("planned", {}).get("BOOL", False)),
        ),
        counts={name: _number(item, f"n_{name}") for name in COUNTS},
        retry=RetryScan(
            round=_number(item, "retry_round"),
            scanning=_number(item, "retry_round") > 0 and not bool(item.get("planned", {}).get("BOOL", False)),
            cursor=item.get("retry_cursor", {}).get("S"),
        ),
        **texts,
    )


def from_image(image: Mapping[str, Any]) -> Campaign:
    """The campaign a stream image holds, as Powertools decodes it (plain values: ``Decimal`` numbers)."""
    typed: Item = {}
    for name, value in image.items():
        if isinstance(value, bool):
            typed[name] = {"BOOL": value}
        elif isinstance(value, int | float | Decimal):
            typed[name] = {"N": str(value)}
        elif isinstance(value, Mapping):
            typed[name] = {"M": {k: {"S": str(v)} for k, v in value.items()}}
        else:
            typed[name] = {"S": str(value)}
    return decode(typed)


def _number(item: Mapping[str, Any], name: str, default: int = 0) -> int:
    value = item.get(name)
    return int(value["N"]) if isinstance(value, dict) and "N" in value else default


def _checkpoint_item(checkpoint: Checkpoint) -> Item:
    return {
        "cp_offset": {"N": str(checkpoint.offset)},
        "cp_line": {"N": str(checkpoint.line)},
        "cp_rows": {"N": str(checkpoint.rows)},
        "cp_tick": {"N": str(checkpoint.tick)},
        "planned": {"BOOL": checkpoint.planned},
    }


class CampaignNotFoundError(KeyError):
    """No campaign has this id."""


class CheckpointMovedError(RuntimeError):
    """The checkpoint (or the status) changed since the planner read it: another pass moved on; this one stops."""


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """What the sender settled for one campaign row: a final ``state`` with NXCloud's ``message_id`` or a
    ``reason`` (and ``error_code`` when NXCloud gave one), ``at`` (ISO 8601, UTC)."""

    campaign_id: str
    row: int
    state: RowState
    at: str
    message_id: str | None = None
    reason: str | None = None
    error_code: str | None = None
    ref: str | None = None
    delivery: str | None = None
    """The latest delivery status NXCloud's callbacks gave (``delivered``, ``read``, ``failed``), for the report."""
    round: int = 0
    """The retry round the outcome belongs to (0: the file's pass); it picks the item's key."""
    message: str | None = field(default=None, repr=False)
    """A dead-lettered row that may pass on a retry: the send request to re-send (compact JSON). The customer's
    data, in the private table: never logged (left out of the repr)."""

    @property
    def sk(self) -> str:
        return row_sk(self.row, self.round)

    @property
    def identity(self) -> tuple[str, int, int]:
        """Which row item this outcome is (campaign, round, row): what two outcomes of one batch are compared by."""
        return self.campaign_id, self.round, self.row


_ROW_TEXT: Final = ("message_id", "reason", "error_code", "ref", "delivery", "message")


def encode_row(outcome: RowOutcome) -> Item:
    """A row outcome's item (what :meth:`CampaignStore.insert_rows` inserts)."""
    item: Item = {
        **row_key(outcome.campaign_id, outcome.row, outcome.round),
        "state": {"S": outcome.state.value},
        "at": {"S": outcome.at},
    }
    for name in _ROW_TEXT:
        value = getattr(outcome, name)
        if value is not None:
            item[name] = {"S": value}
    return item


def decode_row(item: Mapping[str, Any]) -> RowOutcome:
    text = {name: item[name]["S"] for name in _ROW_TEXT if name in item}
    row, round_ = _row_and_round(item["sk"]["S"])
    return RowOutcome(
        campaign_id=item["campaign_id"]["S"],
        row=row,
        state=RowState(item["state"]["S"]),
        at=item["at"]["S"],
        round=round_,
        **text,
    )


@dataclass(frozen=True, slots=True)
class RowsInserted:
    """What :meth:`CampaignStore.insert_rows` did: the outcomes stored now (count these, and only these), and those
    DynamoDB refused for a reason other than the row having an outcome already (with the error)."""

    inserted: list[RowOutcome] = field(default_factory=list)
    failed: list[tuple[RowOutcome, Exception]] = field(default_factory=list)


class CampaignStore:
    """Every request made to the campaigns table."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._table = table

    def create(self, campaign: Campaign) -> None:
        """Store a new campaign; an id already taken raises (ids are random: it means a bug, not a retry)."""
        self._client.put_item(
            TableName=self._table, Item=encode(campaign), ConditionExpression="attribute_not_exists(campaign_id)"
        )

    def get(self, campaign_id: str, *, consistent: bool = True) -> Campaign:
        answer = self._client.get_item(TableName=self._table, Key=campaign_key(campaign_id), ConsistentRead=consistent)
        if "Item" not in answer:
            raise CampaignNotFoundError(campaign_id)
        return decode(answer["Item"])

    def get_many(self, campaign_ids: Sequence[str]) -> dict[str, Campaign]:
        """The campaigns of ``campaign_ids`` that exist, in one consistent ``BatchGetItem`` (the sender's status check
        of a batch). Raises when DynamoDB leaves some unread: the caller cannot tell unread from missing."""
        read = batch_get(
            self._client, self._table, [campaign_key(i) for i in dict.fromkeys(campaign_ids)], consistent=True
        )
        if read.unread:
            raise RuntimeError(f"{len(read.unread)} campaigns left unread by BatchGetItem")
        return {c.campaign_id: c for c in map(decode, read.items)}

    def insert_rows(self, outcomes: Sequence[RowOutcome]) -> RowsInserted:
        """Store each row's outcome unless the row has one already: a PartiQL ``INSERT`` each (1 write unit), 25 a
        request. A row refused as existing (``DuplicateItem``) was settled before (a redelivery, a settlement run
        twice): it is neither inserted nor failed, so the caller counts it nowhere. A request that fails whole fails
        its rows; the others' stand."""
        unique = list({o.identity: o for o in reversed(outcomes)}.values())[::-1]  # first wins
        done = RowsInserted()
        for start in range(0, len(unique), STATEMENT_LIMIT):
            chunk = unique[start : start + STATEMENT_LIMIT]
            try:
                answer = self._client.batch_execute_statement(Statements=[self._insert(o) for o in chunk])
            except (ClientError, BotoCoreError) as exc:
                done.failed.extend((o, exc) for o in chunk)
                continue
            for outcome, response in zip(chunk, answer.get("Responses") or [], strict=True):
                error = response.get("Error")
                if error is None:
                    done.inserted.append(outcome)
                elif error.get("Code") != DUPLICATE_ITEM:
                    done.failed.append((outcome, ClientError({"Error": error}, "BatchExecuteStatement")))
        return done

    def _insert(self, outcome: RowOutcome) -> dict[str, Any]:
        item = encode_row(outcome)
        names = ", ".join(f"'{name}': ?" for name in item)
        return {"Statement": f'INSERT INTO "{self._table}" VALUE {{{names}}}', "Parameters": list(item.values())}

    def newest(self, limit: int = 20, cursor: Mapping[str, Any] | None = None) -> tuple[list[Campaign], Item | None]:
        """A page of campaigns, newest first, and the cursor of the next page (None: this was the last)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": INDEX,
            "KeyConditionExpression": "listed = :listed",
            "ExpressionAttributeValues": {":listed": {"S": LISTED}},
            "ScanIndexForward": False,
            "Limit": min(limit, MAX_PAGE),
        }
        if cursor:
            request["ExclusiveStartKey"] = dict(cursor)
        answer = self._client.query(**request)
        return [decode(item) for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")

    def apply(self, campaign: Campaign, action: Action, at: str, reason: str | None = None) -> Campaign:
        """Take ``action`` on ``campaign`` as read: one conditional UpdateItem on its status and version, so two
        people (or a person and the engine) racing cannot both move it. Raises :class:`TransitionError` when the
        action does not apply to the status now stored (re-read after a lost race)."""
        new = transition(campaign.status, action)
        if action is Action.RETRY:
            check_retry(campaign.status, campaign.expires_at, datetime.fromisoformat(at), campaign.retry.round)
        names = {"#s": "status"}
        values: Item = {
            ":new": {"S": new.value},
            ":old": {"S": campaign.status.value},
            ":v": {"N": str(campaign.version)},
            ":one": {"N": "1"},
            ":at": {"S": at},
        }
        sets = ["#s = :new", "version = version + :one", "changed_at = :at"]
        if new is Status.RUNNING and campaign.started_at is None:
            sets.append("started_at = :at")
        if new in (Status.COMPLETED, Status.CANCELLED):
            sets.append("finished_at = :at")
        removes = ["status_reason"] if reason is None else []
        if action is Action.RETRY:
            sets.extend(_RETRY_SETS)
            removes.extend(["retry_cursor", "finished_at"])
            values.update({":zero": {"N": "0"}, ":no": {"BOOL": False}})
        if reason is not None:
            sets.append("status_reason = :reason")
            values[":reason"] = {"S": reason}
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=campaign_key(campaign.campaign_id),
                UpdateExpression=expression,
                ConditionExpression="#s = :old AND version = :v",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) != CONDITION_FAILED:
                raise
            current = self.get(campaign.campaign_id)
            if current.version == campaign.version:
                raise
            transition(current.status, action)  # raises when the stored status refuses it
            return self.apply(current, action, at, reason)
        return decode(answer["Attributes"])

    def set_reason(self, campaign: Campaign, reason: str | None) -> None:
        """Set (or, None, remove) the status's reason without a move, if the campaign is still as read: how the API
        marks a campaign whose first tick could not be queued, and clears the mark once it is."""
        values: Item = {":v": {"N": str(campaign.version)}}
        if reason is not None:
            values[":reason"] = {"S": reason}
        self._client.update_item(
            TableName=self._table,
            Key=campaign_key(campaign.campaign_id),
            UpdateExpression="SET status_reason = :reason" if reason is not None else "REMOVE status_reason",
            ConditionExpression="version = :v",
            ExpressionAttributeValues=values,
        )

    def request_report(self, campaign_id: str, now: float, hold: float) -> bool:
        """Note a report request at ``now`` (epoch seconds) unless one was noted less than ``hold`` seconds ago: True
        when this request is the one to queue a build. One conditional UpdateItem, so concurrent polls queue one."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=campaign_key(campaign_id),
                UpdateExpression="SET report_requested = :now",
                ConditionExpression="attribute_exists(campaign_id) AND "
                "(attribute_not_exists(report_requested) OR report_requested < :held)",
                ExpressionAttributeValues={":now": {"N": f"{now:.3f}"}, ":held": {"N": f"{now - hold:.3f}"}},
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                return False
            raise
        return True

    def report_done(self, campaign_id: str) -> None:
        """Clear the report request once its build ended, so the next poll after a change asks for a new one."""
        self._client.update_item(
            TableName=self._table, Key=campaign_key(campaign_id), UpdateExpression="REMOVE report_requested"
        )

    def add_counts(self, campaign_id: str, counts: Mapping[str, int]) -> Campaign | None:
        """Add to a campaign's counts in one UpdateItem (the sender's settlement, the webhook's callbacks); the
        campaign as it is after, so the caller can tell whether its rows are all final (None: nothing to add)."""
        expression, values = _adds(counts)
        if not values:
            return None
        answer = self._client.update_item(
            TableName=self._table,
            Key=campaign_key(campaign_id),
            UpdateExpression=expression,
            ExpressionAttributeValues=values,
            ConditionExpression="attribute_exists(campaign_id)",
            ReturnValues="ALL_NEW",
        )
        return decode(answer["Attributes"])

    def advance(self, campaign: Campaign, checkpoint: Checkpoint, counts: Mapping[str, int]) -> Campaign:
        """Move the planner's checkpoint from the one ``campaign`` holds to ``checkpoint`` and add the pass's counts,
        in one conditional UpdateItem: only if neither the checkpoint nor the status moved meanwhile, so a pass
        that raced another (a duplicate tick, a pause) counts nothing twice. Raises :class:`CheckpointMovedError`."""
        adds, values = _adds(counts)
        values.update({f":{name}": value for name, value in _checkpoint_item(checkpoint).items()})
        sets = ", ".join(f"{name} = :{name}" for name in _checkpoint_item(checkpoint))
        return self._guarded(campaign, f"SET {sets}{' ' + adds if adds else ''}", values)

    def advance_retry(self, campaign: Campaign, cursor: str | None, done: bool, retried: int) -> Campaign:
        """Move a retry's scan to ``cursor`` (the sort key read last), or mark it ``done`` (the engine is then done:
        ``planned``), and add the rows it re-queued to ``retried``, in one conditional UpdateItem with
        :meth:`advance`'s guard (the pass number and the version), so a duplicate pass counts nothing twice.
        Raises :class:`CheckpointMovedError`."""
        adds, values = _adds({RETRIED: retried})
        values.update(
            {
                ":next": {"N": str(campaign.checkpoint.tick + 1)},
                ":planned": {"BOOL": done},
            }
        )
        sets = "SET cp_tick = :next, planned = :planned"
        if cursor is not None:
            sets += ", retry_cursor = :cursor"
            values[":cursor"] = {"S": cursor}
        return self._guarded(campaign, f"{sets}{' ' + adds if adds else ''}", values)

    def _guarded(self, campaign: Campaign, expression: str, values: Item) -> Campaign:
        """One UpdateItem of a pass, only if the pass number and the version are still the ones ``campaign`` holds;
        the campaign after. Raises :class:`CheckpointMovedError` when either moved (another pass, a person)."""
        values = {**values, ":tick": {"N": str(campaign.checkpoint.tick)}, ":v": {"N": str(campaign.version)}}
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=campaign_key(campaign.campaign_id),
                UpdateExpression=expression,
                ConditionExpression="cp_tick = :tick AND version = :v",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == CONDITION_FAILED:
                raise CheckpointMovedError(campaign.campaign_id) from exc
            raise
        return decode(answer["Attributes"])

    def retry_page(self, campaign: Campaign, limit: int) -> tuple[list[RowOutcome], bool]:
        """The next page of a retry's scan: at most ``limit`` of the previous round's row items after the scan's
        cursor (consistent: a row settled just before the retry counts), and whether more may follow."""
        scan = campaign.retry
        after = {"campaign_id": {"S": campaign.campaign_id}, "sk": {"S": scan.cursor}} if scan.cursor else None
        page, more = self.rows(campaign.campaign_id, after, round_=scan.round - 1, limit=limit, consistent=True)
        return page, more is not None

    def rows(
        self,
        campaign_id: str,
        cursor: Mapping[str, Any] | None = None,
        *,
        round_: int = 0,
        limit: int | None = None,
        consistent: bool = False,
    ) -> tuple[list[RowOutcome], Item | None]:
        """A page of one round's settled rows in row order (at most ``limit``), and the next page's cursor (the
        report; a retry's scan of the round before it, ``consistent``: a row settled just before the retry counts)."""
        request: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "campaign_id = :id AND begins_with(sk, :row)",
            "ExpressionAttributeValues": {":id": {"S": campaign_id}, ":row": {"S": round_prefix(round_)}},
            "ConsistentRead": consistent,
        }
        if cursor:
            request["ExclusiveStartKey"] = dict(cursor)
        if limit is not None:
            request["Limit"] = limit
        answer = self._client.query(**request)
        return [decode_row(item) for item in answer.get("Items", [])], answer.get("LastEvaluatedKey")


_RETRY_SETS: Final = (
    "retry_round = if_not_exists(retry_round, :zero) + :one",
    "planned = :no",
)
"""What a retry sets with its status: the next round, its scan to start from the first item, the engine not done
(``planned`` false: no one completes the campaign until the scan has queued every row that may pass)."""


def _adds(counts: Mapping[str, int]) -> tuple[str, Item]:
    """An ``ADD`` clause for the non-zero ``counts`` (unknown names refused: a typo must not start a new count)."""
    unknown = set(counts) - set(COUNTS)
    if unknown:
        raise ValueError(f"not a campaign count: {', '.join(sorted(unknown))}")
    kept = {name: n for name, n in counts.items() if n}
    if not kept:
        return "", {}
    clause = "ADD " + ", ".join(f"n_{name} :n_{name}" for name in kept)
    return clause, {f":n_{name}": {"N": str(n)} for name, n in kept.items()}
