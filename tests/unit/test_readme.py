"""README.md is the user's door: the facts it repeats must stay equal to the code's one place for each."""

import re
from pathlib import Path

from nxcloud_wa.languages import TEMPLATE_LANGUAGES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_link_to_a_file_of_the_repository_resolves() -> None:
    root = Path(__file__).resolve().parents[2]
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", README)
    assert "docs/errors.md" in targets and "docs/lifecycle.md" in targets
    assert [t for t in targets if not (root / t).exists()] == []


def test_the_readme_stays_a_door() -> None:
    assert len(README.splitlines()) <= 200  # the runbook, the tables and the figures live in docs/


def test_readme_counts_the_language_table() -> None:
    assert f"NXCloud's {len(TEMPLATE_LANGUAGES)} template language codes" in README


def test_the_two_commands_are_near_the_top() -> None:
    head = README[: README.index("## Deploy")]

    assert "make run " in head
    assert "make test " in head
