"""The client for NXCloud's getTemplate: every template of one (appkey, business number), page after page.

``POST {base}/api/wa/getTemplate`` on its own host (``NXCLOUD_TEMPLATE_BASE_URL``, ``api2.nxcloud.com``), signed as
every NXCloud request is (``action`` ``getTemplate``) through :meth:`NXCloudClient.post`, which also gives it the
resend rule of the send. Pages are followed through ``paging.cursors.after`` for as long as ``paging.next`` is
non-empty (docs/nxcloud.md section 6). Any failure is one :class:`TemplateApiError`, classified by the one table:
the caller decides what a missing catalogue means (the send path fails open).

A listing is a read: the request body names no recipient and the answer holds no credential, so nothing here needs
masking beyond NXCloud's own message text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

import urllib3

from .client import NXCloudClient, decode_answer, encode_body
from .config import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TEMPLATE_BASE_URL
from .credentials import Credentials
from .error_codes import MALFORMED_RESPONSE, classify_http_status, classify_template_code
from .exceptions import SendError, TemplateApiError
from .phone import redact_numbers
from .templates import TemplateSet, TemplateSpec

TEMPLATE_PATH: Final = "/api/wa/getTemplate"
TEMPLATE_ACTION: Final = "getTemplate"
PAGE_SIZE: Final = 50
"""Templates asked for per page (the page's default is 20; it documents no maximum). A page of 50 stays far below
``MAX_ANSWER_BYTES``."""
MAX_PAGES: Final = 100
"""A bound on one listing (5 000 templates at ``PAGE_SIZE``): an upstream that always says "next" cannot loop us."""
MAX_ANSWER_BYTES: Final = 2 * 1024 * 1024
TEMPLATE_READ_TIMEOUT: Final = 5.0
"""At most this long for one page: the catalogue is fetched while messages wait, and failing open is cheap."""
TEMPLATE_MAX_ATTEMPTS: Final = 2


class TemplateClient:
    """Lists accounts' templates through one NXCloud base URL; ``pool`` may be the sender's (urllib3 keeps one
    connection pool per host)."""

    def __init__(
        self,
        base_url: str = DEFAULT_TEMPLATE_BASE_URL,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = TEMPLATE_READ_TIMEOUT,
        page_size: int = PAGE_SIZE,
        pool: urllib3.PoolManager | None = None,
    ) -> None:
        self.transport = NXCloudClient(
            base_url,
            connect_timeout=connect_timeout,
            read_timeout=min(read_timeout, TEMPLATE_READ_TIMEOUT),
            max_attempts=TEMPLATE_MAX_ATTEMPTS,
            pool=pool,
        )
        self.page_size = page_size

    def fetch(
        self, appkey: str, business_phone: str, credentials: Credentials, *, name: str | None = None
    ) -> TemplateSet:
        """Every template of the account (of ``name`` only, when given), as the check needs them."""
        specs = []
        for data in self.raw(appkey, business_phone, credentials, name=name):
            try:
                specs.append(TemplateSpec.from_api(data))
            except ValueError:
                continue  # an object no message can name: nothing to check against
        return TemplateSet(specs)

    def raw(
        self, appkey: str, business_phone: str, credentials: Credentials, *, name: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """NXCloud's template objects as they come, page after page; raises :class:`TemplateApiError`."""
        after: str | None = None
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            body: dict[str, Any] = {
                "appkey": appkey,
                "business_phone": business_phone,
                "messaging_product": "whatsapp",
                "limit": self.page_size,
            }
            if name:
                body["name"] = name
            if after:
                body["after"] = after
            templates, after = self._page(body, credentials)
            yield from templates
            if after is None:
                return
            if after in seen:
                raise TemplateApiError("getTemplate's paging went back to a page already read", MALFORMED_RESPONSE)
            seen.add(after)
        raise TemplateApiError(f"getTemplate still had more after {MAX_PAGES} pages", MALFORMED_RESPONSE)

    def _page(self, body: dict[str, Any], credentials: Credentials) -> tuple[list[dict[str, Any]], str | None]:
        """One page's templates and the cursor of the next page (None: this was the last)."""
        try:
            status, raw = self.transport.post(
                TEMPLATE_PATH, TEMPLATE_ACTION, encode_body(body), credentials, max_bytes=MAX_ANSWER_BYTES
            )
        except SendError as exc:
            raise TemplateApiError(f"getTemplate failed: {exc.reason}", exc.classification) from None
        document = decode_answer(raw, MAX_ANSWER_BYTES)
        code = document.get("code") if document is not None else None
        if document is None or not isinstance(code, int) or isinstance(code, bool):
            if 200 <= status < 300:
                raise TemplateApiError(f"getTemplate answered HTTP {status} without its JSON", MALFORMED_RESPONSE)
            raise TemplateApiError(f"getTemplate answered HTTP {status}", classify_http_status(status))
        if code != 0:
            info = classify_template_code(code)
            text = redact_numbers(str(document.get("message") or info.message))[:200]
            raise TemplateApiError(f"getTemplate code {code}: {text} ({info.meaning})", info.classification, code=code)
        return _templates_and_next(document)


def _templates_and_next(document: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    data = document.get("data")
    templates = data.get("data") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(templates, list):
        raise TemplateApiError("getTemplate answered code 0 without data.data", MALFORMED_RESPONSE)
    paging = data.get("paging")
    paging = paging if isinstance(paging, dict) else {}
    if not paging.get("next"):
        return [t for t in templates if isinstance(t, dict)], None
    cursors = paging.get("cursors")
    after = cursors.get("after") if isinstance(cursors, dict) else None
    if not isinstance(after, str) or not after:
        raise TemplateApiError("getTemplate said there is a next page but gave no after cursor", MALFORMED_RESPONSE)
    return [t for t in templates if isinstance(t, dict)], after
