"""``python -m docgen``: write the generated documentation (``make docs``); ``--check`` fails when it is stale."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from docgen import errors

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = {ROOT / "docs" / "errors.md": errors.render}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docgen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 naming every stale file; write nothing")
    args = parser.parse_args(argv)
    stale = [path for path, render in DOCUMENTS.items() if not path.exists() or path.read_text("utf-8") != render()]
    if args.check:
        for path in stale:
            print(f"stale: {path.relative_to(ROOT)} (run make docs)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.write_text(DOCUMENTS[path](), encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
