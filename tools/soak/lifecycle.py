"""The delivery lifecycle's ledger: NXCloud's callbacks against what the webhook stored and the publisher published.

Sources, each independent of the code under test where it can be:

* the simulator's **truth** and **callback records** (``nxcloud_simulator.callbacks``): every status and click it
  posted, what the webhook answered each time, and, per message, the statuses acknowledged with a 2xx;
* the **messages table**, scanned once everything has settled: per message its status item (the current status, a
  time for every status stored, the clicks stored) and whether the send's own record exists;
* the table's **stream**, read from its start by the soak itself (not through the publisher): every write the
  webhook made, in the order the writes landed, with the images before and after;
* the **events** on the bus, as a subscriber's queue received them.

What must hold, per message NXCloud accepted:

* every status and click the webhook acknowledged (2xx: "stored or kept", and whatever was kept was replayed, as
  ``nxwa webhooks replay`` would) is in the table: nothing **lost**; nothing is in the table that was never posted;
* the stored current status is the simulator's truth: ``acknowledged_final`` (the rule applied to the statuses the
  webhook acknowledged; ``final`` when it acknowledged them all). A callback the webhook refused (non-2xx: NXCloud
  does not retry, so it is gone) may still have been stored in part before its invocation failed; then the stored
  status is the rule applied to what was stored, which is counted apart as explained and allowed;
* a status-change event for every status that was ever the current one, no more: the expected set is read from the
  stream (a write whose new image's status differs from the old image's is a change of the current status; the
  stream is the order the conditional writes landed in, which is what decides which statuses were current at some
  point: with reordering, a ``read`` stored before ``delivered`` makes ``delivered`` no change at all). Missing
  events fail the soak; repeats are counted and allowed (delivery is at least once, ``dedupe_id`` says so);
* a change never moves the current status backwards, and the final stored status is the last change;
* every stored click has its click event.

A callback whose id matches no send record is stored all the same (flagged unmatched); the ledger says how many such
messages there were and why: NXCloud accepted a send whose answer never reached the sender (lost or garbled), or the
sender knew the id but could not write its record.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from nxcloud_wa.statuses import current_status, rank

STATUS_CHANGED: Final = "WhatsApp Message Status Changed"
BUTTON_CLICKED: Final = "WhatsApp Template Button Clicked"
"""The event detail-types the issue fixes (the soak checks the contract, so it does not import them)."""
STATUS_PREFIX: Final = "status#"
EXAMPLES: Final = 10


@dataclass(frozen=True, slots=True)
class Posted:
    """One callback the simulator posted (a status report, or a click when ``status`` is None)."""

    message_id: str
    status: str | None
    event_id: str | None
    http_status: int | None
    error: str | None
    duplicate: bool

    @property
    def ok(self) -> bool:
        return self.http_status is not None and 200 <= self.http_status < 300


@dataclass(frozen=True, slots=True)
class Truth:
    """What really happened to one message NXCloud accepted, and what the webhook acknowledged of it."""

    statuses: tuple[str, ...]
    acknowledged: frozenset[str]

    @property
    def final(self) -> str | None:
        return current_status(self.statuses)

    @property
    def acknowledged_final(self) -> str | None:
        return current_status(self.acknowledged)


@dataclass(frozen=True, slots=True)
class Stored:
    """A message's status item in the messages table."""

    status: str | None
    statuses: frozenset[str]
    """Every status with a time in the item (``at_<status>``): each status the webhook stored."""
    clicks: frozenset[str]
    retried: bool = False
    """A 131049 failure with its retry scheduled: its event says ``retry_scheduled`` (docs/audience.md)."""


@dataclass
class EventTally:
    """The events a subscriber received, by message (not thread-safe: one reader)."""

    status: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Status events by message id, then status."""
    unmatched: set[str] = field(default_factory=set)
    clicks: defaultdict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    """Click events by the message clicked (``context_message_id``), then ``dedupe_id``."""
    other: int = 0

    def add(self, event: Mapping[str, Any]) -> None:
        detail = event.get("detail") or {}
        if event.get("detail-type") == STATUS_CHANGED:
            self.status[str(detail.get("message_id"))][str(detail.get("status"))] += 1
            if detail.get("unmatched"):
                self.unmatched.add(str(detail.get("message_id")))
        elif event.get("detail-type") == BUTTON_CLICKED:
            self.clicks[str(detail.get("context_message_id"))][str(detail.get("dedupe_id"))] += 1
        else:
            self.other += 1


@dataclass
class LifecycleLedger:
    """The lifecycle rows of one soak run (counts of callbacks, statuses, messages and events)."""

    messages: int = 0
    callbacks_posted: int = 0
    clicks_posted: int = 0
    duplicates_posted: int = 0
    answered_2xx: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    """Callbacks answered non-2xx (or not at all), by answer."""
    kept: Counter[str] = field(default_factory=Counter)
    """Bodies found on the kept-callbacks queue before the replay, by reason."""
    replayed: Counter[str] = field(default_factory=Counter)
    """The replay's POSTs, by the webhook's answer."""
    kept_left: int = 0
    replay_rounds: list[str] = field(default_factory=list)
    """Each replay round: the kept queue's visible + hidden bodies before it, and the command's summary line (what
    to read when the replayed bodies do not add up to the kept ones)."""
    callbacks_lost: int = 0
    statuses_refused_but_stored: int = 0
    statuses_invented: int = 0
    final_equal: int = 0
    final_explained: int = 0
    final_differs: int = 0
    changes: int = 0
    changes_backwards: int = 0
    final_not_a_change: int = 0
    events_published: int = 0
    events_distinct: int = 0
    events_missing: int = 0
    events_unexpected: int = 0
    clicks_acknowledged: int = 0
    clicks_stored: int = 0
    clicks_lost: int = 0
    click_events_published: int = 0
    click_events_missing: int = 0
    events_unmatched: int = 0
    unmatched_answer_lost: int = 0
    unmatched_unrecorded: int = 0
    unmatched_then_matched: int = 0
    stored_unknown: int = 0
    webhook: Counter[str] = field(default_factory=Counter)
    """Webhook invocations: ``invocations``, ``killed`` (of which ``killed at the timeout``), ``errors``."""
    publisher: Counter[str] = field(default_factory=Counter)
    """Publisher invocations: like :attr:`webhook`, and ``records reported failed``."""
    unsettled: list[str] = field(default_factory=list)
    """What did not finish before the time limit (callbacks posted, replay, the publisher catching up)."""
    catch_up_s: float = 0.0
    examples: list[str] = field(default_factory=list)

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    @property
    def events_duplicates(self) -> int:
        return self.events_published - self.events_distinct

    def failures(self) -> list[str]:
        """Why the lifecycle breaks its promise in this run; empty when it holds."""
        checks = (
            (self.callbacks_lost, "callbacks acknowledged but not in the messages table"),
            (self.clicks_lost, "button clicks acknowledged but not in the messages table"),
            (self.statuses_invented + self.stored_unknown, "statuses stored that NXCloud never posted"),
            (self.final_differs, "messages whose stored status is not the simulator's truth"),
            (self.events_missing, "status changes without their event"),
            (self.events_unexpected, "status events for no change"),
            (self.click_events_missing, "stored button clicks without their event"),
            (self.changes_backwards, "status changes against the rule (the current status moved back)"),
            (self.final_not_a_change, "stored statuses the stream never showed becoming current"),
            (self.kept_left, "kept callbacks the replay could not store"),
        )
        problems = [f"{count} {what}" for count, what in checks if count]
        problems += [f"lifecycle not settled: {what}" for what in self.unsettled]
        return problems

    def example(self, text: str) -> None:
        if len(self.examples) < EXAMPLES:
            self.examples.append(text)


def build_lifecycle(
    truth: Mapping[str, Truth],
    posted: Iterable[Posted],
    *,
    stored: Mapping[str, Stored],
    send_records: set[str],
    changes: Mapping[str, list[tuple[str | None, str]]],
    events: EventTally,
    answer_lost: set[str],
) -> LifecycleLedger:
    """Compare, message by message; ``changes`` are the stream's changes of the current status, (old, new)."""
    ledger = LifecycleLedger(messages=len(truth))
    posted_statuses: defaultdict[str, set[str]] = defaultdict(set)
    acknowledged_clicks: defaultdict[str, set[str]] = defaultdict(set)
    for callback in posted:
        ledger.callbacks_posted += 1
        ledger.duplicates_posted += callback.duplicate
        if callback.ok:
            ledger.answered_2xx += 1
        else:
            answer = f"HTTP {callback.http_status}" if callback.http_status else "no answer"
            ledger.refused[answer] += 1
        if callback.status is None:
            ledger.clicks_posted += 1
            if callback.ok and callback.event_id:
                acknowledged_clicks[callback.message_id].add(callback.event_id)
            continue
        posted_statuses[callback.message_id].add(callback.status)
        store = stored.get(callback.message_id)
        if callback.ok and (store is None or callback.status not in store.statuses):
            ledger.callbacks_lost += 1
            ledger.example(f"lost: {callback.status} of {callback.message_id} answered {callback.http_status}")
    ledger.stored_unknown = len(set(stored) - set(truth))
    for message_id, true in truth.items():
        _statuses(ledger, message_id, true, stored.get(message_id), posted_statuses[message_id])
        _events(ledger, message_id, stored.get(message_id), changes.get(message_id, []), events)
        _clicks(ledger, message_id, stored.get(message_id), acknowledged_clicks[message_id], events)
    for message_id in set(events.status) - set(truth):
        ledger.events_unexpected += len(events.status[message_id])
        ledger.example(f"event for a message NXCloud never accepted: {message_id}")
    ledger.events_published = sum(sum(c.values()) for c in events.status.values())
    ledger.events_distinct = sum(len(c) for c in events.status.values())
    ledger.click_events_published = sum(sum(c.values()) for c in events.clicks.values())
    ledger.events_unmatched = len(events.unmatched)
    for message_id in stored:
        if message_id in send_records:
            ledger.unmatched_then_matched += message_id in events.unmatched
        elif message_id in answer_lost:
            ledger.unmatched_answer_lost += 1
        else:
            ledger.unmatched_unrecorded += 1
    return ledger


def _statuses(ledger: LifecycleLedger, message_id: str, true: Truth, store: Stored | None, posted: set[str]) -> None:
    """The stored statuses and current status of one message against what was posted and acknowledged."""
    statuses = store.statuses if store else frozenset()
    current = store.status if store else None
    invented = statuses - posted
    ledger.statuses_invented += len(invented)
    refused_but_stored = statuses - true.acknowledged
    ledger.statuses_refused_but_stored += len(refused_but_stored)
    expected = true.acknowledged_final
    if current == expected:
        ledger.final_equal += 1
    elif not invented and current == current_status(statuses) and true.acknowledged <= statuses:
        ledger.final_explained += 1  # a refused callback was stored (in part) before its invocation failed
    else:
        ledger.final_differs += 1
        ledger.example(
            f"final: {message_id} stored {current} ({sorted(statuses)}), truth {expected} "
            f"(acknowledged {sorted(true.acknowledged)} of {list(true.statuses)})"
        )


def _events(
    ledger: LifecycleLedger,
    message_id: str,
    store: Stored | None,
    changes: list[tuple[str | None, str]],
    events: EventTally,
) -> None:
    """The status events of one message against the changes of its current status in the stream."""
    ledger.changes += len(changes)
    for old, new in changes:
        if old is not None and rank(new) <= rank(old):
            ledger.changes_backwards += 1
            ledger.example(f"backwards: {message_id} {old} -> {new}")
    retried = store is not None and store.retried
    expected = {"retry_scheduled" if retried and new == "failed" else new for _, new in changes}
    published = set(events.status.get(message_id, ()))
    for status in sorted(expected - published, key=_event_rank):
        ledger.events_missing += 1
        ledger.example(f"no event: {message_id} became {status}")
    for status in sorted(published - expected, key=_event_rank):
        ledger.events_unexpected += 1
        ledger.example(f"event for no change: {message_id} {status}")
    if store is not None and store.status is not None and (not changes or changes[-1][1] != store.status):
        ledger.final_not_a_change += 1
        ledger.example(f"stream: {message_id} is {store.status} but its last change was {changes[-1:]}")


def _event_rank(status: str) -> int:
    """An event's status ranked as the stored status it stands for (``retry_scheduled``: a ``failed``)."""
    return rank("failed" if status == "retry_scheduled" else status)


def _clicks(
    ledger: LifecycleLedger, message_id: str, store: Stored | None, acknowledged: set[str], events: EventTally
) -> None:
    """The clicks of one message: acknowledged ones stored, stored ones published."""
    clicks = store.clicks if store else frozenset()
    ledger.clicks_acknowledged += len(acknowledged)
    ledger.clicks_stored += len(clicks)
    for click in sorted(acknowledged - clicks):
        ledger.clicks_lost += 1
        ledger.example(f"click lost: {click} of {message_id}")
    published = len(events.clicks.get(message_id, ()))
    if published < len(clicks):
        ledger.click_events_missing += len(clicks) - published
        ledger.example(f"no click event: {message_id} has {len(clicks)} clicks, {published} published")


# ---------------------------------------------------------------------------------------------------------------------
# Reading the table and the stream (low-level client items)


def stored_item(item: Mapping[str, Any]) -> Stored:
    """A status item (``status#<id>``) as :class:`Stored`."""
    statuses = frozenset(name.removeprefix("at_") for name in item if name.startswith("at_"))
    return Stored(
        status=_s(item, "status"),
        statuses=statuses,
        clicks=frozenset(item.get("click_ids", {}).get("SS", [])),
        retried="retry_attempt" in item,
    )


def status_change(record: Mapping[str, Any]) -> tuple[str, str | None, str] | None:
    """(message id, old status, new status) when a stream record changes a status item's current status."""
    stream = record.get("dynamodb") or {}
    item_id = _s(stream.get("Keys") or {}, "id") or ""
    if not item_id.startswith(STATUS_PREFIX):
        return None
    old, new = _s(stream.get("OldImage") or {}, "status"), _s(stream.get("NewImage") or {}, "status")
    if new is None or new == old:
        return None
    return item_id.removeprefix(STATUS_PREFIX), old, new


def _s(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


# ---------------------------------------------------------------------------------------------------------------------
# Printing


def rows(ledgers: list[LifecycleLedger | None]) -> list[tuple[str, list[str]]]:
    """The lifecycle's rows of the printed ledger, one column per run ("-" where a run had no lifecycle)."""
    found: list[tuple[str, list[str]]] = []

    def row(label: str, value: Any) -> None:
        found.append((label, [str(value(lg)) if lg is not None else "-" for lg in ledgers]))

    present = [lg for lg in ledgers if lg is not None]
    row("delivery lifecycle: messages given callbacks", lambda lg: lg.messages)
    row("callbacks posted by the simulator", lambda lg: lg.callbacks_posted)
    row("  of which button clicks / duplicates", lambda lg: f"{lg.clicks_posted} / {lg.duplicates_posted}")
    row("  answered 2xx (stored or kept)", lambda lg: lg.answered_2xx)
    row("  answered non-2xx or not at all", lambda lg: lg.refused_total)
    for answer in sorted({a for lg in present for a in lg.refused}):
        row(f"    {answer}", lambda lg, a=answer: lg.refused.get(a, 0))
    row("  kept on the kept-callbacks queue", lambda lg: sum(lg.kept.values()))
    for reason in sorted({r for lg in present for r in lg.kept}):
        row(f"    {reason}", lambda lg, r=reason: lg.kept.get(r, 0))
    row("  replayed: webhook answered 200 / other", _replayed)
    row("  kept and not stored after the replay", lambda lg: lg.kept_left)
    row("  replay rounds: on the queue before (visible+hidden) -> answers", lambda lg: " | ".join(lg.replay_rounds))
    row("callbacks lost (answered 2xx, not in the table)", lambda lg: lg.callbacks_lost)
    row("statuses stored though their callback was refused", lambda lg: lg.statuses_refused_but_stored)
    row("statuses stored that were never posted", lambda lg: lg.statuses_invented + lg.stored_unknown)
    row("final status = the simulator's truth", lambda lg: lg.final_equal)
    row("  differs: a refused callback was stored in part", lambda lg: lg.final_explained)
    row("  differs otherwise", lambda lg: lg.final_differs)
    row("status changes (stream) / moved backwards", lambda lg: f"{lg.changes} / {lg.changes_backwards}")
    row("  stored status never a change in the stream", lambda lg: lg.final_not_a_change)
    row("status events published (distinct)", lambda lg: f"{lg.events_published} ({lg.events_distinct})")
    row("  missing (a change without its event)", lambda lg: lg.events_missing)
    row("  repeats (at least once: same dedupe_id)", lambda lg: lg.events_duplicates)
    row("  for no change", lambda lg: lg.events_unexpected)
    row("  flagged unmatched (messages)", lambda lg: lg.events_unmatched)
    row("button clicks acknowledged / stored / lost", _clicks_row)
    row("  click events published / missing", lambda lg: f"{lg.click_events_published} / {lg.click_events_missing}")
    row("unmatched at the end: answer lost / not recorded", _unmatched)
    row("  unmatched first, matched later", lambda lg: lg.unmatched_then_matched)
    row("webhook invocations / killed (at the timeout) / errors", lambda lg: _invocations(lg.webhook))
    row("publisher invocations / killed (at the timeout) / errors", lambda lg: _invocations(lg.publisher))
    row("  records reported failed (handed over again)", lambda lg: lg.publisher["records reported failed"])
    row("lifecycle caught up after the sends (s)", lambda lg: f"{lg.catch_up_s:.1f}")
    return found


def _replayed(lg: LifecycleLedger) -> str:
    ok = lg.replayed.get("HTTP 200", 0)
    return f"{ok} / {sum(lg.replayed.values()) - ok}"


def _clicks_row(lg: LifecycleLedger) -> str:
    return f"{lg.clicks_acknowledged} / {lg.clicks_stored} / {lg.clicks_lost}"


def _unmatched(lg: LifecycleLedger) -> str:
    return f"{lg.unmatched_answer_lost} / {lg.unmatched_unrecorded}"


def _invocations(counts: Counter[str]) -> str:
    killed = f"{counts['killed']} ({counts['killed at the timeout']})"
    return f"{counts['invocations']} / {killed} / {counts['errors']}"
