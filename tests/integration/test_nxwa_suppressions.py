"""``nxwa suppressions`` against the local API (API Gateway's emulation in front of the real handler, moto), over real
HTTP with only the API key: add, check, remove, list across pages, import with its counts and line numbers, export
that imports again.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waops import cli, rest, suppressions
from waops.targets import Targets

from local_stack.emulators import ApiServer, Invoker
from tests.stack import Stack

BUSINESS = "8618512348399"
"""The secret's default business number (tests/stack.py)."""


@pytest.fixture(scope="module")
def api_server(module_stack: Stack) -> Iterator[ApiServer]:
    server = ApiServer(Invoker(timeout=30)).start()
    yield server
    server.stop()


@pytest.fixture
def nxwa(api_server: ApiServer, module_stack: Stack, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """Run ``nxwa`` with the API's URL and key only; return its exit status and what it printed (the function's own
    log lines, which share the captured stdout, left out). The list is emptied before and after."""

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        status = cli.main([f"--api-url={api_server.url}/messages", f"--api-key={api_server.api_key}", *args])
        lines = [line for line in capsys.readouterr().out.splitlines() if not _function_line(line)]
        return status, "\n".join(lines)

    _empty(module_stack)
    yield run
    _empty(module_stack)


def _function_line(line: str) -> bool:
    if not line.startswith("{"):
        return False
    document = json.loads(line)
    return "_aws" in document or "level" in document


def _empty(stack: Stack) -> None:
    dynamodb = stack.resources.client("dynamodb")
    table = stack.resources.suppressions_table
    for item in dynamodb.scan(TableName=table).get("Items", []):
        dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


def test_add_check_and_remove_one_number(nxwa: Any) -> None:
    status, out = nxwa("suppressions", "add", "+86 138 0013 8000", "--scope", "all", "--reason", "opted_out")

    assert status == 0
    added = json.loads(out)
    assert (added["http_status"], added["number"], added["business_phone"]) == (201, "8613800138000", BUSINESS)
    assert (added["scope"], added["reason"], added["source"]) == ("all", "opted_out", "api")

    status, out = nxwa("suppressions", "check", "008613800138000")
    assert status == 0 and json.loads(out) == {**added, "http_status": 200}
    assert nxwa("suppressions", "remove", "8613800138000") == (0, '{"http_status": 204}')
    status, out = nxwa("suppressions", "check", "8613800138000")
    assert (status, json.loads(out)["http_status"]) == (1, 404)
    assert nxwa("suppressions", "remove", "8613800138000")[0] == 1


def test_add_says_what_the_api_refused(nxwa: Any) -> None:
    status, out = nxwa("suppressions", "add", "8613800138000", "--reason", "undeliverable")

    assert status == 1
    refused = json.loads(out)
    assert refused["http_status"] == 400 and refused["errors"][0]["loc"] == ["body", "reason"]


def test_add_for_another_business_number_with_an_expiry(nxwa: Any) -> None:
    other = ("--business-phone", "+86 185 1234 0000")
    status, out = nxwa("suppressions", "add", "8613800138000", "--expires-at", "2999-01-31T00:00:00+08:00", *other)

    assert status == 0
    assert json.loads(out)["expires_at"] == "2999-01-30T16:00:00.000+00:00"
    assert nxwa("suppressions", "check", "8613800138000")[0] == 1  # not for the default business number
    assert nxwa("suppressions", "check", "8613800138000", *other)[0] == 0


def test_list_follows_the_pages_and_limit_stops_it(nxwa: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suppressions, "PAGE", 2)  # five entries: three pages
    numbers = [f"86138001380{i:02d}" for i in range(5)]
    for number in numbers:
        assert nxwa("suppressions", "add", number)[0] == 0

    status, out = nxwa("suppressions", "list", "--json")
    assert status == 0
    assert [json.loads(line)["number"] for line in out.splitlines()] == numbers

    status, out = nxwa("suppressions", "list", "--limit", "3")
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:-1]] == numbers[:3]
    assert out.splitlines()[-1] == "3 entries in force"


def test_import_counts_added_present_and_invalid_with_line_numbers(nxwa: Any, tmp_path: Path) -> None:
    assert nxwa("suppressions", "add", "8613800138001")[0] == 0
    rows = [
        "number,scope,reason,expires_at",
        "8613800138000,all,opted_out,",  # line 2: added
        "+86 138 0013 8001,,,",  # line 3: already present
        "12,,,",  # line 4: not a number
        "8613800138002,everything,,",  # line 5: no such scope
        "8613800138003,,,2999-01-01T00:00:00Z",  # line 6: added, expiring
        ",all,,",  # line 7: no number
        "8613800138004,all,undeliverable,2999-01-01T00:00:00Z",  # line 8: WhatsApp's reason, as the person's
    ]
    file = tmp_path / "list.csv"
    file.write_text("\n".join(rows) + "\n", encoding="utf-8")

    status, out = nxwa("suppressions", "import", str(file), "--concurrency", "3")

    assert status == 1
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == ["line 4", "line 5", "line 7"]
    assert "number" in lines[0] and "scope" in lines[1]
    assert lines[-1] == (
        "added 3, already present 1, invalid 3, failed 0 (lines: 4, 5, 7); "
        "1 with WhatsApp's reasons stored as marketing_stopped -> opted_out, undeliverable -> manual"
    )
    status, out = nxwa("suppressions", "check", "8613800138004")
    entry = json.loads(out)
    assert (entry["scope"], entry["reason"], entry["source"]) == ("all", "manual", "import")
    assert entry["expires_at"] == "2999-01-01T00:00:00.000+00:00"


def test_import_refuses_a_file_without_the_number_column(nxwa: Any, tmp_path: Path) -> None:
    file = tmp_path / "list.csv"
    file.write_text("phone,scope\n8613800138000,all\n", encoding="utf-8")

    with pytest.raises(SystemExit, match="the header must be number"):
        nxwa("suppressions", "import", str(file))


def test_export_writes_what_import_reads(nxwa: Any, tmp_path: Path) -> None:
    nxwa("suppressions", "add", "8613800138000", "--scope", "all")
    nxwa("suppressions", "add", "8613800138001", "--expires-at", "2999-01-01T00:00:00Z", "--reason", "opted_out")
    exported = tmp_path / "export.csv"

    assert nxwa("suppressions", "export", "--output", str(exported)) == (0, "")

    rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8"))))
    assert [(r["number"], r["scope"], r["reason"], r["expires_at"], r["source"]) for r in rows] == [
        ("8613800138000", "all", "manual", "", "api"),
        ("8613800138001", "marketing", "opted_out", "2999-01-01T00:00:00.000+00:00", "api"),
    ]
    # Into another business number's list: every row added, the same entries.
    other = ("--business-phone", "8618512340000")
    status, out = nxwa("suppressions", "import", str(exported), *other)
    assert (status, out) == (0, "added 2, already present 0, invalid 0, failed 0 (lines: none)")
    status, out = nxwa("suppressions", "list", "--json", *other)
    copied = [json.loads(line) for line in out.splitlines()]
    assert [(e["number"], e["scope"], e["reason"], e["expires_at"], e["source"]) for e in copied] == [
        ("8613800138000", "all", "manual", None, "import"),
        ("8613800138001", "marketing", "opted_out", "2999-01-01T00:00:00.000+00:00", "import"),
    ]


def test_a_throttled_request_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """429 and 5xx are tried again (after Retry-After when given), up to ATTEMPTS; a 4xx is not."""
    answers = iter([(429, {"message": "Too Many Requests"}, 2.0), (503, {"error": "x"}, None), (201, {}, None)])
    waits: list[float] = []
    monkeypatch.setattr(rest, "_http", lambda request: next(answers))
    api = suppressions.Api(Targets(api_url="http://127.0.0.1:9/v1/messages", api_key="k"), waits.append)

    assert api.put("8613800138000", {}).status == 201
    assert waits == [2.0, 2.0]
    monkeypatch.setattr(rest, "_http", lambda request: (400, {"errors": []}, None))
    assert api.put("8613800138000", {}).status == 400
    assert waits == [2.0, 2.0]
