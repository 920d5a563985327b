"""The REST API: ``POST /messages``, validated by Powertools' resolver, which also generates ``openapi.json``.

Answers:

* ``200 {"message_id", "trace_id"}``: sent (or a repeated idempotency key: the first answer, not sent again, with
  ``Idempotent-Replayed: true``).
* ``202 {"status": "queued", "queue_message_id"}``: ``Prefer: respond-async``; the message was validated and put on
  the send queue, which delivers it like any other queued message.
* ``400``: invalid input (malformed JSON included), with the list of field errors.
* ``409``: a request with the same idempotency key is still being sent.
* ``413``: the body is larger than a message can be; ``415``: the body is not JSON.
* ``422``: NXCloud rejected the message permanently (its ``code`` and ``message``), the message does not fit its
  template (``error: template_mismatch``, the ``message`` says what to change; ``TEMPLATE_CHECK=enforce``), the
  recipient is suppressed (``error: recipient_suppressed``, ``code`` the entry's reason; the message was skipped,
  unsent: docs/audience.md) or has reached the marketing frequency cap (``error: frequency_capped``, ``code`` the
  cap; skipped, unsent), or the idempotency key was used for a different message.
* ``429`` with ``Retry-After``: the message's business number is at its rate (``error: rate_limited``), or NXCloud
  refused it for a rate (``error: throttled``); nothing was sent. ``Prefer: respond-async`` never gets this: the
  queue sends the message when the number has capacity (docs/throughput.md).
* ``502``/``503``/``504``: retryable upstream trouble: a bad answer, unavailability, a timeout (``504`` with
  ``error: unknown_outcome`` means NXCloud may have sent it: see README).
* ``403`` (no or a wrong ``x-api-key``) and ``429`` (the usage plan's throttle) come from API Gateway itself, as
  ``{"message": ...}``; they are in the document because clients get them from this API.

The suppression list's routes (``/suppressions``, docs/audience.md) are at the end of this module.
"""

from __future__ import annotations

import json
import math
import urllib.parse
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict

import campaigns_api
import fate
import observability
import runtime
from answers import ErrorResponse, FieldError, GatewayError
from answers import doc as _doc
from answers import dump as _dump
from answers import json_answer as _json
from incoming import Incoming
from nxcloud_wa.error_codes import TOO_LARGE
from nxcloud_wa.exceptions import (
    ConfigurationError,
    InvalidMessageError,
    SuppressionsUnavailableError,
    UnsupportedMediaError,
)
from nxcloud_wa.failures import Failure, failure_for
from nxcloud_wa.models import MAX_IDEMPOTENCY_KEY, Phone, SendRequest
from nxcloud_wa.phone import mask_valid_phone, normalize_phone
from nxcloud_wa.sqs import sqs_text, string_attributes
from nxcloud_wa.suppressions import MAX_PAGE, Key, Reason, Scope, Suppression, SuppressionStore, now_iso
from observability import count, logger, tracer
from outcomes import DeadLettered, Outcome, Sent

MESSAGES_PATH: Final = "/messages"


def _json_body(text: str) -> Any:
    """``json.loads``, except that nesting too deep to decode is malformed JSON (a 400), not a RecursionError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nesting too deep", text, 0) from None


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=_json_body)


class SentResponse(BaseModel):
    message_id: str
    trace_id: str | None = None


class QueuedResponse(BaseModel):
    status: Literal["queued"]
    queue_message_id: str


class TimelineEntry(BaseModel):
    status: str
    at: str
    attempt: int | None = None
    """Only on a message sent again after a 131049 failure: which retry the entry is of (none: the original)."""
    retry_at: str | None = None
    """Only on a ``retry_scheduled`` entry: when the retry is due."""


class DeliveryError(BaseModel):
    code: int
    title: str


class ButtonClick(BaseModel):
    payload: str | None = None
    text: str | None = None
    at: str | None = None


class TemplateRef(BaseModel):
    name: str
    language: str


class SkipReason(BaseModel):
    """Why a message was skipped, unsent (docs/audience.md): ``reason`` ``suppressed``, with the suppression entry's
    reason, scope and source; or ``frequency_cap``, with the marketing frequency cap it reached (``cap``, e.g.
    ``1/24h``)."""

    reason: str
    suppression_reason: str | None = None
    scope: str | None = None
    source: str | None = None
    cap: str | None = None


class Attempt(BaseModel):
    """One attempt of a message sent again after Meta's marketing limit (131049): 0 the original, then each retry."""

    attempt: int
    message_id: str | None
    status: str
    errors: list[DeliveryError]


class MessageStatus(BaseModel):
    """A message's delivery status as NXCloud's callbacks reported it (see docs/lifecycle.md), or ``skipped``: the
    sender did not send it (``skipped`` says why; ``message_id`` is then ``skip#`` and its idempotency key)."""

    message_id: str
    idempotency_key: str | None
    status: Literal["accepted", "sent", "delivered", "read", "failed", "deleted", "skipped", "retry_scheduled"]
    matched: bool
    """False for callbacks whose id matches no message this deployment sent."""
    template: TemplateRef | None
    to: str | None
    """The recipient, masked."""
    timeline: list[TimelineEntry]
    errors: list[DeliveryError]
    buttons: list[ButtonClick]
    skipped: SkipReason | None = None
    """Only on a skipped message."""
    attempts: list[Attempt] | None = None
    """Only on a message sent again after a 131049 failure: each attempt; ``status`` and ``errors`` are the last's."""


class TooManyRequests(BaseModel):
    """Throttled: by API Gateway's usage plan (``message`` only), or by the business number's rate (``error``
    ``rate_limited`` or ``throttled``, with ``Retry-After``)."""

    message: str
    error: str | None = None
    code: int | str | None = None
    trace_id: str | None = None


RESPONSES: Final = {
    200: _doc("Sent: NXCloud's message_id (a repeated idempotency key returns the first answer)", SentResponse),
    202: _doc("Queued (Prefer: respond-async): delivered through the send queue", QueuedResponse),
    400: _doc("Invalid message: the field errors", ErrorResponse),
    403: _doc("Missing or wrong x-api-key: API Gateway refuses the request (the function is not called)", GatewayError),
    409: _doc("The same idempotency key is being sent right now: retry later", ErrorResponse),
    413: _doc("Body too large", ErrorResponse),
    415: _doc("Body is not application/json", ErrorResponse),
    422: _doc(
        "NXCloud rejected the message permanently, the message does not fit its template (template_mismatch), the "
        "recipient is suppressed (recipient_suppressed, code: the entry's reason; skipped, not sent), the recipient "
        "has reached the marketing frequency cap (frequency_capped, code: the cap; skipped, not sent), or the "
        "idempotency key was reused",
        ErrorResponse,
    ),
    429: _doc(
        "Throttled: the API key's usage plan (API Gateway), or the business number is at its rate (error "
        "rate_limited, or throttled by NXCloud): nothing was sent; retry after Retry-After seconds, or send with "
        "Prefer: respond-async",
        TooManyRequests,
    ),
    500: _doc("The deployment is misconfigured", ErrorResponse),
    502: _doc("NXCloud gave a bad or failed answer: retry", ErrorResponse),
    503: _doc("NXCloud or an AWS dependency is throttling or unavailable: retry", ErrorResponse),
    504: _doc("NXCloud timed out; error unknown_outcome means it may have sent the message", ErrorResponse),
}


@app.post(
    MESSAGES_PATH,
    summary="Send a WhatsApp template message through NXCloud",
    description="The body is NXCloud's send body; tenant_id, appkey, business_phone and the fixed-value fields may "
    "be left out when the deployment configures them.",
    responses=RESPONSES,
    tags=["messages"],
)
def post_message(
    message: Annotated[SendRequest, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            description="Sending again with the same key returns the first answer instead of sending twice",
        ),
    ] = None,
    prefer: Annotated[
        str | None, Header(alias="Prefer", description="respond-async: enqueue and answer 202 at once")
    ] = None,
) -> Response[Any]:
    rt = runtime.get()
    key = _idempotency_key(idempotency_key, message.idempotency_key)
    if prefer and "respond-async" in prefer.lower():
        return _enqueue(rt, key)
    request_id = app.current_event.request_context.request_id
    incoming = Incoming(
        body=sqs_text(app.current_event.decoded_body or ""),
        source="api",
        source_id=request_id,
        key=key,
        request=message,
    )
    remaining_ms = app.lambda_context.get_remaining_time_in_millis()
    [outcome] = rt.delivery.deliver([incoming], remaining_ms=remaining_ms, dead_letter_rejections=False)
    return _answer(outcome)


@app.get(
    MESSAGES_PATH + "/<message_id>",
    summary="What happened to a message: its status, timeline, errors and button clicks",
    description="message_id is NXCloud's message_id (as the send answered it) or the message's idempotency key.",
    responses={
        200: _doc("The message's current status and timeline", MessageStatus),
        400: _doc("The id is not one a message can have (1 to 128 characters)", ErrorResponse),
        403: RESPONSES[403],
        404: _doc("No message with this id or idempotency key (or delivery tracking is off)", ErrorResponse),
        429: _doc("Throttled by the API key's usage plan (API Gateway): retry later", GatewayError),
        503: _doc("The messages table could not be read: retry", ErrorResponse),
    },
    tags=["messages"],
)
def get_message(message_id: Annotated[str, Path(min_length=1, max_length=MAX_IDEMPOTENCY_KEY)]) -> Response[Any]:
    timeline = runtime.get().timeline
    found = timeline.find(message_id) if timeline is not None else None
    return _json(200, MessageStatus.model_validate(found)) if found is not None else _no_such_message()


def too_large(limit: int) -> dict[str, Any]:
    """The 413 for a body over ``limit`` bytes, as a REST proxy answer: app.py gives it before the resolver runs."""
    body = ErrorResponse(error=TOO_LARGE.reason, message=f"the body must be at most {limit} bytes")
    return {
        "statusCode": TOO_LARGE.api_status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(_dump(body)),
    }


def _no_such_message() -> Response[Any]:
    return _json(404, ErrorResponse(error="not_found", message="no message with this id or idempotency key"))


def _answer(outcome: Outcome) -> Response[Any]:
    """The HTTP answer for a delivery's outcome; its status comes from the error table."""
    if isinstance(outcome, Sent):
        headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
        return _json(200, SentResponse(message_id=outcome.message_id, trace_id=outcome.trace_id), headers=headers)
    if isinstance(outcome, DeadLettered):  # only an unknown outcome is dead-lettered on this path
        return _error(outcome.failure, "NXCloud may or may not have sent this message; it was recorded for review")
    return _error(outcome.failure)


def _idempotency_key(header: str | None, field: str | None) -> str | None:
    if header and field and header != field:
        raise InvalidMessageError(
            [{"loc": ["header", "Idempotency-Key"], "msg": "differs from the body's idempotency_key", "type": "value"}]
        )
    return header or field


def _enqueue(rt: runtime.Runtime, key: str | None) -> Response[Any]:
    """Put the body, as received, on the send queue; the key travels as a message attribute.

    A valid body can still hold characters SQS refuses (U+FFFE, U+FFFF) inside its strings: they go as JSON escapes,
    which decode to the same message. So can a body's ``idempotency_key`` (``"\\b"``): the attribute carries it
    escaped, and the queue's consumer reads the body's key first, so the key stays the same. (A header cannot hold
    such characters: HTTP forbids control characters, and U+FFFE is not Latin-1.)
    """
    message_attributes = string_attributes({"idempotency_key": key})
    sent = rt.sqs.send_message(
        QueueUrl=rt.settings.send_queue_url,
        MessageBody=sqs_text(app.current_event.decoded_body or ""),
        MessageAttributes=message_attributes,
    )
    logger.info("message queued", extra={"outcome": "queued", "queue_message_id": sent["MessageId"]})
    count("MessagesQueued")
    body = QueuedResponse(status="queued", queue_message_id=sent["MessageId"])
    return _json(202, body, headers={"Preference-Applied": "respond-async"})


def _error(failure: Failure, message: str | None = None) -> Response[Any]:
    tracer.put_annotation(key="error_code", value=failure.error_code)
    headers = None
    if failure.retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(failure.retry_after)))}
    return _json(failure.api_status, _failure_body(failure, message), headers=headers)


def _failure_body(failure: Failure, message: str | None) -> ErrorResponse | TooManyRequests:
    """A failure's body, in the model the document names for its status (``TooManyRequests`` for a 429); its field
    errors only when it has some."""
    model = TooManyRequests if failure.api_status == HTTPStatus.TOO_MANY_REQUESTS else ErrorResponse
    body = model(
        error=failure.reason,
        message=message or failure.error_message,
        code=failure.error_code,
        trace_id=failure.trace_id,
    )
    if failure.errors and isinstance(body, ErrorResponse):  # only an invalid message (a 400) has field errors
        body.errors = [FieldError.model_validate(e) for e in failure.errors]
    return body


def _refused(failure: Failure) -> Response[Any]:
    """A request refused before the delivery flow (unreadable, invalid, or a dependency failing): reported alike."""
    outcome = fate.refused(failure)
    request_id = app.current_event.request_context.request_id
    observability.report(outcome, None, None, Incoming(body="", source="api", source_id=request_id))
    return _error(failure)


@app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
def _invalid_request(exc: RequestValidationError | RequestUnsupportedContentType) -> Response[Any]:
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    unsupported = any(e["type"] == "unsupported_content_type" for e in errors)
    return _refused(failure_for(UnsupportedMediaError(errors) if unsupported else InvalidMessageError(errors)))


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(exc: UnicodeDecodeError) -> Response[Any]:
    """A base64-encoded (binary) body that is not UTF-8: Powertools fails to decode it before validating it."""
    errors = [{"loc": ["body"], "msg": "the body is not UTF-8 text", "type": "unicode_decode"}]
    return _refused(failure_for(InvalidMessageError(errors)))


@app.exception_handler(InvalidMessageError)
def _invalid_message(exc: InvalidMessageError) -> Response[Any]:
    return _refused(failure_for(exc))


@app.exception_handler(ValueError)
def _unreadable_form(exc: ValueError) -> Response[Any]:
    """Powertools reads multipart bodies itself and raises ValueError for one it cannot (no boundary, text that is
    not Latin-1): for this JSON-only API that is a 415. Any other ValueError is an unexpected error (503)."""
    content_type = app.current_event.headers.get("content-type", "").strip()
    if content_type and not content_type.startswith(content_types.APPLICATION_JSON):
        message = f"Unsupported content type: {content_type}"
        errors = [{"loc": ["body"], "msg": message, "type": "unsupported_content_type"}]
        return _refused(failure_for(UnsupportedMediaError(errors)))
    return _failed_before_delivery(exc)


@app.exception_handler(NotFoundError)
def _no_route(exc: NotFoundError) -> Response[Any]:
    """API Gateway sent a path the resolver's routes do not match: in practice an id with characters no route
    parameter takes (a control character, a slash). No message can be found under it: 404, not the 503 that the
    catch-all below would answer (schemathesis found that one under ``sam local start-api``). Under
    ``/suppressions/`` it is a number that is not one: the 400 of any bad number (schemathesis again)."""
    if app.current_event.path.startswith(SUPPRESSIONS_PATH + "/"):
        return _refused(failure_for(_invalid(("path", "number"), "not a phone number", "value_error")))
    return _no_such_message()


@app.exception_handler(Exception)
def _unavailable(exc: Exception) -> Response[Any]:
    return _failed_before_delivery(exc)


def _failed_before_delivery(exc: Exception) -> Response[Any]:
    """A dependency failing before the delivery (the runtime's configuration, SQS for respond-async): nothing was
    sent, and the caller may retry. A misconfiguration is a 500 whose details only the log has."""
    logger.exception("request failed before delivery")
    return _refused(failure_for(exc))


def openapi_document() -> str:
    """The OpenAPI document of this API, as committed in ``openapi.json`` (``make openapi`` writes it)."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    document = app.get_openapi_json_schema(
        title="NXCloud WhatsApp template sender",
        version="1.0.0",
        description="Send WhatsApp template messages through NXCloud. Every request needs the API key.",
        security_schemes={"apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header})},
        security=[{"apiKey": []}],
    )
    cleaned = _without_body_for_no_content(_without_validation_error(json.loads(document)))
    return json.dumps(cleaned, indent=2, ensure_ascii=False)


VALIDATION_ERROR_SCHEMAS: Final = ("HTTPValidationError", "ResponseValidationError", "ValidationError")
"""The schemas Powertools adds for its own validation answers, which this API never gives."""


def _without_validation_error(document: dict[str, Any]) -> dict[str, Any]:
    """The document without Powertools' 422 ``HTTPValidationError``, which it lists for every validated route: this
    API answers a request it cannot validate with a 400 ``ErrorResponse`` (``_invalid_request``), so no route gives
    it (POST's own 422, NXCloud's refusal, replaces it there; GET listed it)."""
    generated = {"$ref": "#/components/schemas/HTTPValidationError"}
    for operations in document["paths"].values():
        for operation in operations.values():
            answer = operation["responses"].get("422", {})
            if answer.get("content", {}).get(content_types.APPLICATION_JSON, {}).get("schema") == generated:
                del operation["responses"]["422"]
    for name in VALIDATION_ERROR_SCHEMAS:
        document["components"]["schemas"].pop(name, None)
    return document


# --- the suppression list: /suppressions (docs/audience.md, "API and CLI") ------------------------------------------

SUPPRESSIONS_PATH: Final = "/suppressions"
MAX_CURSOR: Final = 1024
"""Longer than any cursor :meth:`nxcloud_wa.suppressions.SuppressionStore.list` gives (about 120 characters)."""
MAX_NUMBER_TEXT: Final = 64
"""The longest path segment read as a number: a number percent-encoded with separators (``%2B86%20138...``)."""

PersonReason = Literal["manual", "opted_out"]
"""The reasons a person may give through the API: ``manual`` (only a person removes it) or ``opted_out`` (the
recipient asked through another channel; their opt-in removes it, as one of theirs). ``marketing_stopped`` and
``undeliverable`` are WhatsApp's facts, recorded from its callbacks only."""


class SuppressionRequest(BaseModel):
    """``PUT /suppressions/{number}``'s body; every field may be left out (an empty body is a manual marketing
    entry from the default business number)."""

    model_config = ConfigDict(extra="forbid")

    business_phone: Phone | None = None
    """The business number the entry is for; default: the deployment's (environment over secret), as a send's."""
    scope: Scope = Scope.MARKETING
    reason: PersonReason = "manual"
    expires_at: AwareDatetime | None = None
    """When the entry stops applying (ISO 8601 with an offset, in the future); none: permanent."""
    source: Literal["api", "import"] = "api"
    """What the entry records as its source: ``import`` for ``nxwa suppressions import``."""


class SuppressionEntry(BaseModel):
    """One entry of the suppression list. Numbers are shown in full: the list is the caller's own (logs mask them)."""

    number: str
    """The recipient: digits with the country code."""
    business_phone: str
    scope: Scope
    reason: Reason
    source: str
    """What created it: ``api``, ``import``, a button payload, ``keyword:<word>``, a WhatsApp error code."""
    at: str
    """When it was stored (ISO 8601, UTC)."""
    expires_at: str | None
    """When it stops applying (ISO 8601, UTC); null: permanent."""

    @classmethod
    def of(cls, entry: Suppression) -> SuppressionEntry:
        expires = now_iso(entry.expiration) if entry.expiration is not None else None
        return cls(
            number=entry.recipient,
            business_phone=entry.business_phone,
            scope=entry.scope,
            reason=entry.reason,
            source=entry.source,
            at=entry.at,
            expires_at=expires,
        )


class SuppressionPage(BaseModel):
    """One page of a business number's entries, by recipient. A page may hold fewer than ``limit`` entries while
    more follow: ask again with ``next_cursor`` until it is null."""

    items: list[SuppressionEntry]
    next_cursor: str | None


ENTRY_NOT_FOUND: Final = "no suppression entry for this number and business number"
SUPPRESSION_RESPONSES: Final[dict[int, OpenAPIResponse]] = {
    400: _doc("A number, the body, the limit or the cursor is invalid: the field errors name it", ErrorResponse),
    403: RESPONSES[403],
    429: _doc("Throttled by the API key's usage plan (API Gateway): retry later", GatewayError),
    500: _doc("The deployment is misconfigured (the NXCloud secret, for the default business number)", ErrorResponse),
    503: _doc("The suppression list could not be read or written: retry", ErrorResponse),
}
NumberPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_NUMBER_TEXT,
        description="The recipient, with country code (+8613800138000, 8613800138000; percent-encode + and spaces)",
        examples=["8613800138000"],
    ),
]
BusinessPhoneQuery = Annotated[
    Phone | None,
    Query(description="The business number the list is for; default: the deployment's default business number"),
]


@app.put(
    SUPPRESSIONS_PATH + "/<number>",
    summary="Suppress a recipient: no template (scope all) or no marketing template (scope marketing) is sent to it",
    description="Stores the entry unless a stronger one is in force (permanent over temporary, then all over "
    "marketing): the answer is the entry in force afterwards, so a kept stronger entry shows as such.",
    responses={
        200: _doc(
            "An entry was in force already: the one in force now (this one, or a stronger one kept)", SuppressionEntry
        ),
        201: _doc("Stored: there was no entry in force", SuppressionEntry),
        **SUPPRESSION_RESPONSES,
    },
    tags=["suppressions"],
)
def put_suppression(number: NumberPath, body: Annotated[SuppressionRequest | None, Body()] = None) -> Response[Any]:
    """Three requests at most: a read (was an entry in force: 200, else 201), the conditional write that applies the
    precedence without a race (:meth:`SuppressionStore.put`), and, when a stronger entry won, a read of it."""
    if not isinstance(app.current_event.json_body, dict | None):  # Powertools would read [x, ...] as x
        raise _invalid(("body",), "must be a JSON object (or no body)", "model_attributes_type")
    asked = body or SuppressionRequest()
    store = _suppressions()
    key = _key(asked.business_phone, number)
    now = store.clock()
    expiration = _expiration(asked.expires_at, now)
    entry = Suppression(*key, asked.scope, Reason(asked.reason), asked.source, now_iso(now), expiration)
    before = store.get(*key)
    stored = store.put(entry)
    in_force = entry if stored else (store.get(*key) or entry)
    logger.info(
        "suppression stored" if stored else "suppression kept",
        extra={
            "to": mask_valid_phone(key[1]),
            "scope": in_force.scope,
            "reason": in_force.reason,
            "source": in_force.source,
        },
    )
    return _json(200 if before is not None else 201, SuppressionEntry.of(in_force))


@app.delete(
    SUPPRESSIONS_PATH + "/<number>",
    summary="Remove a recipient's entry, whatever its reason",
    responses={
        204: {"description": "Removed"},
        404: _doc("No entry for this number and business number", ErrorResponse),
        **SUPPRESSION_RESPONSES,
    },
    tags=["suppressions"],
)
def delete_suppression(number: NumberPath, business_phone: BusinessPhoneQuery = None) -> Response[Any]:
    store = _suppressions()
    key = _key(business_phone, number)
    removed = store.remove(*key)
    if not removed:
        return _json(404, ErrorResponse(error="not_found", message=ENTRY_NOT_FOUND))
    logger.info("suppression removed", extra={"to": mask_valid_phone(key[1]), "source": "api"})
    return Response(204, None, None)


@app.get(
    SUPPRESSIONS_PATH + "/<number>",
    summary="A recipient's entry in force",
    responses={
        200: _doc("The entry in force", SuppressionEntry),
        404: _doc("No entry in force for this number and business number (none, or expired)", ErrorResponse),
        **SUPPRESSION_RESPONSES,
    },
    tags=["suppressions"],
)
def get_suppression(number: NumberPath, business_phone: BusinessPhoneQuery = None) -> Response[Any]:
    store = _suppressions()
    key = _key(business_phone, number)
    found = store.get(*key)
    if found is None:
        return _json(404, ErrorResponse(error="not_found", message=ENTRY_NOT_FOUND))
    return _json(200, SuppressionEntry.of(found))


@app.get(
    SUPPRESSIONS_PATH,
    summary="A business number's entries in force, paged",
    responses={200: _doc("One page of entries, and the cursor of the next", SuppressionPage), **SUPPRESSION_RESPONSES},
    tags=["suppressions"],
)
def list_suppressions(
    business_phone: BusinessPhoneQuery = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Most entries in the page")] = 100,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CURSOR, description="The previous page's next_cursor")
    ] = None,
) -> Response[Any]:
    store = _suppressions()
    business = _business_phone(business_phone)
    try:
        page = store.list(business, limit, cursor)
    except ValueError as exc:  # the number and the limit are valid here: the cursor is not one this API gave
        raise _invalid(("query", "cursor"), str(exc), "value_error") from None
    items = [SuppressionEntry.of(entry) for entry in page.entries]
    return _json(200, SuppressionPage(items=items, next_cursor=page.cursor))


def _suppressions() -> SuppressionStore:
    store = runtime.get().suppressions
    if store is None:
        raise ConfigurationError("SUPPRESSIONS_TABLE is not set")
    return store


def _business_phone(given: str | None) -> str:
    """The business number asked for, else the deployment's default (environment over secret, as a send's)."""
    if given:
        return given
    sender = runtime.get().sender
    default = sender.defaults_for(sender.credentials()).business_phone
    if default is None:
        raise _invalid(
            ("query", "business_phone"), "required: the deployment has no default business number", "missing"
        )
    return default


def _key(business_phone: str | None, number: str) -> Key:
    """The entry's key: the path's number (percent-decoded: API Gateway passes the path as sent) and the business
    number; a 400 naming ``number`` when it is not a phone number."""
    try:
        recipient = normalize_phone(urllib.parse.unquote(number))
    except ValueError as exc:
        raise _invalid(("path", "number"), str(exc), "value_error") from None
    return _business_phone(business_phone), recipient


def _expiration(expires_at: datetime | None, now: float) -> int | None:
    """``expires_at`` as the entry's TTL (epoch seconds, rounded up so it never ends early); a 400 unless it is in
    the future."""
    if expires_at is None:
        return None
    expiration = math.ceil(expires_at.timestamp())
    if expiration <= now:
        raise _invalid(("body", "expires_at"), "must be in the future", "value_error")
    return expiration


def _invalid(loc: tuple[str, ...], msg: str, kind: str) -> InvalidMessageError:
    return InvalidMessageError([{"loc": list(loc), "msg": msg, "type": kind}])


@app.exception_handler(SuppressionsUnavailableError)
def _suppressions_unavailable(exc: SuppressionsUnavailableError) -> Response[Any]:
    """The table failing (its message names the operation, never a number): nothing changed that a retry cannot."""
    logger.warning("suppression list unavailable", extra={"error": str(exc)})
    message = "the suppression list could not be read or written: retry"
    return _json(503, ErrorResponse(error="suppressions_unavailable", message=message))


def _without_body_for_no_content(document: dict[str, Any]) -> dict[str, Any]:
    """The document without a body for a ``204`` (DELETE /suppressions/{number}): Powertools documents every answer
    with the route's return type, but a 204 has none (RFC 9110), and the function sends none."""
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].get("204", {}).pop("content", None)
    return document


app.include_router(campaigns_api.router)  # /audiences and /campaigns (docs/campaigns.md), after this module's routes
