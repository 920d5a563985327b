"""NXCloud credentials from Secrets Manager, through Powertools Parameters' cache.

The secret is a JSON object ``{"accessKey": "...", "accessSecret": "..."}`` that may also hold the defaults
``tenant_id``, ``appkey`` and ``business_phone``, and ``rates``: the messages per second of business numbers whose
rate is not the stack's ``MessagesPerSecond`` (``{"8615800000000": 1000}``, docs/throughput.md). The rates live here
because a number's tier changes when WhatsApp upgrades it, often during a campaign: every container reads the secret
already, so a change reaches all of them within ``SECRET_CACHE_SECONDS`` without a deploy or a request of its own.

A warm Lambda reads the secret at most once per ``max_age`` seconds; ``refresh=True`` bypasses the cache after
NXCloud refused the credentials (a rotated secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from .exceptions import ConfigurationError
from .models import Defaults

MAX_RATE: Final = 100_000
"""The highest rate the secret may give a number (WhatsApp's highest tier is far below)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """What signs requests. ``access_secret`` is kept out of ``repr`` so it cannot reach a log by accident."""

    access_key: str
    access_secret: str = field(repr=False)
    defaults: Defaults = field(default_factory=Defaults)
    webhook_token: str | None = field(default=None, repr=False)
    """The path token NXCloud's callbacks must carry (``POST /webhooks/nxcloud/{token}``); None: webhook closed."""
    rates: dict[str, int] = field(default_factory=dict, hash=False)
    """Messages per second by business number (digits), for the numbers whose rate is not the stack's default."""

    @classmethod
    def from_secret(cls, payload: Any) -> Credentials:
        """Build from the decoded secret; raise :class:`ConfigurationError` naming (never showing) what is wrong."""
        if not isinstance(payload, dict):
            raise ConfigurationError("the NXCloud secret must be a JSON object with accessKey and accessSecret")
        # Surrounding whitespace is a paste accident (a trailing newline), never part of a key: it would fail every
        # signature (1003) or make the header invalid.
        keys = {
            k: payload[k].strip() if isinstance(payload.get(k), str) else None for k in ("accessKey", "accessSecret")
        }
        missing = [k for k, v in keys.items() if not v]
        if missing:
            raise ConfigurationError(f"the NXCloud secret lacks {' and '.join(missing)} (non-empty strings)")
        given = {k: payload[k] for k in Defaults.model_fields if k in payload}
        tenant_id = given.get("tenant_id")
        if isinstance(tenant_id, str) and tenant_id.strip().isdecimal():
            # The console's key/value editor stores every value as a string: accept "123" as the environment does.
            given["tenant_id"] = int(tenant_id)
        try:
            defaults = Defaults.model_validate(given)
        except ValidationError as exc:
            names = ", ".join(str(e["loc"][0]) for e in exc.errors(include_url=False))
            raise ConfigurationError(f"the NXCloud secret has invalid default(s): {names}") from None
        token = payload.get("webhook_token")
        return cls(
            str(keys["accessKey"]),
            str(keys["accessSecret"]),
            defaults,
            token.strip() if isinstance(token, str) and token.strip() else None,
            _rates(payload.get("rates")),
        )


def _rates(value: Any) -> dict[str, int]:
    """The secret's ``rates``: business number (digits; ``+``, spaces and dashes allowed) to whole messages per second.

    Raises :class:`ConfigurationError` naming what is wrong: a rate cannot be guessed, and a wrong one either throttles
    a campaign for nothing or lets it exceed what WhatsApp allows.
    """
    if value is None:
        return {}
    problem = "the NXCloud secret's rates must map business numbers to whole messages per second (1 to 100000)"
    if not isinstance(value, dict):
        raise ConfigurationError(problem)
    rates: dict[str, int] = {}
    for number, given in value.items():
        digits = "".join(c for c in str(number) if c not in "+ -")
        text = given.strip() if isinstance(given, str) else ""
        rate = int(text) if text.isascii() and text.isdecimal() else given
        whole = isinstance(rate, int) and not isinstance(rate, bool)
        if not (digits.isascii() and digits.isdecimal() and whole and 1 <= rate <= MAX_RATE):
            raise ConfigurationError(problem)
        rates[digits] = rate
    return rates


def load_credentials(secret_id: str, *, max_age: int, refresh: bool = False) -> Credentials:
    """Fetch (or take from the cache) and parse the secret."""
    from aws_lambda_powertools.utilities import parameters  # deferred: ~0.5 s of boto3 import at cold start

    try:
        payload = parameters.get_secret(secret_id, transform="json", max_age=max_age, force_fetch=refresh)
    except parameters.exceptions.TransformParameterError:
        raise ConfigurationError("the NXCloud secret is not valid JSON") from None
    return Credentials.from_secret(payload)
