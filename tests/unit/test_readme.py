"""README.md is the user's door: the facts it repeats must stay equal to the code's one place for each."""

import re
from pathlib import Path

from nxcloud_wa.error_codes import NXCLOUD_CODES, ErrorClass
from nxcloud_wa.languages import TEMPLATE_LANGUAGES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_error_table_lists_every_code_with_the_code_tables_class() -> None:
    rows = re.findall(r"^\| (-?\d+) \| [^|]* \| ([^|]+) \| ([^|]+) \|$", README, flags=re.MULTILINE)
    documented = {int(code): (meaning.strip(), cls.strip()) for code, meaning, cls in rows}

    assert set(documented) == set(NXCLOUD_CODES)
    for code, info in NXCLOUD_CODES.items():
        meaning, cls = documented[code]
        assert meaning == info.meaning, code
        assert cls.split(",")[0] == str(info.error_class), code
        assert cls.endswith(", auth") == info.auth, code
    assert {ErrorClass.PERMANENT, ErrorClass.RETRYABLE} == {info.error_class for info in NXCLOUD_CODES.values()}


def test_readme_counts_the_language_table() -> None:
    assert f"NXCloud's {len(TEMPLATE_LANGUAGES)} template language codes" in README


def test_the_two_commands_are_near_the_top() -> None:
    head = README[: README.index("## Deploy")]

    assert "make run " in head
    assert "make test " in head
