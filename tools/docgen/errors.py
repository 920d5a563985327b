"""``docs/errors.md``: every failure the project classifies, from ``nxcloud_wa.error_codes``, the one table."""

from __future__ import annotations

from nxcloud_wa import error_codes
from nxcloud_wa.error_codes import NXCLOUD_CODES, TEMPLATE_CODES, UNKNOWN_CODE, Classification, CodeInfo, ErrorClass

INTRO = """\
# Errors: what each failure means for a message

Generated from `layers/core/python/nxcloud_wa/error_codes.py` by `make docs`; a test fails when this file is stale.

Every failure gets a **reason** (the `error` of an API answer, the `reason` attribute of a dead letter, the `reason`
of a log line), a **class** and the **HTTP status** the REST API answers with:

- **permanent**: the message itself is wrong or cannot be delivered; sending it again cannot help. The queue
  dead-letters it at once with the reason; the API answers 4xx and keeps nothing.
- **retryable**: nothing was sent and a later attempt may succeed. The queue retries it, and its redrive policy
  dead-letters it after `MaxReceiveCount` receives (reason `retries_exhausted` in `nxwa dlq list`); the API answers
  5xx (or 409), and the caller may retry with the same `Idempotency-Key`.
- **unknown**: the request reached NXCloud and no usable answer came back, so NXCloud may have sent it. Under
  `UNKNOWN_OUTCOME_POLICY=dead_letter` (default) it is dead-lettered with reason `unknown_outcome` (the code names
  what happened) and never sent again; under `retry` it is retried like a retryable error (the recipient may get it
  twice). The API answers 504 (`error: unknown_outcome`) or the status below.

A **throttle** (`throttled`, `rate_limited`) is retryable, but it is not a failure of the message: nothing was sent,
and the queue puts the message back as a delayed copy instead of retrying it, so it spends none of its receives and is
never dead-lettered for it; the API answers 429 with `Retry-After` ([throughput.md](throughput.md)).
"""

THROTTLE_NOTE = """\
NXCloud's send page documents no rate-limit code of its own ([nxcloud.md](nxcloud.md)). When WhatsApp refuses a send
for a rate, NXCloud may quote Meta's code in its `message`, under any of its codes: a message text naming one of these
makes the answer a throttle (`throttled`, `error_code` the Meta code), whatever NXCloud's code says."""

AUTH_NOTE = """\
*Auth* (1000–100X): a rotated secret is the usual cause, so the function re-reads the secret (bypassing its cache)
once and tries once more; if that fails too, the message is retried later like any retryable error. A code NXCloud
does not list is retryable: NXCloud answered, so nothing was sent, and a bounded number of retries is cheaper than
dead-lettering every message during an incident that introduces a new code."""

TEMPLATE_NOTE = """\
getTemplate (the template catalogue, [templates.md](templates.md)) answers `-1` and the auth codes above too, and
these of its own (its page lists no 9003-9005). They never decide a message's fate: when the catalogue cannot be
fetched, whatever the code, the template check fails open and the message is sent unchecked (`TemplateCheckSkipped`).
The class says whether asking again later can help."""


def render() -> str:
    lines = [
        INTRO,
        "## NXCloud's codes",
        "",
        "| code | NXCloud's text | meaning | class | API |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [_code_row(code, info) for code, info in sorted(NXCLOUD_CODES.items())]
    unknown = UNKNOWN_CODE.classification
    lines += [
        f"| any other code | | {UNKNOWN_CODE.meaning} | {unknown.error_class} | {unknown.api_status} |",
        "",
        AUTH_NOTE,
        "",
        "## Meta's rate-limit codes, in NXCloud's message text",
        "",
        THROTTLE_NOTE,
        "",
        "| Meta code | meaning | reason | API |",
        "| --- | --- | --- | --- |",
        *(
            f"| {code} | {meaning} | `{error_codes.THROTTLED.reason}` | {error_codes.THROTTLED.api_status} |"
            for code, meaning in sorted(error_codes.META_THROTTLE_CODES.items())
        ),
        "",
        "## getTemplate's codes",
        "",
        TEMPLATE_NOTE,
        "",
        "| code | the page's meaning | meaning | class |",
        "| --- | --- | --- | --- |",
        *(f"| {code} | {i.message} | {i.meaning} | {i.error_class} |" for code, i in sorted(TEMPLATE_CODES.items())),
        "",
        "## HTTP answers without a code",
        "",
        "| HTTP status | reason | class | API | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    permanent = ", ".join(str(s) for s in sorted(error_codes.PERMANENT_HTTP_STATUSES))
    unavailable = ", ".join(str(s) for s in sorted(error_codes.RETRY_IN_CLIENT_STATUSES))
    lines += [
        _http_row(permanent, error_codes.classify_http_status(min(error_codes.PERMANENT_HTTP_STATUSES)), ""),
        _http_row(
            unavailable,
            error_codes.classify_http_status(min(error_codes.RETRY_IN_CLIENT_STATUSES)),
            "resent at once by the client first, with backoff",
        ),
        _http_row(
            str(error_codes.THROTTLE_STATUS),
            error_codes.classify_http_status(error_codes.THROTTLE_STATUS),
            "never resent at once: the message is delayed by `Retry-After` (or a second), no receive spent",
            reason=f"`{error_codes.THROTTLED.reason}` (code `http_429`)",
        ),
        _http_row("any other", error_codes.classify_http_status(500), "404/405: a wrong base URL, not a bad message"),
        "",
        "## On the wire and in the delivery",
        "",
        "| reason | class | API | meaning |",
        "| --- | --- | --- | --- |",
    ]
    lines += [_row(c) for c in _classifications()]
    return "\n".join(lines) + "\n"


def _code_row(code: int, info: CodeInfo) -> str:
    kind = f"{info.error_class}, auth" if info.auth else str(info.error_class)
    return f"| {code} | {info.message} | {info.meaning} | {kind} | {info.classification.api_status} |"


def _http_row(statuses: str, classification: Classification, note: str, reason: str = "`http_<status>`") -> str:
    return f"| {statuses} | {reason} | {classification.error_class} | {classification.api_status} | {note} |"


def _row(classification: Classification) -> str:
    return (
        f"| `{classification.reason}` | {classification.error_class} | {classification.api_status} "
        f"| {classification.meaning} |"
    )


def _classifications() -> list[Classification]:
    """Every named classification of the table module, permanent first."""
    found = {id(v): v for v in vars(error_codes).values() if isinstance(v, Classification)}
    order = {ErrorClass.PERMANENT: 0, ErrorClass.RETRYABLE: 1, ErrorClass.UNKNOWN: 2}
    return sorted(found.values(), key=lambda c: (order[c.error_class], c.api_status, c.reason))
