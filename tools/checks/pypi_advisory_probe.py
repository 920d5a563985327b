"""``make pip-audit``'s first step: does pip-audit's data source answer from this machine?

pip-audit reads PyPI's JSON API for each pinned release (``https://pypi.org/pypi/NAME/VERSION/json``, its
``vulnerabilities`` key). This asks for the first release pinned in the requirements file given and prints one line
saying what came back. Exit 0 when the answer is that API's, 1 otherwise: the Makefile then says
"pip-audit: NOT RUN" (with ``SECURITY_ALLOW_NO_AUDIT=1``) or fails, instead of letting pip-audit report "No known
vulnerabilities" for releases it could not look up.

    .venv-security/bin/python tools/checks/pypi_advisory_probe.py layers/deps/requirements.txt

Runs in ``.venv-security`` (it needs ``requests``, as pip-audit does).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PYPI_JSON_API = "https://pypi.org/pypi"
PIN = re.compile(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^\s;#]+)")
"""``name==version`` (extras allowed, markers and comments after it ignored)."""


def first_pin(requirements: Path) -> tuple[str, str]:
    """(name, version) of the first ``name==version`` line of a requirements file."""
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = PIN.match(line) if re.match(r"[A-Za-z0-9]", line) and "==" in line else None
        if match:
            return match.group(1), match.group(2)
    raise ValueError(f"no pinned release (name==version) in {requirements}")


def probe(url: str, timeout: float = 15) -> tuple[bool, str]:
    """(answered, what came back): answered when the URL gives HTTP 200 with a JSON ``vulnerabilities`` key."""
    import requests

    try:
        answer = requests.get(url, timeout=timeout)
        why = f"HTTP {answer.status_code} {answer.reason}, {len(answer.content)} bytes"
        ok = answer.status_code == 200 and "vulnerabilities" in answer.json()
    except Exception as exc:  # any failure means the same: pip-audit could not audit from here
        ok, why = False, f"{type(exc).__name__}: {exc}"
    return ok, why


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requirements", type=Path, help="a requirements file; its first pinned release is asked for")
    parser.add_argument("--json-api", default=PYPI_JSON_API, help=f"the JSON API's base URL (default {PYPI_JSON_API})")
    args = parser.parse_args(argv)
    try:
        name, version = first_pin(args.requirements)
    except (OSError, ValueError) as exc:
        print(f"pip-audit's data source: not asked: {exc}")
        return 1
    url = f"{args.json_api.rstrip('/')}/{name}/{version}/json"
    ok, why = probe(url)
    print(f"pip-audit's data source: GET {url} -> {why}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
