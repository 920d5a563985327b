"""SnapStart's runtime hooks, called as Lambda calls them: before the snapshot, then after each restore.

Against the local stack (moto, the NXCloud simulator): the secret is never read before the snapshot, every pooled
connection is dropped after a restore, and a restored container delivers as a fresh one does.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from tests.integration.conftest import Stack, message


def _secret_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every GetSecretValue the process sends from now on (any client, the provider's included)."""
    import botocore.client

    reads: list[str] = []
    make_api_call = botocore.client.BaseClient._make_api_call

    def spy(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if operation == "GetSecretValue":
            reads.append(params["SecretId"])
        return make_api_call(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    return reads


def _pooled(client: Any) -> int:
    """Connection pools a boto3 client holds (botocore's URLLib3Session keeps one PoolManager)."""
    return len(client._endpoint.http_session._manager.pools)


def test_before_the_snapshot_the_runtime_is_built_and_no_secret_is_read(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime
    import snapstart

    reads = _secret_reads(monkeypatch)
    monkeypatch.delitem(sys.modules, "api", raising=False)  # restored after the test

    snapstart.before_snapshot()

    rt = runtime.current()
    assert rt is not None
    assert rt.sqs.created
    assert "api" in sys.modules
    assert reads == []
    assert snapstart._secrets_provider().store == {}


def test_a_misconfigured_function_still_snapshots_and_reports_on_its_first_invocation(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime
    import snapstart

    monkeypatch.delenv("IDEMPOTENCY_TABLE")

    snapstart.before_snapshot()

    assert runtime.current() is None


def test_after_a_restore_every_connection_is_new_the_secret_read_again_and_delivery_works(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime
    import snapstart

    snapstart.before_snapshot()
    stack.enqueue(message())
    assert stack.run_batch()[1] == {"batchItemFailures": []}  # a container that ran before (worst case for a copy)
    rt = runtime.get()
    secrets = snapstart._secrets_provider()
    boto3_clients = [rt.delivery.store.client, secrets.client]
    assert all(_pooled(client) for client in boto3_clients)
    assert rt.sender.client.pool.pools and secrets.store
    reads = _secret_reads(monkeypatch)

    snapstart.after_restore()

    assert [_pooled(client) for client in boto3_clients] == [0, 0]
    assert len(rt.sender.client.pool.pools) == 0
    assert secrets.store == {}
    stack.enqueue(message(to="8613800000001"))
    assert stack.run_batch()[1] == {"batchItemFailures": []}
    assert len(simulator.accepted) == 2
    assert len(reads) == 1  # the secret, read again after the restore, once


def test_after_a_restore_the_template_catalogue_is_fetched_again_over_new_connections(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime
    import snapstart
    from tests.stack import SECRET

    monkeypatch.setenv("TEMPLATE_CHECK", "enforce")
    template = {"type": "BODY", "text": "Your order {{1}} has shipped."}
    simulator.set_templates(
        SECRET["appkey"], SECRET["business_phone"],
        [{"name": "order_update", "language": "en_US", "status": "APPROVED", "components": [template]}],
    )  # fmt: skip
    snapstart.before_snapshot()
    stack.enqueue(message())
    assert stack.run_batch()[1] == {"batchItemFailures": []}
    rt = runtime.get()
    assert rt.catalogue is not None and len(simulator.template_requests) == 1

    snapstart.after_restore()

    assert len(rt.sender.client.pool.pools) == 0  # getTemplate's connections too: one pool manager
    stack.enqueue(message(to="8613800000001"))
    assert stack.run_batch()[1] == {"batchItemFailures": []}
    assert len(simulator.accepted) == 2
    assert len(simulator.template_requests) == 2  # the listing from before the restore was dropped


def test_after_a_restore_copies_of_one_snapshot_draw_different_random_numbers() -> None:
    import random

    import snapstart

    random.seed(1234)  # the state every copy of a snapshot would share
    state = random.getstate()
    snapstart.after_restore()
    first = random.random()
    random.setstate(state)
    snapstart.after_restore()

    assert random.random() != first


def test_the_hooks_are_registered_only_where_lambdas_runtime_offers_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import snapstart

    registered: dict[str, Any] = {}
    fake = types.ModuleType("fake_snapshot_restore_py")
    fake.register_before_snapshot = lambda hook: registered.setdefault("before", hook)  # type: ignore[attr-defined]
    fake.register_after_restore = lambda hook: registered.setdefault("after", hook)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_snapshot_restore_py", fake)

    assert snapstart.register("fake_snapshot_restore_py") is True
    assert registered == {"before": snapstart.before_snapshot, "after": snapstart.after_restore}
    assert snapstart.register("snapshot_restore_py_is_not_here") is False
