"""What NXCloud receives, written out here independently of ``nxcloud_wa``: a valid send body and the signing rule.

The simulator's tests and the client's tests both build requests to NXCloud by hand. They share these two helpers so
that the body and the signature are written once, and never with the code under test: if ``nxcloud_wa.signing`` and
the tests shared one mistake, every test against the simulator would pass while NXCloud refused every request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

TO = "8613800138001"
"""The recipient of :func:`upstream_body`."""


def upstream_body(**changes: Any) -> dict[str, Any]:
    """A complete, valid NXCloud send body; ``changes`` replace fields, and a value of ``...`` removes the field."""
    body: dict[str, Any] = {
        "tenant_id": 1,
        "appkey": "pem28kje",
        "business_phone": "8613800138000",
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": TO,
        "type": "template",
        "template": {
            "name": "order_ready",
            "language": {"code": "en_US", "policy": "deterministic"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "David"}]}],
        },
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not ...}


def independent_sign(headers: Mapping[str, str], body_text: str, secret: str) -> str:
    """docs/nxcloud.md's rule, written out again: sorted headers, then ``&body=`` (unless empty), then
    ``&accessSecret=``; MD5, lower-case hex."""
    line = "&".join(f"{name}={headers[name]}" for name in ("accessKey", "action", "bizType", "ts"))
    if body_text:
        line += f"&body={body_text}"
    line += f"&accessSecret={secret}"
    return hashlib.md5(line.encode("utf-8")).hexdigest()
