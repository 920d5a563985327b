"""NXCloud's request signature (``docs/nxcloud.md``, "Signing"): the one place the rule is written.

``sign = lowercase_hex(md5(headersStr + bodyStr + secretStr))`` over UTF-8, where ``headersStr`` is the four header
parameters other than ``sign`` sorted by name and joined ``name=value`` with ``&``, ``bodyStr`` is ``&body=`` plus the
exact body text (left out when the body is empty) and ``secretStr`` is ``&accessSecret=<secret>``.

It is a pure function of what is sent, so the client signs the exact text it sends and the simulator checks the
exact text it received with the same code.
"""

import hashlib
from collections.abc import Mapping
from typing import Final

SIGNED_HEADERS: Final = ("accessKey", "action", "bizType", "ts")
"""The header parameters that enter the signature (every header but ``sign``), already in ASCII order."""


def signing_string(headers: Mapping[str, str], body: str, secret: str) -> str:
    """The text whose MD5 is the signature. Raises ``KeyError`` naming a missing header."""
    headers_str = "&".join(f"{name}={headers[name]}" for name in sorted(SIGNED_HEADERS))
    body_str = f"&body={body}" if body else ""
    return f"{headers_str}{body_str}&accessSecret={secret}"


def sign(headers: Mapping[str, str], body: str, secret: str) -> str:
    """The ``sign`` header value for a request with these headers and this exact body text."""
    return hashlib.md5(signing_string(headers, body, secret).encode("utf-8"), usedforsecurity=False).hexdigest()
