"""make run's view of the suppression entries the run created: masked numbers, one aligned line each."""

from __future__ import annotations

from local_stack.suppression_entries import entry_lines
from nxcloud_wa.suppressions import Reason, Scope, Suppression

AT = "2027-01-15T08:00:00.000+00:00"


def test_each_entry_is_a_line_with_its_numbers_masked() -> None:
    entries = [
        Suppression("85291234867", "8613612345759", Scope.ALL, Reason.UNDELIVERABLE, "131026", AT, 1_802_592_000),
        Suppression("8618512348399", "8613612349759", Scope.MARKETING, Reason.OPTED_OUT, "Stop promotions", AT),
    ]

    heading, header, *lines = entry_lines(entries)

    assert heading.startswith("suppression entries created during the run (2;")
    assert header.split() == ["business", "number", "recipient", "scope", "reason", "source", "applies"]
    assert lines[0].split()[:5] == ["+852****4867", "+86*******5759", "all", "undeliverable", "131026"]
    assert lines[0].endswith("until 2027-02-14 08:00 UTC")
    assert lines[1].endswith("until removed")
    assert header.index("recipient") == lines[0].index("+86*******5759") == lines[1].index("+86*******9759")
    text = "\n".join(lines)
    assert "8613612345759" not in text and "8618512348399" not in text


def test_a_run_that_created_none_says_so() -> None:
    assert entry_lines([]) == ["suppression entries created during the run: none"]
