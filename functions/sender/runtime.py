"""What one Lambda container builds once and reuses across invocations: settings, clients, pools.

Built on the first invocation rather than at import, so a configuration error is reported as a clear error for that
invocation (and import stays cheap for the cold-start budget). :func:`reset` exists for tests and local tools that
change the environment between runs.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from delivery import Delivery
from idempotency import IdempotencyStore
from nxcloud_wa.config import UnknownOutcomePolicy
from nxcloud_wa.sender import Sender
from nxcloud_wa.timeline import Timeline
from settings import FunctionSettings


@dataclass(slots=True)
class Runtime:
    settings: FunctionSettings
    sender: Sender
    delivery: Delivery
    sqs: Any
    executor: ThreadPoolExecutor
    timeline: Timeline | None = None


_lock = threading.Lock()
_runtime: Runtime | None = None


def get() -> Runtime:
    """The container's runtime, built on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _build(FunctionSettings.from_env())
        return _runtime


def reset() -> None:
    """Forget the runtime (tests, local tools): the next :func:`get` reads the environment again."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.executor.shutdown(wait=False)
        _runtime = None


def _build(settings: FunctionSettings) -> Runtime:
    import boto3
    from botocore.config import Config

    pool = settings.max_send_concurrency + 2
    aws_config = Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=pool
    )
    session = boto3.session.Session()
    _share_session_with_parameters(session)
    sender = Sender(settings.core)
    policy = settings.core.unknown_outcome_policy
    dynamodb = session.client("dynamodb", config=aws_config)
    store = IdempotencyStore(
        dynamodb,
        settings.idempotency_table,
        expiry_seconds=settings.idempotency_expiry,
        take_over_interrupted=policy is UnknownOutcomePolicy.RETRY,
    )
    sqs = session.client("sqs", config=aws_config)
    executor = ThreadPoolExecutor(max_workers=settings.max_send_concurrency, thread_name_prefix="send")
    timeline = (
        Timeline(dynamodb, settings.messages_table, retention_days=settings.message_retention_days)
        if settings.messages_table
        else None
    )
    delivery = Delivery(
        sender, store, sqs=sqs, dlq_url=settings.dlq_url, executor=executor, policy=policy, timeline=timeline
    )
    return Runtime(settings=settings, sender=sender, delivery=delivery, sqs=sqs, executor=executor, timeline=timeline)


def _share_session_with_parameters(session: Any) -> None:
    """Let Powertools' ``get_secret`` use a client from the function's boto3 session instead of its own.

    Left alone, its SecretsProvider builds a second ``boto3.session.Session()``, and every botocore session loads
    the endpoint rules and service index again: about 100 ms of the cold start (``make bench``). The client gets no
    custom config, exactly as the provider would build it, so retries and timeouts are unchanged. A provider already
    in place (and its cached secret) is kept; ``parameters.clear_caches()`` drops it, and the next get falls back to
    Powertools' own.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    if "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=session.client("secretsmanager"))
