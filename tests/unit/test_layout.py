"""Where a newcomer looks for a module names it: README's Layout names every module of the functions and the layer,
and the layer's package docstring names each of its modules."""

from __future__ import annotations

import re
from pathlib import Path

import nxcloud_wa

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
LAYER = ROOT / "layers/core/python/nxcloud_wa"


def _layout() -> str:
    section = README[README.index("## Layout") :]
    return section[: section.index("```", section.index("```") + 3)]


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z_][a-z0-9_]*(?:\.py)?", text))


def test_readme_layout_names_every_module_of_the_functions() -> None:
    modules = {p.name for p in ROOT.glob("functions/*/*.py")}
    assert modules - _words(_layout()) == set()


def test_readme_layout_and_the_package_docstring_name_every_module_of_the_layer() -> None:
    modules = {p.stem for p in LAYER.glob("*.py") if p.stem != "__init__"}
    assert modules - _words(_layout()) == set()
    assert modules - _words(nxcloud_wa.__doc__ or "") == set()


def test_readme_layout_names_every_tool() -> None:
    tools = {p.name for p in (ROOT / "tools").iterdir() if p.is_dir() and p.name[0].isalpha() and "." not in p.name}
    assert len(tools) > 5  # the glob found them
    assert tools - _words(_layout()) == set()
