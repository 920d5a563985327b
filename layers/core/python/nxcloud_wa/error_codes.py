"""NXCloud's response codes and what each one means for a message: the one table the project keeps.

Every code on NXCloud's send page (``shared/nxcloud/saas-wa-send.txt``) and on the signing convention page
(``shared/nxcloud/signing.md``) is listed with its class:

* ``permanent``: the message itself is wrong or cannot be delivered; sending it again cannot help, so it is
  dead-lettered at once with the reason.
* ``retryable``: upstream trouble, the account's state or a transient condition; the message is retried and, when
  retries run out, dead-lettered by the queue's redrive policy.

Auth codes (1000-100X) are retryable and additionally flagged ``auth``: the sender refreshes the credentials once
and retries once, because a rotated secret is the usual cause. A code that is not in the table is treated as
retryable (``UNKNOWN_CODE``): NXCloud answered, so nothing was sent, and a bounded number of retries is cheaper than
dead-lettering every message during an upstream incident that introduces a new code.
"""

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class ErrorClass(StrEnum):
    """What a failure means for the message."""

    PERMANENT = "permanent"
    RETRYABLE = "retryable"


@dataclass(frozen=True, slots=True)
class CodeInfo:
    """One row of the table: NXCloud's own wording, our English reading, and the consequence."""

    message: str
    meaning: str
    error_class: ErrorClass
    auth: bool = False


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
        22090: CodeInfo("业务异常", "invalid number", _P),
        22091: CodeInfo("业务异常", "recipient is not a WhatsApp user", _P),
        22092: CodeInfo("业务异常", "no such language package", _P),
        22093: CodeInfo("业务异常", "template does not exist", _P),
        22122: CodeInfo("业务异常", "application has no price for the country", _P),
        22123: CodeInfo("业务异常", "merchant phone number is wrong", _P),
        22124: CodeInfo("业务异常", "application does not exist or is unavailable", _P),
        22125: CodeInfo("业务异常", "account balance insufficient", _R),
        22126: CodeInfo("业务异常", "WhatsApp number not bound to the application", _P),
        22141: CodeInfo("业务异常", "WhatsApp send failed (see message)", _R),
    }
)
"""NXCloud ``code`` -> its row. ``0`` (success) is not an error and is not listed."""

UNKNOWN_CODE: Final = CodeInfo("", "code not in NXCloud's published table", _R)

PERMANENT_HTTP_STATUSES: Final = frozenset({400, 411, 413, 414, 415, 422})
"""HTTP statuses (without an NXCloud code in the body) that say this request can never be accepted.

Every other non-2xx status is retryable: 404/405 mean a wrong base URL or an upstream deploy, not a bad message."""

RETRY_IN_CLIENT_STATUSES: Final = frozenset({429, 503})
"""Statuses after which the client resends at once (with backoff): the server refused the request unprocessed."""


def classify_code(code: int) -> CodeInfo:
    """Return the table row for an NXCloud ``code``, or the deliberate default for a code the page does not list."""
    return NXCLOUD_CODES.get(code, UNKNOWN_CODE)
