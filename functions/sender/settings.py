"""The function's own settings on top of the core's (``nxcloud_wa.config.Settings``), read by the same reader.

Read once per container; a missing or malformed variable fails the first invocation with one message naming every
problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from nxcloud_wa.config import EnvReader, Settings

DEFAULT_IDEMPOTENCY_EXPIRY: Final = 24 * 3600
DEFAULT_MAX_SEND_CONCURRENCY: Final = 10
DEFAULT_MESSAGE_RETENTION_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class FunctionSettings:
    core: Settings
    dlq_url: str
    send_queue_url: str
    idempotency_table: str
    idempotency_expiry: int = DEFAULT_IDEMPOTENCY_EXPIRY
    max_send_concurrency: int = DEFAULT_MAX_SEND_CONCURRENCY
    messages_table: str = ""
    """The messages table (delivery tracking); empty: sent messages are not recorded and the query API finds none."""
    message_retention_days: int = DEFAULT_MESSAGE_RETENTION_DAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FunctionSettings:
        env = EnvReader(environ)
        settings = cls(
            core=Settings.read(env),
            dlq_url=env.required("DLQ_URL", "the dead-letter queue's URL"),
            send_queue_url=env.required("SEND_QUEUE_URL", "the send queue's URL"),
            idempotency_table=env.required("IDEMPOTENCY_TABLE", "the DynamoDB idempotency table's name"),
            idempotency_expiry=env.positive_int("IDEMPOTENCY_EXPIRY_SECONDS", DEFAULT_IDEMPOTENCY_EXPIRY),
            max_send_concurrency=env.positive_int("MAX_SEND_CONCURRENCY", DEFAULT_MAX_SEND_CONCURRENCY),
            messages_table=env.text("MESSAGES_TABLE"),
            message_retention_days=env.positive_int("MESSAGE_RETENTION_DAYS", DEFAULT_MESSAGE_RETENTION_DAYS),
        )
        env.check()
        return settings
