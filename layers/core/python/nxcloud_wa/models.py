"""The message model: the body of NXCloud's ``POST /saas/wa/send``, exactly as its page specifies, strict on what it
knows.

Callers may leave out ``tenant_id``, ``appkey`` and ``business_phone`` when the deployment configures defaults, and the
fixed-value fields, which are filled in. Everything else missing or wrong is a validation error naming the field.
``idempotency_key`` is ours, not NXCloud's: it is removed before sending.

Size limits are deliberate bounds on what one WhatsApp template message can hold (Meta's documented limits where
there are any); they keep a malformed or hostile message from costing memory or a paid round trip.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints, model_validator
from pydantic import ValidationError as PydanticValidationError

from .exceptions import InvalidMessageError
from .languages import TEMPLATE_LANGUAGES
from .phone import normalize_phone

MAX_MESSAGE_BYTES: Final = 64 * 1024
MAX_TEXT_PARAMETER: Final = 1024
MAX_URL_TEXT_PARAMETER: Final = 2000
MAX_COUPON_CODE: Final = 15
MAX_LINK: Final = 2048
MAX_BODY_PARAMETERS: Final = 100
MAX_COMPONENTS: Final = 12
MAX_BUTTON_INDEX: Final = 9
MAX_NAME: Final = 512
MAX_APPKEY: Final = 128
MAX_IDEMPOTENCY_KEY: Final = 128
BUTTON_SUB_TYPES: Final = frozenset({"URL", "COPY_CODE"})


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def _language(value: str) -> str:
    if value not in TEMPLATE_LANGUAGES:
        raise ValueError("must be one of NXCloud's template language codes (e.g. en_US, pt_BR, zh_CN)")
    return value


def _button_sub_type(value: str) -> str:
    if value.upper() not in BUTTON_SUB_TYPES:
        raise ValueError("must be URL or COPY_CODE (any case)")
    return value


UrlText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_URL_TEXT_PARAMETER), AfterValidator(_non_blank)]
"""A text parameter's text: URL-button texts may be longer than body texts (see ``BodyComponent``)."""
CouponCode = Annotated[str, StringConstraints(min_length=1, max_length=MAX_COUPON_CODE), AfterValidator(_non_blank)]


Phone = Annotated[str, StringConstraints(max_length=32), AfterValidator(normalize_phone)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=MAX_APPKEY, pattern=r"^\S+$")]
TenantId = Annotated[StrictInt, Field(gt=0, le=2**63 - 1)]


class _Strict(BaseModel):
    """Unknown fields are errors: a typo (``langauge``) must not be silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Image(_Strict):
    link: Annotated[str, StringConstraints(min_length=1, max_length=MAX_LINK), AfterValidator(_http_url)]


class TextParameter(_Strict):
    type: Literal["text"]
    text: UrlText


class ImageParameter(_Strict):
    type: Literal["image"]
    image: Image


class CouponCodeParameter(_Strict):
    type: Literal["coupon_code"]
    coupon_code: CouponCode


def _max_len(param: TextParameter, limit: int) -> TextParameter:
    if len(param.text) > limit:
        raise ValueError(f"text must have at most {limit} characters")
    return param


class HeaderComponent(_Strict):
    """The template's header variable: one image."""

    type: Literal["header"]
    parameters: Annotated[list[ImageParameter], Field(min_length=1, max_length=1)]


class BodyComponent(_Strict):
    """The body variables, in the template's order; a variable used twice is given twice."""

    type: Literal["body"]
    parameters: Annotated[
        list[Annotated[TextParameter, AfterValidator(lambda p: _max_len(p, MAX_TEXT_PARAMETER))]],
        Field(min_length=1, max_length=MAX_BODY_PARAMETERS),
    ]


class ButtonComponent(_Strict):
    """A button variable: ``URL`` takes a ``text`` parameter, ``COPY_CODE`` a ``coupon_code`` parameter.

    ``sub_type`` is accepted in any case (the page itself writes ``url``) and sent as written.
    """

    type: Literal["button"]
    sub_type: Annotated[str, StringConstraints(min_length=1, max_length=16), AfterValidator(_button_sub_type)]
    index: Annotated[StrictInt, Field(ge=0, le=MAX_BUTTON_INDEX)]
    parameters: Annotated[
        list[Annotated[TextParameter | CouponCodeParameter, Field(discriminator="type")]],
        Field(min_length=1, max_length=1),
    ]

    @model_validator(mode="after")
    def _parameter_matches_sub_type(self) -> ButtonComponent:
        kind = self.sub_type.upper()
        wanted = "text" if kind == "URL" else "coupon_code"
        if self.parameters[0].type != wanted:
            raise ValueError(f"a {kind} button takes a parameter of type {wanted!r}")
        return self


Component = Annotated[HeaderComponent | BodyComponent | ButtonComponent, Field(discriminator="type")]


class Language(_Strict):
    code: Annotated[str, AfterValidator(_language)]
    policy: Literal["deterministic"] = "deterministic"


class Template(_Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^\S+$")]
    language: Language
    components: Annotated[list[Component], Field(max_length=MAX_COMPONENTS)] | None = None

    @model_validator(mode="after")
    def _components_are_consistent(self) -> Template:
        kinds = [c.type for c in self.components or ()]
        for kind in ("header", "body"):
            if kinds.count(kind) > 1:
                raise ValueError(f"a template has at most one {kind} component")
        indexes = [c.index for c in self.components or () if isinstance(c, ButtonComponent)]
        if len(indexes) != len(set(indexes)):
            raise ValueError("two button components have the same index")
        return self


class SendRequest(_Strict):
    """A message as callers send it: NXCloud's body, defaults optional, plus our optional ``idempotency_key``."""

    tenant_id: TenantId | None = None
    appkey: Token | None = None
    business_phone: Phone | None = None
    messaging_product: Literal["whatsapp"] = "whatsapp"
    recipient_type: Literal["individual"] = "individual"
    to: Phone
    type: Literal["template"] = "template"
    template: Template
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)] | None = None

    def to_upstream(self, defaults: Defaults) -> dict[str, Any]:
        """The complete NXCloud body: the message's values, else the defaults; raises if one is still missing."""
        body: dict[str, Any] = {
            "tenant_id": self.tenant_id if self.tenant_id is not None else defaults.tenant_id,
            "appkey": self.appkey if self.appkey is not None else defaults.appkey,
            "business_phone": self.business_phone if self.business_phone is not None else defaults.business_phone,
        }
        missing = [name for name, value in body.items() if value is None]
        if missing:
            raise InvalidMessageError(
                [
                    {
                        "loc": [name],
                        "msg": f"{name} is required: give it in the message or configure a default",
                        "type": "missing",
                    }
                    for name in missing
                ]
            )
        body.update(self.model_dump(mode="json", exclude_none=True, exclude={"idempotency_key", *body}))
        return body


class Defaults(_Strict):
    """Deployment-wide values for the fields a message may leave out (environment over secret, message over both)."""

    tenant_id: TenantId | None = None
    appkey: Token | None = None
    business_phone: Phone | None = None


def parse_message(raw: str | bytes | dict[str, Any]) -> SendRequest:
    """Validate a message given as JSON text or as already-decoded data; raise :class:`InvalidMessageError`."""
    try:
        if isinstance(raw, dict):
            return SendRequest.model_validate(raw)
        size = len(raw.encode("utf-8") if isinstance(raw, str) else raw)
        if size > MAX_MESSAGE_BYTES:
            raise InvalidMessageError(
                [{"loc": [], "msg": f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}", "type": "too_large"}]
            )
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise InvalidMessageError([{"loc": [], "msg": "message must be a JSON object", "type": "model_type"}])
        return SendRequest.model_validate(data)
    except PydanticValidationError as exc:
        raise InvalidMessageError(field_errors(exc)) from None
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError and invalid UTF-8 are ValueErrors
        raise InvalidMessageError(
            [{"loc": [], "msg": f"message is not valid JSON: {exc}", "type": "json_invalid"}]
        ) from None


def field_errors(exc: PydanticValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to location, message and type; the rejected values are left out on purpose."""
    return [{"loc": list(e["loc"]), "msg": _message(e), "type": e["type"]} for e in exc.errors(include_url=False)]


def _message(error: Any) -> str:
    """Pydantic's message, except where it quotes the input: an unknown tag (``"type": "footer"``) is not repeated."""
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"{ctx.get('discriminator', 'type')} must be one of {ctx.get('expected_tags', '(see the page)')}"
    return str(error["msg"])
