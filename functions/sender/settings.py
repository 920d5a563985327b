"""The function's own settings on top of the core's (``nxcloud_wa.config.Settings``).

Read once per container; a missing variable fails the first invocation with one message naming every problem.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nxcloud_wa.config import Settings
from nxcloud_wa.exceptions import ConfigurationError

DEFAULT_IDEMPOTENCY_EXPIRY = 24 * 3600
DEFAULT_MAX_SEND_CONCURRENCY = 10


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    core: Settings
    dlq_url: str
    send_queue_url: str
    idempotency_table: str
    idempotency_expiry: int = DEFAULT_IDEMPOTENCY_EXPIRY
    max_send_concurrency: int = DEFAULT_MAX_SEND_CONCURRENCY

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FunctionSettings:
        env = os.environ if environ is None else environ
        problems: list[str] = []
        try:
            core = Settings.from_env(env)
        except ConfigurationError as exc:
            problems.append(str(exc).removeprefix("invalid configuration: "))
            core = Settings(secret_id="")
        required = {
            "DLQ_URL": "the dead-letter queue's URL",
            "SEND_QUEUE_URL": "the send queue's URL",
            "IDEMPOTENCY_TABLE": "the DynamoDB idempotency table's name",
        }
        values = {name: env.get(name, "").strip() for name in required}
        problems += [f"{name} is not set ({what})" for name, what in required.items() if not values[name]]
        expiry = _positive_int(env, "IDEMPOTENCY_EXPIRY_SECONDS", DEFAULT_IDEMPOTENCY_EXPIRY, problems)
        concurrency = _positive_int(env, "MAX_SEND_CONCURRENCY", DEFAULT_MAX_SEND_CONCURRENCY, problems)
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))
        return cls(
            core=core,
            dlq_url=values["DLQ_URL"],
            send_queue_url=values["SEND_QUEUE_URL"],
            idempotency_table=values["IDEMPOTENCY_TABLE"],
            idempotency_expiry=expiry,
            max_send_concurrency=concurrency,
        )


def _positive_int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) <= 0:
        problems.append(f"{name} must be a positive integer")
        return default
    return int(raw)
