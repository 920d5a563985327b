"""NXCloud credentials from Secrets Manager, through Powertools Parameters' cache.

The secret is a JSON object ``{"accessKey": "...", "accessSecret": "..."}`` that may also hold the defaults
``tenant_id``, ``appkey`` and ``business_phone``. A warm Lambda reads it at most once per ``max_age`` seconds;
``refresh=True`` bypasses the cache after NXCloud refused the credentials (a rotated secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from .exceptions import ConfigurationError
from .models import Defaults


@dataclass(frozen=True, slots=True)
class Credentials:
    """What signs requests. ``access_secret`` is kept out of ``repr`` so it cannot reach a log by accident."""

    access_key: str
    access_secret: str = field(repr=False)
    defaults: Defaults = field(default_factory=Defaults)
    webhook_token: str | None = field(default=None, repr=False)
    """The path token NXCloud's callbacks must carry (``POST /webhooks/nxcloud/{token}``); None: webhook closed."""

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
        )


def load_credentials(secret_id: str, *, max_age: int, refresh: bool = False) -> Credentials:
    """Fetch (or take from the cache) and parse the secret."""
    from aws_lambda_powertools.utilities import parameters  # deferred: ~0.5 s of boto3 import at cold start

    try:
        payload = parameters.get_secret(secret_id, transform="json", max_age=max_age, force_fetch=refresh)
    except parameters.exceptions.TransformParameterError:
        raise ConfigurationError("the NXCloud secret is not valid JSON") from None
    return Credentials.from_secret(payload)
