"""``python -m lambda_image``: make sure the Lambda Python 3.13 base images SAM needs are on the local Docker daemon.

    python -m lambda_image --arch arm64 --arch x86_64 --sam-venv .venv-sam      (make lambda-images)

Builds a stand-in only where the image is absent (or was built here from an older recipe); a real image pulled from
AWS's registry is left alone. Needs root (debootstrap), Docker, Debian's debootstrap and, for arm64 on another CPU,
qemu-user-static with binfmt_misc. Nothing is pulled from any container registry.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lambda_image.build import ARCHES, ensure_image
from lambda_image.docker import daemon_answers

ROOT = Path(__file__).resolve().parents[2]


def rie_folder(sam_venv: Path) -> Path:
    """The runtime interface emulators shipped in the aws-sam-cli wheel (the same ones SAM adds at invoke time)."""
    found = sorted(sam_venv.glob("lib/python3*/site-packages/samcli/local/rapid"))
    if not found:
        raise SystemExit(f"lambda-image: no SAM CLI in {sam_venv} (run `make sam-venv` first)")
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_image", description=__doc__)
    parser.add_argument("--arch", action="append", choices=sorted(ARCHES), help="repeatable (default: both)")
    parser.add_argument("--sam-venv", type=Path, default=ROOT / ".venv-sam", help="the SAM CLI's virtual environment")
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "lambda-image", help="logs and scratch space")
    parser.add_argument("--force", action="store_true", help="rebuild the images (the root filesystems are reused)")
    parser.add_argument("--force-rootfs", action="store_true", help="also run debootstrap again")
    args = parser.parse_args(argv)
    if not daemon_answers():
        print(
            "lambda-image: the Docker daemon does not answer (start dockerd, or see docs/sam-local.md)", file=sys.stderr
        )
        return 1
    args.work.mkdir(parents=True, exist_ok=True)
    rie_dir = rie_folder(args.sam_venv)
    started = time.monotonic()
    for name in args.arch or ["x86_64", "arm64"]:
        if (
            name == "arm64"
            and os.uname().machine != "aarch64"
            and not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists()
        ):
            print("lambda-image: arm64 needs qemu-user-static registered with binfmt_misc", file=sys.stderr)
            return 1
        print(
            "lambda-image: "
            + ensure_image(ARCHES[name], rie_dir, args.work, force=args.force, force_rootfs=args.force_rootfs),
            flush=True,
        )
    print(f"lambda-image: done in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
