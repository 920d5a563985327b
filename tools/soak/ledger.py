"""Follow every message to its end and account for it: the ledger.

Sources, each read where an operator would read it:

* the function's outcome lines (``sent`` / ``dead_lettered`` / ``retry``, per SQS message id), returned by each
  invocation that finished (a killed invocation leaves none);
* the API's answers to the soak's callers;
* the dead-letter queue, drained as the soak runs (the function's own writes carry ``reason``; a message the
  redrive policy moved has none: ``retries_exhausted``);
* NXCloud's side, from the simulator: how many times each message was accepted;
* the soak's own knowledge of what it did: which invocations it killed, which messages it sent where.

Each message ends in exactly one class: ``sent`` (the function reported it sent, or the API answered 200),
``dead-lettered`` (on the DLQ, by reason), ``rejected to the caller`` (the API answered a final 4xx: the caller was
told and nothing is owed), or ``lost`` (none of these). A duplicate is a message NXCloud accepted more than once; it
is put down to an unknown outcome when one was possible for that message: NXCloud accepted a request whose answer
was lost or garbled (per the simulator), the function reported a timeout / dropped connection / malformed answer,
an invocation handling it was killed, or the function could not store its outcome in the idempotency table at all
(so a later delivery of the key finds an attempt that never finished). Every other duplicate was avoidable.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from nxcloud_wa.retries import InvalidEnvelopeError, RetryMarker, unwrap
from soak import audience, campaign, frequency_cap, lifecycle
from soak.audience import AudienceLedger
from soak.campaign import CampaignLedger
from soak.frequency_cap import CapLedger
from soak.journal import TallyJournal, Upstream, token_in
from soak.lifecycle import LifecycleLedger
from soak.messages import API_ASYNC, API_SYNC, QUEUE, Message

UNKNOWN_REASONS: Final = frozenset({"read_timeout", "connection_dropped", "malformed_response", "unknown_outcome"})
FINAL_API_REJECTIONS: Final = frozenset({400, 413, 415, 422})
PERMANENT_BY_KIND: Final = {
    "invalid": ("invalid_message", 400),
    "bad_recipient": ("nxcloud_code", 422),
    "missing_template": ("nxcloud_code", 422),
}


@dataclass
class Journey:
    """What happened to one message, as seen from outside the function."""

    message: Message
    first_in: float | None = None
    sent_at: float | None = None
    sent_replayed_only: bool = False
    dead: list[tuple[str, float]] = field(default_factory=list)
    api_answers: list[tuple[int, str | None]] = field(default_factory=list)
    api_final: tuple[int, str | None, float] | None = None
    api_gave_up: bool = False
    interrupted: int = 0
    unknown_seen: int = 0
    unrecorded: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    delays: Counter[str] = field(default_factory=Counter)
    """Times it was put back on the queue for a throttle, by reason and code (campaign mode's rows)."""
    waited_ms: float = 0.0
    """How long its queue deliveries waited for their number's slot, in all (the function's ``rate_wait_ms``)."""
    deliveries: int = 0
    starts: list[float] = field(default_factory=list)
    """When each invocation that had it began (``time.time()``), in order: the sending one's start comes before its
    suppression check and its claim."""
    ends: list[float] = field(default_factory=list)
    """When each invocation that had it ended or was killed (``time.time()``), in order."""
    count_unrecorded: bool = False
    """An invocation that had it warned that the frequency cap's count could not be recorded (for its batch)."""
    skipped: str | None = None
    """Why the function reported it skipped (the queue's path): the suppression entry's reason, or
    ``frequency_cap`` (:func:`skip_reason`)."""
    skipped_category: str = ""
    """The category the check judged the skip by (its log line's ``category``; ``unknown`` counts as marketing)."""


class Tracker:
    """Thread-safe: the pollers, the API callers and the DLQ drainer all report here."""

    def __init__(self, messages: list[Message]) -> None:
        self._lock = threading.Lock()
        self.journeys = {m.token: Journey(m) for m in messages}
        self.dlq_entries = 0
        self.dlq_untracked = 0
        self.dead_retries: set[tuple[str, int]] = set()
        """The 131049 retries found in the dead-letter queue: (original message id, attempt) (:mod:`soak.retries`)."""
        self.invocations: Counter[str] = Counter()
        self.kills: Counter[str] = Counter()

    def _journey(self, token: str | None) -> Journey | None:
        return self.journeys.get(token) if token else None

    def entered(self, tokens: list[str], at: float) -> None:
        with self._lock:
            for token in tokens:
                journey = self.journeys[token]
                if journey.first_in is None:
                    journey.first_in = at

    def started(self, event: dict[str, Any], at: float) -> None:
        """An invocation is about to begin with ``event`` (a queue batch or an API request)."""
        records = event.get("Records")
        bodies = [event.get("body")] if records is None else [r.get("body") for r in records]
        with self._lock:
            for body in bodies:
                journey = self._journey(token_in(body))
                if journey is not None:
                    journey.starts.append(at)

    def invocation(
        self, event: dict[str, Any], response: Any, outcomes: list[dict[str, Any]], killed: str | None
    ) -> None:
        """One invocation finished (or was killed): what it says about each message it had."""
        now = time.time()
        records = event.get("Records")
        trigger = "api" if records is None else "sqs"
        with self._lock:
            self.invocations[trigger] += 1
            if killed:
                self.kills[f"{trigger} {killed}"] += 1
            uncounted = any(line.get("frequency_cap") == "unrecorded" for line in outcomes)
            if records is None:  # an API request: one message, its answer is followed by the caller
                journey = self._journey(token_in(event.get("body")))
                if journey is not None:
                    journey.interrupted += killed is not None
                    journey.unrecorded += sum(line.get("idempotency") == "unrecorded" for line in outcomes)
                    journey.ends.append(now)
                    journey.count_unrecorded |= uncounted
                return
            by_id = {r["messageId"]: token_in(r.get("body")) for r in records}
            for token in by_id.values():
                journey = self._journey(token)
                if journey is not None:
                    journey.deliveries += 1
                    journey.interrupted += killed is not None
                    journey.ends.append(now)
                    journey.count_unrecorded |= uncounted
            for line in outcomes:
                journey = self._journey(by_id.get(line.get("sqs_message_id") or ""))
                if journey is not None:
                    _note(journey, line, now)

    def api_answer(self, token: str, status: int, error: str | None, final: bool, gave_up: bool = False) -> None:
        now = time.time()
        with self._lock:
            journey = self.journeys[token]
            journey.api_answers.append((status, error))
            if error in UNKNOWN_REASONS:
                journey.unknown_seen += 1
            if status == 200 and journey.sent_at is None:
                journey.sent_at = now
            if final:
                journey.api_final = (status, error, now)
            journey.api_gave_up = gave_up

    def dead_letter(self, body: str, attributes: dict[str, str], observed_at: float) -> None:
        token = token_in(body)
        reason = attributes.get("reason") or "retries_exhausted"
        code = attributes.get("error_code") or ("redrive policy" if reason == "retries_exhausted" else "")
        at = _parse_time(attributes.get("failed_at")) or observed_at
        marker = _retry_marker(body)
        with self._lock:
            self.dlq_entries += 1
            if marker is not None:
                self.dead_retries.add((marker.original_message_id, marker.attempt))
            journey = self._journey(token)
            if journey is None:
                self.dlq_untracked += 1
                return
            journey.dead.append((f"{reason} {code}".strip(), at))


def _retry_marker(body: str) -> RetryMarker | None:
    """A dead letter's 131049 retry marker, if it is a retry (the redrive policy's dead letters carry no attributes,
    so only the body can say)."""
    try:
        return unwrap(body)[0]
    except InvalidEnvelopeError:
        return None


def _note(journey: Journey, line: dict[str, Any], now: float) -> None:
    """What one of the function's outcome lines says about a queued message."""
    outcome, reason = line.get("outcome"), line.get("reason")
    if line.get("idempotency") == "unrecorded":
        journey.unrecorded += 1
    if outcome == "sent" and journey.sent_at is None:
        journey.sent_at = now
        journey.sent_replayed_only = bool(line.get("replayed"))
    elif outcome == "skipped" and journey.skipped is None:
        journey.skipped = skip_reason(line)
        journey.skipped_category = str(line.get("category", ""))
    elif outcome == "retry":
        journey.retries[str(reason)] += 1
    elif outcome == "delayed":
        journey.delays[f"{reason} {line.get('error_code')}"] += 1
    wait = line.get("rate_wait_ms")
    if isinstance(wait, int | float):
        journey.waited_ms += wait
    if reason in UNKNOWN_REASONS:
        journey.unknown_seen += 1


def skip_reason(line: dict[str, Any]) -> str:
    """A skip's label, per reason: the suppression entry's reason (``opted_out``, ...) for a suppressed message,
    ``frequency_cap`` for one over the cap (its line has no ``suppression_reason``)."""
    if line.get("reason") == frequency_cap.CAPPED:
        return frequency_cap.CAPPED
    return str(line.get("suppression_reason"))


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    from datetime import datetime

    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------------------
# The ledger


@dataclass
class Ledger:
    policy: str
    mix: str
    seed: int
    messages_in: int = 0
    paths: Counter[str] = field(default_factory=Counter)
    enqueued_twice: int = 0
    unrecorded: int = 0
    sent: int = 0
    sent_replayed_only: int = 0
    nxcloud_distinct_accepted: int = 0
    nxcloud_accepted_total: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    dead_accepted_by_nxcloud: Counter[str] = field(default_factory=Counter)
    dlq_entries: int = 0
    dlq_extra_copies: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    audience: AudienceLedger | None = None
    """The suppression list's rows (:mod:`soak.audience`); None in a campaign."""
    cap: CapLedger | None = None
    """The marketing frequency cap's rows (:mod:`soak.frequency_cap`); None when the run had no cap."""
    lost: int = 0
    lost_examples: list[str] = field(default_factory=list)
    phantom_sent: int = 0
    sent_and_dead_lettered: int = 0
    duplicates_unknown: int = 0
    duplicates_avoidable: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    unexpected: int = 0
    unexpected_examples: list[str] = field(default_factory=list)
    settle_times: list[float] = field(default_factory=list)
    unsettled: bool = False
    wall_s: float = 0.0
    upstream_requests: int = 0
    upstream_faults: Counter[str] = field(default_factory=Counter)
    aws_faults: Counter[str] = field(default_factory=Counter)
    aws_calls: Counter[str] = field(default_factory=Counter)
    invocations: Counter[str] = field(default_factory=Counter)
    kills: Counter[str] = field(default_factory=Counter)
    container_starts: int = 0
    function_errors: int = 0
    poller_errors: list[str] = field(default_factory=list)
    cpu_s: dict[str, float] = field(default_factory=dict)
    campaign: CampaignLedger | None = None
    """Campaign mode's rows (:mod:`soak.campaign`); None in the standard soak."""
    lifecycle: LifecycleLedger | None = None
    """The delivery lifecycle's rows (:mod:`soak.lifecycle`); None when the run ended before they were taken, and in
    a campaign (which runs without it)."""
    settings: dict[str, float] = field(default_factory=dict)
    """The timings the run used: ``stretch`` (see ``SoakSettings.stretch``), ``function_timeout``, ``retry_delay``."""

    @property
    def duplicates(self) -> int:
        return self.duplicates_unknown + self.duplicates_avoidable

    def failures(self) -> list[str]:
        """Why this run fails the soak's promise; empty when it holds."""
        problems = []
        if self.unsettled:
            problems.append("not every message settled before the time limit")
        if self.lost:
            problems.append(f"{self.lost} lost")
        if self.duplicates_avoidable:
            problems.append(f"{self.duplicates_avoidable} avoidable duplicates")
        if self.policy == "dead_letter" and self.duplicates:
            problems.append(f"{self.duplicates} duplicates under UNKNOWN_OUTCOME_POLICY=dead_letter")
        if self.phantom_sent:
            problems.append(f"{self.phantom_sent} reported sent but never accepted by NXCloud")
        if self.unexpected:
            problems.append(f"{self.unexpected} messages ended other than their kind allows")
        if self.poller_errors:
            problems.append(f"{len(self.poller_errors)} event-source errors other than killed invocations")
        if self.audience is not None:
            problems += self.audience.failures()
        if self.cap is not None:
            problems += self.cap.failures()
        if self.lifecycle is not None:
            problems += self.lifecycle.failures()
        elif self.campaign is None:  # a campaign runs without it
            problems.append("the delivery lifecycle was not accounted for")
        if self.campaign is not None:
            problems += self.campaign.failures()
        return problems

    def percentile(self, q: float) -> float:
        return nearest_rank(self.settle_times, q)


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0-1) by nearest rank; NaN without values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def build_ledger(
    tracker: Tracker,
    journal: TallyJournal,
    *,
    policy: str,
    mix: str,
    seed: int,
    unsettled: bool,
    resent: Mapping[str, int] | None = None,
    capped: bool = False,
) -> Ledger:
    """Classify every message and count. ``resent``: the 131049 retries sent, by token (:mod:`soak.retries`): a
    message sent again after Meta's marketing limit is accepted twice by design, not a duplicate. ``capped``: the run
    had a marketing frequency cap, so a marketing message may end skipped or refused for it."""
    ledger = Ledger(policy=policy, mix=mix, seed=seed, unsettled=unsettled)
    ledger.dlq_entries = tracker.dlq_entries
    ledger.invocations = tracker.invocations
    ledger.kills = tracker.kills
    for token, journey in tracker.journeys.items():
        message = journey.message
        up = journal.get(token)
        ledger.messages_in += 1
        ledger.paths[message.path] += 1
        ledger.enqueued_twice += message.resend
        ledger.nxcloud_accepted_total += up.accepted
        ledger.nxcloud_distinct_accepted += up.accepted > 0
        ledger.dlq_extra_copies += max(0, len(journey.dead) - 1)
        ledger.unrecorded += journey.unrecorded > 0
        final, settled_at = _classify(journey, ledger)
        if final.startswith("dead:") and up.accepted:
            ledger.dead_accepted_by_nxcloud[final.removeprefix("dead:")] += 1
        if final == "lost":
            ledger.lost += 1
            if len(ledger.lost_examples) < 10:
                ledger.lost_examples.append(_describe(journey, up))
        if final == "sent" and up.accepted == 0:
            ledger.phantom_sent += 1
        if up.accepted - (resent or {}).get(token, 0) > 1:
            unknown = up.unknown_after_accept + journey.unknown_seen + journey.interrupted + journey.unrecorded > 0
            if unknown:
                ledger.duplicates_unknown += 1
            else:
                ledger.duplicates_avoidable += 1
            if (not unknown or policy == "dead_letter") and len(ledger.duplicate_examples) < 10:
                ledger.duplicate_examples.append(_describe(journey, up))
        if not _expected(journey, final, capped):
            ledger.unexpected += 1
            if len(ledger.unexpected_examples) < 10:
                ledger.unexpected_examples.append(f"{final}: {_describe(journey, up)}")
        if settled_at is not None and journey.first_in is not None:
            ledger.settle_times.append(max(0.0, settled_at - journey.first_in))
    ledger.upstream_requests = journal.requests
    ledger.upstream_faults = Counter(journal.faults)
    return ledger


def _classify(journey: Journey, ledger: Ledger) -> tuple[str, float | None]:
    if journey.sent_at is not None:
        ledger.sent += 1
        ledger.sent_replayed_only += journey.sent_replayed_only
        if journey.dead:
            ledger.sent_and_dead_lettered += 1
        return "sent", journey.sent_at
    if journey.dead:
        reason, at = journey.dead[0]
        ledger.dead_lettered[reason] += 1
        return f"dead:{reason}", at
    if journey.skipped is not None:  # counted in the audience rows
        return "skipped", None
    final = journey.api_final
    if final is not None and final[0] in FINAL_API_REJECTIONS:
        label = f"HTTP {final[0]} {final[1]}"
        ledger.rejected[label] += 1
        return f"rejected:{final[1]}", final[2]
    return "lost", None


def _expected(journey: Journey, final: str, capped: bool = False) -> bool:
    """Whether the message ended as its kind allows (a permanent rejection must never be sent; a good message must
    not be rejected as invalid or permanent; only a marketing message, and only with a cap, is capped)."""
    kind = journey.message.kind
    always_possible = final.startswith(("dead:unknown_outcome", "dead:retries_exhausted", "lost"))
    cap_allowed = capped and journey.message.category == frequency_cap.MARKETING
    if (final == "skipped" and journey.skipped == frequency_cap.CAPPED) or final.endswith(frequency_cap.CAPPED_API):
        return cap_allowed
    suppressed = final in ("skipped", "rejected:recipient_suppressed")  # whether rightly: the audience rows say
    if kind in ("ok", "opt_out"):  # any recipient may fail with 131026 and be suppressed before a retry
        return final == "sent" or suppressed or always_possible
    if kind == "outage":
        return always_possible
    reason = PERMANENT_BY_KIND[kind][0]
    return final.startswith((f"dead:{reason}", f"rejected:{reason}")) or always_possible


def _describe(journey: Journey, up: Upstream) -> str:
    m = journey.message
    return (
        f"{m.token} path={m.path} kind={m.kind} key={m.key_where} accepted={up.accepted} requests={up.requests} "
        f"unknown_after_accept={up.unknown_after_accept} unknown_seen={journey.unknown_seen} "
        f"interrupted={journey.interrupted} deliveries={journey.deliveries} retries={dict(journey.retries)} "
        f"dead={[r for r, _ in journey.dead]} api={journey.api_answers[-5:]}"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Printing


def render(ledgers: list[Ledger]) -> str:
    """One column per run (policy), one row per figure."""
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, values: list[Any]) -> None:
        rows.append((label, [str(v) for v in values]))

    row("UNKNOWN_OUTCOME_POLICY", [lg.policy for lg in ledgers])
    row("messages in", [lg.messages_in for lg in ledgers])
    row("  via the queue (SendMessageBatch)", [lg.paths[QUEUE] for lg in ledgers])
    row("    of which enqueued twice (same key)", [lg.enqueued_twice for lg in ledgers])
    row("  via the API, sync", [lg.paths[API_SYNC] for lg in ledgers])
    row("  via the API, Prefer: respond-async", [lg.paths[API_ASYNC] for lg in ledgers])
    row("sent (reported by the function)", [lg.sent for lg in ledgers])
    row("  NXCloud: distinct messages accepted", [lg.nxcloud_distinct_accepted for lg in ledgers])
    row("  NXCloud: accepted sends in total", [lg.nxcloud_accepted_total for lg in ledgers])
    row("dead-lettered", [sum(lg.dead_lettered.values()) for lg in ledgers])
    for reason in sorted({r for lg in ledgers for r in lg.dead_lettered}):
        row(f"  {reason}", [lg.dead_lettered.get(reason, 0) for lg in ledgers])
    row("  of which NXCloud had accepted", [_accepted_dead(lg) for lg in ledgers])
    row("  DLQ entries (extra copies)", [f"{lg.dlq_entries} ({lg.dlq_extra_copies})" for lg in ledgers])
    row("rejected to the API caller", [sum(lg.rejected.values()) for lg in ledgers])
    for label in sorted({r for lg in ledgers for r in lg.rejected}):
        row(f"  {label}", [lg.rejected.get(label, 0) for lg in ledgers])
    row("lost", [lg.lost for lg in ledgers])
    row("duplicates (accepted more than once)", [lg.duplicates for lg in ledgers])
    row("  after an unknown outcome", [lg.duplicates_unknown for lg in ledgers])
    row("  avoidable (all others)", [lg.duplicates_avoidable for lg in ledgers])
    row("reported sent, never accepted", [lg.phantom_sent for lg in ledgers])
    row("outcome stored in neither try (key left in progress)", [lg.unrecorded for lg in ledgers])
    row("ended other than their kind allows", [lg.unexpected for lg in ledgers])
    row("time to settle p50 / p99 / max (s)", [_times(lg) for lg in ledgers])
    rows += _sections(ledgers)
    row("invocations: queue / API", [f"{lg.invocations['sqs']} / {lg.invocations['api']}" for lg in ledgers])
    row("  killed at the timeout / chaos", [_kills(lg) for lg in ledgers])
    row("  containers started", [lg.container_starts for lg in ledgers])
    row("NXCloud requests", [lg.upstream_requests for lg in ledgers])
    for kind in sorted({k for lg in ledgers for k in lg.upstream_faults}):
        row(f"  fault: {kind}", [lg.upstream_faults.get(kind, 0) for lg in ledgers])
    row("AWS calls by the functions (attempts)", [sum(lg.aws_calls.values()) for lg in ledgers])
    for label in sorted({k for lg in ledgers for k in lg.aws_faults}):
        row(f"  fault: {label}", [lg.aws_faults.get(label, 0) for lg in ledgers])
    row("timeouts stretched for the load: factor / function timeout / retry", [_stretch(lg) for lg in ledgers])
    row("wall time (s)", [f"{lg.wall_s:.1f}" for lg in ledgers])
    row("CPU (s): soak / moto / function", [_cpu(lg) for lg in ledgers])
    row("verdict", ["ok" if not lg.failures() else "FAIL" for lg in ledgers])
    width = max(len(label) for label, _ in rows)
    col = max(12, *(len(v) for _, values in rows for v in values))
    lines = [f"{label.ljust(width)}  " + "  ".join(v.rjust(col) for v in values) for label, values in rows]
    for lg in ledgers:
        for problem in lg.failures():
            lines.append(f"[{lg.policy}] FAIL: {problem}")
        for verdict in lg.campaign.verdicts() if lg.campaign is not None else []:
            lines.append(f"[{lg.policy}] goal missed: {verdict}")
        examples = (*lg.lost_examples, *lg.duplicate_examples, *lg.unexpected_examples, *lg.poller_errors[:5])
        examples += tuple(lg.audience.examples) if lg.audience is not None else ()
        examples += tuple(lg.cap.examples) if lg.cap is not None else ()
        if lg.lifecycle is not None and lg.lifecycle.failures():
            examples += tuple(lg.lifecycle.examples)
        for example in examples:
            lines.append(f"[{lg.policy}]   {example}")
    return "\n".join(lines)


def _sections(ledgers: list[Ledger]) -> list[tuple[str, list[str]]]:
    """The rows of the lifecycle, the suppression list and the campaign, where a run has them."""
    found = []
    if any(lg.lifecycle is not None or lg.campaign is None for lg in ledgers):  # campaigns run without it
        found += lifecycle.rows([lg.lifecycle for lg in ledgers])
    if any(lg.audience is not None for lg in ledgers):
        found += audience.rows([lg.audience for lg in ledgers])
    found += frequency_cap.rows([lg.cap for lg in ledgers])
    return found + campaign.rows([lg.campaign for lg in ledgers])


def _lifecycle_json(lc: LifecycleLedger | None) -> dict[str, Any] | None:
    if lc is None:
        return None
    return {k: v for k, v in lc.__dict__.items()} | {
        "failures": lc.failures(),
        "events_duplicates": lc.events_duplicates,
    }


def _stretch(lg: Ledger) -> str:
    s = lg.settings
    return f"x{s.get('stretch', 1.0):.2f} / {s.get('function_timeout', 0):.1f} s / {s.get('retry_delay', 0):g} s"


def _accepted_dead(lg: Ledger) -> int:
    return sum(lg.dead_accepted_by_nxcloud.values())


def _times(lg: Ledger) -> str:
    if not lg.settle_times:
        return "-"
    return f"{lg.percentile(0.5):.2f} / {lg.percentile(0.99):.2f} / {max(lg.settle_times):.1f}"


def _cpu(lg: Ledger) -> str:
    cpu = lg.cpu_s
    return " / ".join(f"{cpu.get(k, 0.0):.0f}" for k in ("soak process", "moto", "function containers"))


def _kills(lg: Ledger) -> str:
    timeout = lg.kills["sqs timeout"] + lg.kills["api timeout"]
    chaos = lg.kills["sqs chaos"] + lg.kills["api chaos"]
    return f"{timeout} / {chaos}"


def to_json(lg: Ledger) -> dict[str, Any]:
    """The ledger as data (``--json``)."""
    return json.loads(
        json.dumps(
            {
                k: v
                for k, v in lg.__dict__.items()
                if k
                not in (
                    "settle_times",
                    "lost_examples",
                    "duplicate_examples",
                    "unexpected_examples",
                    "lifecycle",
                    "campaign",
                    "audience",
                    "cap",
                )
            }
            | {
                "lifecycle": _lifecycle_json(lg.lifecycle),
                "campaign": campaign.as_json(lg.campaign),
                "audience": audience.as_json(lg.audience),
                "cap": frequency_cap.as_json(lg.cap),
                "p50": lg.percentile(0.5),
                "p99": lg.percentile(0.99),
                "failures": lg.failures(),
                "duplicates": lg.duplicates,
            },
            default=str,
        )
    )
