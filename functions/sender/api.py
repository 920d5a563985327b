"""The REST API: ``POST /messages``, validated by Powertools' resolver, which also generates ``openapi.json``.

Answers:

* ``200 {"message_id", "trace_id"}``: sent (or a repeated idempotency key: the first answer, not sent again, with
  ``Idempotent-Replayed: true``).
* ``202 {"status": "queued", "queue_message_id"}``: ``Prefer: respond-async``; the message was validated and put on
  the send queue, which delivers it like any other queued message.
* ``400``: invalid input (malformed JSON included), with the list of field errors.
* ``409``: a request with the same idempotency key is still being sent.
* ``413``: the body is larger than a message can be; ``415``: the body is not JSON.
* ``422``: NXCloud rejected the message permanently (its ``code`` and ``message``), or the idempotency key was used
  for a different message.
* ``502``/``503``/``504``: retryable upstream trouble: a bad answer, throttling or unavailability, a timeout
  (``504`` with ``error: unknown_outcome`` means NXCloud may have sent it: see README).
* ``403`` (no or a wrong ``x-api-key``) and ``429`` (the usage plan's throttle) come from API Gateway itself, as
  ``{"message": ...}``; they are in the document because clients get them from this API.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Header
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from pydantic import BaseModel

import runtime
from dead_letter import attributes, send_to_dlq, sqs_text
from delivery import SENT
from nxcloud_wa.exceptions import ConfigurationError, PermanentSendError, RetryableSendError
from nxcloud_wa.models import MAX_IDEMPOTENCY_KEY, InvalidMessageError, SendRequest
from observability import count, log_failure, log_sent, logger, tracer, upstream_latency
from outcomes import Failure, failure_for, failure_for_unknown_outcome

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


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str
    message: str
    code: int | str | None = None
    trace_id: str | None = None
    errors: list[FieldError] | None = None


class GatewayError(BaseModel):
    """API Gateway's own answer, given before the function is called."""

    message: str


def _doc(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": model}}}


RESPONSES: Final = {
    200: _doc("Sent: NXCloud's message_id (a repeated idempotency key returns the first answer)", SentResponse),
    202: _doc("Queued (Prefer: respond-async): delivered through the send queue", QueuedResponse),
    400: _doc("Invalid message: the field errors", ErrorResponse),
    403: _doc("Missing or wrong x-api-key: API Gateway refuses the request (the function is not called)", GatewayError),
    409: _doc("The same idempotency key is being sent right now: retry later", ErrorResponse),
    413: _doc("Body too large", ErrorResponse),
    415: _doc("Body is not application/json", ErrorResponse),
    422: _doc("NXCloud rejected the message permanently, or the idempotency key was reused", ErrorResponse),
    429: _doc("The API key's usage plan is throttling: retry later (answered by API Gateway)", GatewayError),
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
    credentials = rt.sender.credentials()
    key = key or app.current_event.request_context.request_id
    outcome = rt.delivery.deliver(
        message, key, credentials, on_unknown=lambda unknown: _try_dead_letter(rt, message, unknown, key)
    )
    if outcome.get("status") == SENT:
        log_sent(message, outcome, key)
        count("MessagesSent")
        if not outcome.get("replayed") and outcome.get("latency_ms") is not None:
            upstream_latency(outcome["latency_ms"])
        headers = {"Idempotent-Replayed": "true"} if outcome.get("replayed") else None
        body = {"message_id": outcome["message_id"], "trace_id": outcome.get("trace_id")}
        return Response(200, content_types.APPLICATION_JSON, body, headers=headers)
    return _unknown_outcome(rt, message, outcome, key)


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
    message_attributes = {"idempotency_key": {"DataType": "String", "StringValue": sqs_text(key)}} if key else {}
    sent = rt.sqs.send_message(
        QueueUrl=rt.settings.send_queue_url,
        MessageBody=sqs_text(app.current_event.decoded_body or ""),
        MessageAttributes=message_attributes,
    )
    logger.info("message queued", extra={"outcome": "queued", "queue_message_id": sent["MessageId"]})
    count("MessagesQueued")
    return Response(
        202,
        content_types.APPLICATION_JSON,
        {"status": "queued", "queue_message_id": sent["MessageId"]},
        headers={"Preference-Applied": "respond-async"},
    )


def _unknown_outcome(rt: runtime.Runtime, message: SendRequest, outcome: dict[str, Any], key: str) -> Response[Any]:
    """NXCloud may have sent it: record it in the DLQ for a person to check, and tell the caller.

    The dead letter is written before the outcome is stored (``_try_dead_letter``), and the stored outcome says
    whether that worked. If it did not, every later call with the key writes it (and a failure here answers 503, so
    the caller retries): a replayed 504 always means the message is on the DLQ.
    """
    failure = failure_for_unknown_outcome(outcome)
    if not outcome.get("dead_lettered"):
        _dead_letter(rt, message, failure, key)
    return _error(504, failure, "NXCloud may or may not have sent this message; it was recorded for review")


def _try_dead_letter(rt: runtime.Runtime, message: SendRequest, outcome: dict[str, Any], key: str) -> bool:
    """Dead-letter a fresh unknown outcome; False (logged) when the DLQ write failed."""
    try:
        _dead_letter(rt, message, failure_for_unknown_outcome(outcome), key)
    except Exception:
        logger.exception("could not write to the dead-letter queue: the next call with this key tries again")
        return False
    return True


def _dead_letter(rt: runtime.Runtime, message: SendRequest, failure: Failure, key: str) -> None:
    request_id = app.current_event.request_context.request_id
    send_to_dlq(
        rt.sqs,
        rt.settings.dlq_url,
        sqs_text(app.current_event.decoded_body or ""),
        attributes(failure, source="api", source_message_id=request_id, idempotency_key=key),
    )
    log_failure("message outcome unknown: dead-lettered", "dead_lettered", failure, message)
    count("MessagesDeadLettered", error_class=failure.error_class, error_code=failure.error_code)


def _error(status: int, failure: Failure, message: str | None = None, **extra: Any) -> Response[Any]:
    tracer.put_annotation(key="error_code", value=failure.error_code)
    body: dict[str, Any] = {
        "error": failure.reason,
        "message": message or failure.error_message,
        "code": failure.error_code,
        "trace_id": failure.trace_id,
        **extra,
    }
    return Response(status, content_types.APPLICATION_JSON, body)


def _rejected(status: int, exc: Exception, *, metric: str = "MessagesRejected", **extra: Any) -> Response[Any]:
    failure = failure_for(exc)
    log_failure("message not sent", "rejected" if status < 500 else "failed", failure, None, status=status)
    count(metric, error_class=failure.error_class, error_code=failure.error_code)
    return _error(status, failure, **extra)


@app.exception_handler([RequestValidationError, RequestUnsupportedContentType])
def _invalid_request(exc: RequestValidationError | RequestUnsupportedContentType) -> Response[Any]:
    errors = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    status = 415 if any(e["type"] == "unsupported_content_type" for e in errors) else 400
    return _rejected(status, InvalidMessageError(errors), errors=errors)


@app.exception_handler(UnicodeDecodeError)
def _not_utf8(exc: UnicodeDecodeError) -> Response[Any]:
    """A base64-encoded (binary) body that is not UTF-8: Powertools fails to decode it before validating it."""
    errors = [{"loc": ["body"], "msg": "the body is not UTF-8 text", "type": "unicode_decode"}]
    return _rejected(400, InvalidMessageError(errors), errors=errors)


@app.exception_handler(InvalidMessageError)
def _invalid_message(exc: InvalidMessageError) -> Response[Any]:
    return _rejected(400, exc, errors=exc.errors)


@app.exception_handler(PermanentSendError)
def _permanent(exc: PermanentSendError) -> Response[Any]:
    return _rejected(422, exc)


@app.exception_handler(IdempotencyValidationError)
def _key_reused(exc: IdempotencyValidationError) -> Response[Any]:
    return _rejected(422, exc)


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _in_progress(exc: IdempotencyAlreadyInProgressError) -> Response[Any]:
    return _error(409, failure_for(exc))


@app.exception_handler(RetryableSendError)
def _upstream(exc: RetryableSendError) -> Response[Any]:
    if exc.reason in ("read_timeout",):
        status = 504
    elif exc.reason in ("http_429", "http_503") or exc.code == 22125:
        status = 503
    else:
        status = 502
    return _rejected(status, exc, metric="MessagesFailed")


@app.exception_handler(ConfigurationError)
def _misconfigured(exc: ConfigurationError) -> Response[Any]:
    logger.error("misconfigured", extra={"problem": str(exc)})
    failure = Failure("misconfigured", "retryable", "configuration", "the service is misconfigured (see its logs)")
    return _error(500, failure)


@app.exception_handler(ValueError)
def _unreadable_form(exc: ValueError) -> Response[Any]:
    """Powertools reads multipart bodies itself and raises ValueError for one it cannot (no boundary, text that is
    not Latin-1): for this JSON-only API that is a 415. Any other ValueError is an unexpected error (503)."""
    content_type = app.current_event.headers.get("content-type", "").strip()
    if content_type and not content_type.startswith(content_types.APPLICATION_JSON):
        message = f"Unsupported content type: {content_type}"
        errors = [{"loc": ["body"], "msg": message, "type": "unsupported_content_type"}]
        return _rejected(415, InvalidMessageError(errors), errors=errors)
    return _unavailable(exc)


@app.exception_handler(Exception)
def _unavailable(exc: Exception) -> Response[Any]:
    """AWS dependencies (Secrets Manager, DynamoDB, SQS) failing: nothing was sent, the caller may retry."""
    logger.exception("dependency failure")
    return _rejected(503, exc, metric="MessagesFailed")


def openapi_document() -> str:
    """The OpenAPI document of this API, as committed in ``openapi.json`` (``make openapi`` writes it)."""
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

    return app.get_openapi_json_schema(
        title="NXCloud WhatsApp template sender",
        version="1.0.0",
        description="Send WhatsApp template messages through NXCloud. Every request needs the API key.",
        security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        security=[{"apiKey": []}],
    )
