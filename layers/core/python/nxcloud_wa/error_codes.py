"""What every failure means for a message: the one table the project keeps.

Every classification is read from here: NXCloud's response codes (the send page's table, the signing page's auth
codes and the getTemplate page's codes, all described in ``docs/nxcloud.md``), HTTP statuses without a code, the
client's transport conditions (timeouts, dropped connections), and the delivery's own conditions (an invalid message,
a reused key, a message that does not fit its template). Each gets a
``reason`` (the machine-readable tag of logs, metrics, dead-letter attributes and API error bodies), an
:class:`ErrorClass` and the HTTP status the REST API answers with.

* ``permanent``: the message itself is wrong or cannot be delivered; sending it again cannot help. The queue
  dead-letters it at once with the reason; the API answers 4xx.
* ``retryable``: nothing was sent, and a later attempt may succeed. The queue retries it (the redrive policy
  dead-letters it when receives run out); the API answers 5xx (or 409), and the caller may retry.
* ``unknown``: the request reached NXCloud and no usable answer came back, so NXCloud may have sent it. What happens
  is the deployment's ``UNKNOWN_OUTCOME_POLICY``: dead-lettered for a person to check, or retried.

* a **throttle** (``throttled``, ``rate_limited``) is retryable but is no failure of the message: the business number
  is at its rate (NXCloud's HTTP 429, Meta's 130429 quoted in NXCloud's text, or this stack's own limiter holding it
  back), or the recipient had too many messages (Meta's 131056). The queue puts it back with a delay without spending
  a receive; the API answers 429 with ``Retry-After`` (docs/throughput.md).

Auth codes (1000-100X) are retryable and flagged ``auth``: the sender re-reads the secret once and tries once more,
because a rotated secret is the usual cause. A code not in the table is retryable (``UNKNOWN_CODE``): NXCloud
answered, so nothing was sent, and a bounded number of retries is cheaper than dead-lettering every message during an
upstream incident that introduces a new code.
"""

import re
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ErrorClass(StrEnum):
    """What a failure means for the message."""

    PERMANENT = "permanent"
    RETRYABLE = "retryable"
    UNKNOWN = "unknown"


# The REST API's answer for each class, unless a row says otherwise.
API_STATUS_PERMANENT: Final = 422
API_STATUS_RETRYABLE: Final = 502
API_STATUS_UNAVAILABLE: Final = 503


@dataclass(frozen=True, slots=True)
class Classification:
    """One kind of failure: its tag, its class and the REST API's status for it."""

    reason: str
    error_class: ErrorClass
    api_status: int
    meaning: str


class Classified:
    """What carries a :class:`Classification` (a failure, a send error) reads its reason, class and API status through
    it, so the two never say different things."""

    __slots__ = ()
    classification: Classification

    @property
    def reason(self) -> str:
        return self.classification.reason

    @property
    def error_class(self) -> ErrorClass:
        return self.classification.error_class

    @property
    def api_status(self) -> int:
        return self.classification.api_status


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One NXCloud code: its own wording, our English reading, and the consequence."""

    message: str
    meaning: str
    error_class: ErrorClass
    auth: bool = False
    api_status: int | None = None
    """Overrides the class's usual API status (an empty balance is "unavailable", 503, not a bad gateway)."""
    recipient: bool = False
    """The code judges the recipient (an invalid number, not a WhatsApp user): a campaign's retry never re-sends
    such a row (:func:`may_pass_on_retry`)."""

    @property
    def classification(self) -> Classification:
        reason = "nxcloud_auth" if self.auth else "nxcloud_code"
        default = API_STATUS_PERMANENT if self.error_class is ErrorClass.PERMANENT else API_STATUS_RETRYABLE
        return Classification(reason, self.error_class, self.api_status or default, self.meaning)


_P, _R = ErrorClass.PERMANENT, ErrorClass.RETRYABLE

NXCLOUD_CODES: Final = MappingProxyType(
    {
        -1: CodeInfo("请求失败", "request failed upstream", _R),
        1000: CodeInfo("鉴权问题", "authentication problem", _R, auth=True),
        1001: CodeInfo("鉴权问题", "missing auth parameter (a required header is absent)", _R, auth=True),
        1002: CodeInfo("鉴权问题", "auth parameter error (bizType/action or malformed body)", _R, auth=True),
        1003: CodeInfo("鉴权问题", "invalid signature (wrong secret, or body text differs)", _R, auth=True),
        1004: CodeInfo("鉴权问题", "timestamp expired (ts over 60 s from the server clock)", _R, auth=True),
        1005: CodeInfo("鉴权问题", "insufficient permission (wrong accessKey or no permission)", _R, auth=True),
        21058: CodeInfo("参数异常", "tenant_id is required", _P),
        21059: CodeInfo("参数异常", "appkey is required", _P),
        21060: CodeInfo("参数异常", "business_phone is required", _P),
        21061: CodeInfo("参数异常", "to (recipient number) is required", _P),
        21062: CodeInfo("参数异常", "type is required, one of [template]", _P),
        21063: CodeInfo("参数异常", "template is required", _P),
        22020: CodeInfo("业务异常", "customer does not exist", _P),
        22041: CodeInfo("业务异常", "cloud platform send failed", _R),
        22042: CodeInfo("业务异常", "sending the WhatsApp message failed", _R),
        22049: CodeInfo("业务异常", "no merchant for this business_phone", _P),
        22089: CodeInfo("业务异常", "number unavailable (No Core App)", _P),
        22090: CodeInfo("业务异常", "invalid number", _P, recipient=True),
        22091: CodeInfo("业务异常", "recipient is not a WhatsApp user", _P, recipient=True),
        22092: CodeInfo("业务异常", "no such language package", _P),
        22093: CodeInfo("业务异常", "template does not exist", _P),
        22122: CodeInfo("业务异常", "application has no price for the country", _P),
        22123: CodeInfo("业务异常", "merchant phone number is wrong", _P),
        22124: CodeInfo("业务异常", "application does not exist or is unavailable", _P),
        22125: CodeInfo("业务异常", "account balance insufficient", _R, api_status=API_STATUS_UNAVAILABLE),
        22126: CodeInfo("业务异常", "WhatsApp number not bound to the application", _P),
        22141: CodeInfo("业务异常", "WhatsApp send failed (see message)", _R),
    }
)
"""NXCloud ``code`` -> its row. ``0`` (success) is not an error and is not listed."""

UNKNOWN_CODE: Final = CodeInfo("", "code not in NXCloud's published table", _R)

TEMPLATE_CODES: Final = MappingProxyType(
    {
        9000: CodeInfo("missing parameter", "getTemplate: appkey, business_phone or messaging_product is missing", _P),
        9001: CodeInfo("system error", "getTemplate: NXCloud's system error", _R),
        9002: CodeInfo(
            "the business number is not a WhatsApp number", "getTemplate: business_phone is not a WhatsApp number", _P
        ),
        9006: CodeInfo(
            "the WhatsApp number is not bound to the application",
            "getTemplate: business_phone is not bound to the appkey's application",
            _P,
        ),
    }
)
"""getTemplate's own codes (``docs/nxcloud.md`` section 6; its page lists no 9003-9005). The page gives meanings, not
Chinese texts: ``message`` is the page's meaning. ``-1`` and the auth codes are the send's rows. Whatever the
class, a failed getTemplate never decides a message's fate: the pre-flight check fails open (docs/templates.md); the
class says whether asking again later can help (``nxwa templates`` reports it)."""

PERMANENT_HTTP_STATUSES: Final = frozenset({400, 411, 413, 414, 415, 422})
"""HTTP statuses (without an NXCloud code in the body) that say this request can never be accepted.

Every other non-2xx status is retryable: 404/405 mean a wrong base URL or an upstream deploy, not a bad message."""

RETRY_IN_CLIENT_STATUSES: Final = frozenset({503})
"""Statuses after which the client resends at once (with backoff): the server refused the request unprocessed.
When they persist, the API says "unavailable" (503) rather than "bad gateway" (502). Not 429: a throttle resent at
once would spend the business number's rate again for nothing; it is delayed instead (``THROTTLED``)."""

THROTTLE_STATUS: Final = 429
"""HTTP 429 Too Many Requests: NXCloud (or a gateway in front of it) refused the request unprocessed for its rate."""

META_THROTTLE_CODES: Final = MappingProxyType(
    {
        130429: "Cloud API throughput reached: the business number is over its messages per second",
        131056: "pair rate limit: too many messages from the business number to this recipient in a short time",
    }
)
"""Meta's (WhatsApp Cloud API's) rate-limit codes. NXCloud's send page documents no rate code of its own
(docs/nxcloud.md): when WhatsApp refuses a send for its rate, NXCloud's answer may quote Meta's code in its
``message`` under another code (22141 "see message", -1, a code it does not list). A message text naming one of these
is a throttle whatever NXCloud's code, so it is delayed, never dead-lettered."""

PAIR_RATE_CODE: Final = 131056
"""The one throttle about a recipient rather than the number: only that message waits (Meta allows about one message
every 6 seconds to the same recipient), the number's other messages go on."""

_META_CODE_IN_TEXT: Final = re.compile(r"(?<!\d)(" + "|".join(map(str, META_THROTTLE_CODES)) + r")(?!\d)")


def throttle_code_in(text: str) -> int | None:
    """Meta's rate-limit code quoted in NXCloud's message text (``"(#130429) Rate limit hit"``), or None."""
    match = _META_CODE_IN_TEXT.search(text)
    return int(match.group(1)) if match else None


def classify_code(code: int) -> CodeInfo:
    """Return the table row for an NXCloud ``code``, or the deliberate default for a code the page does not list."""
    return NXCLOUD_CODES.get(code, UNKNOWN_CODE)


def classify_template_code(code: int) -> CodeInfo:
    """The row for a non-zero ``code`` of getTemplate's answer: its own codes, else the send's (-1, auth), else the
    default for a code no page lists."""
    return TEMPLATE_CODES.get(code) or NXCLOUD_CODES.get(code, UNKNOWN_CODE)


def classify_http_status(status: int) -> Classification:
    """An HTTP answer without an NXCloud code in its body."""
    if status == THROTTLE_STATUS:
        return THROTTLED
    if status in PERMANENT_HTTP_STATUSES:
        return Classification(f"http_{status}", _P, API_STATUS_PERMANENT, "NXCloud refused the request as malformed")
    api_status = API_STATUS_UNAVAILABLE if status in RETRY_IN_CLIENT_STATUSES else API_STATUS_RETRYABLE
    return Classification(f"http_{status}", _R, api_status, "NXCloud failed or is unavailable")


# What the client meets on the wire. Only a failed connection is safely retryable: once the request went out, NXCloud
# may have acted on it whatever happens next.
CONNECT_ERROR: Final = Classification("connect_error", _R, API_STATUS_RETRYABLE, "could not connect to NXCloud")
READ_TIMEOUT: Final = Classification(
    "read_timeout", ErrorClass.UNKNOWN, 504, "NXCloud did not answer within the read timeout"
)
CONNECTION_DROPPED: Final = Classification(
    "connection_dropped", ErrorClass.UNKNOWN, API_STATUS_RETRYABLE, "the connection failed after the request was sent"
)
MALFORMED_RESPONSE: Final = Classification(
    "malformed_response", ErrorClass.UNKNOWN, API_STATUS_RETRYABLE, "NXCloud's answer was not its JSON answer"
)

# The delivery's own conditions.
INVALID_MESSAGE: Final = Classification("invalid_message", _P, 400, "the message is not a valid send request")
UNSUPPORTED_MEDIA: Final = Classification("invalid_message", _P, 415, "the body is not JSON")
TOO_LARGE: Final = Classification("too_large", _P, 413, "the body is larger than a message can be")
TEMPLATE_MISMATCH: Final = Classification(
    "template_mismatch",
    _P,
    API_STATUS_PERMANENT,
    "the message does not fit its template as the account's catalogue (getTemplate) describes it; the message says "
    "what to change",
)
"""The pre-flight check's refusal (``TEMPLATE_CHECK=enforce``); its ``error_code`` names the first rule broken."""
RECIPIENT_SUPPRESSED: Final = Classification(
    "recipient_suppressed",
    _P,
    API_STATUS_PERMANENT,
    "the recipient is on the business number's suppression list for this template's category (docs/audience.md): "
    "the message was skipped, not sent; its error_code is the entry's reason",
)
"""Not a failure of the message: the queue deletes it (``skipped``, never dead-lettered); the API answers 422."""
FREQUENCY_CAPPED: Final = Classification(
    "frequency_capped",
    _P,
    API_STATUS_PERMANENT,
    "the recipient has had as many marketing templates from this business number as MarketingCapPerRecipient allows "
    "in its rolling window (docs/audience.md): the message was skipped, not sent; its error_code is the cap",
)
"""Not a failure either: skipped like a suppressed message; the API answers 422."""
SUPPRESSIONS_UNAVAILABLE: Final = Classification(
    "suppressions_unavailable",
    _R,
    API_STATUS_UNAVAILABLE,
    "the suppression list could not be read: a marketing message (or one of unknown category) is not sent now and is "
    "tried again later (utility and authentication ones are sent anyway)",
)
KEY_REUSED: Final = Classification(
    "idempotency_key_reused", _P, API_STATUS_PERMANENT, "this idempotency key was already used for a different message"
)
IN_PROGRESS: Final = Classification("in_progress", _R, 409, "a delivery with this idempotency key is in progress")
INTERRUPTED: Final = Classification(
    "interrupted",
    ErrorClass.UNKNOWN,
    504,
    "an earlier attempt with this idempotency key started and never finished (the function timed out or was "
    "stopped); NXCloud may have sent the message",
)
UNKNOWN_OUTCOME: Final = Classification(
    "unknown_outcome", ErrorClass.UNKNOWN, 504, "NXCloud may or may not have sent this message"
)
"""The dead-letter reason of every unknown outcome; its ``error_code`` names which one (``read_timeout``, ...)."""
THROTTLED: Final = Classification(
    "throttled",
    _R,
    THROTTLE_STATUS,
    "NXCloud or WhatsApp refused the send for the business number's rate (HTTP 429, Meta's 130429) or the "
    "recipient's (131056); nothing was sent, and the message is sent later",
)
"""An upstream throttle; its ``error_code`` says which (``http_429``, ``130429``, ``131056``)."""
RATE_LIMITED: Final = Classification(
    "rate_limited",
    _R,
    THROTTLE_STATUS,
    "the business number is at its rate (MessagesPerSecond, or its own in the secret's rates): the message was held "
    "back unsent, and is sent when the number has capacity",
)
"""This stack's own limiter held the message back (functions/sender/rate_limiter.py): no request was made."""
CAMPAIGN_PAUSED: Final = Classification(
    "campaign_paused",
    _R,
    409,
    "the message's campaign is paused (or not started yet): the row was put back on the queue unsent, and is sent "
    "once the campaign runs (docs/campaigns.md)",
)
"""A campaign row held back by its campaign's status: delayed like a throttle, spending no receive."""
CAMPAIGN_CANCELLED: Final = Classification(
    "campaign_cancelled", _P, 409, "the campaign was cancelled before this row was sent: the row ends cancelled, unsent"
)
"""Not a failure: the row is skipped (final, deleted from the queue, never dead-lettered)."""
CAMPAIGN_EXPIRED: Final = Classification(
    "campaign_expired",
    _P,
    409,
    "the campaign's expires_at passed before this row was sent: the row ends expired, unsent",
)
"""Not a failure either: skipped like a cancelled row."""
THROTTLE_REASONS: Final = frozenset({THROTTLED.reason, RATE_LIMITED.reason, CAMPAIGN_PAUSED.reason})
"""Reasons that delay a message without counting as one of its failed attempts (docs/throughput.md): a throttle, or a
paused campaign (docs/campaigns.md)."""
RETRIES_EXHAUSTED: Final = Classification(
    "retries_exhausted",
    _R,
    API_STATUS_RETRYABLE,
    "the message failed MaxReceiveCount times, counting the receives of the copies it was put back as after a "
    "throttle; its error_code is the last failure's",
)
"""What the function writes when a put-back copy spends the last of the message's receives (the redrive policy would
give the copy its own MaxReceiveCount). A message the redrive policy moves has no reason attribute; ``nxwa dlq list``
shows it as ``retries_exhausted`` too."""
DEAD_LETTER_FAILED: Final = Classification(
    "dlq_write_failed", _R, API_STATUS_UNAVAILABLE, "the dead-letter queue could not be written"
)
MISCONFIGURED: Final = Classification("misconfigured", _R, 500, "the service is misconfigured (see its logs)")
INTERNAL_ERROR: Final = Classification(
    "internal_error", _R, API_STATUS_UNAVAILABLE, "unexpected error or unavailable dependency (see the logs)"
)


NEVER_ON_RETRY: Final = frozenset(
    {UNKNOWN_OUTCOME.reason, INTERRUPTED.reason, INVALID_MESSAGE.reason, TOO_LARGE.reason, KEY_REUSED.reason}
)
"""Dead-letter reasons a campaign's retry never re-sends: NXCloud may have accepted the message (an unknown
outcome), or the message itself is wrong, and sending it again cannot change that."""
MAYBE_SENT: Final = frozenset(
    {READ_TIMEOUT.reason, CONNECTION_DROPPED.reason, MALFORMED_RESPONSE.reason, INTERRUPTED.reason}
)
"""Error codes that say NXCloud may have accepted the message, whatever the dead letter's reason: under
``UNKNOWN_OUTCOME_POLICY=retry`` a message whose last try timed out ends ``retries_exhausted`` with that code."""


def may_pass_on_retry(reason: str, error_code: str | None) -> bool:
    """Whether a campaign row dead-lettered for ``reason`` (with ``error_code``) may pass when the campaign is
    retried (``POST /campaigns/{id}/retry``, docs/campaigns.md "Retry"): not an unknown outcome, not a message that
    is wrong (:data:`NEVER_ON_RETRY`), not a last try that may have been accepted (:data:`MAYBE_SENT`), not an
    NXCloud code that judges the recipient (``CodeInfo.recipient``).
    Everything else (retries exhausted, the balance, a template code, a template mismatch, auth and account codes,
    HTTP and transport errors) may pass once the user fixed the cause."""
    code = error_code or ""
    if reason in NEVER_ON_RETRY or code in MAYBE_SENT:
        return False
    info = NXCLOUD_CODES.get(int(code)) if code.lstrip("-").isdecimal() else None
    return not (info is not None and info.recipient)
