"""docs/configuration.md names every variable the code reads and the template sets, and every stack parameter."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local_stack.template import function_properties, load_template

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
READS = re.compile(r"""env\.(?:required|text|positive_int|positive_float|choice|url)\(\s*["']([A-Z][A-Z0-9_]+)["']""")
FUNCTIONS = ("SenderFunction", "WebhookFunction", "PublisherFunction", "PlannerFunction")


def documented(name: str) -> bool:
    return f"`{name}`" in DOC


def variables_the_code_reads() -> set[str]:
    sources = [*ROOT.glob("functions/*/*.py"), *ROOT.glob("layers/core/python/nxcloud_wa/*.py")]
    return {name for path in sources for name in READS.findall(path.read_text(encoding="utf-8"))}


def test_the_code_reads_variables_through_the_one_reader() -> None:
    assert {
        "NXCLOUD_SECRET_ID",
        "MESSAGES_TABLE",
        "EVENT_BUS_NAME",
        "KEPT_CALLBACKS_QUEUE_URL",
    } <= variables_the_code_reads()


def test_every_variable_the_code_reads_is_documented() -> None:
    assert sorted(n for n in variables_the_code_reads() if not documented(n)) == []


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_variable_the_template_sets_is_documented(function: str) -> None:
    variables = function_properties(function)["Environment"]["Variables"]
    assert sorted(n for n in variables if not documented(n)) == []


def test_every_stack_parameter_is_documented() -> None:
    assert sorted(n for n in load_template()["Parameters"] if not documented(n)) == []
