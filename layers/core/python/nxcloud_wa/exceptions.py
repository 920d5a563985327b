"""Exceptions of the NXCloud send core.

Every failure to send becomes an :class:`SendError` that carries NXCloud's ``code``, ``message`` and ``traceId``
when there are any, and an :class:`~nxcloud_wa.error_codes.ErrorClass`. Callers decide what to do from the class
alone: dead-letter a permanent error, retry a retryable one. Messages never contain credentials or signatures,
nor a full phone number: NXCloud's own text is quoted with its numbers masked, since an error's message ends up in
logs, tracebacks, dead-letter attributes and API answers.
"""

from .error_codes import CodeInfo, ErrorClass
from .phone import redact_numbers


class NXCloudWAError(Exception):
    """Base class of every error raised by this package."""


class ConfigurationError(NXCloudWAError):
    """The deployment is missing a setting or the secret is malformed; names what is missing, never its value."""


class SendError(NXCloudWAError):
    """NXCloud did not accept the message.

    ``reason`` is a short machine-readable tag (``nxcloud_code``, ``http_status``, ``timeout``, ...) used in logs,
    metrics and dead-letter attributes.
    """

    error_class: ErrorClass = ErrorClass.RETRYABLE

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        code: int | None = None,
        trace_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.code = code
        self.trace_id = trace_id
        self.http_status = http_status

    def as_dict(self) -> dict[str, object]:
        """The error as plain data, for API answers and dead-letter attributes."""
        return {
            "error_class": str(self.error_class),
            "reason": self.reason,
            "code": self.code,
            "message": self.message,
            "trace_id": self.trace_id,
        }


class PermanentSendError(SendError):
    """The message itself is wrong or undeliverable: sending it again cannot help."""

    error_class = ErrorClass.PERMANENT


class RetryableSendError(SendError):
    """Upstream trouble, throttling, a timeout or the account's state: a later attempt may succeed."""

    error_class = ErrorClass.RETRYABLE


class AuthError(RetryableSendError):
    """NXCloud refused the credentials or signature (codes 1000-100X): refresh the secret once and retry once."""


class UnknownOutcomeError(RetryableSendError):
    """The request reached NXCloud but no usable answer came back (read timeout, dropped or garbled response).

    NXCloud may or may not have sent the message. Resending risks a duplicate; not resending risks a loss. The client
    never resends these itself; the deployment's ``UNKNOWN_OUTCOME_POLICY`` decides.
    """


def error_for_code(code: int, info: CodeInfo, message: str, trace_id: str | None) -> SendError:
    """Build the exception NXCloud's non-zero ``code`` calls for.

    NXCloud's ``message`` can quote a number (22049: ``business_phone={0}的商户不存在``): it is masked here, once, so
    that no consumer of the exception (a traceback included) carries it whole.
    """
    text = f"NXCloud code {code}: {redact_numbers(message) or info.message} ({info.meaning})"
    if info.auth:
        return AuthError(text, reason="nxcloud_auth", code=code, trace_id=trace_id)
    cls = PermanentSendError if info.error_class is ErrorClass.PERMANENT else RetryableSendError
    return cls(text, reason="nxcloud_code", code=code, trace_id=trace_id)
