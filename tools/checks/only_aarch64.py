"""``make build``'s check that the built dependencies layer holds arm64 code only.

Every shared object (``*.so*``) under the folder given must be an ELF file for AArch64 (``e_machine`` 183, bytes 18-19
of the header, little-endian): the function runs on arm64 (template.yaml), and an x86_64 wheel slipped into the layer
would fail only there, at import. Exits 0, or non-zero naming every file that is not arm64.

    python tools/checks/only_aarch64.py .aws-sam/build/DependenciesLayer/python

Standard library only: it runs with the Python that builds, outside any virtual environment.
"""

from __future__ import annotations

import sys
from pathlib import Path

EM_AARCH64 = b"\xb7\x00"
"""ELF ``e_machine`` 183 (AArch64), as the two bytes at offset 18 of a little-endian header."""


def not_arm64(folder: Path) -> list[Path]:
    """The shared objects under ``folder`` that are not AArch64 ELF files, in path order."""
    bad = []
    for path in sorted(folder.rglob("*.so*")):
        if path.is_file():
            with path.open("rb") as handle:
                if handle.read(20)[18:20] != EM_AARCH64:
                    bad.append(path)
    return bad


def main(argv: list[str] | None = None) -> int | str:
    """0 when every shared object is arm64; otherwise the message ``sys.exit`` prints (exit status 1)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return "usage: only_aarch64.py FOLDER"
    folder = Path(args[0])
    if not folder.is_dir():
        return f"not a folder: {folder}"
    bad = not_arm64(folder)
    return "not arm64: " + " ".join(map(str, bad)) if bad else 0


if __name__ == "__main__":
    sys.exit(main())
