"""The audience check as the delivery applies it (docs/audience.md, "Enforcement"): one read of the list's table per
batch, each message's template category, the verdicts (:func:`fate.screen`, :func:`fate.capped`), the log and metric
of an unreadable list, and the frequency cap's counts the settlement writes.

It runs after the template check and before pacing, so a skipped message takes no rate slot and leaves no claim:

1. **one read**: the batch's (business number, recipient) pairs in one strongly consistent BatchGetItem
   (:meth:`~nxcloud_wa.suppressions.SuppressionStore.read`): their entries when the suppression check is on, their
   marketing sends when the frequency cap is on, both in the same request; none when no message has a business
   number;
2. **the category**, only for a message the read concerns (an entry was found for its pair, the list could not be
   read, or the cap is on): from the container's cached catalogue (the same one the template check reads, kept even
   when ``TEMPLATE_CHECK=off``); a template the catalogue does not know, or a catalogue that cannot be had, is
   unknown, which counts as ``MARKETING``: an opt-out is never ignored because a setting is off or getTemplate is
   down;
3. **the verdict**: skipped (suppressed, or over the cap), retried later (the list unreadable, marketing), on its way
   and counted (marketing, under the cap: :class:`fate.Counted`), or on its way.

After the sends, :meth:`Screen.counts` turns the counted messages that went out into the pairs' new send lists, which
the settlement writes in its own request (a Put each, no request of its own).

The runtime builds none when neither check is on (``SUPPRESSION_CHECK=off`` and no ``MARKETING_CAP_PER_RECIPIENT``)
or the stack has no ``SUPPRESSIONS_TABLE``. Runs on the invocation's main thread (Powertools' metrics are not
thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence

import fate
import observability
from fate import Counted
from nxcloud_wa.audience import CapTally, FrequencyCap
from nxcloud_wa.catalogue import TemplateCatalogue, category_of
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.dynamo import Item
from nxcloud_wa.exceptions import SuppressionsUnavailableError
from nxcloud_wa.failures import Failure
from nxcloud_wa.models import Defaults, SendRequest
from nxcloud_wa.suppressions import Key, Lookup, SuppressionStore, encode_sends, send_tag
from outcomes import Skipped

Verdict = Skipped | Failure | Counted | None
"""What the check says of one message: skipped, kept back (retry later), on its way and counted, or on its way."""


class Screen:
    """The container's suppression list (the table, ``check``: read its entries) and frequency cap (None: off), and
    its template catalogue (None: every category is unknown, so marketing)."""

    def __init__(
        self,
        store: SuppressionStore,
        catalogue: TemplateCatalogue | None,
        *,
        check: bool = True,
        cap: FrequencyCap | None = None,
    ) -> None:
        self.store = store
        self.catalogue = catalogue
        self.check = check
        self.cap = cap

    def verdicts(
        self, messages: Sequence[tuple[SendRequest, str]], defaults: Defaults, credentials: Credentials
    ) -> list[Verdict]:
        """One verdict per message (its request and idempotency key), in order, from one read of the list's table for
        the whole batch."""
        requests = [request for request, _ in messages]
        keys = [_key(r, defaults) for r in requests]
        wanted = [k for k in keys if k is not None]
        if not wanted:
            return [None] * len(requests)
        found: Lookup | None
        try:
            found = self.store.read(wanted, entries=self.check, sends=self.cap is not None)
        except SuppressionsUnavailableError as exc:
            found, error = None, exc
        tally = (
            CapTally(self.cap, found.sends, self.store.clock()) if self.cap is not None and found is not None else None
        )
        verdicts = [
            self._verdict(
                found,
                tally,
                key,
                idempotency_key,
                self._category(r, defaults, credentials) if self._concerned(found, key) else None,
            )
            for (r, idempotency_key), key in zip(messages, keys, strict=True)
        ]
        if found is None:
            sent = sum(1 for key, v in zip(keys, verdicts, strict=True) if key is not None and v is None)
            observability.suppression_check_failed(error, sent=sent, retried=len(wanted) - sent)
        return verdicts

    def counts(self, sent: Sequence[Counted]) -> dict[str, list[Item]]:
        """The pairs' new send lists for the counted messages that went out (several to one pair: one item), as the
        settlement's puts into the list's table; none when the cap is off or nothing counted went out."""
        if self.cap is None or not sent:
            return {}
        now = int(self.store.clock())
        by_key: dict[Key, list[Counted]] = {}
        for c in sent:
            by_key.setdefault(c.key, []).append(c)
        items = []
        for key, counted in by_key.items():
            kept = self.cap.kept(counted[0].recent, [c.tag for c in counted], now)
            items.append(encode_sends(key, kept, self.cap.expiration(kept)))
        return {self.store.table: items}

    def _verdict(
        self, found: Lookup | None, tally: CapTally | None, key: Key | None, idempotency_key: str, category: str | None
    ) -> Verdict:
        """The list's verdict first (an opt-out outranks the cap); then, for a message still on its way, the cap's."""
        verdict = fate.screen(found.entries if found is not None else None, key, category)
        if verdict is not None or tally is None or key is None:
            return verdict
        return fate.capped(tally, key, send_tag(idempotency_key), category)

    def _concerned(self, found: Lookup | None, key: Key | None) -> bool:
        """Whether the message's category matters: an entry was found for its pair, the list could not be read, or
        the cap is on (it counts marketing only). (Otherwise it goes on whatever its category: no catalogue read.)"""
        return key is not None and (found is None or key in found.entries or self.cap is not None)

    def _category(self, request: SendRequest, defaults: Defaults, credentials: Credentials) -> str | None:
        """The template's category from the cached catalogue; None when it cannot be known (counts as marketing)."""
        return category_of(self.catalogue, request, defaults, credentials)


def _key(request: SendRequest, defaults: Defaults) -> Key | None:
    """The message's (business number, recipient) pair, both already normalised by validation; None without a
    business number (the send refuses it: NXCloud's 21060)."""
    business_phone = request.business_phone or defaults.business_phone
    return (business_phone, request.to) if business_phone else None
