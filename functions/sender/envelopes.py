"""The one place a queue body's envelope is opened: a 131049 retry's (``nxwa_retry``, :mod:`nxcloud_wa.retries`) or
a campaign row's (``nxwa_campaign``, :mod:`nxcloud_wa.campaigns`), around the send request.

Only the send queue's bodies are opened (the API's ``POST /messages`` refuses either name as an unknown field of a
send request). A body naming an envelope at its top that is not one is refused whole (:class:`EnvelopeError`): it is
dead-lettered as ``invalid_message`` with the envelope's code, never sent as a plain message. Any other body is the
request itself, parsed once, by ``parse_message``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from nxcloud_wa import campaigns, retries
from nxcloud_wa.campaigns import RowTag
from nxcloud_wa.retries import RetryMarker

INVALID_RETRY: Final = "invalid_retry"
INVALID_CAMPAIGN: Final = "invalid_campaign"
RESERVED_KEY: Final = "reserved_key"
RESERVED_KEY_MESSAGE: Final = (
    f"an idempotency key of the form {campaigns.KEY_PREFIX}<campaign id>:<number> is a campaign row's: "
    "only a campaign's envelope may carry one"
)
"""Why a plain message (queue or API) with a campaign row's key is refused: it would take the row's one send."""


@dataclass(frozen=True, slots=True)
class Opened:
    """A queue body's request (its text, or the envelope's parsed ``message``) and what its envelope said."""

    message: str | dict[str, Any]
    retry: RetryMarker | None = None
    campaign: RowTag | None = None


class EnvelopeError(ValueError):
    """A body that names an envelope and is not one; ``code`` says which (the dead letter's ``error_code``)."""

    def __init__(self, code: str, why: str) -> None:
        super().__init__(why)
        self.code = code


def open_body(body: str) -> Opened:
    """The request a queue body carries, and its retry marker or campaign row. Raises :class:`EnvelopeError`."""
    if campaigns.ENVELOPE_KEY in body:  # the text test first: a plain message is not parsed twice
        data = _object(body)
        if data is not None and campaigns.ENVELOPE_KEY in data:
            try:
                tag, message = campaigns.unwrap(data)
            except campaigns.InvalidEnvelopeError as exc:
                raise EnvelopeError(INVALID_CAMPAIGN, str(exc)) from None
            return Opened(dict(message), campaign=tag)
    try:
        marker, request = retries.unwrap(body)
    except retries.InvalidEnvelopeError as exc:
        raise EnvelopeError(INVALID_RETRY, str(exc)) from None
    return Opened(request, retry=marker)


def _object(body: str) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None
