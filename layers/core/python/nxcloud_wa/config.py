"""Deployment settings, read once from the environment, and the one reader of environment variables.

Every variable is documented in ``docs/configuration.md`` with its default; each default is written once, here (or
next to the setting that owns it, read through :class:`EnvReader`). A misconfiguration fails with one message that
names every missing or malformed variable (never a value), so a broken deploy is fixed in one round.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Final, TypeVar

from pydantic import ValidationError

from .exceptions import ConfigurationError
from .models import Defaults

DEFAULT_BASE_URL: Final = "https://api.nxcloud.com"
DEFAULT_CONNECT_TIMEOUT: Final = 3.0
DEFAULT_READ_TIMEOUT: Final = 10.0
DEFAULT_MAX_ATTEMPTS: Final = 3
DEFAULT_SECRET_MAX_AGE: Final = 300
DEFAULT_TEMPLATE_BASE_URL: Final = "https://api2.nxcloud.com"
"""getTemplate's host is not the send API's (docs/nxcloud.md section 6)."""
DEFAULT_TEMPLATE_CACHE_SECONDS: Final = 600

E = TypeVar("E", bound=StrEnum)
S = TypeVar("S")
"""A settings class, as :func:`read_settings` returns it."""


class UnknownOutcomePolicy(StrEnum):
    """What to do when NXCloud may or may not have sent a message (a read timeout after the request went out).

    ``dead_letter`` (default): at most once. The message goes to the dead-letter queue with reason
    ``unknown_outcome`` for a person to check; it is never sent twice.
    ``retry``: at least once. The message is retried; the recipient may get it twice.
    """

    DEAD_LETTER = "dead_letter"
    RETRY = "retry"


class TemplateCheckMode(StrEnum):
    """What the pre-flight template check does with a message that does not fit its template (docs/templates.md).

    ``enforce`` (default): refuse it (``template_mismatch``: dead-lettered from the queue, 422 on the API), unsent.
    ``warn``: send it anyway, and log and count the mismatch. ``off``: no check (the catalogue is still kept for the
    suppression check's categories).
    """

    ENFORCE = "enforce"
    WARN = "warn"
    OFF = "off"


class EnvReader:
    """Reads variables and collects every problem, so that :meth:`check` reports them all in one message.

    A malformed value is reported and replaced by its default, so reading goes on and finds the next problem.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self.env: Mapping[str, str] = os.environ if environ is None else environ
        self.problems: list[str] = []

    def text(self, name: str, default: str = "") -> str:
        """The value with surrounding whitespace removed, or ``default`` when unset or blank."""
        return self.env.get(name, "").strip() or default

    def required(self, name: str, what: str) -> str:
        value = self.text(name)
        if not value:
            self.problems.append(f"{name} is not set ({what})")
        return value

    def positive_int(self, name: str, default: int) -> int:
        raw = self.text(name)
        # isdecimal, not isdigit: int() rejects digits such as "²" that isdigit accepts
        if raw and (not raw.isascii() or not raw.isdecimal() or int(raw) <= 0):
            self.problems.append(f"{name} must be a positive integer")
            return default
        return int(raw) if raw else default

    def positive_float(self, name: str, default: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = 0.0
        if not math.isfinite(value) or value <= 0:  # "nan" and "inf" parse as floats
            self.problems.append(f"{name} must be a positive number")
            return default
        return value

    def choice(self, name: str, enum: type[E], default: E) -> E:
        raw = self.text(name)
        if not raw:
            return default
        try:
            return enum(raw)
        except ValueError:
            self.problems.append(f"{name} must be one of {', '.join(enum)}")
            return default

    def url(self, name: str, default: str) -> str:
        value = self.text(name).rstrip("/") or default
        if not value.startswith(("https://", "http://")):
            self.problems.append(f"{name} must start with https:// or http://")
        return value

    def check(self) -> None:
        """Raise :class:`ConfigurationError` naming every problem found so far."""
        if self.problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(self.problems))


def read_settings(read: Callable[[EnvReader], S], environ: Mapping[str, str] | None = None) -> S:
    """Settings read by ``read`` through one :class:`EnvReader`, then :meth:`EnvReader.check`: one error naming every
    problem, whichever settings class asked."""
    env = EnvReader(environ)
    settings = read(env)
    env.check()
    return settings


@dataclass(frozen=True, slots=True)
class NXCloudSettings:
    """What the send core needs: where the secret is, where NXCloud is, how long to wait for it, and how the
    template catalogue is checked and kept."""

    secret_id: str
    base_url: str = DEFAULT_BASE_URL
    defaults: Defaults = field(default_factory=Defaults)
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    secret_max_age: int = DEFAULT_SECRET_MAX_AGE
    unknown_outcome_policy: UnknownOutcomePolicy = UnknownOutcomePolicy.DEAD_LETTER
    template_base_url: str = DEFAULT_TEMPLATE_BASE_URL
    template_check: TemplateCheckMode = TemplateCheckMode.ENFORCE
    template_cache_seconds: int = DEFAULT_TEMPLATE_CACHE_SECONDS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NXCloudSettings:
        """Read the settings; raise :class:`ConfigurationError` naming every variable that is missing or wrong."""
        return read_settings(cls.read, environ)

    @classmethod
    def read(cls, env: EnvReader) -> NXCloudSettings:
        """Read the settings through ``env``, which collects the problems (see :meth:`EnvReader.check`)."""
        return cls(
            secret_id=env.required("NXCLOUD_SECRET_ID", "the Secrets Manager id of the NXCloud credentials"),
            base_url=env.url("NXCLOUD_BASE_URL", DEFAULT_BASE_URL),
            defaults=env_defaults(env),
            connect_timeout=env.positive_float("NXCLOUD_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            read_timeout=env.positive_float("NXCLOUD_READ_TIMEOUT", DEFAULT_READ_TIMEOUT),
            max_attempts=env.positive_int("NXCLOUD_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS),
            secret_max_age=env.positive_int("SECRET_CACHE_SECONDS", DEFAULT_SECRET_MAX_AGE),
            unknown_outcome_policy=env.choice(
                "UNKNOWN_OUTCOME_POLICY", UnknownOutcomePolicy, UnknownOutcomePolicy.DEAD_LETTER
            ),
            template_base_url=env.url("NXCLOUD_TEMPLATE_BASE_URL", DEFAULT_TEMPLATE_BASE_URL),
            template_check=env.choice("TEMPLATE_CHECK", TemplateCheckMode, TemplateCheckMode.ENFORCE),
            template_cache_seconds=env.positive_int("TEMPLATE_CACHE_SECONDS", DEFAULT_TEMPLATE_CACHE_SECONDS),
        )


def env_defaults(env: EnvReader) -> Defaults:
    """The deployment's defaults from the ``DEFAULT_*`` variables, which win over the secret's (:func:`merge_defaults`);
    a malformed one is added to ``env``'s problems. The sender fills messages with them; the webhook takes its
    business number when a callback names none (the suppression list's key must be the number the sender used)."""
    raw: dict[str, object] = {
        "tenant_id": env.text("DEFAULT_TENANT_ID") or None,
        "appkey": env.text("DEFAULT_APPKEY") or None,
        "business_phone": env.text("DEFAULT_BUSINESS_PHONE") or None,
    }
    tenant_id = raw["tenant_id"]
    if isinstance(tenant_id, str) and tenant_id.isascii() and tenant_id.isdecimal():
        raw["tenant_id"] = int(tenant_id)
    try:
        return Defaults.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            env.problems.append(f"DEFAULT_{str(error['loc'][0]).upper()} {error['msg']}")
        return Defaults()


@lru_cache(maxsize=8)
def merge_defaults(primary: Defaults, fallback: Defaults) -> Defaults:
    """``primary``'s values where set, else ``fallback``'s: the environment's defaults over the secret's.

    Cached: every message of a batch merges the same two (frozen, so hashable) values, and validating the result
    again, phone number included, was about a twentieth of a warm message's CPU.
    """
    return Defaults.model_validate(
        {
            name: getattr(primary, name) if getattr(primary, name) is not None else getattr(fallback, name)
            for name in Defaults.model_fields
        }
    )
