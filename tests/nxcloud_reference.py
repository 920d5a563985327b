"""docs/nxcloud.md's tables as data: what the tests compare the code with, instead of a copy of NXCloud's page.

docs/nxcloud.md is the project's record of NXCloud's pages (the send page's response codes and template languages,
the signing convention's codes). Its tables are read here by their section's heading; a table that cannot be found or
read fails the test that asks for it, it never skips.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "nxcloud.md"


@cache
def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def table(heading: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the first table under the heading ``heading``."""
    text = _text()
    match = re.search(rf"^#+ {re.escape(heading)}\n", text, flags=re.MULTILINE)
    assert match, f"no heading {heading!r} in {DOC}"
    lines = text[match.end() :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:  # after the header row and the |---| rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    assert rows, f"no table under {heading!r} in {DOC}"
    return rows


def _code(cell: str) -> str:
    assert cell.startswith("`") and cell.endswith("`"), cell
    return cell.strip("`")


def send_page_codes() -> dict[str, tuple[str, str]]:
    """The send page's 响应码说明 table: code as written (``-1``, ``1000~100X``...) -> (message, 解决办法)."""
    return {_code(code): (message, resolution) for code, message, resolution, _ in table("The send page (响应码说明)")}


def signing_codes() -> dict[int, str]:
    """The signing convention's auth codes: code -> meaning."""
    return {int(_code(code)): meaning for code, meaning, _ in table("The signing convention (1000–100X)")}


def template_languages() -> list[tuple[str, str]]:
    """The page's 模板语言 table as (code, name) pairs, in the page's order."""
    return [(_code(code), name) for code, name in table("4. Template language codes")]


def get_template_codes() -> dict[str, str]:
    """getTemplate's codes (section 6, the table after "Codes:"): code as written -> meaning."""
    text = _text()
    section = text[text.index("## 6. getTemplate") :]
    lines = section[section.index("\nCodes:\n") :].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
    assert rows, "no getTemplate code table in section 6"
    return {_code(code): meaning for code, meaning in rows}
