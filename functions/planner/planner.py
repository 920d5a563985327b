"""The campaign engine: one planner pass per tick, each feeding the send queue one window of a campaign's rows.

A tick (``nxcloud_wa.campaigns.tick``, on ``CAMPAIGN_TICK_QUEUE_URL``) names a campaign; one whose ``kind`` is
``report`` asks for the campaign's report file instead (:mod:`report_file`). One pass:

1. reads the campaign (consistent). ``scheduled`` and due: ``start``; ``scheduled`` and not due: the tick comes
   back when it is (at most 15 minutes later, SQS's longest delay), nothing else; ``paused``, ``cancelled``,
   ``completed``, or the file already read: the tick is dropped (``resume`` queues a new one). A tick numbered for
   a pass already taken is dropped too, so a resume meeting a pending tick never doubles the chain of passes.
2. reads the audience file from the checkpoint's byte offset: a ranged ``GetObject`` with ``IfMatch`` the ETag the
   API stored, so a deleted or replaced file pauses the campaign with the reason instead of mixing two files. The
   columns (a resumed reader needs them) come from a second ranged read of the file's first bytes; the template's
   spec from the account's catalogue, exactly as the sender's template check reads it (``nxcloud_wa.catalogue``).
3. plans rows (``nxcloud_wa.audience_rows.plan_row``) until :data:`PASS_SECONDS` of sends at the campaign's rate
   are queued, or :data:`MAX_PASS_ROWS` rows were read. Each valid row is queued as the campaign's envelope of its
   message (idempotency key ``campaign:{id}:{digits}``), ``SendMessageBatch`` ten at a time, each entry delayed so
   the pass's messages become visible at the campaign's rate over its window: only about a second of the campaign
   is ever visible ahead, and an API message to the same number interleaves instead of waiting behind a backlog.
4. stores, under the pass's number (a repeated pass overwrites the same objects), the numbers seen so far
   (``state/{id}/seen-{n}.bin``) and the row log (``state/{id}/rows-{n:08d}.jsonl``: every row read, its state and
   reason; the report joins it with the sender's row outcomes).
5. moves the checkpoint and adds the pass's counts in one conditional write (``CampaignStore.advance``): a pass
   killed before it redoes the same rows (their keys make the repeated queue writes harmless), and a duplicate pass
   finds the checkpoint moved and stops without counting. Then it queues the next tick, delayed by the window, or,
   the file read, completes the campaign when every row already has a final state (the sender completes it
   otherwise, when the last queued row settles).

A retried campaign (``POST /campaigns/{id}/retry``) is planned by retry passes instead (:meth:`Planner._retry_pass`):
the previous round's row items, a window at a time, each dead-lettered row that may pass re-queued.

A valid row that would reach its recipient inside the campaign's quiet hours is held instead of queued, and queued
by the first pass after the window ends (:mod:`held_rows`). Past ``expires_at`` the rows left are logged ``expired``
(invalid and duplicate rows keep those states), never queued; held rows go to the sender, which ends them expired.
Why a Lambda planner on a tick queue and not Step Functions, and what a million rows cost: docs/campaigns.md, "The
engine".
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from held_rows import HeldFile, HeldRows, Pending
from nxcloud_wa.audience_file import AudienceFileError, AudienceReader, Record, read_audience
from nxcloud_wa.audience_file import Checkpoint as Position
from nxcloud_wa.audience_rows import Layout, RowOutcome, SeenNumbers, plan_columns, plan_row
from nxcloud_wa.campaign_state import LoggedState, row_log_line, rows_key, seen_key
from nxcloud_wa.campaigns import (
    REPORT_KIND,
    RETRIED,
    Action,
    RowTag,
    Status,
    TransitionError,
    envelope,
    is_complete,
    message_key,
    tick,
    tick_campaign,
    tick_kind,
)
from nxcloud_wa.campaigns import tick_number as tick_number_of
from nxcloud_wa.campaigns_table import (
    Campaign,
    CampaignNotFoundError,
    CampaignStore,
    Checkpoint,
    CheckpointMovedError,
)
from nxcloud_wa.campaigns_table import RowOutcome as StoredRow
from nxcloud_wa.catalogue import TemplateCatalogue
from nxcloud_wa.config import EnvReader, NXCloudSettings, merge_defaults
from nxcloud_wa.credentials import load_credentials
from nxcloud_wa.exceptions import TemplateApiError
from nxcloud_wa.phone import normalize_phone
from nxcloud_wa.quiet_hours import QuietHours, hold_until
from nxcloud_wa.s3 import object_missing
from nxcloud_wa.telemetry import Telemetry
from nxcloud_wa.template_client import TemplateClient
from report_file import ReportFile

PASS_SECONDS: Final = 60
"""Each pass queues this many seconds of sends at the campaign's rate. Longer passes cost fewer invocations and
fewer copies of the seen-numbers snapshot (at a million distinct numbers it is 12 MB, read and written once per
pass); shorter ones react sooner to a pause (the sender stops a paused campaign's messages itself, at send time, so
a pause never waits for the window). 60 s: a million rows at 64/s are 261 passes."""
MAX_PASS_ROWS: Final = 20_000
"""Rows read in one pass at most, whatever their states: a file of mostly invalid rows (or the rows left after
``expires_at``) is read in bounded passes, each with a row log of bounded size."""
MAX_DELAY: Final = 900
"""SQS's longest ``DelaySeconds``."""
RETRY_LATER_SECONDS: Final = 60
"""When the catalogue cannot be read: the pass is tried again this much later, from the same checkpoint."""
HEADER_BYTES: Final = 256 * 1024
"""The first bytes of the file, read for its columns by a pass that resumes past them (a header is one row)."""
SEND_BATCH: Final = 10
SEND_ATTEMPTS: Final = 4
MOVED: Final = "duplicate pass: the checkpoint moved"
DELETED: Final = "the audience file was deleted"
REPLACED: Final = "the audience file was replaced (its ETag changed) after the campaign was created"
TELEMETRY: Final = Telemetry.of("nxcloud-wa-planner")
logger, metrics = TELEMETRY.logger, TELEMETRY.metrics


@dataclass(frozen=True, slots=True)
class PlannerSettings:
    core: NXCloudSettings
    campaigns_table: str
    bucket: str
    tick_queue_url: str
    send_queue_url: str
    messages_table: str = ""
    """Where the reports read the sent rows' delivery statuses; empty without delivery tracking."""

    @classmethod
    def from_env(cls) -> PlannerSettings:
        env = EnvReader()
        settings = cls(
            core=NXCloudSettings.read(env),
            campaigns_table=env.required("CAMPAIGNS_TABLE", "the campaigns table's name"),
            bucket=env.required("CAMPAIGN_BUCKET", "the campaign bucket's name"),
            tick_queue_url=env.required("CAMPAIGN_TICK_QUEUE_URL", "the campaign tick queue's URL"),
            send_queue_url=env.required("SEND_QUEUE_URL", "the send queue's URL"),
            messages_table=env.text("MESSAGES_TABLE"),
        )
        env.check()
        return settings


class Paused(Exception):
    """The campaign cannot go on until a person acts: it is paused with this reason."""


class Later(Exception):
    """The pass cannot run now (the catalogue is unavailable): the same pass is tried again later."""


@dataclass
class PassPlan:
    """What one pass did: the counts it adds, the row log, where it stopped in the file, what it held and released."""

    position: Position
    limit: int
    file_ended: bool = False
    queued: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"rows": 0})
    log: list[str] = field(default_factory=list)
    held: dict[int, list[Pending]] = field(default_factory=dict)
    released: list[HeldFile] = field(default_factory=list)

    def count(self, state: str) -> None:
        self.counts[state] = self.counts.get(state, 0) + 1

    @property
    def full(self) -> bool:
        return self.queued >= self.limit


@dataclass(frozen=True, slots=True)
class PassResult:
    """How a pass ended (tests and the log): ``outcome`` and, when it queued one, the next tick's delay."""

    outcome: str
    next_tick: int | None = None
    counts: dict[str, int] = field(default_factory=dict)


class Planner:
    """The container's planner: AWS clients, the campaigns table, the template catalogue, a clock."""

    def __init__(self, settings: PlannerSettings, *, clock: Callable[[], float] = time.time) -> None:
        import boto3

        session = boto3.session.Session()
        self.settings = settings
        self.clock = clock
        self.s3 = session.client("s3")
        self.sqs = session.client("sqs")
        dynamodb = session.client("dynamodb")
        self.store = CampaignStore(dynamodb, settings.campaigns_table)
        core = settings.core
        client = TemplateClient(core.template_base_url, connect_timeout=core.connect_timeout)
        self.catalogue = TemplateCatalogue(client, ttl=core.template_cache_seconds)
        messages = (dynamodb, settings.messages_table) if settings.messages_table else None
        self.reports = ReportFile(self.s3, self.store, settings.bucket, messages)

    # --- one tick

    def run(self, body: str) -> PassResult:
        """One pass for the tick ``body``; or, a report request's tick, the campaign's report (report_file.py)."""
        campaign_id, number = tick_campaign(body), tick_number_of(body)
        try:
            if tick_kind(body) == REPORT_KIND:
                return self._report(campaign_id)
            campaign = self.store.get(campaign_id)
        except CampaignNotFoundError:
            return PassResult("no such campaign")
        if number is not None and number != campaign.checkpoint.tick:
            return PassResult("stale tick")
        return self._by_status(campaign, self.clock())

    def _by_status(self, campaign: Campaign, now: float) -> PassResult:
        """What the campaign's status makes of a pass: wait for ``start_at``, start, plan, scan a retry, end a
        cancelled campaign's unread rows, or drop the tick (paused, completed, or the file already read)."""
        due = _epoch(campaign.start_at) - now
        if campaign.status in (Status.SCHEDULED, Status.RUNNING) and due > 0:
            # A scheduled campaign waits; so does one paused and resumed before it started (resume makes it running).
            return self._retick(campaign, math.ceil(due), "waiting for start_at")
        if campaign.status is Status.SCHEDULED:
            campaign = self._apply(campaign, Action.START, now)
        if campaign.retry.scanning:  # a retry's scan: its rows re-queued while running, none once cancelled
            return self._retry_pass(campaign, now) if campaign.status is Status.RUNNING else PassResult("dropped")
        unread = not campaign.checkpoint.planned
        if unread and campaign.status in (Status.RUNNING, Status.CANCELLED):
            return self._guarded_pass(campaign, now)  # a cancelled campaign's unread rows end cancelled
        return PassResult(f"dropped: {campaign.status.value}" + ("" if unread else ", planned"))

    def _report(self, campaign_id: str) -> PassResult:
        """Build the report the API was asked for, unless the one stored is current (a request queued twice)."""
        done = self.reports.request(campaign_id, self.clock())
        if not done.built:
            return PassResult("report current")
        logger.info("report built", extra={"campaign_id": campaign_id, "states": dict(done.states)})
        return PassResult("report built", counts=dict(done.states))

    def _guarded_pass(self, campaign: Campaign, now: float) -> PassResult:
        """The pass; or the campaign paused with the reason it cannot go on; or the same pass put off."""
        campaign_id = campaign.campaign_id
        try:
            with ExitStack() as opened:  # the file's streams are closed however the pass ends
                return self._pass(campaign, now, opened)
        except Paused as paused:
            if campaign.status is Status.CANCELLED:
                logger.warning("a cancelled campaign's unread rows cannot be read", extra={"campaign_id": campaign_id})
                return PassResult(f"cancelled, the rest unread: {paused}")
            self._apply(campaign, Action.PAUSE, now, str(paused))
            logger.warning("campaign paused by the planner", extra={"campaign_id": campaign_id, "reason": str(paused)})
            return PassResult(f"paused: {paused}")
        except Later as later:
            logger.warning("pass put off", extra={"campaign_id": campaign_id, "reason": str(later)})
            return self._retick(campaign, RETRY_LATER_SECONDS, f"later: {later}")

    def _pass(self, campaign: Campaign, started: float, opened: ExitStack) -> PassResult:
        if not campaign.rate > 0:
            raise Paused("the campaign's rate must be above 0 messages per second")
        try:
            reader = self._reader(campaign, opened)
        except AudienceFileError as exc:
            raise Paused(str(exc)) from None
        layout = self._layout(campaign, reader.columns)
        number = campaign.checkpoint.tick
        seen = self._seen(campaign.campaign_id, number)
        held = HeldRows(self.s3, self.settings.bucket, campaign.campaign_id, number)
        waiting = held.open()
        plan = self._plan(campaign, _Window(reader, layout, seen, held, waiting), started)
        if self.store.get(campaign.campaign_id).checkpoint.tick != number:
            return PassResult(MOVED, counts=plan.counts)  # a twin finished first: its state objects stay untouched
        remaining = [f for f in waiting if f not in plan.released] + self._store_state(campaign, plan, seen, held)
        planned = plan.file_ended and not remaining
        moved = Checkpoint(plan.position.offset, plan.position.line, plan.position.rows, number + 1, planned)
        try:
            after = self.store.advance(campaign, moved, plan.counts)
        except CheckpointMovedError:
            return PassResult(MOVED, counts=plan.counts)
        _count_rows(plan.counts)
        if plan.released:
            held.forget_released()
        if number > 0:
            self.s3.delete_object(Bucket=self.settings.bucket, Key=seen_key(campaign.campaign_id, number - 1))
        logger.info("pass done", extra={"campaign_id": campaign.campaign_id, "tick": number, **plan.counts})
        return self._next(after, plan, started, remaining)

    def _store_state(self, campaign: Campaign, plan: PassPlan, seen: SeenNumbers, held: HeldRows) -> list[HeldFile]:
        """Everything the pass must leave before its checkpoint moves, under its number (a repeat overwrites it):
        the rows it held, the held files it released, the numbers seen, its row log. The files it held."""
        kept = held.keep(plan.held)
        held.mark_released(plan.released)
        number = campaign.checkpoint.tick
        self._put(seen_key(campaign.campaign_id, number), seen.to_bytes())
        self._put(rows_key(campaign.campaign_id, number), "".join(plan.log).encode("utf-8"))
        return kept

    def _next(self, campaign: Campaign, plan: PassPlan, started: float, held: list[HeldFile]) -> PassResult:
        """The next tick (after the window; once the file is read, not before the first held row is due), or, the
        file read and nothing held, the campaign completed when every row already has a final state."""
        now = self.clock()
        if not campaign.checkpoint.planned:
            window = plan.queued / campaign.rate - (now - started)
            due = min(f.until for f in held) - now if plan.file_ended and held else 0
            return self._retick(campaign, math.ceil(max(window, due)), "planned a window", plan.counts)
        if campaign.status is Status.RUNNING and is_complete(campaign.counts, planned=True):
            self._apply(campaign, Action.COMPLETE, now)
            return PassResult("completed", counts=plan.counts)
        return PassResult("planned", counts=plan.counts)

    # --- a retry's pass

    def _retry_pass(self, campaign: Campaign, started: float) -> PassResult:
        """One window of a retry (``POST /campaigns/{id}/retry``): the previous round's row items from the scan's
        cursor, a window's worth (the file pass's bounds), each dead-lettered row that may pass (its item keeps the
        message, ``campaign_rows.row_outcome``) queued again in this round's envelope, spread over the window; then
        the cursor moved and ``retried`` added in one conditional write. A row that would reach its recipient
        inside the quiet hours ends the pass before it: the next pass starts from it once the window ends."""
        page, more = self.store.retry_page(campaign, min(MAX_PASS_ROWS, _window_rows(campaign)))
        done = self._requeue(campaign, page, started)
        finished = done.wait is None and not more
        cursor = done.read[-1].sk if done.read else campaign.retry.cursor
        counts = {RETRIED: done.queued}
        try:
            after = self.store.advance_retry(campaign, cursor, finished, done.queued)
        except CheckpointMovedError:
            return PassResult(MOVED, counts=counts)
        logger.info(
            "retry pass done", extra={"campaign_id": campaign.campaign_id, "round": campaign.retry.round, **counts}
        )
        now = self.clock()
        if not finished:
            due = done.wait - now if done.wait is not None else 0
            return self._retick(
                after, math.ceil(max(done.queued / campaign.rate - (now - started), due)), "retried a window", counts
            )
        if is_complete(after.counts, planned=True):
            self._apply(after, Action.COMPLETE, now)
            return PassResult("completed", counts=counts)
        return PassResult("retried", counts=counts)

    def _requeue(self, campaign: Campaign, page: list[StoredRow], started: float) -> _Requeued:
        """Queue the page's rows that keep a message, in order, with the window's delays, until one would reach its
        recipient inside the quiet hours (``wait``: when it may)."""
        placing = _Placing(campaign, started, _quiet(campaign))
        done = _Requeued()
        with _Batches(self.sqs, self.settings.send_queue_url) as batches:
            for outcome in page:
                if outcome.message is not None:
                    message = json.loads(outcome.message)
                    at = placing.arrival(done.queued, self.clock())
                    if placing.ending is None:
                        done.wait = placing.hold_until(str(message.get("to", "")), at)
                    if done.wait is not None:
                        return done
                    tag = RowTag(campaign.campaign_id, outcome.row, outcome.ref, campaign.retry.round)
                    batches.add(envelope(tag, message), _delay(done.queued, campaign.rate, self.clock() - started))
                    done.queued += 1
                done.read.append(outcome)
        return done

    # --- reading the file

    def _reader(self, campaign: Campaign, opened: ExitStack) -> AudienceReader:
        """A reader from the checkpoint, on a ranged read of the file as the API found it."""
        start, key = campaign.checkpoint, campaign.audience_key
        if start.offset == 0:
            return read_audience(self._get(campaign, "bytes=0-", opened), key)
        columns = read_audience(self._get(campaign, f"bytes=0-{HEADER_BYTES - 1}", opened), key).columns
        position = Position(start.offset, start.line, start.rows)
        body = self._get(campaign, f"bytes={start.offset}-", opened)
        return read_audience(body, key, resume=position, columns=columns)

    def _get(self, campaign: Campaign, byte_range: str, opened: ExitStack) -> Any:
        """The object's bytes in ``byte_range``, a stream closed with ``opened`` (a pass reads a window of it, not to
        its end); :class:`Paused` when the file is gone or not the one the API checked."""
        if not campaign.audience_etag:
            raise Paused("the campaign has no audience ETag: the file it was checked against cannot be told apart")
        try:
            answer = self.s3.get_object(
                Bucket=self.settings.bucket,
                Key=campaign.audience_key,
                Range=byte_range,
                IfMatch=campaign.audience_etag,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if object_missing(exc):
                raise Paused(DELETED) from None
            if code in ("PreconditionFailed", "412"):
                raise Paused(REPLACED) from None
            if code == "InvalidRange":  # the checkpoint is at the end of the file: nothing left to read
                return iter(())
            raise
        opened.callback(answer["Body"].close)
        return answer["Body"]

    def _layout(self, campaign: Campaign, columns: tuple[str, ...]) -> Layout:
        """The columns against the template as the account's catalogue has it now (the API checked the same)."""
        core = self.settings.core
        credentials = load_credentials(core.secret_id, max_age=core.secret_max_age)
        defaults = merge_defaults(core.defaults, credentials.defaults)
        appkey = campaign.appkey or defaults.appkey
        business_phone = campaign.business_phone or defaults.business_phone
        if not appkey or not business_phone:
            raise Paused("no appkey or business number: give them in the campaign or configure defaults")
        want = (campaign.template_name, campaign.language)
        try:
            spec = self.catalogue.templates(appkey, business_phone, credentials, want=want).find(*want)
        except TemplateApiError as exc:
            raise Later(f"the template catalogue is unavailable ({exc.reason})") from None
        if spec is None or not spec.approved:
            raise Paused(f"template {want[0]} ({want[1]}) is not approved in the account's catalogue")
        try:
            return plan_columns(columns, spec)
        except AudienceFileError as exc:
            raise Paused(str(exc)) from None

    def _seen(self, campaign_id: str, number: int) -> SeenNumbers:
        """The numbers of the valid rows before this pass: the previous pass's snapshot."""
        if number == 0:
            return SeenNumbers()
        answer = self.s3.get_object(Bucket=self.settings.bucket, Key=seen_key(campaign_id, number - 1))
        return SeenNumbers.from_bytes(answer["Body"].read())

    # --- planning and queueing

    def _plan(self, campaign: Campaign, window: _Window, started: float) -> PassPlan:
        """Release the held rows now due, then read rows until the window is full; queue, hold or end each valid
        row (:meth:`_place`); log every one."""
        plan = PassPlan(window.reader.checkpoint, limit=_window_rows(campaign))
        placing = _Placing(campaign, started, _quiet(campaign))
        with _Batches(self.sqs, self.settings.send_queue_url) as batches:
            self._release(window, placing, plan, batches)
            for record in _until_full(window.reader, plan):
                plan.count("rows")
                outcome = plan_row(record, window.layout, window.seen, placing.fields)
                if outcome.state == "valid":
                    self._place(placing, plan, batches, _pending(campaign, outcome), read_now=True)
                else:
                    plan.count(outcome.state)
                    plan.log.append(
                        row_log_line(
                            outcome.line, outcome.ref, _to(outcome, record.values), outcome.state, outcome.reason
                        )
                    )
                plan.position = record.next
        return plan

    def _release(self, window: _Window, placing: _Placing, plan: PassPlan, batches: _Batches) -> None:
        """Queue the rows of the held files now due, earliest first, whole files, until the window is full. Past
        ``expires_at`` every held file is due and goes to the sender as it is, at most :data:`MAX_PASS_ROWS` rows a
        pass: the sender ends such rows ``expired`` with their outcome, as it does any row that reaches it late (their
        log lines were written, in file order, when they were read)."""
        released = 0
        for held in window.waiting:
            due = placing.ending is not None or held.until <= self.clock()
            if plan.full or released >= MAX_PASS_ROWS or not due:
                return
            for pending in window.held.read(held):
                if placing.ending is not None:
                    self._queue(placing, plan, batches, pending)
                else:
                    self._place(placing, plan, batches, pending, read_now=False)
                released += 1
            plan.released.append(held)

    def _place(self, placing: _Placing, plan: PassPlan, batches: _Batches, row: Pending, *, read_now: bool) -> None:
        """A valid row: held when it would reach its recipient inside the quiet hours (``invalid`` when no moment is
        ever outside them), else queued, delayed to its turn in the window. A row ``read_now`` (not a held one
        released) is logged here, so the row log stays in file order: ``expired`` past ``expires_at``, else ``valid``
        (queued now or held: the report shows it ``queued`` until the sender settles it)."""
        if placing.ending is not None:
            state, reason = placing.ending
            plan.count(state)
            plan.log.append(row_log_line(row.row, row.ref, row.to, state, reason))
            return
        at = placing.arrival(plan.queued, self.clock())
        try:
            until = placing.hold_until(row.to, at)
        except ValueError as exc:  # decided when the row is read: the same zones and window never change it later
            plan.count("invalid")
            plan.log.append(row_log_line(row.row, row.ref, row.to, "invalid", f"quiet hours: {exc}"))
            return
        if read_now:
            plan.log.append(row_log_line(row.row, row.ref, row.to, "valid", None))
        if until is not None:
            plan.held.setdefault(until, []).append(row)
        else:
            self._queue(placing, plan, batches, row)

    def _queue(self, placing: _Placing, plan: PassPlan, batches: _Batches, row: Pending) -> None:
        """The row onto the send queue, delayed to its turn in the pass's window; counted ``queued``."""
        batches.add(row.body, _delay(plan.queued, placing.campaign.rate, self.clock() - placing.started))
        plan.queued += 1
        plan.count("queued")

    def _put(self, key: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.settings.bucket, Key=key, Body=data)

    # --- moving the campaign

    def _retick(self, campaign: Campaign, delay: int, outcome: str, counts: dict[str, int] | None = None) -> PassResult:
        """Queue the tick of the campaign's next pass, ``delay`` seconds from now (at most SQS's longest)."""
        delay = min(MAX_DELAY, max(0, delay))
        body = tick(campaign.campaign_id, campaign.checkpoint.tick)
        self.sqs.send_message(QueueUrl=self.settings.tick_queue_url, MessageBody=body, DelaySeconds=delay)
        return PassResult(outcome, delay, counts or {})

    def _apply(self, campaign: Campaign, action: Action, now: float, reason: str | None = None) -> Campaign:
        """Take ``action``; when a person moved the campaign first, the campaign as they left it."""
        try:
            return self.store.apply(campaign, action, _iso(now), reason)
        except TransitionError:
            return self.store.get(campaign.campaign_id)


def _until_full(reader: AudienceReader, plan: PassPlan) -> Iterator[Record]:
    """The reader's records until the window is full (the record after is left unread for the next pass: the
    position stays before it); sets ``plan.file_ended`` when the file ends first."""
    for record in reader:
        if plan.full or plan.counts["rows"] >= MAX_PASS_ROWS:
            return
        yield record
    plan.file_ended = True


@dataclass
class _Requeued:
    """What a retry pass did with its page: the rows read (those before a row held back), queued, and when the row
    held back for the quiet hours may go (None: none was)."""

    read: list[StoredRow] = field(default_factory=list)
    queued: int = 0
    wait: int | None = None


@dataclass(frozen=True, slots=True)
class _Window:
    """What a pass reads from: the file from its checkpoint, the columns' layout, the numbers seen, the held rows."""

    reader: AudienceReader
    layout: Layout
    seen: SeenNumbers
    held: HeldRows
    waiting: list[HeldFile]


class _Placing:
    """The campaign's rules for a valid row in this pass: its fields, expiry, quiet hours."""

    def __init__(self, campaign: Campaign, started: float, quiet: QuietHours | None) -> None:
        self.campaign, self.started, self.quiet = campaign, started, quiet
        self.fields = _fields(campaign)
        self.ending = _ending(campaign, started)

    def arrival(self, queued: int, now: float) -> float:
        """When the pass's next message (``queued`` are ahead of it) reaches its recipient: its turn at the
        campaign's rate from the pass's start, or now when the pass is behind."""
        return self.started + max(now - self.started, queued / self.campaign.rate)

    def hold_until(self, digits: str, at: float) -> int | None:
        """None: the row may reach its recipient at ``at``; else the epoch second from which it may."""
        if self.quiet is None:
            return None
        until = hold_until(digits, datetime.fromtimestamp(at, UTC), self.quiet)
        return math.ceil(until.timestamp()) if until is not None else None


def _ending(campaign: Campaign, started: float) -> tuple[LoggedState, str] | None:
    """How every valid row this pass reads ends without being queued, and why: ``cancelled`` (a cancelled campaign's
    rows not read yet), ``expired`` past ``expires_at``; None: rows are queued (or held)."""
    if campaign.status is Status.CANCELLED:
        return "cancelled", "the campaign was cancelled"
    if campaign.expires_at is not None and _epoch(campaign.expires_at) <= started:
        return "expired", "not sent by expires_at"
    return None


def _quiet(campaign: Campaign) -> QuietHours | None:
    return QuietHours.parse(campaign.quiet_hours) if campaign.quiet_hours else None


def _fields(campaign: Campaign) -> dict[str, Any]:
    """The campaign's fields of every row's message (None: the deployment's defaults apply at send time)."""
    tenant = campaign.tenant_id
    fields: dict[str, Any] = {
        "business_phone": campaign.business_phone,
        "appkey": campaign.appkey,
        "tenant_id": int(tenant) if tenant is not None and tenant.isdecimal() else tenant,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _pending(campaign: Campaign, outcome: RowOutcome) -> Pending:
    """A valid row's message in the campaign's envelope, keyed for one send per recipient."""
    assert outcome.message is not None
    message = outcome.message.model_dump(mode="json", exclude_none=True)
    message["idempotency_key"] = message_key(campaign.campaign_id, outcome.message.to)
    body = envelope(RowTag(campaign.campaign_id, outcome.line, outcome.ref), message)
    return Pending(outcome.line, outcome.ref, outcome.message.to, body)


def _window_rows(campaign: Campaign) -> int:
    """The messages one pass queues at most: :data:`PASS_SECONDS` of the campaign's rate."""
    return max(1, int(campaign.rate * PASS_SECONDS))


def _delay(index: int, rate: float, elapsed: float) -> int:
    """When the pass's ``index``-th message becomes visible: at the campaign's rate from the pass's start."""
    return min(MAX_DELAY, max(0, int(index / rate - elapsed)))


def _to(outcome: RowOutcome, values: dict[str, str] | None) -> str | None:
    """The row's number for the log: its digits when it has a valid one (a duplicate), else the text as written."""
    raw = (values or {}).get("to")
    if raw is None or outcome.state != "duplicate":
        return raw
    try:
        return normalize_phone(raw)
    except ValueError:
        return raw


class _Batches:
    """``SendMessageBatch`` ten at a time; an entry that fails is sent again, and one that still fails fails the pass
    (before its checkpoint moves: the next try redoes the pass, and the keys make the repeats harmless)."""

    def __init__(self, sqs: Any, queue_url: str) -> None:
        self.sqs, self.queue_url = sqs, queue_url
        self.pending: list[dict[str, Any]] = []

    def __enter__(self) -> _Batches:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.flush()

    def add(self, body: str, delay: int) -> None:
        self.pending.append({"Id": str(len(self.pending)), "MessageBody": body, "DelaySeconds": delay})
        if len(self.pending) == SEND_BATCH:
            self.flush()

    def flush(self) -> None:
        entries, self.pending = self.pending, []
        for attempt in range(SEND_ATTEMPTS):
            if not entries:
                return
            if attempt:
                time.sleep(0.1 * 2**attempt)
            answer = self.sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = {f["Id"] for f in answer.get("Failed", [])}
            entries = [e for e in entries if e["Id"] in failed]
        if entries:
            raise RuntimeError(f"{len(entries)} campaign messages could not be queued; the pass is redone")


def _count_rows(counts: dict[str, int]) -> None:
    """``CampaignRowsPlanned`` by ``state`` (queued, invalid, duplicate, expired): what the passes did."""
    for state, n in counts.items():
        if state != "rows":
            with single_metric(
                name="CampaignRowsPlanned", unit=MetricUnit.Count, value=n, namespace=TELEMETRY.namespace
            ) as metric:
                metric.add_dimension(name="service", value=TELEMETRY.service)
                metric.add_dimension(name="state", value=state)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")


_planner: Planner | None = None
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
"""A failed tick is reported in ``batchItemFailures`` even when it is the whole batch: SQS hands it over again."""


def planner() -> Planner:
    """The container's planner, built on first use."""
    global _planner
    if _planner is None:
        _planner = Planner(PlannerSettings.from_env())
    return _planner


def reset() -> None:
    """Forget the container's planner (tests, local tools)."""
    global _planner
    _planner = None


def record_handler(record: SQSRecord) -> None:
    """One tick. A body that is not a tick is logged and dropped (no retry makes it one); any other failure is the
    record's, and SQS hands the tick over again (five times, then the tick dead-letter queue)."""
    try:
        tick_campaign(record.body), tick_kind(record.body)
    except ValueError:
        logger.error("not a tick: dropped", extra={"message_id": record.message_id})
        return
    result = planner().run(record.body)
    logger.info("tick", extra={"outcome": result.outcome, "next_tick": result.next_tick})


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
