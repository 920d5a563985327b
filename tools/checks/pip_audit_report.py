"""``make pip-audit``'s reading of one pip-audit JSON report: a line per finding, a verdict line, an exit status.

pip-audit alone reports "No known vulnerabilities found" even when it skipped packages it could not look up (a
release PyPI does not know is skipped with a warning). This fails on every vulnerability and on every package that
was not audited, except the project's own editable install, which is not on PyPI.

    python tools/checks/pip_audit_report.py "runtime layer" .venv-security/audit-layer.json

Prints ``pip-audit LABEL: passed|FAILED: N audited, N vulnerable, N not audited`` (the Makefile's summary reads it).
Standard library only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

EDITABLE = "distribution marked as editable"
"""pip-audit's skip reason for an editable install: the project itself, never on PyPI, so not a gap in the audit."""


def report(label: str, dependencies: list[dict[str, Any]]) -> tuple[list[str], bool]:
    """(the lines to print, passed) for a report's ``dependencies``."""
    vulnerable = [d for d in dependencies if d.get("vulns")]
    unaudited = [d for d in dependencies if "skip_reason" in d and d["skip_reason"] != EDITABLE]
    audited = [d for d in dependencies if "skip_reason" not in d]
    lines = []
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fix = ", ".join(vuln.get("fix_versions") or []) or "none yet"
            lines.append(
                f"  VULNERABLE {dependency['name']}=={dependency['version']}: {vuln['id']} "
                f"{vuln.get('aliases') or ''} fixed in: {fix}"
            )
    lines += [f"  NOT AUDITED {d['name']}: {d['skip_reason']}" for d in unaudited]
    passed = not vulnerable and not unaudited
    lines.append(
        f"pip-audit {label}: {'passed' if passed else 'FAILED'}: {len(audited)} audited, "
        f"{len(vulnerable)} vulnerable, {len(unaudited)} not audited"
    )
    return lines, passed


def main(argv: list[str] | None = None) -> int | str:
    """0 when the report is clean, 1 when not; a message (exit status 1) when there is no readable report."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        return "usage: pip_audit_report.py LABEL REPORT.json"
    label, path = args
    try:
        dependencies = json.loads(Path(path).read_text(encoding="utf-8"))["dependencies"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"pip-audit {label}: FAILED, no report ({exc}); see its errors above"
    lines, passed = report(label, dependencies)
    print("\n".join(lines))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
