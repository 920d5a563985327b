"""Lambda SnapStart runtime hooks (``SnapStart`` stack parameter, off by default).

With SnapStart, Lambda runs the function's initialisation once when a version is published, snapshots the memory,
and starts later containers from copies of that snapshot. So:

* **before the snapshot**, everything that does not depend on the moment or on a secret is built: the runtime
  (settings, boto3 session and clients, the NXCloud client and its pool, the thread pool) and the API's resolver, so
  a restored container skips that work. The NXCloud secret is **not** read: it would be baked into the snapshot,
  which outlives rotations. A misconfiguration is left for the first invocation to report, as without SnapStart.
* **after each restore**, what the snapshot cannot carry over is renewed: every pooled connection (the NXCloud
  client's, which getTemplate's client shares, and each boto3 client's: sockets in a snapshot are dead, and shared by
  every copy), the secret cache (empty, unless something read it before the snapshot), the template catalogue (empty
  likewise; a listing from before the snapshot is dated by a monotonic clock a restore does not carry over), and the
  seed of ``random`` (every copy would otherwise
  draw the same retry jitter). Clocks need nothing: the idle recycle of the NXCloud pool restarts here, and every
  deadline and timestamp is read from the clock when used. ``uuid4`` reads the OS's randomness each time.

``snapshot_restore_py`` exists only in Lambda's Python runtime; elsewhere nothing is registered, and tests call the
hooks directly.
"""

from __future__ import annotations

import random
from typing import Any

import runtime
from observability import logger


def before_snapshot() -> None:
    """Build what a restored container would otherwise build on its first invocation; read no secret."""
    try:
        rt = runtime.get()
    except Exception:  # a misconfiguration: the first invocation reports it, as it does without SnapStart
        logger.exception("SnapStart: the runtime could not be built before the snapshot")
        return
    rt.sqs.get()
    import api  # noqa: F401 - the resolver, its routes and OpenAPI models, for the API's first request


def after_restore() -> None:
    """Renew, in a restored container, the connections, the secret cache and the randomness a snapshot shares."""
    random.seed()
    _drop_cached_secrets()
    rt = runtime.current()
    if rt is None:
        return
    rt.sender.client.reset()
    if rt.catalogue is not None:
        rt.catalogue.clear()
    for client in _boto3_clients(rt):
        client.close()


def _boto3_clients(rt: runtime.Runtime) -> list[Any]:
    """Every boto3 client the runtime holds (an SQS client never created holds no connection)."""
    clients = [rt.delivery.store.client]
    lazy = [rt.sqs, rt.timeline.client if rt.timeline is not None else None]
    clients += [client.get() for client in lazy if isinstance(client, runtime.LazyClient) and client.created]
    secrets = _secrets_provider()
    if secrets is not None:
        clients.append(secrets.client)
    return clients


def _secrets_provider() -> Any:
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    return DEFAULT_PROVIDERS.get("secrets")


def _drop_cached_secrets() -> None:
    """Forget any secret value cached in this process (the provider and its client stay)."""
    provider = _secrets_provider()
    if provider is not None:
        provider.clear_cache()


def register(module_name: str = "snapshot_restore_py") -> bool:
    """Register both hooks with Lambda's runtime when it offers them; return whether it did."""
    try:
        hooks = __import__(module_name)
    except ImportError:
        return False
    hooks.register_before_snapshot(before_snapshot)
    hooks.register_after_restore(after_restore)
    return True
