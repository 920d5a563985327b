"""``nxwa templates list|show`` and ``nxwa send --check``: an account's templates as the function's check sees them.

The catalogue comes from NXCloud's getTemplate (the stack's ``NXCloudTemplateBaseUrl``, or the local simulator),
signed with the NXCloud secret, which is read the way :mod:`waops.targets` reads the webhook token. The account is
``--appkey``/``--business-phone``, else the stack's ``DefaultAppKey``/``DefaultBusinessPhone``, else the secret's
defaults, as the function resolves them. Nothing here sends a message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nxcloud_wa.config import DEFAULT_TEMPLATE_BASE_URL
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import InvalidMessageError, TemplateApiError
from nxcloud_wa.models import parse_message
from nxcloud_wa.template_client import TemplateClient
from nxcloud_wa.templates import TemplateSpec, check
from waops.targets import Targets

EXIT_MISMATCH = 1
EXIT_UNAVAILABLE = 2


@dataclass(frozen=True, slots=True)
class Account:
    appkey: str
    business_phone: str
    credentials: Credentials


def account(targets: Targets, appkey: str | None = None, business_phone: str | None = None) -> Account:
    """The account to list, with the credentials that sign the listing; exits naming what is missing."""
    targets.require("secret_id")
    credentials = read_credentials(targets)
    appkey = appkey or targets.default_appkey or credentials.defaults.appkey
    business_phone = business_phone or targets.default_business_phone or credentials.defaults.business_phone
    if not appkey or not business_phone:
        raise SystemExit("nxwa: no account: give --appkey and --business-phone (the secret and the stack have none)")
    return Account(appkey, business_phone, credentials)


def read_credentials(targets: Targets) -> Credentials:
    """The NXCloud secret, as the function reads it (never printed)."""
    text = targets.client("secretsmanager").get_secret_value(SecretId=targets.secret_id)["SecretString"]
    return Credentials.from_secret(json.loads(text))


def client(targets: Targets) -> TemplateClient:
    return TemplateClient(targets.template_base_url or DEFAULT_TEMPLATE_BASE_URL)


def fetch(targets: Targets, where: Account, name: str | None = None) -> list[TemplateSpec]:
    try:
        return list(client(targets).fetch(where.appkey, where.business_phone, where.credentials, name=name))
    except TemplateApiError as exc:
        raise SystemExit(f"nxwa: the template catalogue is unavailable: {exc}") from None


def rows(templates: list[TemplateSpec]) -> list[tuple[str, ...]]:
    """One row per template and language: what ``templates list`` prints."""
    return [
        (t.name, t.language, t.status, t.category, header(t), str(t.body_parameters), buttons(t) or "-")
        for t in templates
    ]


ROW_HEADER = ("name", "language", "status", "category", "header", "body params", "buttons")


def header(spec: TemplateSpec) -> str:
    """What the header takes: ``-``, ``image``, ``TEXT`` (nothing to fill) or the format the send cannot fill."""
    if spec.header is None:
        return "-"
    if spec.header == "IMAGE":
        return "image"
    return spec.header if spec.header_fillable else f"{spec.header} (cannot be sent)"


def buttons(spec: TemplateSpec) -> str:
    """``0:URL+param 1:QUICK_REPLY``: each button by index, ``+param`` where a message must give its parameter."""
    return " ".join(f"{b.index}:{b.type}" + ("+param" if b.takes else "") for b in spec.buttons)


def describe(spec: TemplateSpec) -> list[str]:
    """What a message for this template must carry, line by line (``templates show``)."""
    lines = [f"{spec.label}: {spec.status}, {spec.category or 'no category'}"]
    if spec.header == "IMAGE":
        lines.append('  header: {"type": "header", "parameters": [one image parameter]}')
    elif not spec.header_fillable:
        lines.append(f"  header: {spec.header}, which NXCloud's send API cannot fill: this template cannot be sent")
    else:
        lines.append("  header: none to give")
    lines.append(f"  body: {spec.body_parameters} text parameter(s), in the order of the template's placeholders")
    for button in spec.buttons:
        needs = {"URL": "one text parameter (the url's variable)", "COPY_CODE": "one coupon_code parameter"}
        what = needs.get(button.takes or "", "no parameter")
        sub_type = f', sub_type "{button.takes}", index {button.index}' if button.takes else ""
        lines.append(f"  button {button.index} ({button.type}): {what}{sub_type}")
    return lines


def check_message(targets: Targets, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``send --check``: the exit status and the JSON answer for a message, nothing sent."""
    try:
        request = parse_message(message)
    except InvalidMessageError as exc:
        return EXIT_MISMATCH, {"check": "invalid", "error": "invalid_message", "errors": exc.errors}
    where = account(targets, request.appkey, request.business_phone)
    try:
        templates = client(targets).fetch(
            where.appkey, where.business_phone, where.credentials, name=request.template.name
        )
    except TemplateApiError as exc:
        return EXIT_UNAVAILABLE, {"check": "unavailable", "reason": exc.reason, "message": exc.message}
    template = {"name": request.template.name, "language": request.template.language.code}
    problems = check(request.template, templates)
    if not problems:
        return 0, {"check": "ok", "template": template, "appkey": where.appkey}
    answer = {
        "check": "mismatch",
        "error": "template_mismatch",
        "template": template,
        "problems": [{"kind": p.kind, "text": p.text} for p in problems],
    }
    return EXIT_MISMATCH, answer
