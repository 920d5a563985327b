"""Every exception of the project, in one hierarchy under :class:`NXCloudWAError`.

A failure to send is a :class:`SendError` carrying its :class:`~nxcloud_wa.error_codes.Classification` (reason,
class, API status) and NXCloud's ``code``, ``message`` and ``traceId`` when there are any. An exception becomes a
``nxcloud_wa.failures.Failure`` (one mapping, there), and what happens to the message is decided from that failure's
classification alone (``functions/sender/fate.py``). Messages never contain credentials or signatures, nor a full
phone number: NXCloud's own text is quoted with its numbers masked, since an error's message ends up in logs,
tracebacks, dead-letter attributes and API answers.
"""

from collections.abc import Sequence
from typing import Any

from . import error_codes
from .error_codes import Classification, Classified, CodeInfo, ErrorClass
from .phone import redact_numbers


class NXCloudWAError(Exception):
    """Base class of every error raised by the project's code."""


class ConfigurationError(NXCloudWAError):
    """The deployment is missing a setting or the secret is malformed; names what is missing, never its value."""


class InvalidMessageError(NXCloudWAError):
    """The message is not a valid send request. ``errors`` lists each problem as ``{loc, msg, type}``.

    The offending input values are not kept: they may be phone numbers, and the error ends up in logs and in
    dead-letter attributes.
    """

    classification = error_codes.INVALID_MESSAGE

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc'])) or '(message)'}: {e['msg']}" for e in errors))


class UnsupportedMediaError(InvalidMessageError):
    """The API's body is not JSON (another content type, or a form it cannot read): invalid, answered 415."""

    classification = error_codes.UNSUPPORTED_MEDIA


class InvalidCallbackError(NXCloudWAError):
    """A webhook body that is not one of NXCloud's callbacks: ``reason`` is ``invalid_json`` or ``invalid_shape``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class SuppressionsUnavailableError(NXCloudWAError):
    """The suppression list could not be read or written (DynamoDB failed, or keys stayed unprocessed after the
    retries): the caller decides by the message's category whether to send anyway or retry later
    (``nxcloud_wa.audience.when_unreadable``). The message names the operation, never a number."""


class TemplateMismatchError(NXCloudWAError):
    """The message does not fit its template in the account's catalogue: a permanent failure (``template_mismatch``).

    ``problems`` are ``(kind, text)`` pairs, one per rule broken (``nxcloud_wa.templates.Problem``); ``kind`` is the
    first one's (the ``error_code`` of logs, metrics and dead letters) and the message joins every text, so a person
    fixes them all in one round. The texts name templates and counts, never a parameter's value or a number.
    """

    classification = error_codes.TEMPLATE_MISMATCH

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        if not problems:
            raise ValueError("a template mismatch has at least one problem")
        self.problems = list(problems)
        self.kind = self.problems[0][0]
        super().__init__("; ".join(text for _, text in self.problems))


class TemplateApiError(NXCloudWAError):
    """getTemplate did not give the catalogue: a transport failure, an HTTP error, a non-zero code or an answer that
    is not its JSON. ``classification`` comes from the one table (``classify_template_code`` for codes); ``code`` is
    NXCloud's when it gave one. The template check fails open on it: the message is sent unchecked."""

    def __init__(self, message: str, classification: Classification, *, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.classification = classification
        self.code = code

    @property
    def reason(self) -> str:
        """What went wrong, for logs and metrics: NXCloud's code when it gave one, else the classification's reason."""
        return str(self.code) if self.code is not None else self.classification.reason


class DeadLetterRefusedError(NXCloudWAError):
    """SQS refused one entry of a dead-letter batch (its code and message say why)."""


class SendError(Classified, NXCloudWAError):
    """NXCloud did not accept the message, or its answer could not be read."""

    def __init__(
        self,
        message: str,
        classification: Classification,
        *,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.classification = classification
        self.code = code
        self.trace_id = trace_id
        self.http_status = http_status

    @property
    def error_code(self) -> str:
        """NXCloud's code when it gave one, else the reason: the ``error_code`` of logs, metrics and dead letters."""
        return str(self.code) if self.code is not None else self.reason


class PermanentSendError(SendError):
    """The message itself is wrong or undeliverable: sending it again cannot help."""


class RetryableSendError(SendError):
    """Upstream trouble, throttling or the account's state, and nothing was sent: a later attempt may succeed."""


class ThrottledError(RetryableSendError):
    """NXCloud or WhatsApp refused the send for a rate (HTTP 429, Meta's 130429 or 131056 in NXCloud's text): nothing
    was sent. Not a failure of the message: the delivery puts it back with a delay (``retry_after`` seconds when the
    answer said, else its own estimate) instead of spending one of its attempts."""

    def __init__(
        self,
        message: str,
        *,
        throttle_code: str,
        retry_after: float | None = None,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, error_codes.THROTTLED, code=code, trace_id=trace_id, http_status=http_status)
        self.throttle_code = throttle_code
        """``http_429``, ``130429`` or ``131056``: which throttle (the ``error_code`` of logs and metrics)."""
        self.retry_after = retry_after

    @property
    def error_code(self) -> str:
        return self.throttle_code

    @property
    def per_recipient(self) -> bool:
        """Meta's pair rate limit: the recipient had too many messages, not the number."""
        return self.throttle_code == str(error_codes.PAIR_RATE_CODE)


class AuthError(RetryableSendError):
    """NXCloud refused the credentials or signature (codes 1000-100X): refresh the secret once and retry once."""


class UnknownOutcomeError(SendError):
    """The request reached NXCloud but no usable answer came back (read timeout, dropped or garbled response).

    NXCloud may or may not have sent the message. Resending risks a duplicate; not resending risks a loss. The client
    never resends these itself; the deployment's ``UNKNOWN_OUTCOME_POLICY`` decides.
    """


_SEND_ERRORS: dict[ErrorClass, type[SendError]] = {
    ErrorClass.PERMANENT: PermanentSendError,
    ErrorClass.RETRYABLE: RetryableSendError,
    ErrorClass.UNKNOWN: UnknownOutcomeError,
}


def send_error(
    message: str,
    classification: Classification,
    *,
    code: int | None = None,
    trace_id: str | None = None,
    http_status: int | None = None,
) -> SendError:
    """The exception a classification calls for: its class (permanent, retryable, unknown) picks the type, so the
    table alone decides (a read timeout is an :class:`UnknownOutcomeError` because ``READ_TIMEOUT`` is unknown)."""
    return _SEND_ERRORS[classification.error_class](
        message, classification, code=code, trace_id=trace_id, http_status=http_status
    )


def error_for_code(code: int, info: CodeInfo, message: str, trace_id: str | None) -> SendError:
    """Build the exception NXCloud's non-zero ``code`` calls for.

    NXCloud's ``message`` can quote a number (22049: ``business_phone={0}的商户不存在``): it is masked here, once, so
    that no consumer of the exception (a traceback included) carries it whole.
    """
    text = f"NXCloud code {code}: {redact_numbers(message) or info.message} ({info.meaning})"
    meta_code = error_codes.throttle_code_in(message)
    if meta_code is not None:
        return ThrottledError(text, throttle_code=str(meta_code), code=code, trace_id=trace_id)
    if info.auth:
        return AuthError(text, info.classification, code=code, trace_id=trace_id)
    return send_error(text, info.classification, code=code, trace_id=trace_id)


def error_for_http_status(status: int, retry_after: str | None = None) -> SendError:
    """Build the exception an HTTP answer without an NXCloud code calls for (``retry_after``: its header, if any)."""
    if status == error_codes.THROTTLE_STATUS:
        return ThrottledError(
            f"NXCloud answered HTTP {status} (not processed: over its rate)",
            throttle_code=f"http_{status}",
            retry_after=parse_retry_after(retry_after),
            http_status=status,
        )
    classification = error_codes.classify_http_status(status)
    return send_error(f"NXCloud answered HTTP {status}", classification, http_status=status)


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's delay in seconds (its delta-seconds form; an HTTP date or garbage gives None)."""
    text = (value or "").strip()
    return float(text) if text.isascii() and text.isdecimal() else None
