"""What NXCloud pushes to the webhook: message statuses and template button clicks (``docs/nxcloud.md``, "Webhook").

Strict where the project relies on a field (an entry's ``id``, a status from the five NXCloud reports, a Unix
``timestamp``), lenient elsewhere: fields NXCloud adds later are kept, not refused, because a refused callback is not
retried by NXCloud. A body must hold at least one entry, in ``statuses``, ``messages`` or both.

NXCloud's page documents button clicks only; an inbound text message in the Cloud API's shape (``type`` ``text``,
``text.body``) is read where it appears (the opt-out keywords, docs/audience.md), and a ``text`` that is not that
shape reads as no text, never as an invalid body.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from .exceptions import InvalidCallbackError
from .models import field_errors

MAX_ID: Final = 256

Id = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=r"^\S+$")]
UnixSeconds = Annotated[str, StringConstraints(pattern=r"^\d{1,12}$")]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class CallbackError(_Lenient):
    code: int
    title: str = ""


class StatusCallback(_Lenient):
    """One ``statuses[]`` entry."""

    id: Id
    status: Literal["sent", "delivered", "read", "failed", "deleted"]
    timestamp: UnixSeconds
    recipient_id: str | None = None
    errors: list[CallbackError] = Field(default_factory=list)
    conversation: dict[str, Any] | None = None

    @property
    def at(self) -> str:
        return iso_time(self.timestamp)


class Button(_Lenient):
    payload: str = ""
    text: str = ""


class Text(_Lenient):
    """An inbound text message's ``text``."""

    body: str


class Context(_Lenient):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None


class InboundMessage(_Lenient):
    """One ``messages[]`` entry: a template button click (``type`` ``button``), an inbound text (``type`` ``text``,
    not on NXCloud's page), or another kind, kept as it came and otherwise ignored."""

    id: Id
    from_: str = Field(alias="from")
    timestamp: UnixSeconds
    type: str
    button: Button | None = None
    text: Text | None = None
    context: Context | None = None
    wa_ext: str | None = None

    @field_validator("text", mode="wrap")
    @classmethod
    def _text_or_none(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Text | None:
        """A ``text`` that is not ``{"body": "..."}`` reads as none: the shape is undocumented, so a variant of it
        must not make NXCloud's whole body a 400."""
        try:
            parsed: Text | None = handler(value)
        except ValidationError:
            return None
        return parsed

    @property
    def at(self) -> str:
        return iso_time(self.timestamp)

    @property
    def is_button_click(self) -> bool:
        return self.type == "button" and self.button is not None

    @property
    def text_body(self) -> str | None:
        """The text of an inbound text message; None for any other entry."""
        return self.text.body if self.type == "text" and self.text is not None else None

    def template(self) -> dict[str, Any]:
        """``wa_ext`` decoded (a JSON *string*): the template's id, name and parameters; empty when it is not JSON."""
        try:
            decoded = json.loads(self.wa_ext or "")
        except ValueError:
            return {}
        if not isinstance(decoded, dict):
            return {}
        return {
            "template_id": decoded.get("templateId"),
            "template_name": decoded.get("templateName"),
            "parameters": decoded.get("components"),
        }


class WebhookBody(_Lenient):
    statuses: list[StatusCallback] = Field(default_factory=list)
    messages: list[InboundMessage] = Field(default_factory=list)
    business_phone: str | None = None
    messaging_product: Literal["whatsapp"] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> WebhookBody:
        if not self.statuses and not self.messages:
            raise ValueError("a callback holds at least one entry in statuses or messages")
        return self

    @property
    def entries(self) -> int:
        return len(self.statuses) + len(self.messages)


def parse_callback(text: str) -> WebhookBody:
    """Validate a callback body; raise :class:`InvalidCallbackError` saying what is wrong (values left out)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidCallbackError("invalid_json", f"the body is not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise InvalidCallbackError("invalid_shape", "the body must be a JSON object")
    try:
        return WebhookBody.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in field_errors(exc))
        raise InvalidCallbackError("invalid_shape", problems[:1000]) from None


def iso_time(unix_seconds: str) -> str:
    """A callback's Unix time as the ISO text the timeline keeps (UTC, milliseconds: sortable as text)."""
    return datetime.fromtimestamp(int(unix_seconds), UTC).isoformat(timespec="milliseconds")
