"""The fault-injection soak, short (CI), and the bugs it found, each pinned down on its own."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.conftest import Stack, message


def test_api_unknown_outcome_whose_dead_letter_failed_is_dead_lettered_on_the_retry(
    stack: Stack, simulator: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    simulator.add_fault(kind="read_timeout_after_accept", times=1, hang=1)
    monkeypatch.setenv("DLQ_URL", stack.resources.dlq_url + "-missing")
    runtime.reset()
    first = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})
    monkeypatch.setenv("DLQ_URL", stack.resources.dlq_url)
    runtime.reset()
    second = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})
    third = stack.call_api(message(), {"Idempotency-Key": "maybe-sent"})

    assert first["statusCode"] == 503
    assert second["statusCode"] == third["statusCode"] == 504
    assert json.loads(second["body"])["error"] == "unknown_outcome"
    assert len(simulator.accepted) == 1
    dead = stack.dlq_messages()
    assert len(dead) >= 1  # recorded (once more per later retry, until a write is known to have worked)
    assert {d["MessageAttributes"]["reason"]["StringValue"] for d in dead} == {"unknown_outcome"}
