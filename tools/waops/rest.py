"""The stack's REST API as ``nxwa`` calls it: the API key, retries of throttles and 5xx, answers decoded.

``nxwa suppressions`` and ``nxwa campaign`` talk to the API (never to DynamoDB or S3 directly), so an operator who
holds only the API key can use them, and every rule stays the API's.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from waops.targets import Targets

ATTEMPTS: Final = 4
"""Tries of one request the API answered 429 or 5xx (throttled, a dependency unavailable): the first and 3 more."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: Any

    @property
    def error(self) -> str:
        """What a refusal says: its field errors (``number: must be ...``), else its message."""
        if not isinstance(self.body, dict):
            return str(self.body)[:200]
        fields = [f"{'.'.join(map(str, e.get('loc', [])[1:]))}: {e.get('msg')}" for e in self.body.get("errors") or []]
        return "; ".join(fields) or str(self.body.get("message", self.body))


class RestApi:
    """The API's root (the ``ApiUrl`` output without ``/messages``) and key; ``sleep`` waits between retries (tests
    pass their own)."""

    def __init__(self, targets: Targets, sleep: Callable[[float], None] = time.sleep) -> None:
        targets.require("api_url", "api_key")
        self.root = (targets.api_url or "").removesuffix("/").removesuffix("/messages")
        self.key = targets.api_key or ""
        self.sleep = sleep

    def _call(self, method: str, path: str, query: dict[str, str | None], data: bytes | None = None) -> Answer:
        """One request, tried again after a throttle or a 5xx (``Retry-After`` when the API gives one)."""
        asked = {name: value for name, value in query.items() if value}
        url = self.root + path + (f"?{urllib.parse.urlencode(asked)}" if asked else "")
        headers = {"x-api-key": self.key} | ({"Content-Type": "application/json"} if data is not None else {})
        for attempt in range(1, ATTEMPTS + 1):
            status, body, retry_after = _http(urllib.request.Request(url, data, headers, method=method))  # noqa: S310
            if (status != 429 and status < 500) or attempt == ATTEMPTS:
                return Answer(status, body)
            self.sleep(retry_after if retry_after is not None else float(attempt))
        raise AssertionError("unreachable")


def _http(request: urllib.request.Request) -> tuple[int, Any, float | None]:
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the operator's own URL
            return response.status, _decode(response.read()), None
    except urllib.error.HTTPError as error:
        retry_after = error.headers.get("Retry-After")
        seconds = float(retry_after) if retry_after and retry_after.isdecimal() else None
        return error.code, _decode(error.read()), seconds


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def answered(answer: Answer) -> int:
    """The API's answer as one JSON line; exit status 0 for a 2xx (a 404 is 1: none)."""
    print_json({"http_status": answer.status, **(answer.body if isinstance(answer.body, dict) else {})})
    return 0 if answer.status < 300 else 1


def print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, ensure_ascii=False))


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for row in (header, *rows):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
