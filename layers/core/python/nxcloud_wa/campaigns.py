"""A campaign: one template sent to every row of an audience file, and the rules its life follows.

This module holds the facts every part of a campaign agrees on, and nothing that talks to AWS: the statuses and
which action moves a campaign from one to the next (:func:`transition`), the row states and the counts kept of them
(:data:`COUNTS`), when a campaign is complete (:func:`is_complete`), a campaign message's idempotency key
(:func:`message_key`: one send per recipient, whatever the file, the planner or the queue do) and the queue body
the planner hands the sender (:func:`envelope` / :func:`unwrap`). The table's item format is
:mod:`nxcloud_wa.campaigns_table`'s; docs/campaigns.md is the contract.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeGuard


class Status(StrEnum):
    """Where a campaign is: waiting for ``start_at`` (``scheduled``), sending (``running``), stopped by a person
    (``paused``), ended by a person (``cancelled``) or every row has a final state (``completed``)."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Action(StrEnum):
    """What moves a campaign: the API's ``pause``/``resume``/``cancel``/``retry``, and the engine's ``start``
    (``start_at`` came) and ``complete`` (the last row ended)."""

    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    RETRY = "retry"
    COMPLETE = "complete"


_MOVES: Final[Mapping[tuple[Status, Action], Status]] = {
    (Status.SCHEDULED, Action.START): Status.RUNNING,
    (Status.SCHEDULED, Action.PAUSE): Status.PAUSED,
    (Status.SCHEDULED, Action.CANCEL): Status.CANCELLED,
    (Status.RUNNING, Action.PAUSE): Status.PAUSED,
    (Status.RUNNING, Action.CANCEL): Status.CANCELLED,
    (Status.RUNNING, Action.COMPLETE): Status.COMPLETED,
    (Status.PAUSED, Action.RESUME): Status.RUNNING,
    (Status.PAUSED, Action.CANCEL): Status.CANCELLED,
    (Status.COMPLETED, Action.RETRY): Status.RUNNING,
}
"""Every move there is; anything else is refused (:class:`TransitionError`, the API's 409). A paused campaign that
never started resumes as ``running``: the engine then waits for ``start_at`` itself."""


class TransitionError(ValueError):
    """``action`` cannot be taken from ``status``: the text names both, as the API's 409 does."""

    def __init__(self, status: Status, action: Action, message: str | None = None, code: str | None = None) -> None:
        self.status, self.action = status, action
        self.code = code or status.value
        """What the API's 409 names as ``code``: the current status, or why else the move is refused."""
        allowed = sorted(a.value for (s, a) in _MOVES if s is status)
        can = f"; a {status.value} campaign can {', '.join(allowed)}" if allowed else ""
        super().__init__(message or f"cannot {action.value} a campaign that is {status.value}{can}")


def transition(status: Status, action: Action) -> Status:
    """The status ``action`` moves a ``status`` campaign to; raises :class:`TransitionError` when it cannot."""
    try:
        return _MOVES[(status, action)]
    except KeyError:
        raise TransitionError(status, action) from None


EXPIRED_CODE: Final = "expired"


def has_expired(expires_at: str | None, at: datetime) -> bool:
    """Whether ``expires_at`` (ISO 8601; one without an offset is UTC) has come. One that cannot be read never
    expires anything: the API refuses it at creation, and a batch must not fail on it."""
    if not expires_at:
        return False
    try:
        expires = datetime.fromisoformat(expires_at)
    except ValueError:
        return False
    return at >= (expires if expires.tzinfo is not None else expires.replace(tzinfo=UTC))


def check_retry(status: Status, expires_at: str | None, at: datetime, rounds: int = 0) -> None:
    """Raise :class:`TransitionError` when a retry cannot be taken: a move the status refuses, a campaign whose
    ``expires_at`` has passed (code :data:`EXPIRED_CODE`: every row it re-sent would end expired), or one retried
    ``rounds`` = :data:`MAX_ROUND` times already."""
    transition(status, Action.RETRY)
    if has_expired(expires_at, at):
        message = f"cannot retry a campaign that expired at {expires_at}"
        raise TransitionError(status, Action.RETRY, message, EXPIRED_CODE)
    if rounds >= MAX_ROUND:
        raise TransitionError(status, Action.RETRY, f"a campaign is retried {MAX_ROUND} times at most", "rounds")


class RowState(StrEnum):
    """A row's state. ``queued`` is on its way to the sender; the rest are final (:data:`FINAL_STATES`)."""

    QUEUED = "queued"
    INVALID = "invalid"
    DUPLICATE = "duplicate"
    SENT = "sent"
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL_STATES: Final = frozenset(RowState) - {RowState.QUEUED}

DELIVERY_COUNTS: Final = ("delivered", "read", "failed")
"""Counted from NXCloud's callbacks after the send: they go on moving once the campaign is ``completed``."""


def delivery_counts(status: str, previous: str | None) -> tuple[str, ...]:
    """The delivery counts a campaign message's status adds when it becomes the message's current status, replacing
    ``previous`` (None: its first). A message read is delivered: a ``read`` that arrives before its ``delivered``
    (which then changes nothing) counts both, so ``delivered`` >= ``read`` always."""
    if status == "read":
        return ("read",) if previous == "delivered" else ("read", "delivered")
    return (status,) if status in DELIVERY_COUNTS else ()


RETRIED: Final = "retried"
"""Rows a retry put on the send queue again (``POST /campaigns/{id}/retry``): each had ended ``dead_lettered`` and
ends again in a final state of its own, so the final states overcount the rows by exactly this."""

COUNTS: Final = ("rows", *(state.value for state in RowState), RETRIED, *DELIVERY_COUNTS)
"""Every count a campaign keeps, in the order the API shows them. ``rows`` is the file's records read so far;
``queued`` counts rows handed to the sender (it is not decreased when they end: counts never go backwards)."""


def final_totals(counts: Mapping[str, int]) -> dict[str, int]:
    """The rows in each final state, each row once, in its last state: the counts, less the rows re-sent
    (:data:`RETRIED`) from ``dead_lettered``, since each re-sent row ended once ``dead_lettered`` before its last
    round. What a completed campaign's report shows by state."""
    totals = {state.value: counts.get(state.value, 0) for state in FINAL_STATES}
    totals[RowState.DEAD_LETTERED.value] -= counts.get(RETRIED, 0)
    return totals


def unfinished(counts: Mapping[str, int]) -> int:
    """Rows read and not final yet (:func:`final_totals`: a row re-sent by a retry counts once)."""
    return counts.get("rows", 0) - sum(final_totals(counts).values())


def is_complete(counts: Mapping[str, int], planned: bool) -> bool:
    """Whether every row has a final state: the engine is done (``planned``: the file read, and a retry's scan
    finished) and the final states, less the rows re-sent, add up to its rows."""
    return planned and unfinished(counts) <= 0


KEY_PREFIX: Final = "campaign:"
_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
"""A campaign id: what the API generates (``c-`` and hex), kept to characters that need no escaping anywhere."""
_KEY = re.compile(rf"campaign:({_ID.pattern}):([0-9]{{1,15}})")


def is_campaign_id(text: str) -> bool:
    """Whether ``text`` can be a campaign's id (the API answers 404 for any other without reading the table)."""
    return bool(_ID.fullmatch(text))


def message_key(campaign_id: str, digits: str) -> str:
    """The idempotency key of the campaign's one message to ``digits`` (E.164 digits after normalisation)."""
    return f"{KEY_PREFIX}{campaign_id}:{digits}"


def campaign_of(key: str | None) -> str | None:
    """The campaign id a message's idempotency key names, or None for any other message."""
    match = _KEY.fullmatch(key or "")
    return match.group(1) if match else None


REPORT_KIND: Final = "report"
"""A tick's ``kind`` asking the planner to build the campaign's report (``GET /campaigns/{id}/report``) instead of
a pass. A tick without ``kind`` is a pass: every tick queued before reports existed stays valid."""


def tick(campaign_id: str, number: int | None = None, *, kind: str | None = None) -> str:
    """The body of one planner pass for ``campaign_id`` on the tick queue (env ``CAMPAIGN_TICK_QUEUE_URL``).

    ``number``: the pass it is for (the checkpoint's ``tick``), which the planner gives each pass it queues after
    another; a numbered tick whose pass was already taken is dropped, so a resume's unnumbered tick meeting a
    pending one never starts a second chain of passes (:func:`tick_number`). ``kind``: :data:`REPORT_KIND` for a
    report request (:func:`tick_kind`)."""
    body: dict[str, Any] = {
        "campaign_id": campaign_id,
        **({"tick": number} if number is not None else {}),
        **({"kind": kind} if kind is not None else {}),
    }
    return json.dumps(body, separators=(",", ":"))


def tick_kind(body: str) -> str | None:
    """What a tick asks for: None, a pass; :data:`REPORT_KIND`, the report. ``ValueError`` for any other kind."""
    data = json.loads(body)
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind is not None and kind != REPORT_KIND:
        raise ValueError(f'a tick\'s kind is "{REPORT_KIND}" or none')
    return kind


def tick_campaign(body: str) -> str:
    """The campaign a tick's body names; raises ``ValueError`` for any other body."""
    data = json.loads(body)
    campaign_id = data.get("campaign_id") if isinstance(data, dict) else None
    if not isinstance(campaign_id, str) or not _ID.fullmatch(campaign_id):
        raise ValueError('a tick is {"campaign_id": <id>}')
    return campaign_id


def tick_number(body: str) -> int | None:
    """The pass a tick is for, or None: any pass (the API's ticks). ``ValueError`` when it is not a number."""
    data = json.loads(body)
    number = data.get("tick") if isinstance(data, dict) else None
    if number is not None and (not isinstance(number, int) or isinstance(number, bool) or number < 0):
        raise ValueError("a tick's number is an integer from 0")
    return number


ENVELOPE_KEY: Final = "nxwa_campaign"
"""The queue body of a campaign message: ``{"nxwa_campaign": {"id", "row", "ref"?, "round"?}, "message": <the
request>}``."""


@dataclass(frozen=True, slots=True)
class RowTag:
    """Which campaign row a queued message is: the sender records the row's outcome under it, and events carry it."""

    campaign_id: str
    row: int
    ref: str | None = None
    round: int = 0
    """The retry round that queued it (0: the file's pass); its outcome is recorded under the round's item."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.campaign_id,
            "row": self.row,
            **({"ref": self.ref} if self.ref else {}),
            **({"round": self.round} if self.round else {}),
        }


class InvalidEnvelopeError(ValueError):
    """A body that names ``nxwa_campaign`` but is not a campaign envelope."""


def envelope(tag: RowTag, message: Mapping[str, Any]) -> str:
    """The queue body of one campaign row's message."""
    return json.dumps({ENVELOPE_KEY: tag.to_json(), "message": message}, separators=(",", ":"))


def unwrap(body: Mapping[str, Any]) -> tuple[RowTag | None, Mapping[str, Any]]:
    """A queue body as (tag, message): a campaign envelope's parts, or (None, the body) for any other message."""
    if ENVELOPE_KEY not in body:
        return None, body
    tag, message = body.get(ENVELOPE_KEY), body.get("message")
    if set(body) != {ENVELOPE_KEY, "message"} or not isinstance(tag, dict) or not isinstance(message, dict):
        raise InvalidEnvelopeError(f"{ENVELOPE_KEY} must be a campaign row's tag beside a message")
    campaign_id, row, ref, round_ = tag.get("id"), tag.get("row"), tag.get("ref"), tag.get("round", 0)
    if not isinstance(campaign_id, str) or not _is_int(row) or row < 1:
        raise InvalidEnvelopeError(f"{ENVELOPE_KEY} needs a campaign id and a row number of 1 or more")
    if ref is not None and not isinstance(ref, str):
        raise InvalidEnvelopeError(f"{ENVELOPE_KEY}.ref must be a string")
    if not _is_int(round_) or not 0 <= round_ <= MAX_ROUND:
        raise InvalidEnvelopeError(f"{ENVELOPE_KEY}.round must be an integer from 0 to {MAX_ROUND}")
    if campaign_of(message.get("idempotency_key")) != campaign_id:
        raise InvalidEnvelopeError(f"a campaign message's idempotency key must be {KEY_PREFIX}{campaign_id}:<number>")
    return RowTag(campaign_id, row, ref, round_), message


MAX_ROUND: Final = 999
"""The most retries a campaign takes (a round's items are ``retry#<round, 3 digits>#<row>``)."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
