"""The emulated DynamoDB stream event source (tools/local_stack/streams.py), as Lambda's mapping behaves.

``make run`` and the soak hand the messages table's stream to the publisher through it, so what it drops the
publisher never sees: a failed invocation must get the same batch again, and a batch must not exceed the
template's ``BatchSize``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from local_stack.streams import StreamReader, batch_size

from .conftest import Stack


class Killed(Exception):
    """The publisher's invocation dying before it answers (a timeout, a crash)."""


def _statuses(ids: list[str]) -> dict[str, Any]:
    now = int(time.time()) + 60
    return {
        "statuses": [
            {"id": i, "status": "delivered", "timestamp": str(now), "recipient_id": "8613800000000"} for i in ids
        ],
        "business_phone": "8618512348399",
        "messaging_product": "whatsapp",
    }


def _ids(event: dict[str, Any]) -> list[str]:
    return [r["dynamodb"]["Keys"]["id"]["S"] for r in event["Records"]]


def test_a_failed_invocation_gets_the_same_batch_again(stack: Stack) -> None:
    assert stack.call_webhook(_statuses(["wamid.a", "wamid.b"]))["statusCode"] == 200
    reader = StreamReader(stack.resources)
    seen: list[list[str]] = []

    def dies(event: dict[str, Any]) -> dict[str, Any]:
        seen.append(_ids(event))
        raise Killed

    with pytest.raises(Killed):
        reader.deliver(dies)
    handed = reader.deliver(lambda event: seen.append(_ids(event)) or {"batchItemFailures": []})

    assert handed == len(seen[0])
    assert seen[0] == seen[1]
    assert set(seen[0]) == {"status#wamid.a", "status#wamid.b"}
    assert reader.deliver(lambda event: {}) == 0
    assert reader.caught_up


def test_batches_are_at_most_the_templates_batch_size(stack: Stack) -> None:
    size = batch_size()
    ids = [f"wamid.{n:04d}" for n in range(size + 5)]
    assert stack.call_webhook(_statuses(ids))["statusCode"] == 200
    reader = StreamReader(stack.resources)
    sizes: list[int] = []

    while reader.deliver(lambda event: sizes.append(len(event["Records"])) or {}):
        pass

    assert len(sizes) >= 2
    assert max(sizes) == size  # (moto writes two stream records for an update that creates its item)
