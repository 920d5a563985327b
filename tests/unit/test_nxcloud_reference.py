"""docs/nxcloud.md, the project's record of NXCloud's pages: readable, consistent with itself and with the code.

The code's tables are compared with it in test_error_codes.py (codes) and test_models.py (languages); here: its
tables have what the pages have, its worked signing example and its JSON shapes are right, and nothing in the
project's tests, tools or docs points at a folder outside the repository.
"""

from __future__ import annotations

import hashlib
import json
import re

from nxcloud_wa.error_codes import NXCLOUD_CODES
from nxcloud_wa.signing import sign, signing_string
from tests.nxcloud_reference import DOC, send_page_codes, signing_codes, template_languages

ROOT = DOC.parents[1]


def test_the_send_pages_code_table_is_complete() -> None:
    codes = send_page_codes()
    assert list(codes)[:3] == ["0", "-1", "1000~100X"]
    assert len(codes) == 24  # 0, -1, the auth range, six 2106x parameter errors, fifteen 22xxx business errors
    assert codes["0"] == ("请求成功", "")
    assert codes["22093"] == ("业务异常", "模板不存在")
    assert {message for code, (message, _) in codes.items() if code.startswith("210")} == {"参数异常"}
    assert {message for code, (message, _) in codes.items() if code.startswith("22")} == {"业务异常"}


def test_every_code_of_the_code_table_is_on_a_page_and_every_page_code_in_the_table() -> None:
    send = {int(code) for code in send_page_codes() if re.fullmatch(r"-?\d+", code)} - {0}
    auth = set(signing_codes())
    assert auth == {1001, 1002, 1003, 1004, 1005}
    assert set(NXCLOUD_CODES) == send | auth | {1000}  # 1000: the first of the page's "1000~100X"
    assert all(NXCLOUD_CODES[code].auth and NXCLOUD_CODES[code].message == "鉴权问题" for code in auth | {1000})


def test_the_language_table_has_the_pages_65_codes() -> None:
    languages = template_languages()
    assert len(languages) == len(dict(languages)) == 65
    assert languages[0] == ("af", "Afrikaans") and languages[-1] == ("vi", "Vietnamese")
    assert ("zh_CN", "Chinese (CHN)") in languages and ("pt_BR", "Portuguese (BR)") in languages


def test_the_worked_signing_example_is_right() -> None:
    text = DOC.read_text(encoding="utf-8")
    line = next(ln for ln in text.splitlines() if ln.startswith("accessKey=AK&action=mt&bizType=2&ts=1700000000000"))
    stated = re.search(r"`sign` is `([0-9a-f]{32})`", text)
    assert stated, "the worked example states its sign"
    headers = {"accessKey": "AK", "action": "mt", "bizType": "2", "ts": "1700000000000"}
    body = '{"to":"8613800000000"}'
    assert signing_string(headers, body, "SECRET") == line
    assert hashlib.md5(line.encode("utf-8")).hexdigest() == stated.group(1) == sign(headers, body, "SECRET")


def test_every_json_block_is_valid_json() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        json.loads(block)


def test_nothing_points_outside_the_repository() -> None:
    """A clone has no shared folder beside it: tests, tools and docs name docs/nxcloud.md instead."""
    outside = "shared" + "/"  # written so, or this file would find itself
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("tests", "tools", "docs")
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in (".py", ".md") and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if outside in line
    ]
    assert found == []
