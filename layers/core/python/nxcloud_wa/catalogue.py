"""The template catalogue a container keeps: each account's templates, fetched through getTemplate, for a while.

An account is an (appkey, business number) pair. Its listing is kept ``ttl`` seconds (``TEMPLATE_CACHE_SECONDS``,
10 minutes by default), then fetched again when next needed. A template a message names that the listing lacks, or
holds in another status than ``APPROVED``, triggers one early fetch, at most once per ``miss_interval`` seconds per
account: a template approved a minute ago is found without waiting for the TTL, and a flood of messages naming a
misspelt template costs one getTemplate per interval, not one per message.

When a fetch fails, :meth:`TemplateCatalogue.templates` raises the :class:`TemplateApiError` and the caller fails
open (the message is sent unchecked). A failed fetch is not tried again for ``retry_after`` seconds (the same error is
raised at once meanwhile), so an unreachable getTemplate costs one timeout per interval, not one per message. An
expired listing is never used after a failed fetch: a "not found" must come from a listing fresh enough to trust.

One lock serialises fetches: a container runs one invocation at a time, and the local tools that share one in-process
runtime between threads then fetch once instead of racing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .credentials import Credentials
from .exceptions import TemplateApiError
from .models import Defaults, SendRequest
from .template_client import TemplateClient
from .templates import TemplateSet

MISS_REFRESH_SECONDS: Final = 30.0
RETRY_AFTER_FAILURE_SECONDS: Final = 30.0


@dataclass(slots=True)
class _Account:
    """What the container knows of one account's listing."""

    templates: TemplateSet | None = None
    fetched_at: float = 0.0
    attempted_at: float = 0.0
    error: TemplateApiError | None = None
    """The last fetch's error, None when it succeeded."""


class TemplateCatalogue:
    """Per container: listings by account, kept ``ttl`` seconds, refreshed early for a missing template."""

    def __init__(
        self,
        client: TemplateClient,
        *,
        ttl: float,
        miss_interval: float = MISS_REFRESH_SECONDS,
        retry_after: float = RETRY_AFTER_FAILURE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl = ttl
        self.miss_interval = miss_interval
        self.retry_after = retry_after
        self._clock = clock
        self._accounts: dict[tuple[str, str], _Account] = {}
        self._lock = threading.Lock()
        self.fetches = 0
        """getTemplate listings attempted (each may be several pages): what the cache saves is visible in tests."""

    def templates(
        self, appkey: str, business_phone: str, credentials: Credentials, *, want: tuple[str, str] | None = None
    ) -> TemplateSet:
        """The account's templates; ``want`` (name, language) is the template a message names. Raises
        :class:`TemplateApiError` when they cannot be had (see the module docstring)."""
        with self._lock:
            account = self._accounts.setdefault((appkey, business_phone), _Account())
            now = self._clock()
            known = account.templates if now - account.fetched_at < self.ttl else None
            if known is not None:
                if want is None or known.usable(*want):
                    return known
                if now - account.attempted_at < self.miss_interval:
                    if account.error is not None:  # the early fetch failed: what the listing lacks is unconfirmed
                        raise account.error
                    return known
            elif account.error is not None and now - account.attempted_at < self.retry_after:
                raise account.error
            return self._fetch(account, appkey, business_phone, credentials, now)

    def _fetch(
        self, account: _Account, appkey: str, business_phone: str, credentials: Credentials, now: float
    ) -> TemplateSet:
        account.attempted_at = now
        self.fetches += 1
        try:
            templates = self.client.fetch(appkey, business_phone, credentials)
        except TemplateApiError as exc:
            account.error = exc
            if now - account.fetched_at >= self.ttl:
                account.templates = None  # expired: never used again after a failed fetch
            raise
        account.templates, account.fetched_at, account.error = templates, now, None
        return templates

    def clear(self) -> None:
        """Forget every listing (tests; a container never needs to)."""
        with self._lock:
            self._accounts.clear()


def category_of(
    catalogue: TemplateCatalogue | None, request: SendRequest, defaults: Defaults, credentials: Credentials
) -> str | None:
    """The category of the template a message names, from the catalogue; None when it cannot be known (no catalogue,
    no account, a template the listing lacks, a catalogue that cannot be had, anything unexpected): the audience rules
    count that as marketing. The suppression check and the 131049 retry's send record both read it here."""
    appkey = request.appkey or defaults.appkey
    business_phone = request.business_phone or defaults.business_phone
    if catalogue is None or not appkey or not business_phone:
        return None
    name, language = request.template.name, request.template.language.code
    try:
        spec = catalogue.templates(appkey, business_phone, credentials, want=(name, language)).find(name, language)
    except Exception:  # getTemplate unavailable (or anything unexpected): unknown, so marketing
        return None
    return spec.category or None if spec is not None else None
