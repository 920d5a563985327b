"""The programs ``make build`` and ``make pip-audit`` run (tools/checks), on files made here and a loopback server."""

from __future__ import annotations

import importlib.util
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "tools" / "checks"


def load(name: str) -> ModuleType:
    """A script of tools/checks as a module (they are run as files by make, not installed as a package)."""
    spec = importlib.util.spec_from_file_location(f"checks_{name}", CHECKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_makefile_embeds_no_program_and_runs_only_scripts_that_exist() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "define " not in makefile and "endef" not in makefile
    assert '-c "$$' not in makefile  # a program kept in a make variable and run with python -c
    used = set(re.findall(r"\$\(CHECKS\)/(\w+\.py)", makefile))
    assert used == {"only_aarch64.py", "pypi_advisory_probe.py", "pip_audit_report.py"}
    assert all((CHECKS / name).is_file() for name in used)


# --- only_aarch64 ---------------------------------------------------------------------------------------------------


def elf(machine: bytes) -> bytes:
    return b"\x7fELF\x02\x01\x01" + b"\x00" * 11 + machine + b"\x00" * 40


def test_only_aarch64_passes_arm64_objects_and_names_every_other_one(tmp_path: Path) -> None:
    only_aarch64 = load("only_aarch64")
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "fast.cpython-313-aarch64-linux-gnu.so").write_bytes(elf(b"\xb7\x00"))
    (tmp_path / "pkg" / "sub" / "libz.so.1").write_bytes(elf(b"\xb7\x00"))
    (tmp_path / "pkg" / "readme.txt").write_bytes(elf(b"\x3e\x00"))  # not a shared object: not looked at
    assert only_aarch64.main([str(tmp_path)]) == 0

    (tmp_path / "pkg" / "x86.cpython-313-x86_64-linux-gnu.so").write_bytes(elf(b"\x3e\x00"))
    (tmp_path / "pkg" / "sub" / "libssl.so.3").write_bytes(b"short")
    verdict = only_aarch64.main([str(tmp_path)])
    assert isinstance(verdict, str) and verdict.startswith("not arm64: ")
    assert "x86.cpython-313-x86_64-linux-gnu.so" in verdict and "libssl.so.3" in verdict
    assert "fast.cpython" not in verdict and "libz" not in verdict


def test_only_aarch64_refuses_a_missing_folder(tmp_path: Path) -> None:
    only_aarch64 = load("only_aarch64")
    assert only_aarch64.main([str(tmp_path / "missing")]) == f"not a folder: {tmp_path / 'missing'}"
    assert only_aarch64.main([]) == "usage: only_aarch64.py FOLDER"


# --- pip_audit_report -----------------------------------------------------------------------------------------------


def audit(tmp_path: Path, dependencies: list[dict[str, Any]]) -> str:
    path = tmp_path / "audit.json"
    path.write_text(json.dumps({"dependencies": dependencies, "fixes": []}), encoding="utf-8")
    return str(path)


CLEAN = [
    {"name": "pydantic", "version": "2.14.4", "vulns": []},
    {"name": "urllib3", "version": "2.8.0", "vulns": []},
    {"name": "nxcloud-wa-sender", "skip_reason": "distribution marked as editable"},
]


def test_pip_audit_report_passes_a_clean_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load("pip_audit_report").main(["runtime layer", audit(tmp_path, CLEAN)]) == 0
    assert capsys.readouterr().out == "pip-audit runtime layer: passed: 2 audited, 0 vulnerable, 0 not audited\n"


def test_pip_audit_report_fails_on_a_vulnerability_and_on_a_package_it_could_not_audit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dependencies = [
        *CLEAN,
        {
            "name": "jinja2",
            "version": "3.1.2",
            "vulns": [{"id": "GHSA-h5c8-rqwp-cp95", "aliases": ["CVE-2024-22195"], "fix_versions": ["3.1.3"]}],
        },
        {"name": "private-pkg", "skip_reason": "Dependency not found on PyPI and could not be audited"},
    ]
    assert load("pip_audit_report").main(["test environment", audit(tmp_path, dependencies)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "  VULNERABLE jinja2==3.1.2: GHSA-h5c8-rqwp-cp95 ['CVE-2024-22195'] fixed in: 3.1.3",
        "  NOT AUDITED private-pkg: Dependency not found on PyPI and could not be audited",
        "pip-audit test environment: FAILED: 3 audited, 1 vulnerable, 1 not audited",
    ]


def test_pip_audit_report_without_a_report_fails_saying_so(tmp_path: Path) -> None:
    verdict = load("pip_audit_report").main(["runtime layer", str(tmp_path / "none.json")])
    assert isinstance(verdict, str) and verdict.startswith("pip-audit runtime layer: FAILED, no report (")


# --- pypi_advisory_probe --------------------------------------------------------------------------------------------


def test_the_probe_asks_for_the_first_pinned_release(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "# comment == not a pin\n-r other.txt\n\naws-lambda-powertools[tracer]==3.37.0 ; python_version >= '3.11'\n"
        "pydantic==2.14.4\n",
        encoding="utf-8",
    )
    assert load("pypi_advisory_probe").first_pin(requirements) == ("aws-lambda-powertools", "3.37.0")
    assert load("pypi_advisory_probe").first_pin(ROOT / "layers" / "deps" / "requirements.txt")[1]


@pytest.fixture
def json_api() -> Iterator[str]:
    """A loopback stand-in for PyPI's JSON API: releases of ``known`` answer, anything else is a 404."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            known = self.path.startswith("/pypi/known/")
            body = json.dumps({"info": {}, "vulnerabilities": []} if known else {"message": "Not Found"}).encode()
            self.send_response(200 if known else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/pypi"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("case", [("known", 0, "HTTP 200 OK"), ("gone", 1, "HTTP 404 Not Found")])
def test_the_probe_says_what_came_back(
    tmp_path: Path, json_api: str, capsys: pytest.CaptureFixture[str], case: tuple[str, int, str]
) -> None:
    package, status, seen = case
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"{package}==1.0\n", encoding="utf-8")
    assert load("pypi_advisory_probe").main([str(requirements), "--json-api", json_api]) == status
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"pip-audit's data source: GET {json_api}/{package}/1.0/json -> {seen}, ")
