"""What a delivery ends as, typed: sent, skipped (the recipient is suppressed), dead-lettered, rejected to the caller,
put back with a delay, or to be retried.

Both triggers receive these from :mod:`delivery` and only translate them: the queue into a partial batch response,
the API into an HTTP answer. Each one that is not :class:`Sent` carries its ``nxcloud_wa.failures.Failure``: why,
once, for logs, metrics, dead-letter attributes and API error bodies alike. Which outcome a message gets is decided
in :mod:`fate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from nxcloud_wa.failures import Failure


@dataclass(frozen=True, slots=True)
class Sent:
    """NXCloud accepted the message (or an earlier delivery of the same key did: ``replayed``)."""

    message_id: str
    trace_id: str | None
    at: str
    latency_ms: float | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class DeadLettered:
    """On the dead-letter queue with its reason: permanently rejected (queue), or an unknown outcome (both).

    ``dlq_message_id`` is None when an earlier delivery of the key put it there (``replayed``).
    """

    failure: Failure
    dlq_message_id: str | None = None
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """Permanently refused and answered to the API's caller; nothing was sent and nothing is kept."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class RetryLater:
    """Not sent, nothing final: the queue delivers it again, the API's caller may try again."""

    failure: Failure


@dataclass(frozen=True, slots=True)
class Delayed:
    """Throttled (the ``failure`` says by what), not sent: put back on the send queue as a copy that becomes visible
    in ``delay_seconds``, and the record is done. Unlike a retry, it spends none of the message's receives."""

    failure: Failure
    delay_seconds: int
    queue_message_id: str


UNKNOWN_CATEGORY: Final = "unknown"
"""A skip's ``category`` when the catalogue could not say (the audience rules then count it as marketing)."""


@dataclass(frozen=True, slots=True)
class Skipped:
    """Not sent, on purpose, and final (docs/audience.md): the recipient is on the business number's suppression list
    for the template's category (``reason`` ``suppressed``), or has had as many marketing templates as the frequency
    cap allows in its window (``frequency_cap``); or, for a campaign row, its campaign was cancelled
    (``campaign_cancelled``) or its ``expires_at`` passed (``campaign_expired``; docs/campaigns.md). Not a failure:
    never claimed, never dead-lettered, deleted from the queue, recorded in the messages table (a campaign's skip in
    the campaigns table instead); the API answers 422 (``recipient_suppressed``, ``frequency_capped``).

    ``failure`` says it the way every other outcome does, for the API's body; ``reason`` is why it was skipped (the
    metric's ``Reason``); the other fields say the rest: the entry's reason, scope and source, or the cap."""

    failure: Failure
    reason: str
    at: str
    suppression_reason: str = ""
    """The entry's reason: ``opted_out``, ``marketing_stopped``, ``undeliverable``, ``manual``."""
    scope: str = ""
    source: str = ""
    cap: str = ""
    """The frequency cap it reached, as configured (``1/24h``)."""
    category: str = UNKNOWN_CATEGORY
    """The template category the check judged by: the catalogue's, or ``unknown`` (no catalogue could say, so it
    counted as marketing): the log line says it, so a UTILITY message stopped by a marketing entry is explained."""


Outcome = Sent | Skipped | DeadLettered | Rejected | RetryLater | Delayed


def now() -> str:
    """The time an outcome carries (``Sent.at``, a record's ``at``, a dead letter's ``failed_at``): UTC, ms."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")
