"""``nxwa campaign`` against the whole local stack (the API's emulation in front of the real handlers, the planner on
the tick queue, the sender on the send queue, moto), over real HTTP with only the API key: a dry run counts and sends
nothing, create uploads through the presigned POST and the campaign completes, status --watch follows it to the end,
list shows it, a move the status refuses exits 1 with the API's 409, report waits for the build and writes the CSV."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waops import cli

from local_stack.runner import Runner

ROWS = ["to,body.1,ref", "8613700000701,A-1,r1", "8613700000702,A-2,r2", "+86 137 0000 0701,A-3,r3", "12,A-4,r4"]


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    saved = dict(os.environ)
    with Runner(retry_delay=0) as running:
        yield running
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def nxwa(runner: Runner, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``nxwa`` with the API's URL and key only; its exit status and its JSON lines (the functions' own log lines,
    which share the captured stdout, left out)."""
    assert runner.api is not None
    api = runner.api

    def run(*args: str) -> tuple[int, list[dict[str, Any]]]:
        capsys.readouterr()
        status = cli.main([f"--api-url={api.url}/messages", f"--api-key={api.api_key}", *args])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
        return status, [line for line in lines if "_aws" not in line and "level" not in line]

    return run


@pytest.fixture
def audience(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def _create(nxwa: Any, audience: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["campaign", "create", "nxwa test", "--template", "order_update", "--language", "en_US"]
    status, lines = nxwa(*args, "--audience", str(audience), *extra)
    return status, lines[-1]


def test_a_dry_run_counts_the_rows_and_sends_nothing(nxwa: Any, runner: Runner, audience: Path) -> None:
    before = len(runner.stack.simulator.accepted)
    status, answer = _create(nxwa, audience, "--dry-run")
    assert status == 0
    assert (answer["http_status"], answer["valid"], answer["duplicate"], answer["invalid"]) == (200, 2, 1, 1)
    assert answer["invalid_rows"][0]["line"] == 5
    assert len(runner.stack.simulator.accepted) == before


def test_create_watch_to_completed_a_refused_move_and_the_report(
    nxwa: Any, runner: Runner, audience: Path, tmp_path: Path
) -> None:
    status, created = _create(nxwa, audience, "--rate", "20")
    assert (status, created["http_status"], created["status"]) == (0, 201, "scheduled")
    campaign_id = created["campaign_id"]

    status, lines = nxwa("campaign", "status", campaign_id, "--watch", "--interval", "0.2")
    assert status == 0
    final = lines[-1]
    assert final["status"] == "completed"
    counts = final["counts"]
    assert (counts["rows"], counts["sent"], counts["duplicate"], counts["invalid"]) == (4, 2, 1, 1)
    sent_to = [r.to for r in runner.stack.simulator.accepted if r.to in ("8613700000701", "8613700000702")]
    assert sorted(sent_to) == ["8613700000701", "8613700000702"]  # each once, though 0701 is in the file twice

    status, listed = nxwa("campaign", "list", "--json")
    assert status == 0 and campaign_id in [c["campaign_id"] for c in listed]

    status, refused = nxwa("campaign", "pause", campaign_id)
    assert (status, refused[-1]["http_status"]) == (1, 409)
    assert "completed" in json.dumps(refused[-1])

    report = tmp_path / "report.csv"
    status, _ = nxwa("campaign", "report", campaign_id, "--output", str(report))  # 202 while built, then the file
    assert status == 0
    lines = list(csv.DictReader(report.read_text(encoding="utf-8").splitlines()))
    assert [(line["row"], line["state"]) for line in lines] == [
        ("2", "sent"),
        ("3", "sent"),
        ("4", "duplicate"),
        ("5", "invalid"),
    ]
    sent = {r.message_id for r in runner.stack.simulator.accepted}
    assert {lines[0]["message_id"], lines[1]["message_id"]} <= sent
