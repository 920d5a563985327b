"""``make run``'s campaign: 30 rows through the real API, planner, sender, webhook and publisher, paused and resumed.

The file (:func:`audience`) has 25 recipients (one of them fails at WhatsApp: 131026 after ``sent``), 2 numbers met
again in other spellings and 3 invalid rows. It is uploaded the way ``nxwa campaign create`` uploads it (``POST
/audiences``' presigned POST), created at 10 messages a second, paused once a few rows are sent, resumed after the
pause has held for :data:`HOLD_S` (no send in that time is the pause's proof), and followed until ``completed``. The
row is ok when the final counts are exactly :data:`EXPECTED_COUNTS`, nothing was sent while paused, and the bus saw
the campaign go scheduled, running, paused, running, completed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from waops.campaigns import ENDED, Api, upload
from waops.targets import Targets

from local_stack.runner import Row, Runner

RECIPIENTS: Final = 25
FAILING: Final = "8613700000599"
"""The recipient WhatsApp cannot deliver to (the simulator's 131026 after ``sent``)."""
RATE: Final = 10.0
PAUSE_AFTER_SENT: Final = 5
HOLD_S: Final = 3.0
"""How long the pause is held: longer than the sender's cache of a campaign's status (2 s) plus a batch."""
EXPECTED_COUNTS: Final = {
    "rows": 30,
    "invalid": 3,
    "duplicate": 2,
    "queued": 25,
    "sent": 25,
    "dead_lettered": 0,
    "skipped": 0,
    "failed": 1,
}
EXPECTED_MOVES: Final = ["scheduled", "running", "paused", "running", "completed"]
SAMPLE: Final = "campaign: 30 rows of order_update (25 recipients, 1 undeliverable, 2 duplicates, 3 invalid), paused"


def audience() -> str:
    """The CSV: valid rows, two numbers again in other spellings, three invalid rows (a number too short, an empty
    parameter, a ref too long)."""
    lines = ["to,body.1,ref"]
    numbers = [f"86137000005{n:02d}" for n in range(RECIPIENTS - 1)] + [FAILING]
    lines += [f"{number},A-{n},cust-{n}" for n, number in enumerate(numbers)]
    lines += ["+86 137 0000 0500,A-dup,cust-dup-1", "0086 13700000501,A-dup,cust-dup-2"]
    lines += ["12345,A-bad,cust-bad-1", "8613700000580,,cust-bad-2", f"8613700000581,A-x,{'r' * 200}"]
    return "\n".join(lines) + "\n"


class CampaignRow:
    """Runs the campaign and makes its table row."""

    def __init__(self, runner: Runner) -> None:
        assert runner.api is not None
        self.runner = runner
        self.api = Api(Targets(api_url=runner.api.url, api_key=runner.api.api_key))
        self.campaign_id = ""
        self.counts: dict[str, int] = {}
        self.status = "not created"
        self.sent_while_paused: int | None = None

    def run(self, timeout: float) -> None:
        self.runner.stack.simulator.add_outcome(to=FAILING, final="failed", code=131026, after_sent=True)
        created = self._create()
        if created is None:
            return
        self.campaign_id = created
        deadline = time.monotonic() + timeout
        self._until(lambda c: c["counts"]["sent"] >= PAUSE_AFTER_SENT or c["status"] in ENDED, deadline)
        self._act("pause")
        time.sleep(2.5)  # the sender's cached status (2 s) and a batch in flight may still send
        before = self._read()["counts"]["sent"]
        time.sleep(HOLD_S - 2.5 + 1.0)
        self.sent_while_paused = self._read()["counts"]["sent"] - before
        self._act("resume")
        self._until(lambda c: c["status"] in ENDED, deadline)
        self.runner.wait_for_callbacks(timeout=max(deadline - time.monotonic(), 1.0))
        final = self._read()
        self.status, self.counts = final["status"], final["counts"]

    def _create(self) -> str | None:
        grant = self.api.audience("csv")
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "make-run.csv"
            path.write_text(audience(), encoding="utf-8")
            upload(grant.body, path)
        body = {
            "name": "make run",
            "template": {"name": "order_update", "language": {"code": "en_US"}},
            "audience": {"key": grant.body["key"]},
            "rate": RATE,
        }
        answer = self.api.create(body)
        if answer.status != 201:
            self.status = f"create: http {answer.status}: {answer.error}"
            return None
        return str(answer.body["campaign_id"])

    def _act(self, action: str) -> None:
        answer = self.api.act(self.campaign_id, action)
        if answer.status != 200:
            raise RuntimeError(f"campaign {action}: http {answer.status}: {answer.error}")

    def _read(self) -> dict[str, Any]:
        answer = self.api.get(self.campaign_id)
        if answer.status != 200:
            raise RuntimeError(f"GET /campaigns/{self.campaign_id}: http {answer.status}: {answer.error}")
        return dict(answer.body)

    def _until(self, done: Callable[[dict[str, Any]], bool], deadline: float) -> dict[str, Any]:
        campaign = self._read()
        while not done(campaign) and time.monotonic() < deadline:
            time.sleep(0.2)
            campaign = self._read()
        return campaign

    def row(self, moves: dict[str, list[str]]) -> Row:
        shown = {name: self.counts.get(name) for name in EXPECTED_COUNTS}
        outcome = f"{self.status}: " + ", ".join(f"{k} {v}" for k, v in shown.items())
        outcome += f"; sent while paused {self.sent_while_paused}"
        expected = "completed: " + ", ".join(f"{k} {v}" for k, v in EXPECTED_COUNTS.items())
        expected += "; sent while paused 0"
        seen = moves.get(self.campaign_id, [])
        return Row(SAMPLE, "api", outcome, self.campaign_id, expected, " ".join(seen), " ".join(EXPECTED_MOVES))
