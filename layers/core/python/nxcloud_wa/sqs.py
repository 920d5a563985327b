"""Text SQS can carry: the one place that knows which characters SQS refuses."""

import re
from typing import Final

NOT_SQS_TEXT: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters SQS refuses in a message body or attribute value (it then refuses the whole message)."""


def sqs_text(value: str) -> str:
    """``value`` with the characters SQS refuses written as ``\\uXXXX``.

    A message's text can quote an invalid message: a field name with a control character (valid JSON as ``\\b``,
    so the body itself is fine), a lone surrogate, U+FFFE. Left as they are, SQS would refuse the whole message: a
    dead letter would be retried until the redrive policy moved it without its reason, a kept callback lost.
    """
    return NOT_SQS_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
