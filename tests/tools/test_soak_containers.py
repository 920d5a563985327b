"""A soak slot's sure kill (tools/soak/containers.py): the n-th invocation is killed at the chaos range's low end
whatever the draw, so a CI run kills at least once; the others go on as drawn (none here: probability 0)."""

from __future__ import annotations

from typing import Any

import pytest
from soak.containers import InvocationKilled, Slot


class _Container:
    """Answers every invocation unless its deadline is shorter than the work (10 ms)."""

    def invoke(self, event: dict[str, Any], deadline_s: float, reason: str) -> tuple[Any, list[dict[str, Any]]]:
        if deadline_s < 0.01:
            raise InvocationKilled(reason, deadline_s)
        return {"ok": True}, []

    cpu_s = 0.0


def test_the_sure_kill_lands_on_its_invocation_and_only_there() -> None:
    results: list[str | None] = []
    slot = Slot(
        {},
        "webhook0",
        function_timeout=2.0,
        kill_probability=0.0,
        seed=7,
        on_result=lambda event, response, outcomes, killed: results.append(killed),
        chaos_deadline=(0.002, 0.05),
        sure_kill_at=3,
    )
    for n in range(5):
        slot.container = _Container()  # type: ignore[assignment]
        if n == 2:
            with pytest.raises(InvocationKilled):
                slot({"n": n})
        else:
            slot({"n": n})

    assert results == [None, None, "chaos", None, None]
    assert slot.kills == {"timeout": 0, "chaos": 1}
