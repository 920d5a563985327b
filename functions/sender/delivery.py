"""The one delivery flow both triggers call: parse, key, check, claim, send, dispose, settle, report.

A trigger hands over what it received (:class:`Incoming`, one per message: a queue batch, or the API's one request)
and gets one :class:`~outcomes.Outcome` per message back; it only translates those into its own answer.

1. **parse** each body (the API's arrives parsed); an invalid one is a permanent failure.
2. **key**: the body's ``idempotency_key``, else the trigger's (message attribute, ``Idempotency-Key`` header), else
   the trigger's own id for the message (SQS message id, API request id).
2b. **check** each message against its template in the account's catalogue (:mod:`template_gate`, with the
   credentials read once for all): under ``TEMPLATE_CHECK=enforce`` one that does not fit is a permanent failure
   (``template_mismatch``), never claimed and never sent; the check fails open when the catalogue is unavailable.
3. **claim** every key in one request (:mod:`idempotency`). A stored outcome is answered again (``replayed``), a
   key held by an unfinished delivery is retried later, a key reused for another message is refused, and an attempt
   that started and never finished is an unknown outcome (``interrupted``) under ``dead_letter``.
4. **send** the claimed messages to NXCloud, concurrently, with the credentials read once for all.
5. **dispose**: a permanent failure is dead-lettered (queue) or rejected to the caller (API); an unknown outcome is
   dead-lettered on both, or retried under ``UNKNOWN_OUTCOME_POLICY=retry``; a failed dead-letter write means retry.
6. **settle** every claim in one request: sent and unknown outcomes stored, the other claims released, so a message
   retried or redriven after its cause was fixed is tried again.
7. **report**: one log line and the metrics of each outcome (:mod:`observability`).

Nothing final is lost on the way: a message whose outcome could not be stored is still reported as it ended (its
key stays in progress until the claim's deadline, and a later delivery of it is then in progress, or interrupted);
a dead letter that could not be written turns into a retry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import observability
from dead_letter import DeadLetter, attributes, send_all
from idempotency import Claim, Claimed, ClaimResult, Completed, IdempotencyStore, InProgress, Interrupted
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.error_codes import (
    DEAD_LETTER_FAILED,
    IN_PROGRESS,
    INTERRUPTED,
    KEY_REUSED,
    UNKNOWN_OUTCOME,
    ErrorClass,
)
from nxcloud_wa.exceptions import InvalidMessageError
from nxcloud_wa.models import SendRequest, parse_message
from nxcloud_wa.sender import Sender
from nxcloud_wa.timeline import Item, SendRecord, Timeline
from outcomes import (
    DeadLettered,
    Failure,
    Outcome,
    Rejected,
    RetryLater,
    Sent,
    failure,
    failure_for,
    from_stored,
    now,
    stored_data,
    unknown,
)
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
    outcome: Outcome | None = field(default=None)

    @property
    def open(self) -> bool:
        return self.outcome is None and self.result is None


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
            self._claim(live, remaining_ms)
            self._send([d for d in live if d.claimed and d.open], credentials)
        self._dispose(deliveries, dead_letter_rejections)
        self._settle(deliveries, credentials)
        outcomes: list[Outcome] = []
        for d in deliveries:
            assert d.outcome is not None, "every delivery is disposed of"
            observability.report(d.outcome, d.request, d.key, d.incoming)
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

    # --- 3. claim

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

    # --- 4. send

    def _send(self, claimed: list[_Delivery], credentials: Credentials) -> None:
        if len(claimed) == 1:
            self._send_one(claimed[0], credentials)
        else:
            list(self.executor.map(lambda d: self._send_one(d, credentials), claimed))

    def _send_one(self, d: _Delivery, credentials: Credentials) -> None:
        """Runs on a worker thread: only the HTTP send and the result, no logging or metrics (not thread-safe)."""
        assert d.request is not None
        started = time.perf_counter()
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

    # --- 5. dispose

    def _dispose(self, deliveries: list[_Delivery], dead_letter_rejections: bool) -> None:
        """Decide each outcome, writing the dead letters it takes (all in as few requests as SQS allows)."""
        letters: list[tuple[_Delivery, DeadLetter]] = []
        for d in deliveries:
            result = d.result
            assert result is not None, "every delivery has a result by now"
            if isinstance(result, Sent):
                d.outcome = result
            elif result.reason == UNKNOWN_OUTCOME.reason:
                if d.stored_dead_lettered:
                    d.outcome = DeadLettered(result, replayed=True)
                else:
                    letters.append((d, self._letter(d, result)))
            elif result.error_class is ErrorClass.PERMANENT and dead_letter_rejections:
                letters.append((d, self._letter(d, result)))
            elif result.error_class is ErrorClass.PERMANENT:
                d.outcome = Rejected(result)
            else:
                d.outcome = RetryLater(result)
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

    def _letter(self, d: _Delivery, result: Failure) -> DeadLetter:
        incoming = d.incoming
        key = d.key or incoming.key or incoming.source_id
        return DeadLetter(
            incoming.body,
            attributes(result, source=incoming.source, source_message_id=incoming.source_id, idempotency_key=key),
        )

    # --- 6. settle

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
