"""``nxwa campaign``'s pure parts: the body its options make, the progress line, the file's format (the commands
against the real API are tests/integration/test_nxwa_campaign.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from waops import cli
from waops.campaigns import audience_format, create_body, ended, progress_line


def test_create_body_from_the_options() -> None:
    body = create_body(
        "spring", "promo", "en_US", "audiences/a.csv", quiet_hours="21:00 - 09:00", rate=40.0, dry_run=True
    )
    assert body == {
        "name": "spring",
        "template": {"name": "promo", "language": {"code": "en_US"}},
        "audience": {"key": "audiences/a.csv"},
        "quiet_hours": {"start": "21:00", "end": "09:00"},
        "rate": 40.0,
        "dry_run": True,
    }
    with pytest.raises(SystemExit, match="START-END"):
        create_body("spring", "promo", "en_US", "k", quiet_hours="21:00")


def test_the_progress_line_counts_failed_and_remaining() -> None:
    campaign = {
        "status": "running",
        "rate": 64.0,
        "eta_seconds": 3725,
        "counts": {"rows": 100, "sent": 40, "invalid": 5, "dead_lettered": 2, "failed": 3, "queued": 60},
    }
    assert ended(campaign["counts"]) == 47  # sent, invalid, dead_lettered: queued and failed are not row states
    assert progress_line(campaign) == "running · sent 40 · failed 5 · remaining 53 · 64.0/s · ETA 1h02m05s"
    assert progress_line({"status": "scheduled", "rate": 64.0}).endswith("remaining 0 · 64.0/s · ETA -")


@pytest.mark.parametrize(("name", "fmt"), [("a.csv", "csv"), ("B.JSONL", "jsonl")])
def test_the_format_is_the_files_suffix(name: str, fmt: str) -> None:
    assert audience_format(Path(name)) == fmt


def test_another_suffix_is_refused_before_anything_is_uploaded() -> None:
    with pytest.raises(SystemExit, match=r"ends in \.csv or \.jsonl"):
        cli.main(
            [
                "--api-url",
                "http://127.0.0.1:9/v1/messages",
                "--api-key",
                "k",
                "campaign",
                "create",
                "x",
                "--template",
                "t",
                "--language",
                "en",
                "--audience",
                "list.xlsx",
            ]
        )
