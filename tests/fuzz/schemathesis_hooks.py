"""schemathesis hooks for the fuzz run (loaded in its child process through ``SCHEMATHESIS_HOOKS``).

The committed schema cannot say what makes a message sendable (a phone number valid for its country, a language from
NXCloud's table), so generated bodies almost never pass validation and the success answers (200, 202) would go
untested. This adds NXCloud's three page examples, and two that rely on the deployment's defaults, as request body
examples of the loaded schema, in memory: schemathesis' examples phase sends each one (the schema checked against is
the committed one; examples only add requests).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import schemathesis

PAGE_EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "page_examples"

DEFAULTS_ONLY: dict[str, Any] = {
    "to": "+86 138 0000 0000",
    "template": {"name": "order_update", "language": {"code": "zh_CN"}},
}
NON_ASCII: dict[str, Any] = {
    "to": "8613800000000",
    "template": {
        "name": "订单更新",
        "language": {"code": "ar"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "مرحبا \u202eRTL\u202c e\u0301 \U0001f600 \U0001f1e8\U0001f1f3"},
                    {"type": "text", "text": "\x00 NUL and \ufeff BOM"},
                ],
            }
        ],
    },
    "idempotency_key": "schemathesis-non-ascii",
}


def examples() -> dict[str, dict[str, Any]]:
    found = {p.stem: {"value": json.loads(p.read_text(encoding="utf-8"))} for p in sorted(PAGE_EXAMPLES.glob("*.json"))}
    found["defaults_only"] = {"value": DEFAULTS_ONLY}
    found["non_ascii"] = {"value": NON_ASCII}
    return found


@schemathesis.hook
def before_load_schema(context: Any, raw_schema: dict[str, Any]) -> None:
    media = raw_schema["paths"]["/messages"]["post"]["requestBody"]["content"]["application/json"]
    media["examples"] = examples()
