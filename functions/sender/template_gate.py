"""The pre-flight template check as the delivery applies it: the mode, the container's catalogue, the log and metrics.

For each message of an invocation, after it was parsed and the credentials read, and before its key is claimed:

* ``enforce``: a message that does not fit its template (``nxcloud_wa.templates.check``) is refused with a
  :class:`TemplateMismatchError` (reason ``template_mismatch``): the delivery dead-letters it (queue) or answers 422
  (API); it is never claimed and never sent.
* ``warn``: it is sent anyway; one warning line names what is wrong and ``TemplateCheckWarnings`` counts it.
* ``off``: the runtime builds no gate at all.

Fail open on the catalogue, never on the message: when the account's templates cannot be had (getTemplate down, an
auth error, an answer that is not its JSON, or anything unexpected in fetching them), the message is sent unchecked,
``TemplateCheckSkipped`` counts it and one line per account and invocation says why. Messages that name no appkey or
business number (and have no default) are left to the send, which refuses them as invalid.

Runs on the invocation's main thread (Powertools' metrics are not thread-safe).
"""

from __future__ import annotations

from collections.abc import Sequence

import observability
from nxcloud_wa.catalogue import TemplateCatalogue
from nxcloud_wa.config import TemplateCheckMode
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import TemplateApiError, TemplateMismatchError
from nxcloud_wa.models import Defaults, SendRequest
from nxcloud_wa.phone import mask_phone, redact_numbers
from nxcloud_wa.templates import Problem, check

SKIPPED_METRIC = "TemplateCheckSkipped"
WARNINGS_METRIC = "TemplateCheckWarnings"


class TemplateGate:
    """The container's catalogue and the mode it is checked in (``enforce`` or ``warn``; ``off`` refuses nothing)."""

    def __init__(self, catalogue: TemplateCatalogue, mode: TemplateCheckMode) -> None:
        self.catalogue = catalogue
        self.mode = mode

    def refusals(
        self, messages: Sequence[tuple[SendRequest, str | None]], defaults: Defaults, credentials: Credentials
    ) -> list[TemplateMismatchError | None]:
        """For each (message, idempotency key): the error to refuse it with, or None to send it."""
        logged: set[tuple[str, str]] = set()
        answers: list[TemplateMismatchError | None] = []
        for request, key in messages:
            account = _account(request, defaults)
            problems = [] if account is None else self._problems(account, request, credentials, logged)
            if not problems or self.mode is TemplateCheckMode.OFF:
                answers.append(None)
            elif self.mode is TemplateCheckMode.ENFORCE:
                answers.append(TemplateMismatchError(problems))
            else:
                _warn(problems, request, key)
                answers.append(None)
        return answers

    def _problems(
        self,
        account: tuple[str, str],
        request: SendRequest,
        credentials: Credentials,
        logged: set[tuple[str, str]],
    ) -> list[Problem]:
        """What the message breaks; none when it cannot be checked (counted, and logged once per account)."""
        want = (request.template.name, request.template.language.code)
        try:
            return check(request.template, self.catalogue.templates(*account, credentials, want=want))
        except TemplateApiError as exc:
            why = f"{exc.reason}: {exc.message}"
        except Exception as exc:  # a fault of the check itself must not stop a send either
            observability.logger.exception("the template check failed; the message is sent unchecked")
            why = type(exc).__name__
        observability.count(SKIPPED_METRIC)
        if account not in logged:
            logged.add(account)
            observability.logger.warning(
                "template check skipped: the account's template catalogue is unavailable; sent unchecked",
                extra={
                    "template_check": "skipped",
                    "reason": redact_numbers(why)[:300],
                    "appkey": account[0],
                    "business_phone": mask_phone(account[1]),
                },
            )
        return []


def _warn(problems: list[Problem], request: SendRequest, key: str | None) -> None:
    """``warn``: one line saying what ``enforce`` would have refused, and the count."""
    observability.count(WARNINGS_METRIC)
    observability.logger.warning(
        "the message does not fit its template; sent anyway (TEMPLATE_CHECK=warn)",
        extra={
            "template_check": "warn",
            "error_code": problems[0].kind,
            "error_message": "; ".join(p.text for p in problems),
            "to": mask_phone(request.to),
            "idempotency_key": key,
        },
    )


def _account(request: SendRequest, defaults: Defaults) -> tuple[str, str] | None:
    appkey = request.appkey or defaults.appkey
    business_phone = request.business_phone or defaults.business_phone
    return (appkey, business_phone) if appkey and business_phone else None
