"""The one delivery flow both triggers call: parse, key, check, pace, claim, send, dispose, settle, report.

A trigger hands over what it received (:class:`Incoming`, one per message: a queue batch, or the API's one request)
and gets one :class:`~outcomes.Outcome` per message back; it only translates those into its own answer.

1. **parse** each body (the API's arrives parsed); an invalid one is a permanent failure.
2. **key**: the body's ``idempotency_key``, else the trigger's (message attribute, ``Idempotency-Key`` header), else
   the trigger's own id for the message (SQS message id, API request id).
2b. **check** each message against its template in the account's catalogue (:mod:`template_gate`, with the
   credentials read once for all): under ``TEMPLATE_CHECK=enforce`` one that does not fit is a permanent failure
   (``template_mismatch``), never paced, claimed or sent; the check fails open when the catalogue is unavailable.
3. **pace** the messages at their business number's rate (:mod:`rate_limiter`, one request per number): each gets
   a send time within the invocation's wait budget, or is held back (``rate_limited``) before anything is claimed,
   so a message held back leaves no claim behind to release.
4. **claim** every key in one request (:mod:`idempotency`). A stored outcome is answered again (``replayed``), a
   key held by an unfinished delivery is retried later, a key reused for another message is refused, and an attempt
   that started and never finished is an unknown outcome (``interrupted``) under ``dead_letter``.
5. **send** the claimed messages to NXCloud, concurrently, each at its send time, with the credentials read once;
   then give back the slots no message went out in (a failed claim, a message sent already, NXCloud's answer that
   sent nothing), so the number's rate goes to messages WhatsApp counts.
6. **dispose**: a permanent failure is dead-lettered (queue) or rejected to the caller (API); an unknown outcome is
   dead-lettered on both, or retried under ``UNKNOWN_OUTCOME_POLICY=retry``; a failed dead-letter write means retry.
   A throttle (held back, or refused upstream for a rate) is put back on the queue as a delayed copy
   (:mod:`requeue`), spending none of the message's receives, or answered 429 to the API's caller. A retry of a
   copy that has spent the message's last receive is dead-lettered (``retries_exhausted``).
7. **settle** every claim in one request: sent and unknown outcomes stored, the other claims released, so a message
   retried, put back or redriven after its cause was fixed is tried again.
8. **report**: one log line and the metrics of each outcome (:mod:`observability`).

Nothing final is lost on the way: a message whose outcome could not be stored is still reported as it ended (its
key stays in progress until the claim's deadline, and a later delivery of it is then in progress, or interrupted);
a dead letter that could not be written turns into a retry.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import observability
import requeue
from dead_letter import DeadLetter, attributes, send_all
from idempotency import Claim, Claimed, ClaimResult, Completed, IdempotencyStore, InProgress, Interrupted
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.dynamo import Item
from nxcloud_wa.error_codes import (
    DEAD_LETTER_FAILED,
    IN_PROGRESS,
    INTERRUPTED,
    KEY_REUSED,
    RETRIES_EXHAUSTED,
    UNKNOWN_OUTCOME,
    ErrorClass,
)
from nxcloud_wa.exceptions import InvalidMessageError
from nxcloud_wa.messages_table import SendRecord
from nxcloud_wa.models import SendRequest, parse_message
from nxcloud_wa.sender import Sender
from nxcloud_wa.timeline import Timeline
from outcomes import (
    DeadLettered,
    Delayed,
    Failure,
    Outcome,
    Rejected,
    RetryLater,
    Sent,
    failure,
    failure_for,
    from_stored,
    is_throttle,
    now,
    rate_limited,
    stored_data,
    unknown,
)
from rate_limiter import RateLimiter
from template_gate import TemplateGate


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as a trigger received it."""

    body: str
    """The body exactly as received (SQS-safe): what a dead letter carries, so it can be redriven unchanged."""
    source: str
    """``sqs`` or ``api``: the dead letter's ``source`` attribute."""
    source_id: str
    """The SQS message id or the API request id: the dead letter's ``source_message_id``, and the key of last resort."""
    key: str | None = None
    """The key the trigger carries beside the body (message attribute or ``Idempotency-Key`` header)."""
    request: SendRequest | None = None
    """The message already validated (the API's resolver does it); parsed from ``body`` when None."""
    receive_count: int | None = None
    earlier_failures: int = 0
    """Receives spent failing by the copies this one was put back from (:mod:`requeue`); 0 for an original."""
    times_put_back: int = 0
    """How many times the message was put back for a throttle before this receive."""


@dataclass(slots=True)
class _Delivery:
    """One message on its way through the flow; ``outcome`` is set once it is decided."""

    incoming: Incoming
    request: SendRequest | None = None
    key: str | None = None
    claim: Claim | None = None
    claimed: bool = False
    result: Sent | Failure | None = None
    """What the attempt came to: sent, or why not (an unknown outcome in its dead-letter form, see ``unknown``)."""
    stored_dead_lettered: bool | None = None
    """For an unknown outcome read back from the table: whether it was dead-lettered then."""
    number: str | None = None
    """The business number whose rate it took a slot of (None: no limiter, or no number)."""
    requested: bool = False
    """Its send request went out to NXCloud (in this invocation)."""
    send_at: float | None = None
    """When its number's rate lets it go (epoch seconds); None: at once (no limiter)."""
    waited_ms: float = 0.0
    """How long it waited for that, on its send thread."""
    outcome: Outcome | None = field(default=None)

    @property
    def open(self) -> bool:
        return self.outcome is None and self.result is None


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
        pacing: Pacing | None = None,
        send_queue_url: str = "",
        max_receive_count: int = 0,
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
        self.pacing = pacing
        """The business numbers' rate; None: no limiter (messages go at once)."""
        self.send_queue_url = send_queue_url
        """Where throttled queue messages are put back; empty: they are retried (a receive spent) instead."""
        self.max_receive_count = max_receive_count
        """The redrive policy's ``maxReceiveCount``: the receives a message may spend failing over all its copies."""

    def deliver(
        self, messages: Sequence[Incoming], *, remaining_ms: int, dead_letter_rejections: bool
    ) -> list[Outcome]:
        """Deliver every message; return their outcomes in the same order.

        ``remaining_ms`` is the invocation's time left (claims expire then); ``dead_letter_rejections`` says whether a
        permanent failure goes to the dead-letter queue (queue) or back to the caller (API).
        """
        deliveries = [_Delivery(m) for m in messages]
        self._parse(deliveries)
        live = [d for d in deliveries if d.open]
        credentials = self._credentials(live) if live else None
        if credentials is not None:
            self._check(live, credentials)
            live = [d for d in live if d.open]
            self._pace(live, credentials, remaining_ms)
            self._claim([d for d in live if d.open], remaining_ms)
            self._send([d for d in live if d.claimed and d.open], credentials)
            self._give_back(live, credentials)
        self._dispose(deliveries, dead_letter_rejections)
        self._settle(deliveries, credentials)
        outcomes: list[Outcome] = []
        for d in deliveries:
            assert d.outcome is not None, "every delivery is disposed of"
            observability.report(d.outcome, d.request, d.key, d.incoming, waited_ms=d.waited_ms)
            outcomes.append(d.outcome)
        return outcomes

    # --- 1-2. parse and key

    def _parse(self, deliveries: list[_Delivery]) -> None:
        for d in deliveries:
            try:
                d.request = d.incoming.request or parse_message(d.incoming.body)
            except InvalidMessageError as exc:
                d.result = failure_for(exc)
                continue
            d.key = d.request.idempotency_key or d.incoming.key or d.incoming.source_id
            payload = d.request.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key"})
            d.claim = Claim.of(d.key, payload)

    def _credentials(self, live: list[_Delivery]) -> Credentials | None:
        """The credentials, once for all (the cache does not stop a stampede); None after failing every delivery."""
        try:
            return self.sender.credentials()
        except Exception as exc:
            observability.logger.exception("could not load the NXCloud credentials: the messages will be retried")
            for d in live:
                d.result = failure_for(exc)
            return None

    # --- 2b. check

    def _check(self, live: list[_Delivery], credentials: Credentials) -> None:
        """Refuse what does not fit its template (enforce); the gate logs and counts the rest of its findings."""
        if self.gate is None:
            return
        messages = []
        for d in live:
            assert d.request is not None, "a live delivery was parsed"
            messages.append((d.request, d.key))
        refusals = self.gate.refusals(messages, self.sender.defaults_for(credentials), credentials)
        for d, refusal in zip(live, refusals, strict=True):
            if refusal is not None:
                d.result = failure_for(refusal)

    # --- 3. pace

    def _pace(self, live: list[_Delivery], credentials: Credentials, remaining_ms: int) -> None:
        """Give each message a send time at its number's rate, one limiter request per number; hold back what cannot
        go within the invocation's wait budget. (A slot no request goes out in is given back after the sends.)"""
        if self.pacing is None or not live:
            return
        pacing = self.pacing
        horizon = pacing.horizon(remaining_ms)
        default_number = self.sender.defaults_for(credentials).business_phone
        by_number: dict[str, list[_Delivery]] = {}
        for d in live:
            assert d.request is not None
            number = d.request.business_phone or default_number
            if number:  # none: NXCloud refuses it (21060) without sending, so it takes no turn
                by_number.setdefault(number, []).append(d)
        for number, group in by_number.items():
            rate = credentials.rates.get(number, pacing.messages_per_second)
            grant = pacing.limiter.acquire(number, len(group), rate, horizon)
            if grant.error is not None:
                observability.rate_limiter_failed(grant.error)
            for d, at in zip(group, grant.send_at, strict=False):
                d.number, d.send_at = number, at
            for d in group[grant.granted :]:
                d.result = rate_limited(grant.retry_in)

    def _give_back(self, live: list[_Delivery], credentials: Credentials) -> None:
        """Give back the slots no message went out in: WhatsApp counts what it sends, so a retry must not cost the
        number a second slot, nor a batch whose claim failed ten slots for nothing (see :func:`_slot_unused`)."""
        if self.pacing is None:
            return
        refunds = Counter(d.number for d in live if d.number is not None and _slot_unused(d))
        for number, count in refunds.items():
            rate = credentials.rates.get(number, self.pacing.messages_per_second)
            error = self.pacing.limiter.give_back(number, count, rate)
            if error is not None:
                observability.rate_limiter_failed(error)

    # --- 4. claim

    def _claim(self, live: list[_Delivery], remaining_ms: int) -> None:
        leaders: dict[str, _Delivery] = {}
        for d in live:
            assert d.claim is not None
            leader = leaders.setdefault(d.claim.record_id, d)
            if leader is not d:  # the same key twice in one batch: the second waits for the first's outcome
                reused = leader.claim is not None and leader.claim.payload_hash != d.claim.payload_hash
                d.result = failure(KEY_REUSED if reused else IN_PROGRESS)
        claims = [d.claim for d in leaders.values() if d.claim is not None]
        try:
            results = self.store.claim(claims, int(time.time() * 1000) + remaining_ms)
        except Exception as exc:
            observability.logger.exception("could not claim the idempotency keys: the messages will be retried")
            for d in leaders.values():
                d.result = failure_for(exc)
            return
        for record_id, d in leaders.items():
            self._apply_claim(d, results[record_id])

    def _apply_claim(self, d: _Delivery, result: ClaimResult) -> None:
        if isinstance(result, Claimed):
            d.claimed = True
        elif isinstance(result, Completed):
            stored = from_stored(result.data)
            if isinstance(stored, Sent):
                d.result = stored
            else:
                d.result, d.stored_dead_lettered = stored
        elif isinstance(result, InProgress):
            d.result = failure(IN_PROGRESS)
        elif isinstance(result, Interrupted):
            d.result = unknown(failure(INTERRUPTED))
        else:
            d.result = failure(KEY_REUSED)

    # --- 5. send

    def _send(self, claimed: list[_Delivery], credentials: Credentials) -> None:
        if len(claimed) == 1:
            self._send_one(claimed[0], credentials)
        else:
            list(self.executor.map(lambda d: self._send_one(d, credentials), claimed))

    def _send_one(self, d: _Delivery, credentials: Credentials) -> None:
        """Runs on a worker thread: only the HTTP send and the result, no logging or metrics (not thread-safe)."""
        assert d.request is not None
        if d.send_at is not None and self.pacing is not None:
            waited = self.pacing.wait_until(d.send_at)
            if waited > 0:
                d.waited_ms = round(waited * 1000, 1)
        started = time.perf_counter()
        d.requested = True
        try:
            result = self.sender.send(d.request, credentials)
        except Exception as exc:
            cause = failure_for(exc)
            d.result = unknown(cause) if self._dead_letters_unknown(cause) else cause
            return
        latency = round((time.perf_counter() - started) * 1000, 1)
        d.result = Sent(result.message_id, result.trace_id, now(), latency_ms=latency)

    def _dead_letters_unknown(self, cause: Failure) -> bool:
        return cause.error_class is ErrorClass.UNKNOWN and self.policy is UnknownOutcomePolicy.DEAD_LETTER

    # --- 6. dispose

    def _dispose(self, deliveries: list[_Delivery], dead_letter_rejections: bool) -> None:
        """Decide each outcome, writing the dead letters and the delayed copies it takes (all in as few requests as SQS
        allows)."""
        letters: list[tuple[_Delivery, DeadLetter]] = []
        copies: list[tuple[_Delivery, DeadLetter]] = []
        for d in deliveries:
            result = d.result
            assert result is not None, "every delivery has a result by now"
            if isinstance(result, Sent):
                d.outcome = result
            elif is_throttle(result) and self._puts_back(d):
                copies.append((d, self._copy(d, result)))
            else:
                d.outcome = self._final(d, result, dead_letter_rejections)
                if d.outcome is None:
                    assert isinstance(d.result, Failure)
                    letters.append((d, self._letter(d, d.result)))
        self._put_back(copies)
        written = send_all(self.sqs, self.dlq_url, [letter for _, letter in letters]) if letters else []
        for (d, _), dlq_id in zip(letters, written, strict=True):
            assert isinstance(d.result, Failure)
            if isinstance(dlq_id, str):
                d.outcome = DeadLettered(d.result, dlq_id, replayed=d.stored_dead_lettered is not None)
            else:
                observability.logger.error(
                    "could not write to the dead-letter queue: the message will be retried", exc_info=dlq_id
                )
                d.outcome = RetryLater(
                    Failure(DEAD_LETTER_FAILED, d.result.error_code, str(dlq_id)[:500], d.result.trace_id)
                )

    def _final(self, d: _Delivery, result: Failure, dead_letter_rejections: bool) -> Outcome | None:
        """The outcome of a failure that needs no write, or None when it is to be dead-lettered (``d.result`` then
        says why: a copy's retry past the message's receives becomes ``retries_exhausted``)."""
        if result.reason == UNKNOWN_OUTCOME.reason:
            return DeadLettered(result, replayed=True) if d.stored_dead_lettered else None
        if result.error_class is ErrorClass.PERMANENT:
            return None if dead_letter_rejections else Rejected(result)
        if self._exhausted(d):
            d.result = Failure(RETRIES_EXHAUSTED, result.error_code, result.error_message, result.trace_id)
            return None
        return RetryLater(result)

    def _puts_back(self, d: _Delivery) -> bool:
        """Queue messages go back as delayed copies; the API's caller is answered 429 with ``Retry-After``."""
        return d.incoming.source == "sqs" and bool(self.send_queue_url)

    def _exhausted(self, d: _Delivery) -> bool:
        """Whether a retry of this record would exceed the message's receives: only a copy's (an original's are
        the redrive policy's to count, and it does)."""
        incoming = d.incoming
        if incoming.source != "sqs" or not incoming.earlier_failures or not self.max_receive_count:
            return False
        return incoming.earlier_failures + (incoming.receive_count or 1) >= self.max_receive_count

    def _copy(self, d: _Delivery, result: Failure) -> DeadLetter:
        incoming = d.incoming
        base = result.retry_after if result.retry_after is not None else 1.0
        return requeue.copy_of(
            incoming.body,
            key=d.key or incoming.key or incoming.source_id,
            failed_receives=incoming.earlier_failures + max(0, (incoming.receive_count or 1) - 1),
            throttled=incoming.times_put_back + 1,
            delay_seconds=requeue.delay_seconds(base, incoming.times_put_back),
        )

    def _put_back(self, copies: list[tuple[_Delivery, DeadLetter]]) -> None:
        """Send the delayed copies; a copy SQS would not take leaves its record to be retried (a receive spent)."""
        if not copies:
            return
        written = send_all(self.sqs, self.send_queue_url, [copy for _, copy in copies])
        for (d, copy), queue_id in zip(copies, written, strict=True):
            assert isinstance(d.result, Failure)
            if isinstance(queue_id, str):
                d.outcome = Delayed(d.result, copy.delay_seconds, queue_id)
            else:
                observability.logger.error(
                    "could not put the throttled message back on the queue: it will be retried", exc_info=queue_id
                )
                d.outcome = RetryLater(d.result)

    def _letter(self, d: _Delivery, result: Failure) -> DeadLetter:
        incoming = d.incoming
        key = d.key or incoming.key or incoming.source_id
        return DeadLetter(
            incoming.body,
            attributes(result, source=incoming.source, source_message_id=incoming.source_id, idempotency_key=key),
        )

    # --- 7. settle

    def _settle(self, deliveries: list[_Delivery], credentials: Credentials | None) -> None:
        """Store what must be remembered, release the other claims, record the sent messages: one request."""
        completed: list[tuple[Claim, dict[str, object]]] = []
        released: list[Claim] = []
        for d, stored in self._to_settle(deliveries):
            assert d.claim is not None
            if stored is None:
                released.append(d.claim)
            else:
                completed.append((d.claim, stored))
        records = self._send_records(deliveries, credentials)
        unwritten = self.store.settle(completed, released, records)
        for d in deliveries:
            if d.claim is not None and d.claim.record_id in unwritten:
                observability.log_unrecorded(d.outcome, d.key)
            elif isinstance(d.outcome, Sent) and d.outcome.message_id in unwritten:
                observability.logger.warning(
                    "the sent message could not be recorded in the messages table: GET /messages/{id} will not "
                    "find it until a status callback arrives",
                    extra={"message_id": d.outcome.message_id, "idempotency_key": d.key},
                )

    def _send_records(self, deliveries: list[_Delivery], credentials: Credentials | None) -> dict[str, list[Item]]:
        """The messages table's record of each message sent now (none when tracking is off)."""
        if self.timeline is None or credentials is None:
            return {}
        defaults = self.sender.defaults_for(credentials)
        expiration = self.timeline.expiration()
        items: list[Item] = []
        for d in deliveries:
            if isinstance(d.outcome, Sent) and not d.outcome.replayed and d.request is not None and d.key:
                request = d.request
                record = SendRecord(
                    message_id=d.outcome.message_id,
                    idempotency_key=d.key,
                    template_name=request.template.name,
                    template_language=request.template.language.code,
                    business_phone=request.business_phone or defaults.business_phone,
                    tenant_id=request.tenant_id if request.tenant_id is not None else defaults.tenant_id,
                    recipient=request.to,
                    accepted_at=d.outcome.at,
                )
                items.append(record.item(expiration))
        return {self.timeline.table: items} if items else {}

    def _to_settle(self, deliveries: list[_Delivery]) -> Iterator[tuple[_Delivery, dict[str, object] | None]]:
        """Each delivery whose record must change, with what to store (None: release the claim)."""
        for d in deliveries:
            outcome, result = d.outcome, d.result
            if isinstance(outcome, Sent):
                if not outcome.replayed:
                    yield d, stored_data(outcome)
            elif isinstance(result, Failure) and result.reason == UNKNOWN_OUTCOME.reason:
                # Decided now (a fresh send's, or an interrupted attempt's record, taken over as final), or read
                # back and dead-lettered only now: store it with whether it reached the dead-letter queue.
                dead_lettered = isinstance(outcome, DeadLettered)
                if d.stored_dead_lettered is None or d.stored_dead_lettered != dead_lettered:
                    yield d, stored_data(result, dead_lettered=dead_lettered)
            elif d.claimed:
                yield d, None


def _slot_unused(d: _Delivery) -> bool:
    """Whether the slot ``d`` took went unused: no request went out (its claim failed, or found the message sent
    already or in progress), or NXCloud answered without sending, and not because the number was too fast. A slot is
    kept for a send that may have been accepted (sent, or an unknown outcome) and for a throttle."""
    result = d.result
    if not d.requested:
        return True
    return (
        isinstance(result, Failure)
        and result.error_class in (ErrorClass.RETRYABLE, ErrorClass.PERMANENT)
        and not is_throttle(result)
    )
