"""The simulator's template catalogue: what getTemplate lists, and which templates a send may name.

A catalogue is given per account, an (appkey, business number) pair, as NXCloud's own template objects
(docs/nxcloud.md section 6: ``name``, ``language``, ``status``, ``category``, ``components``...). With one, the
simulator serves ``POST /api/wa/getTemplate`` from it and its send refuses (22093) a template the account does not
have in that language as ``APPROVED``; without one it does neither, as before catalogues existed.

getTemplate's checks, in order; the first failure answers (HTTP 200, NXCloud's ``{"code", "message", "data",
"traceId"}``):

1. the signing convention's checks, as for a send but with ``action`` ``getTemplate`` (1001-1005);
2. the body is a JSON object, else 1002;
3. ``appkey`` and ``business_phone`` non-empty strings, ``messaging_product`` ``whatsapp``, ``limit`` (when given) an
   integer from 1, ``after`` (when given) a cursor this simulator gave, else 9000 (missing parameter);
4. ``business_phone`` all digits, else 9002 (not a WhatsApp number);
5. the account has a catalogue, else 9006 (the number is not bound to the application).

A valid request gets a page: ``data.data`` holds up to ``limit`` templates (default 20, as the page says; at most
``MAX_LIMIT``) after the ``after`` cursor, of the ``name`` asked for when given, in the order they were set;
``data.paging.cursors`` has ``before`` and ``after``, and ``paging.next`` is set only when more templates follow.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from nxcloud_wa.error_codes import classify_template_code

TEMPLATE_PATH: Final = "/api/wa/getTemplate"
TEMPLATE_ACTION: Final = "getTemplate"
DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100

Account = tuple[str, str]


class TemplateBook:
    """The catalogue, by account; safe to change from any thread while requests are being served."""

    def __init__(self, accounts: Mapping[Account, Iterable[Mapping[str, Any]]] | None = None) -> None:
        self._lock = threading.Lock()
        self._accounts: dict[Account, list[dict[str, Any]]] = {}
        for (appkey, business_phone), templates in (accounts or {}).items():
            self.set(appkey, business_phone, templates)

    @property
    def configured(self) -> bool:
        """Whether any account has a catalogue (then getTemplate is served and sends are checked against it)."""
        with self._lock:
            return bool(self._accounts)

    def set(self, appkey: str, business_phone: str, templates: Iterable[Mapping[str, Any]]) -> int:
        """Give an account its templates (replacing what it had); return how many. ``ValueError`` names a template
        without a ``name`` or ``language`` string."""
        kept = [copy.deepcopy(dict(t)) for t in templates]
        for index, template in enumerate(kept):
            if not (isinstance(template.get("name"), str) and isinstance(template.get("language"), str)):
                raise ValueError(f"template {index} needs a name and a language (strings)")
        if not (isinstance(appkey, str) and appkey and isinstance(business_phone, str) and business_phone):
            raise ValueError("an account is an appkey and a business_phone (non-empty strings)")
        with self._lock:
            self._accounts[(appkey, business_phone)] = kept
        return len(kept)

    def clear(self) -> int:
        """Forget every account's catalogue; return how many accounts there were."""
        with self._lock:
            count, self._accounts = len(self._accounts), {}
        return count

    def listing(self, appkey: str, business_phone: str) -> list[dict[str, Any]] | None:
        """The account's templates (copies), or None when it has no catalogue."""
        with self._lock:
            templates = self._accounts.get((appkey, business_phone))
            return copy.deepcopy(templates) if templates is not None else None

    def as_dict(self) -> list[dict[str, Any]]:
        """Every account and its templates, as the control API shows them."""
        with self._lock:
            return [
                {"appkey": appkey, "business_phone": phone, "templates": copy.deepcopy(templates)}
                for (appkey, phone), templates in self._accounts.items()
            ]

    def sendable(self, body: Mapping[str, Any]) -> bool:
        """Whether a send body names an ``APPROVED`` template its account has in that language."""
        template = body.get("template")
        language = template.get("language") if isinstance(template, dict) else None
        if not isinstance(template, dict) or not isinstance(language, dict):
            return False
        listing = self.listing(str(body.get("appkey")), str(body.get("business_phone"))) or []
        wanted = (template.get("name"), language.get("code"), "APPROVED")
        return any((t["name"], t["language"], t.get("status")) == wanted for t in listing)

    def answer(self, body: dict[str, Any] | None) -> tuple[int, dict[str, Any] | None]:
        """Steps 2-5 and the page: getTemplate's code and, on success, its ``data``."""
        if body is None:
            return 1002, None
        appkey, phone, limit, after = (body.get(k) for k in ("appkey", "business_phone", "limit", "after"))
        offset = decode_cursor(after) if after is not None else 0
        valid = (
            _non_empty(appkey)
            and _non_empty(phone)
            and body.get("messaging_product") == "whatsapp"
            and (limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit >= 1))
            and offset is not None
        )
        if not valid:
            return 9000, None
        if not (phone.isascii() and phone.isdigit()):
            return 9002, None
        listing = self.listing(appkey, phone)
        if listing is None:
            return 9006, None
        name = body.get("name")
        chosen = [t for t in listing if not name or t["name"] == name]
        return 0, page(chosen, offset or 0, min(limit or DEFAULT_LIMIT, MAX_LIMIT))


def page(templates: list[dict[str, Any]], offset: int, limit: int) -> dict[str, Any]:
    """``data`` of a getTemplate answer: the templates from ``offset``, and the paging around them."""
    part = templates[offset : offset + limit]
    end = offset + len(part)
    paging: dict[str, Any] = {"cursors": {"before": encode_cursor(offset), "after": encode_cursor(end)}}
    if end < len(templates):
        paging["next"] = f"{TEMPLATE_PATH}?after={encode_cursor(end)}"
    if offset > 0:
        paging["previous"] = f"{TEMPLATE_PATH}?before={encode_cursor(offset)}"
    return {"data": part, "paging": paging}


def encode_cursor(offset: int) -> str:
    """An opaque cursor, like the page's (base64 text); it holds the offset of the next template."""
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def decode_cursor(cursor: Any) -> int | None:
    """The offset a cursor of :func:`encode_cursor` holds, or None for anything else."""
    if not isinstance(cursor, str):
        return None
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, binascii.Error, UnicodeError):
        return None
    prefix, _, number = text.partition(":")
    return int(number) if prefix == "offset" and number.isdigit() else None


def answer_bytes(code: int, trace_id: str, data: dict[str, Any] | None, message: str | None = None) -> bytes:
    """getTemplate's JSON answer, as bytes (``message``: NXCloud's text, the table's by default)."""
    if message is None:
        message = "" if code == 0 else classify_template_code(code).message
    document = {"code": code, "message": message, "data": data, "traceId": trace_id}
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def read_catalogue(path: Path) -> dict[Account, list[dict[str, Any]]]:
    """A catalogue file: a JSON list of ``{"appkey", "business_phone", "templates": [...]}``, one per account;
    ``ValueError`` when it is not that."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(
        isinstance(a, dict) and isinstance(a.get("templates"), list) for a in data
    ):
        raise ValueError(f"{path}: expected a list of {{appkey, business_phone, templates: [...]}}")
    return {(str(a.get("appkey")), str(a.get("business_phone"))): a["templates"] for a in data}


def _non_empty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


@dataclass(frozen=True, slots=True)
class TemplateRequestRecord:
    """One request to getTemplate, as received, and what the simulator did with it.

    ``http_status`` is None when no answer was written (``drop``, ``read_timeout_after_accept``); ``code`` is the code
    answered (None for an HTTP or garbled answer), ``templates`` how many templates the page held. Headers are kept in
    full, ``sign`` included: these are test records of test credentials.
    """

    received_at: float
    headers: dict[str, str]
    body: dict[str, Any] | None
    http_status: int | None
    code: int | None
    fault: str | None
    templates: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
