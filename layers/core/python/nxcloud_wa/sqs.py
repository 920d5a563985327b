"""Text SQS can carry: the one place that knows which characters SQS refuses, and the attributes written with it."""

import re
from collections.abc import Mapping
from typing import Final

NOT_SQS_TEXT: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters SQS refuses in a message body or attribute value (it then refuses the whole message).

SQS allows ``#x9 | #xA | #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF``; this is its complement, written
out. The same set written as a negated class of the allowed ranges takes ~25 ms to compile (the ranges span all of
Unicode), a tenth of the function's own import time at cold start; this one compiles in ~1 ms."""


def sqs_text(value: str) -> str:
    """``value`` with the characters SQS refuses written as ``\\uXXXX``.

    A message's text can quote an invalid message: a field name with a control character (valid JSON as ``\\b``,
    so the body itself is fine), a lone surrogate, U+FFFE. Left as they are, SQS would refuse the whole message: a
    dead letter would be retried until the redrive policy moved it without its reason, a kept callback lost.
    """
    return NOT_SQS_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", value)


def string_attributes(values: Mapping[str, str | None]) -> dict[str, dict[str, str]]:
    """SQS message attributes of type String, their values made SQS-safe; empty values are left out (SQS refuses
    them). What every message this project writes to a queue carries beside its body."""
    return {name: {"DataType": "String", "StringValue": sqs_text(value)} for name, value in values.items() if value}
