"""Deployment settings, read once from the environment.

Every variable is documented in README.md with its default. A misconfiguration fails with one message that names
every missing or malformed variable (never a value), so a broken deploy is fixed in one round.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from pydantic import ValidationError

from .exceptions import ConfigurationError
from .models import Defaults

DEFAULT_BASE_URL: Final = "https://api.nxcloud.com"


class UnknownOutcomePolicy(StrEnum):
    """What to do when NXCloud may or may not have sent a message (a read timeout after the request went out).

    ``dead_letter`` (default): at most once. The message goes to the dead-letter queue with reason
    ``unknown_outcome`` for a person to check; it is never sent twice.
    ``retry``: at least once. The message is retried; the recipient may get it twice.
    """

    DEAD_LETTER = "dead_letter"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Settings:
    secret_id: str
    base_url: str = DEFAULT_BASE_URL
    defaults: Defaults = field(default_factory=Defaults)
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    max_attempts: int = 3
    secret_max_age: int = 300
    unknown_outcome_policy: UnknownOutcomePolicy = UnknownOutcomePolicy.DEAD_LETTER

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings; raise :class:`ConfigurationError` naming every variable that is missing or wrong."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def number(name: str, default: float, kind: type[float] | type[int] = float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = kind(raw)
            except ValueError:
                value = 0
            if not math.isfinite(value) or value <= 0:  # "nan" and "inf" parse as floats
                problems.append(f"{name} must be a positive {kind.__name__}")
                return default
            return value

        secret_id = env.get("NXCLOUD_SECRET_ID", "").strip()
        if not secret_id:
            problems.append("NXCLOUD_SECRET_ID is not set (the Secrets Manager id of the NXCloud credentials)")
        base_url = env.get("NXCLOUD_BASE_URL", "").strip().rstrip("/") or DEFAULT_BASE_URL
        if not base_url.startswith(("https://", "http://")):
            problems.append("NXCLOUD_BASE_URL must start with https:// or http://")
        policy_raw = env.get("UNKNOWN_OUTCOME_POLICY", "").strip() or UnknownOutcomePolicy.DEAD_LETTER
        if policy_raw not in set(UnknownOutcomePolicy):
            problems.append("UNKNOWN_OUTCOME_POLICY must be dead_letter or retry")
            policy_raw = UnknownOutcomePolicy.DEAD_LETTER
        defaults = _env_defaults(env, problems)
        settings = cls(
            secret_id=secret_id,
            base_url=base_url,
            defaults=defaults,
            connect_timeout=number("NXCLOUD_CONNECT_TIMEOUT", 3.0),
            read_timeout=number("NXCLOUD_READ_TIMEOUT", 10.0),
            max_attempts=int(number("NXCLOUD_MAX_ATTEMPTS", 3, int)),
            secret_max_age=int(number("SECRET_CACHE_SECONDS", 300, int)),
            unknown_outcome_policy=UnknownOutcomePolicy(policy_raw),
        )
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))
        return settings


def _env_defaults(env: Mapping[str, str], problems: list[str]) -> Defaults:
    raw = {
        "tenant_id": env.get("DEFAULT_TENANT_ID", "").strip() or None,
        "appkey": env.get("DEFAULT_APPKEY", "").strip() or None,
        "business_phone": env.get("DEFAULT_BUSINESS_PHONE", "").strip() or None,
    }
    if raw["tenant_id"] is not None:
        # isdecimal, not isdigit: int() rejects digits such as "²" that isdigit accepts
        raw["tenant_id"] = int(raw["tenant_id"]) if raw["tenant_id"].isdecimal() else raw["tenant_id"]
    try:
        return Defaults.model_validate(raw)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.append(f"DEFAULT_{str(error['loc'][0]).upper()} {error['msg']}")
        return Defaults()


def merge_defaults(primary: Defaults, fallback: Defaults) -> Defaults:
    """``primary``'s values where set, else ``fallback``'s: the environment's defaults over the secret's."""
    return Defaults.model_validate(
        {
            name: getattr(primary, name) if getattr(primary, name) is not None else getattr(fallback, name)
            for name in Defaults.model_fields
        }
    )
