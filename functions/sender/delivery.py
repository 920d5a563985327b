"""The one delivery flow both triggers call: each message moves through typed states, one step at a time.

A trigger hands over what it received (:class:`~incoming.Incoming`, one per message: a queue batch, or the API's one
request) and gets one :class:`~outcomes.Outcome` per message back; it only translates those into its own answer.

A step takes the messages in one state and returns, for each, in order, its next state or an :class:`Attempted`: what
it came to (sent, why not, or an unknown outcome recorded earlier; :data:`fate.Result`). An Attempted message skips
the steps left until its disposal. The steps do the I/O; whatever is decided about a failure comes from :mod:`fate`.
Adding a step: write a method from one state's list to the next one's, and chain it with :func:`_advance`.

1. **parse** (Incoming -> :class:`Parsed`): the body (the API's arrives parsed); its key: the body's
   ``idempotency_key``, else the trigger's (message attribute, ``Idempotency-Key`` header), else the trigger's own id
   for the message (SQS message id, API request id); the claim guarding the key. An invalid body is a permanent
   failure. The credentials are then read once for all; when they cannot be, every parsed message fails with that.
   A campaign row's envelope is opened there too (:mod:`envelopes`), and its campaign's status checked next
   (:mod:`campaign_rows`): paused, it is put back delayed; cancelled or expired, skipped; running, it goes on.
2. **check** (Parsed -> Parsed): each message against its template in the account's catalogue (:mod:`template_gate`):
   under ``TEMPLATE_CHECK=enforce`` one that does not fit is a permanent failure (``template_mismatch``), never paced,
   claimed or sent; the check fails open when the catalogue is unavailable.
3. **screen** (Parsed -> Parsed): the suppression list and the frequency cap, read once for the batch (:mod:`screen`):
   a message whose recipient has an entry that stops its template's category, or a marketing message whose recipient
   has reached the cap, ends :class:`~outcomes.Skipped` (never paced, claimed, sent or dead-lettered; recorded in the
   messages table at the settlement); when the list cannot be read, a marketing message (or one of unknown category)
   is retried later and the others go on. A marketing message under the cap goes on ``counted``.
4. **pace** (Parsed -> :class:`Paced`): a send time at the business number's rate (:mod:`rate_limiter`, one request
   per number) within the invocation's wait budget, or held back (``rate_limited``) before anything is claimed, so a
   message held back leaves no claim behind to release.
5. **claim** (Paced -> :class:`Claimed`): every key in one request (:mod:`idempotency`; one more reads the keys found
   taken). A stored outcome is answered again (``replayed``), a key held by an unfinished delivery is in progress, a
   key reused for another message is refused, and an attempt that started and never finished is an unknown outcome
   (``interrupted``); a key DynamoDB would not claim for a reason of its own fails as a claim that raised.
6. **send** (Claimed -> Attempted): to NXCloud, concurrently, each at its send time; then the slots no message went
   out in are given back (:func:`fate.slot_unused`), so the number's rate goes to messages WhatsApp counts.
7. **dispose** (Attempted -> Outcome, :func:`fate.dispose`): final as it is, or once its dead letter or its delayed
   copy is written (:mod:`outbox`, all of them in as few requests as SQS allows).
8. **settle** every claim in one request (:func:`fate.settlement`): outcomes stored, the other claims released; each
   message sent now (or skipped) recorded in the messages table, and the frequency cap's count of each pair a counted
   message went to (:meth:`screen.Screen.counts`), in the same request.
   Then each campaign row that ended gets its outcome item and is counted once (:mod:`campaign_rows`).
9. **report**: one log line and the metrics of each outcome (:mod:`observability`).

Nothing final is lost on the way: a message whose outcome could not be stored is still reported as it ended (its key
stays in progress until the claim's deadline, and a later delivery of it is then in progress, or interrupted); a dead
letter that could not be written turns into a retry.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

import campaign_rows
from botocore.exceptions import ClientError
from campaign_rows import CampaignRows
from envelopes import INVALID_RETRY, RESERVED_KEY, RESERVED_KEY_MESSAGE, EnvelopeError, Opened, open_body

import fate
import idempotency
import observability
import requeue
from fate import Result
from idempotency import Claim, ClaimResult, IdempotencyStore
from idempotency_record import from_stored, stored_data
from incoming import Incoming
from nxcloud_wa.audience import AudienceSettings
from nxcloud_wa.campaigns import RowTag, campaign_of
from nxcloud_wa.catalogue import TemplateCatalogue, category_of
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.dynamo import Item, error_code
from nxcloud_wa.error_codes import IN_PROGRESS, INTERRUPTED, INVALID_MESSAGE, KEY_REUSED
from nxcloud_wa.exceptions import InvalidMessageError
from nxcloud_wa.failures import Failure, failure, failure_for, rate_limited, unknown
from nxcloud_wa.messages_table import SendRecord, SkipRecord, attempt_link
from nxcloud_wa.models import Defaults, SendRequest, parse_message
from nxcloud_wa.retries import RetryMarker, keeps_request, marker_problem, request_text
from nxcloud_wa.sender import Sender
from nxcloud_wa.timeline import Timeline
from outbox import DeadLetter, Entry, PutBackCopy, send_all
from outcomes import DeadLettered, Outcome, Sent, Skipped, now
from rate_limiter import RateLimiter
from screen import Screen, Verdict
from template_gate import TemplateGate


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid send request, with its idempotency key and the claim that guards it."""

    incoming: Incoming
    request: SendRequest
    key: str
    claim: Claim
    counted: fate.Counted | None = None
    """A marketing message under the frequency cap: its send counts (the settlement writes its pair's count)."""
    retry: RetryMarker | None = None
    """A 131049 retry's marker (:mod:`nxcloud_wa.retries`), once checked against the messages table."""
    campaign: RowTag | None = None
    """The campaign row it is (:mod:`nxcloud_wa.campaigns`): its status is checked before the send, its outcome
    recorded and counted at the settlement (:mod:`campaign_rows`)."""

    def ended(self, result: Result) -> Attempted:
        return Attempted(self.incoming, result, self)

    def skipped(self, skip: Skipped, defaults: Defaults) -> Attempted:
        """Its end when the suppression list stops it: the record the settlement writes goes with it."""
        return Attempted(self.incoming, skip, self, record=_skip_record(self, skip, defaults))


@dataclass(frozen=True, slots=True)
class Paced:
    """A checked message and its place at its business number's rate."""

    message: Parsed
    number: str | None = None
    """The business number whose rate slot it took (None: no limiter, or no number)."""
    send_at: float | None = None
    """When the number's rate lets it go (epoch seconds); None: at once."""

    def ended(self, result: Result) -> Attempted:
        return Attempted(self.message.incoming, result, self.message, self.number)


@dataclass(frozen=True, slots=True)
class Claimed(Paced):
    """A paced message whose key this delivery now holds: the only state that is sent."""

    def attempted(self, result: Result, waited_ms: float, record: SendRecord | None = None) -> Attempted:
        """What its send came to (the request went out: the claim is this delivery's to settle)."""
        m = self.message
        return Attempted(m.incoming, result, m, self.number, requested=True, waited_ms=waited_ms, record=record)


@dataclass(frozen=True, slots=True)
class Attempted:
    """What a message came to before its disposal; it skips the steps left."""

    incoming: Incoming
    result: Result
    message: Parsed | None = None
    """None: the body is not a valid message."""
    number: str | None = None
    """The business number whose rate slot it took: given back when unused."""
    requested: bool = False
    """Its send request went out to NXCloud (in this invocation), so its claim is this delivery's to settle."""
    waited_ms: float = 0.0
    """How long it waited for its number's rate, on its send thread."""
    record: SendRecord | SkipRecord | None = None
    """The messages table's record of a message sent or skipped now (None otherwise; the settlement writes it only
    when delivery tracking is on)."""

    @property
    def request(self) -> SendRequest | None:
        return self.message.request if self.message is not None else None

    @property
    def key(self) -> str | None:
        return self.message.key if self.message is not None else None


S = TypeVar("S")
T = TypeVar("T")


def _advance(
    states: Sequence[Attempted | S], step: Callable[[list[S]], Sequence[Attempted | T]]
) -> list[Attempted | T]:
    """Run ``step`` on the messages still on their way, in order (not at all when there are none); the Attempted ones
    pass through where they are."""
    live = [s for s in states if not isinstance(s, Attempted)]
    after = iter(step(live) if live else ())
    return [s if isinstance(s, Attempted) else next(after) for s in states]


CAMPAIGN_WAIT_SECONDS: Final = 0.25
"""The longest a campaign's row waits for its number's slot. A row never takes a slot further ahead, so a message sent
beside a campaign's backlog (queued rows put back during a pause and visible at once after the resume, or rows the
sender fell behind on) waits at most this long for its turn, not behind the backlog; the rows that do not fit are put
back delayed like any message the number cannot take soon (docs/campaigns.md#the-number-is-shared)."""


@dataclass(frozen=True, slots=True)
class Pacing:
    """The business numbers' rate, as the delivery applies it (:mod:`rate_limiter`)."""

    limiter: RateLimiter
    messages_per_second: int
    """A number's rate unless the secret's ``rates`` names it."""
    max_wait: float
    """The longest an invocation waits for its number's capacity before putting messages back (seconds)."""
    reserve: float
    """Time kept back for the send and the settlement after the wait (seconds): a wait never runs the invocation
    into its timeout."""

    clock: Callable[[], float] = time.time
    """Epoch seconds, the limiter's send times' clock; ``sleep`` waits for them. A test passes a controlled pair."""
    sleep: Callable[[float], None] = time.sleep
    campaign_wait: float = CAMPAIGN_WAIT_SECONDS

    def horizon(self, remaining_ms: int) -> float:
        return max(0.0, min(self.max_wait, remaining_ms / 1000 - self.reserve))

    def wait_until(self, send_at: float) -> float:
        """Sleep until ``send_at`` (epoch seconds); the seconds waited (0 when it has passed)."""
        wait = send_at - self.clock()
        if wait > 0:
            self.sleep(wait)
        return max(0.0, wait)


class Delivery:
    """The flow, with the container's sender, idempotency store, SQS client and thread pool."""

    def __init__(
        self,
        sender: Sender,
        store: IdempotencyStore,
        *,
        sqs: object,
        dlq_url: str,
        executor: Executor,
        policy: UnknownOutcomePolicy,
        timeline: Timeline | None = None,
        gate: TemplateGate | None = None,
        screen: Screen | None = None,
        pacing: Pacing | None = None,
        send_queue_url: str = "",
        max_receive_count: int = 0,
        audience: AudienceSettings | None = None,
        catalogue: TemplateCatalogue | None = None,
        campaigns: CampaignRows | None = None,
    ) -> None:
        self.sender = sender
        self.store = store
        self.sqs = sqs
        self.dlq_url = dlq_url
        self.executor = executor
        self.policy = policy
        self.timeline = timeline
        """Where each sent message's record goes (the messages table), when delivery tracking is on."""
        self.gate = gate
        """The pre-flight template check; None when ``TEMPLATE_CHECK`` is ``off``."""
        self.screen = screen
        """The suppression check; None when ``SUPPRESSION_CHECK`` is ``off`` or the stack has no list."""
        self.pacing = pacing
        """The business numbers' rate; None: no limiter (messages go at once)."""
        self.send_queue_url = send_queue_url
        """Where throttled queue messages are put back; empty: they are retried (a receive spent) instead."""
        self.max_receive_count = max_receive_count
        """The redrive policy's ``maxReceiveCount``: the receives a message may spend failing over all its copies."""
        self.audience = audience or AudienceSettings()
        """The 131049 retry settings: whether a send record keeps its request (:func:`retries.keeps_request`)."""
        self.catalogue = catalogue
        """The templates' categories (None: unknown, so marketing)."""
        self.campaigns = campaigns
        """Campaign rows' status checks and settlement (``CAMPAIGNS_TABLE``); None: a campaign row is dead-lettered."""

    def deliver(
        self, messages: Sequence[Incoming], *, remaining_ms: int, dead_letter_rejections: bool
    ) -> list[Outcome]:
        """Deliver every message; return their outcomes in the same order.

        ``remaining_ms`` is the invocation's time left (claims expire then); ``dead_letter_rejections`` says whether a
        permanent failure goes to the dead-letter queue (queue) or back to the caller (API).
        """
        parsed = _advance([_parse(m) for m in messages], self._verify_retries)
        parsed = _advance(parsed, self._check_campaigns)
        attempts = _advance(parsed, lambda live: self._attempt(live, remaining_ms))
        rules = fate.Rules(dead_letter_rejections, bool(self.send_queue_url), self.max_receive_count)
        outcomes = self._dispose(attempts, rules)
        self._settle(attempts, outcomes)
        outcomes = self._settle_rows(attempts, outcomes)
        for attempt, outcome in zip(attempts, outcomes, strict=True):
            observability.report(outcome, attempt.request, attempt.key, attempt.incoming, waited_ms=attempt.waited_ms)
        return outcomes

    def _attempt(self, parsed: list[Parsed], remaining_ms: int) -> list[Attempted]:
        """Steps 2-6 for the messages that parsed, with the credentials read once for all (the cache does not stop a
        stampede)."""
        try:
            credentials = self.sender.credentials()
        except Exception as exc:
            observability.logger.exception("could not load the NXCloud credentials: the messages will be retried")
            cause = failure_for(exc)
            return [p.ended(cause) for p in parsed]
        checked = _advance(parsed, lambda live: self._check(live, credentials))
        screened = _advance(checked, lambda live: self._screen(live, credentials))
        paced = _advance(screened, lambda live: self._pace(live, credentials, remaining_ms))
        claimed = _advance(paced, lambda live: self._claim(live, remaining_ms))
        attempts = _advance(claimed, lambda live: self._send(live, credentials))
        self._give_back(attempts, credentials)
        return attempts

    # --- 1b. a 131049 retry's marker

    def _verify_retries(self, parsed: list[Parsed]) -> list[Attempted | Parsed]:
        """Check each retry's marker against the messages table (:func:`retries.marker_problem`): one strongly
        consistent read of the failed attempt's two items per retry; only retries pay it. A read that fails retries
        the message later."""
        checked: list[Attempted | Parsed] = []
        for p in parsed:
            if p.retry is None:
                checked.append(p)
            elif self.timeline is None:
                checked.append(_invalid_retry(p, "delivery tracking is off"))
            else:
                try:
                    failed, status = self.timeline.attempt(p.retry.after)
                except Exception as exc:
                    observability.logger.exception("could not read a retry's failed attempt: it will be retried")
                    checked.append(p.ended(failure_for(exc)))
                    continue
                why = marker_problem(p.retry, p.request, p.key, failed, status)
                checked.append(p if why is None else _invalid_retry(p, why))
        return checked

    # --- 1c. a campaign row's campaign

    def _check_campaigns(self, live: list[Parsed]) -> list[Attempted | Parsed]:
        """What each campaign row's campaign says before anything else is done (:mod:`campaign_rows`): one read per
        distinct campaign the container has not seen within the last seconds; messages of no campaign pay nothing."""
        tags = [p.campaign.campaign_id for p in live if p.campaign is not None]
        if not tags:
            return list(live)
        if self.campaigns is None:
            return [p.ended(campaign_rows.disabled()) if p.campaign is not None else p for p in live]
        verdicts = iter(self.campaigns.verdicts(tags))
        checked: list[Attempted | Parsed] = []
        for p in live:
            verdict = next(verdicts) if p.campaign is not None else None
            checked.append(p if verdict is None else p.ended(verdict))
        return checked

    # --- 2. check

    def _check(self, live: list[Parsed], credentials: Credentials) -> Sequence[Attempted | Parsed]:
        """Refuse what does not fit its template (enforce); the gate logs and counts the rest of its findings."""
        if self.gate is None:
            return live
        messages = [(p.request, p.key) for p in live]
        refusals = self.gate.refusals(messages, self.sender.defaults_for(credentials), credentials)
        return [p if no is None else p.ended(failure_for(no)) for p, no in zip(live, refusals, strict=True)]

    # --- 3. screen

    def _screen(self, live: list[Parsed], credentials: Credentials) -> Sequence[Attempted | Parsed]:
        """Skip what the suppression list stops; keep back what an unreadable list leaves unchecked (marketing)."""
        if self.screen is None:
            return live
        defaults = self.sender.defaults_for(credentials)
        verdicts = self.screen.verdicts([(p.request, p.key) for p in live], defaults, credentials)
        return [_screened(p, v, defaults) for p, v in zip(live, verdicts, strict=True)]

    # --- 4. pace

    def _pace(self, live: list[Parsed], credentials: Credentials, remaining_ms: int) -> list[Attempted | Paced]:
        """Give each message a send time at its number's rate, one limiter request per number (two when a batch mixes
        a campaign's rows with other messages: those first, the rows within :attr:`Pacing.campaign_wait`); hold back
        what cannot go within the invocation's wait budget. (A slot no request goes out in is given back after the
        sends.)"""
        paced: list[Attempted | Paced] = [Paced(p) for p in live]
        if self.pacing is None:
            return paced
        pacing = self.pacing
        horizon = pacing.horizon(remaining_ms)
        default_number = self.sender.defaults_for(credentials).business_phone
        by_number: dict[tuple[str, bool], list[int]] = {}
        for i, p in enumerate(live):
            number = p.request.business_phone or default_number
            if number:  # none: NXCloud refuses it (21060) without sending, so it takes no turn
                by_number.setdefault((number, p.campaign is not None), []).append(i)
        for (number, campaign), positions in sorted(by_number.items(), key=lambda item: item[0][1]):  # plain first
            rate = credentials.rates.get(number, pacing.messages_per_second)
            wait = min(horizon, pacing.campaign_wait) if campaign else horizon
            grant = pacing.limiter.acquire(number, len(positions), rate, wait)
            if grant.error is not None:
                observability.rate_limiter_failed(grant.error)
            for n, i in enumerate(positions):
                if n < grant.granted:
                    paced[i] = Paced(live[i], number, grant.send_at[n])
                else:
                    paced[i] = live[i].ended(rate_limited(grant.retry_in))
        return paced

    def _give_back(self, attempts: list[Attempted], credentials: Credentials) -> None:
        """Give back the slots no message went out in (:func:`fate.slot_unused`): WhatsApp counts what it sends, so a
        retry must not cost the number a second slot, nor a batch whose claim failed ten slots for nothing."""
        if self.pacing is None:
            return
        refunds = Counter(
            a.number for a in attempts if a.number is not None and fate.slot_unused(a.result, a.requested)
        )
        for number, count in refunds.items():
            rate = credentials.rates.get(number, self.pacing.messages_per_second)
            error = self.pacing.limiter.give_back(number, count, rate)
            if error is not None:
                observability.rate_limiter_failed(error)

    # --- 5. claim

    def _claim(self, live: list[Paced], remaining_ms: int) -> list[Attempted | Claimed]:
        """Claim every key in one request; the same key twice in one batch: the second waits for the first's outcome
        (or is refused, for another message)."""
        leaders: dict[str, Paced] = {}
        for p in live:
            leaders.setdefault(p.message.claim.record_id, p)
        results: Mapping[str, ClaimResult | Failure]
        try:
            results = self.store.claim(
                [p.message.claim for p in leaders.values()], int(time.time() * 1000) + remaining_ms
            )
        except Exception as exc:
            observability.logger.exception("could not claim the idempotency keys: the messages will be retried")
            results = dict.fromkeys(leaders, failure_for(exc))
        unclaimed = [r.error for r in results.values() if isinstance(r, idempotency.Unclaimed)]
        if unclaimed:
            observability.logger.warning(
                "could not claim some idempotency keys: those messages will be retried",
                extra={"unclaimed": len(unclaimed), "errors": sorted({_error_name(e) for e in unclaimed})},
            )
        claimed: list[Attempted | Claimed] = []
        for p in live:
            leader = leaders[p.message.claim.record_id]
            if leader is not p:
                reused = leader.message.claim.payload_hash != p.message.claim.payload_hash
                claimed.append(p.ended(failure(KEY_REUSED if reused else IN_PROGRESS)))
            else:
                claimed.append(_claimed(p, results[p.message.claim.record_id]))
        return claimed

    # --- 6. send

    def _send(self, claimed: list[Claimed], credentials: Credentials) -> list[Attempted]:
        defaults = self.sender.defaults_for(credentials) if self.timeline is not None else None
        kept = self._kept_requests(claimed, credentials, defaults)
        if len(claimed) == 1:
            return [self._send_one(claimed[0], credentials, defaults, kept[0])]
        return list(self.executor.map(lambda c, k: self._send_one(c, credentials, defaults, k), claimed, kept))

    def _kept_requests(
        self, claimed: list[Claimed], credentials: Credentials, defaults: Defaults | None
    ) -> list[str | None]:
        """What each send record keeps to be sent again after a 131049 failure (:func:`retries.keeps_request`): its
        request when retries are on and its template is marketing or of unknown category, else None. Read on the
        main thread (the catalogue is cached; the template check fetched it already when it is on)."""
        if defaults is None or self.audience.marketing_limit_retry_hours <= 0:
            return [None] * len(claimed)
        kept: list[str | None] = []
        for c in claimed:
            request = c.message.request
            category = category_of(self.catalogue, request, defaults, credentials)
            kept.append(request_text(request) if keeps_request(self.audience, category) else None)
        return kept

    def _send_one(
        self, c: Claimed, credentials: Credentials, defaults: Defaults | None, kept: str | None = None
    ) -> Attempted:
        """Runs on a worker thread: only the HTTP send and the result, no logging or metrics (not thread-safe)."""
        waited_ms = 0.0
        if c.send_at is not None and self.pacing is not None:
            waited = self.pacing.wait_until(c.send_at)
            if waited > 0:
                waited_ms = round(waited * 1000, 1)
        started = time.perf_counter()
        try:
            answer = self.sender.send(c.message.request, credentials)
        except Exception as exc:
            return c.attempted(fate.after_send(failure_for(exc), self.policy), waited_ms)
        latency = round((time.perf_counter() - started) * 1000, 1)
        sent = Sent(answer.message_id, answer.trace_id, now(), latency_ms=latency)
        record = _send_record(c.message, sent, defaults, kept) if defaults is not None else None
        return c.attempted(sent, waited_ms, record)

    # --- 7. dispose

    def _dispose(self, attempts: list[Attempted], rules: fate.Rules) -> list[Outcome]:
        """Decide each outcome (:func:`fate.dispose`), writing the delayed copies and the dead letters it takes."""
        decided = [fate.dispose(a.result, a.incoming, rules) for a in attempts]
        copies = {i: _copy(attempts[i], d) for i, d in enumerate(decided) if isinstance(d, fate.ToPutBack)}
        letters = {i: _letter(attempts[i], d) for i, d in enumerate(decided) if isinstance(d, fate.ToDeadLetter)}
        put = self._write(
            self.send_queue_url, copies, "could not put the throttled message back on the queue: it will be retried"
        )
        dead = self._write(
            self.dlq_url, letters, "could not write to the dead-letter queue: the message will be retried"
        )
        outcomes: list[Outcome] = []
        for i, d in enumerate(decided):
            if isinstance(d, fate.ToPutBack):
                outcomes.append(fate.put_back(d, copies[i].delay_seconds, put[i]))
            elif isinstance(d, fate.ToDeadLetter):
                outcomes.append(fate.dead_lettered(d, dead[i]))
            else:
                outcomes.append(d)
        return outcomes

    def _write(self, queue_url: str, entries: Mapping[int, Entry], problem: str) -> dict[int, str | BaseException]:
        """Write the entries (:func:`outbox.send_all`); each one's message id, or its error (logged: it is retried)."""
        if not entries:
            return {}
        written = dict(zip(entries, send_all(self.sqs, queue_url, list(entries.values())), strict=True))
        for result in written.values():
            if not isinstance(result, str):
                observability.logger.error(problem, exc_info=result)
        return written

    # --- 8. settle

    def _settle(self, attempts: list[Attempted], outcomes: list[Outcome]) -> None:
        """Store what must be remembered, release the other claims, record the sent messages: one request."""
        completed: list[tuple[Claim, dict[str, object]]] = []
        released: list[Claim] = []
        for a, outcome in zip(attempts, outcomes, strict=True):
            change = fate.settlement(a.result, outcome, a.requested)
            if a.message is None or change is None:
                continue
            if isinstance(change, fate.Release):
                released.append(a.message.claim)
            else:
                completed.append((a.message.claim, stored_data(change)))
        counts = self._counts(attempts)
        unwritten = self.store.settle(completed, released, self._send_records(attempts) | counts)
        observability.log_uncounted(sum(1 for i in _ids(counts) if i in unwritten))
        for a, outcome in zip(attempts, outcomes, strict=True):
            if a.message is not None and a.message.claim.record_id in unwritten:
                observability.log_unrecorded(outcome, a.key)
            elif isinstance(outcome, Sent) and outcome.message_id in unwritten:
                observability.logger.warning(
                    "the sent message could not be recorded in the messages table: GET /messages/{id} will not "
                    "find it until a status callback arrives",
                    extra={"message_id": outcome.message_id, "idempotency_key": a.key},
                )
            elif isinstance(a.record, SkipRecord) and a.record.item_id in unwritten:
                observability.logger.warning(
                    "the skipped message could not be recorded in the messages table: GET /messages/{id} will not "
                    "find it",
                    extra={"idempotency_key": a.key},
                )

    def _settle_rows(self, attempts: list[Attempted], outcomes: list[Outcome]) -> list[Outcome]:
        """Record and count the campaign rows that ended (:meth:`campaign_rows.CampaignRows.settle`); the outcomes,
        with a retry in place of an unsent row whose outcome could not be recorded. Never raises: the messages'
        fates are decided and written already."""
        rows = {
            i: (a.message.campaign, outcome)
            for i, (a, outcome) in enumerate(zip(attempts, outcomes, strict=True))
            if a.message is not None and a.message.campaign is not None
        }
        if not rows or self.campaigns is None:
            return outcomes
        messages = {  # a dead-lettered row's request, kept for a retry when it may pass then (campaign_rows)
            i: a.message.request.model_dump(mode="json", exclude_none=True)
            for i, (a, outcome) in enumerate(zip(attempts, outcomes, strict=True))
            if i in rows and a.message is not None and isinstance(outcome, DeadLettered)
        }
        try:
            retry = self.campaigns.settle(rows, messages)
        except Exception as exc:
            observability.logger.exception("could not settle the campaign rows")
            observability.campaign_rows_unrecorded(len(rows), "row", exc)
            return outcomes
        return [retry.get(i, outcome) for i, outcome in enumerate(outcomes)]

    def _counts(self, attempts: list[Attempted]) -> dict[str, list[Item]]:
        """The frequency cap's counts of the pairs whose counted messages may have gone out
        (:func:`fate.may_have_sent`): written whether or not delivery tracking is on."""
        if self.screen is None:
            return {}
        sent = [
            a.message.counted
            for a in attempts
            if a.message is not None and a.message.counted is not None and fate.may_have_sent(a.result, a.requested)
        ]
        return self.screen.counts(sent)

    def _send_records(self, attempts: list[Attempted]) -> dict[str, list[Item]]:
        """The messages table's record of each message sent or skipped now (none when tracking is off)."""
        if self.timeline is None:
            return {}
        expiration = self.timeline.expiration()
        # One item per id: a batch may skip the same key twice, and a BatchWriteItem with a key twice fails whole.
        items = {
            a.record.item_id if isinstance(a.record, SkipRecord) else a.record.message_id: a.record.item(expiration)
            for a in attempts
            if a.record is not None
        }
        for a in attempts:  # a 131049 retry's link from its original (nxcloud_wa.retries)
            if isinstance(a.record, SendRecord) and a.record.retry_of:
                link = attempt_link(a.record, expiration)
                items[str(link["id"]["S"])] = link
        return {self.timeline.table: list(items.values())} if items else {}


# --- 1. parse


def _parse(incoming: Incoming) -> Attempted | Parsed:
    opened = Opened(incoming.body)
    try:
        if incoming.request is not None:
            request = incoming.request
        else:
            opened = open_body(incoming.body) if incoming.queued else opened
            request = parse_message(opened.message)
    except InvalidMessageError as exc:
        return Attempted(incoming, failure_for(exc))
    except EnvelopeError as exc:
        return Attempted(incoming, failure(INVALID_MESSAGE, exc.code, str(exc)))
    key = request.idempotency_key or incoming.key or incoming.source_id
    if opened.campaign is None and campaign_of(key) is not None:
        return Attempted(incoming, failure(INVALID_MESSAGE, RESERVED_KEY, RESERVED_KEY_MESSAGE))
    payload = request.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"})
    return Parsed(incoming, request, key, Claim.of(key, payload), retry=opened.retry, campaign=opened.campaign)


def _invalid_retry(p: Parsed, why: str) -> Attempted:
    """A retry marker the webhook did not write: refused whole (dead-lettered), never sent as a plain message."""
    return p.ended(_retry_refused(f"not a scheduled 131049 retry: {why}"))


def _retry_refused(why: str) -> Failure:
    """The failure of a retry marker the sender refuses (``invalid_message`` / ``invalid_retry``)."""
    return failure(INVALID_MESSAGE, INVALID_RETRY, why)


def _screened(p: Parsed, verdict: Verdict, defaults: Defaults) -> Attempted | Parsed:
    """The state the screen's verdict leaves a message in."""
    if verdict is None:
        return p
    if isinstance(verdict, fate.Counted):
        return replace(p, counted=verdict)
    return p.skipped(verdict, defaults) if isinstance(verdict, Skipped) else p.ended(verdict)


def _claimed(p: Paced, result: ClaimResult | Failure) -> Attempted | Claimed:
    """The state a claim's result (or the claim's failure) leaves a message in."""
    if isinstance(result, idempotency.Unclaimed):  # as if its claim had raised (Delivery._claim)
        result = failure_for(result.error)
    if isinstance(result, Failure):
        return p.ended(result)
    if isinstance(result, idempotency.Claimed):
        return Claimed(p.message, p.number, p.send_at)
    if isinstance(result, idempotency.Completed):
        return p.ended(from_stored(result.data))
    if isinstance(result, idempotency.InProgress):
        return p.ended(failure(IN_PROGRESS))
    if isinstance(result, idempotency.Interrupted):
        return p.ended(unknown(failure(INTERRUPTED)))
    return p.ended(failure(KEY_REUSED))


def _error_name(exc: Exception) -> str:
    """DynamoDB's error code of a failed claim (``ThrottlingError``, ...), else the exception's type."""
    return error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__


def _send_record(message: Parsed, sent: Sent, defaults: Defaults, kept: str | None = None) -> SendRecord:
    retry = message.retry
    return SendRecord(
        message_id=sent.message_id,
        accepted_at=sent.at,
        retry_request=kept,
        retry_of=retry.original_message_id if retry else None,
        attempt=retry.attempt if retry else 0,
        campaign_id=message.campaign.campaign_id if message.campaign else None,
        campaign_ref=message.campaign.ref if message.campaign else None,
        **_record_fields(message, defaults),
    )


def _skip_record(message: Parsed, skip: Skipped, defaults: Defaults) -> SkipRecord:
    return SkipRecord(
        skipped_at=skip.at,
        reason=skip.reason,
        suppression_reason=skip.suppression_reason,
        scope=skip.scope,
        source=skip.source,
        cap=skip.cap,
        **_record_fields(message, defaults),
    )


def _ids(items: Mapping[str, list[Item]]) -> list[str]:
    return [str(item["id"]["S"]) for table_items in items.values() for item in table_items]


def _record_fields(message: Parsed, defaults: Defaults) -> dict[str, Any]:
    """What both of the messages table's records say of the message: its key, template and numbers (the secret's
    defaults where the message left them out)."""
    request = message.request
    return {
        "idempotency_key": message.key,
        "template_name": request.template.name,
        "template_language": request.template.language.code,
        "business_phone": request.business_phone or defaults.business_phone,
        "tenant_id": request.tenant_id if request.tenant_id is not None else defaults.tenant_id,
        "recipient": request.to,
    }


def _copy(a: Attempted, intent: fate.ToPutBack) -> PutBackCopy:
    incoming = a.incoming
    base = intent.failure.retry_after if intent.failure.retry_after is not None else 1.0
    return requeue.copy_of(
        incoming.body,
        key=a.key or incoming.key or incoming.source_id,
        failed_receives=incoming.earlier_failures + max(0, (incoming.receive_count or 1) - 1),
        throttled=incoming.times_put_back + 1,
        delay_seconds=requeue.delay_seconds(base, incoming.times_put_back),
    )


def _letter(a: Attempted, intent: fate.ToDeadLetter) -> DeadLetter:
    incoming = a.incoming
    key = a.key or incoming.key or incoming.source_id
    return DeadLetter.of(
        incoming.body, intent.failure, source=incoming.source, source_id=incoming.source_id, idempotency_key=key
    )
