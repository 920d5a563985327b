"""``make soak MODE=campaign-file`` in small: one campaign of a generated 300-row file through the real engine, with
NXCloud faults, planner kills, a pause and resume and a quiet-hours window, judged against the simulator's truth."""

from __future__ import annotations

import pytest
from soak import campaign_file
from soak.audience_gen import generate
from soak.campaign_file import CampaignFileLedger, render

ROWS = 300
SEED = 4


@pytest.fixture(scope="module")
def ledger() -> CampaignFileLedger:
    patch = pytest.MonkeyPatch()
    patch.setattr(campaign_file, "QUIET_MINUTES", 1)  # the shortest window: rows held up to a minute
    try:
        return campaign_file.run(CampaignFileLedger(rows=ROWS, rate=20.0, seed=SEED), progress=None)
    finally:
        patch.undo()


@pytest.mark.slow
def test_every_guarantee_holds(ledger: CampaignFileLedger) -> None:
    assert ledger.failures() == [], render(ledger)


@pytest.mark.slow
def test_the_counts_are_the_files_truth(ledger: CampaignFileLedger) -> None:
    truth = generate(ROWS, SEED).rows
    expected = {state: sum(1 for row in truth if row.expect == state) for state in ("sent", "duplicate", "invalid")}

    assert {state: ledger.counts[state] for state in expected} == expected, render(ledger)
    assert ledger.counts["failed"] == sum(1 for row in truth if row.undeliverable), render(ledger)


@pytest.mark.slow
def test_the_faults_were_met(ledger: CampaignFileLedger) -> None:
    assert ledger.faults_applied > 0 and ledger.planner_kills > 0 and ledger.held_rows > 0, render(ledger)
    assert len(ledger.api_during_ms) == campaign_file.API_MESSAGES, render(ledger)
