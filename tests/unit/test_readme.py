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


def _layout() -> str:
    """The code block under README's "## Layout" heading."""
    section = README[README.index("## Layout") :]
    return section.split("```")[1]


def test_the_layout_names_every_module_and_tool() -> None:
    root = Path(__file__).resolve().parents[2]
    layout = _layout()
    modules = [
        *(p for p in (root / "functions").glob("*/*.py") if p.name != "__init__.py"),
        *(p for p in (root / "layers/core/python/nxcloud_wa").glob("*.py") if p.name != "__init__.py"),
    ]
    tools = [p for p in (root / "tools").iterdir() if p.is_dir() and p.name[0].isalpha() and "." not in p.name]
    assert len(modules) > 20 and len(tools) > 5  # the globs found the code
    missing = [p.stem for p in modules + tools if not re.search(rf"\b{re.escape(p.stem)}\b", layout)]
    assert missing == [], "README's Layout does not name these modules or tools"
