"""The suppression check as the delivery applies it (docs/audience.md, "Enforcement"): one read of the list per batch,
each message's template category, the verdict (:func:`fate.screen`), and the log and metric of an unreadable list.

It runs after the template check and before pacing, so a skipped message takes no rate slot and leaves no claim:

1. **one read**: the batch's (business number, recipient) pairs in one strongly consistent BatchGetItem
   (:meth:`~nxcloud_wa.suppressions.SuppressionStore.lookup`); none when no message has a business number;
2. **the category**, only for a message the read concerns (an entry was found for its pair, or the list could not be
   read): from the container's cached catalogue (the same one the template check reads, kept even when
   ``TEMPLATE_CHECK=off``); a template the catalogue does not know, or a catalogue that cannot be had, is unknown,
   which counts as ``MARKETING``: an opt-out is never ignored because a setting is off or getTemplate is down;
3. **the verdict** (:func:`fate.screen`): skipped, retried later (the list unreadable, marketing), or on its way.

The runtime builds none when ``SUPPRESSION_CHECK=off`` or the stack has no ``SUPPRESSIONS_TABLE``. Runs on the
invocation's main thread (Powertools' metrics are not thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence

import fate
import observability
from nxcloud_wa.catalogue import TemplateCatalogue, category_of
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import SuppressionsUnavailableError
from nxcloud_wa.failures import Failure
from nxcloud_wa.models import Defaults, SendRequest
from nxcloud_wa.suppressions import Key, Suppression, SuppressionStore
from outcomes import Skipped

Verdict = Skipped | Failure | None
"""What the check says of one message: skipped, kept back (retry later), or None: it goes on."""


class Screen:
    """The container's suppression list and template catalogue (None: every category is unknown, so marketing)."""

    def __init__(self, store: SuppressionStore, catalogue: TemplateCatalogue | None) -> None:
        self.store = store
        self.catalogue = catalogue

    def verdicts(self, requests: Sequence[SendRequest], defaults: Defaults, credentials: Credentials) -> list[Verdict]:
        """One verdict per message, in order, from one read of the list for the whole batch."""
        keys = [_key(r, defaults) for r in requests]
        wanted = [k for k in keys if k is not None]
        if not wanted:
            return [None] * len(requests)
        found: dict[Key, Suppression] | None
        try:
            found = self.store.lookup(wanted)
        except SuppressionsUnavailableError as exc:
            found, error = None, exc
        verdicts = [
            fate.screen(found, key, self._category(r, defaults, credentials) if _concerned(found, key) else None)
            for r, key in zip(requests, keys, strict=True)
        ]
        if found is None:
            sent = sum(1 for key, v in zip(keys, verdicts, strict=True) if key is not None and v is None)
            observability.suppression_check_failed(error, sent=sent, retried=len(wanted) - sent)
        return verdicts

    def _category(self, request: SendRequest, defaults: Defaults, credentials: Credentials) -> str | None:
        """The template's category from the cached catalogue; None when it cannot be known (counts as marketing)."""
        return category_of(self.catalogue, request, defaults, credentials) if self.catalogue is not None else None


def _key(request: SendRequest, defaults: Defaults) -> Key | None:
    """The message's (business number, recipient) pair, both already normalised by validation; None without a
    business number (the send refuses it: NXCloud's 21060)."""
    business_phone = request.business_phone or defaults.business_phone
    return (business_phone, request.to) if business_phone else None


def _concerned(found: dict[Key, Suppression] | None, key: Key | None) -> bool:
    """Whether the message's category matters: an entry was found for its pair, or the list could not be read. (A
    message without an entry goes on whatever its category: no catalogue read for it.)"""
    return key is not None and (found is None or key in found)
