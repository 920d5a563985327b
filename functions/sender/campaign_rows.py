"""Campaign rows on the send path: the campaign's status before the send, the row's outcome and counts after.

A campaign row is an ordinary message on the send queue in an envelope (:func:`nxcloud_wa.campaigns.envelope`), so it
inherits the whole send path; this module adds only what a campaign asks of it (docs/campaigns.md, "Sending"):

* **before the send** (:meth:`CampaignRows.verdicts`): the campaign's status, read once per distinct campaign per
  batch (one consistent ``BatchGetItem``) and kept in the container for :data:`STATUS_TTL` seconds, so a pause is
  seen within that and the batch in flight. ``paused`` or ``scheduled``: put back delayed, spending no receive (as a
  throttle is); ``cancelled``: the row ends ``cancelled``; ``expires_at`` passed: ``expired`` (both skipped: unsent,
  final, never dead-lettered); no such campaign: dead-lettered (``campaign_not_found``); ``running`` or
  ``completed`` (a retry): sent as any message. The rules are :func:`verdict`, pure.
* **at settlement** (:meth:`CampaignRows.settle`): each row whose fate is final gets its outcome item
  (:func:`row_outcome`) by PartiQL ``INSERT``: the item is the token, so a row redelivered or settled twice is
  counted once, by whichever settlement inserted it; then one ``ADD`` of the counts per campaign, and the campaign
  completed when that makes every row final. What a failed write costs is :meth:`CampaignRows.settle`'s to say.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

import observability
from nxcloud_wa.campaigns import Action, RowState, RowTag, Status, TransitionError, has_expired, is_complete
from nxcloud_wa.campaigns_table import Campaign, CampaignStore, RowOutcome
from nxcloud_wa.error_codes import (
    CAMPAIGN_CANCELLED,
    CAMPAIGN_EXPIRED,
    CAMPAIGN_PAUSED,
    INVALID_MESSAGE,
    may_pass_on_retry,
)
from nxcloud_wa.failures import Failure, failure, failure_for
from outcomes import DeadLettered, Outcome, RetryLater, Sent, Skipped, now

STATUS_TTL: Final = 2.0
"""Seconds a campaign's status is kept in the container: with a batch's own time, a pause stops sends within 5 s."""
PAUSE_DELAY: Final = 2.0
"""The first delay of a paused campaign's row put back (seconds); it doubles with each put-back, as a throttle's
does (``requeue.delay_seconds``), so a long pause polls each queued row about every minute and a half at most."""
NOT_FOUND: Final = "campaign_not_found"
DISABLED: Final = "campaigns_disabled"
CANCELLED: Final = CAMPAIGN_CANCELLED.reason
EXPIRED: Final = CAMPAIGN_EXPIRED.reason
_ENDED: Final = {CANCELLED: RowState.CANCELLED, EXPIRED: RowState.EXPIRED}
"""A skipped row's state by the skip's reason; any other skip (suppressed, capped) is ``skipped``."""

Verdict = Skipped | Failure | None
"""What a campaign's status says of one of its rows: skipped (final, unsent), a failure (put back, dead-lettered or
retried, as :mod:`fate` decides from its class), or None: it goes on to be sent."""


def disabled() -> Failure:
    """A campaign row reaching a stack without a campaigns table: nothing could record it, so it is dead-lettered."""
    return failure(INVALID_MESSAGE, DISABLED, "a campaign row, and campaigns are disabled (no CAMPAIGNS_TABLE)")


def verdict(campaign: Campaign | None, at: datetime) -> Verdict:
    """The rule for one row of ``campaign`` (None: no such campaign) at ``at``. Cancelled before expired before
    paused: a row not sent by ``expires_at`` ends ``expired`` even while the campaign is paused."""
    if campaign is None:
        return failure(INVALID_MESSAGE, NOT_FOUND, "the campaign this row names does not exist")
    if campaign.status is Status.CANCELLED:
        return Skipped(failure(CAMPAIGN_CANCELLED), CANCELLED, now())
    if has_expired(campaign.expires_at, at):
        return Skipped(failure(CAMPAIGN_EXPIRED), EXPIRED, now())
    if campaign.status in (Status.PAUSED, Status.SCHEDULED):
        return Failure(CAMPAIGN_PAUSED, campaign.status.value, CAMPAIGN_PAUSED.meaning, retry_after=PAUSE_DELAY)
    return None


def row_outcome(tag: RowTag, outcome: Outcome, at: str, message: Mapping[str, Any] | None = None) -> RowOutcome | None:
    """The row's final outcome, or None while it is not final (retried, put back) or has no campaign to count in.
    A dead-lettered row that may pass on a retry (``may_pass_on_retry``) keeps ``message``, the request to re-send."""
    row = RowOutcome(tag.campaign_id, tag.row, RowState.SENT, at, ref=tag.ref, round=tag.round)
    if isinstance(outcome, Sent):
        return replace(row, at=outcome.at, message_id=outcome.message_id)
    if isinstance(outcome, Skipped):
        state = _ENDED.get(outcome.reason, RowState.SKIPPED)
        code = outcome.failure.error_code if state is RowState.SKIPPED else None
        return replace(row, state=state, at=outcome.at, reason=outcome.failure.reason, error_code=code)
    if isinstance(outcome, DeadLettered) and outcome.failure.error_code not in (NOT_FOUND, DISABLED):
        dead = outcome.failure
        kept = _compact(message) if message is not None and may_pass_on_retry(dead.reason, dead.error_code) else None
        return replace(row, state=RowState.DEAD_LETTERED, reason=dead.reason, error_code=dead.error_code, message=kept)
    return None


def _compact(message: Mapping[str, Any]) -> str:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":"))


def _utcnow() -> datetime:
    return datetime.now(UTC)


class CampaignRows:
    """The container's view of campaigns (the status cache) and the settlement of their rows."""

    def __init__(
        self,
        store: CampaignStore,
        *,
        ttl: float = STATUS_TTL,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._clock = clock
        """When a cached status was read (monotonic seconds); a test passes a controlled clock."""
        self._wall = wall
        """What ``expires_at`` is compared with."""
        self._cache: dict[str, tuple[float, Campaign | None]] = {}

    # --- before the send

    def verdicts(self, campaign_ids: Sequence[str]) -> list[Verdict]:
        """Each row's verdict (``campaign_ids``: the campaign of each row, in order). The campaigns not cached are
        read in one request; when it fails, their rows are retried later (a receive spent) and the others go on."""
        statuses = self._statuses(campaign_ids)
        at = self._wall()
        return [
            verdict(found, at) if not isinstance(found, Failure) else found
            for found in (statuses[campaign_id] for campaign_id in campaign_ids)
        ]

    def _statuses(self, campaign_ids: Sequence[str]) -> dict[str, Campaign | Failure | None]:
        now_s = self._clock()
        fresh = {i: entry[1] for i, entry in self._cache.items() if now_s - entry[0] < self.ttl}
        wanted = [i for i in dict.fromkeys(campaign_ids) if i not in fresh]
        found: dict[str, Campaign | Failure | None] = dict(fresh)
        if not wanted:
            return found
        try:
            read = self.store.get_many(wanted)
        except Exception as exc:
            observability.logger.exception("could not read the campaigns' status: their rows will be retried")
            return found | dict.fromkeys(wanted, failure_for(exc))
        for campaign_id in wanted:
            self._cache[campaign_id] = (now_s, read.get(campaign_id))
            found[campaign_id] = read.get(campaign_id)
        return found

    # --- at settlement

    def settle(
        self,
        rows: Mapping[int, tuple[RowTag, Outcome]],
        messages: Mapping[int, Mapping[str, Any]] | None = None,
    ) -> dict[int, RetryLater]:
        """Record the final rows (``rows``: position in the batch -> its tag and outcome; ``messages``: the send
        request of each, kept in a dead-lettered row's item for a retry) and count them; the positions whose outcome
        must change to a retry.

        A row whose outcome item could not be written: when nothing was sent (cancelled, expired, skipped) the
        message is retried, and its redelivery ends the same way and writes it; when it was sent or dead-lettered it
        is not (a redelivery could only dead-letter it again, or find the key in progress): it is logged and counted
        (``CampaignRowsUnrecorded``), and a later delivery of it, if any, inserts it then. An ``ADD`` that fails
        after its row items were written loses that batch's counts (logged and counted the same way): the row items,
        which the report reads, stay the truth."""
        at = now()
        requests = messages or {}
        final = {
            i: o
            for i, (tag, outcome) in rows.items()
            if (o := row_outcome(tag, outcome, at, requests.get(i))) is not None
        }
        if not final:
            return {}
        written = self.store.insert_rows(list(final.values()))
        retry: dict[int, RetryLater] = {}
        failed = {o.identity: exc for o, exc in written.failed}
        for i, outcome in final.items():
            exc = failed.get(outcome.identity)
            if exc is None:
                continue
            if outcome.state in (RowState.SENT, RowState.DEAD_LETTERED):
                observability.campaign_rows_unrecorded(1, "row", exc)
            else:
                retry[i] = RetryLater(failure_for(exc))
        self._count(written.inserted, at)
        return retry

    def _count(self, inserted: Sequence[RowOutcome], at: str) -> None:
        """One ``ADD`` per campaign of the rows inserted now; complete the campaign when that makes every row final
        (a lost race to complete it is no error)."""
        by_campaign: dict[str, Counter[str]] = {}
        for outcome in inserted:
            by_campaign.setdefault(outcome.campaign_id, Counter())[outcome.state.value] += 1
        for campaign_id, counts in by_campaign.items():
            try:
                after = self.store.add_counts(campaign_id, counts)
            except Exception as exc:
                observability.campaign_rows_unrecorded(sum(counts.values()), "counts", exc)
                continue
            if (
                after is not None
                and after.status is Status.RUNNING
                and is_complete(after.counts, after.checkpoint.planned)
            ):
                self._complete(after, at)

    def _complete(self, campaign: Campaign, at: str) -> None:
        """Move a campaign whose rows are all final to ``completed``; another settlement (or a person) may have moved
        it first, which is fine. Any other failure leaves it ``running``: the next count or the engine completes it."""
        try:
            self.store.apply(campaign, Action.COMPLETE, at)
        except TransitionError:
            return
        except Exception:
            observability.logger.exception(
                "could not complete the campaign", extra={"campaign_id": campaign.campaign_id}
            )
