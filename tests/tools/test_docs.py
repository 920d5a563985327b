"""The documentation the code generates is up to date, and says what the code does."""

from __future__ import annotations

from docgen import errors
from docgen.__main__ import DOCUMENTS, main
from nxcloud_wa.error_codes import NXCLOUD_CODES


def test_generated_documents_are_current() -> None:
    assert main(["--check"]) == 0, "a generated document is stale: run make docs"


def test_the_error_document_lists_every_code_with_its_class_and_api_status() -> None:
    text = errors.render()
    for code, info in NXCLOUD_CODES.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {code} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3].startswith(str(info.error_class)), code
        assert cells[4] == str(info.classification.api_status), code
    assert "| 22125 |" in text and "| 503 |" in text.split("| 22125 |")[1].splitlines()[0]


def test_every_generated_document_lives_under_docs() -> None:
    assert {path.parent.name for path in DOCUMENTS} == {"docs"}
