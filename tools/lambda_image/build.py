"""Build ``public.ecr.aws/lambda/python:3.13-<arch>`` from a local root filesystem, once per recipe.

The image is labelled with a hash of everything it is made from (the files in ``image/``, the runtime interface
emulator, the root filesystem's recipe). A present image with the same hash is left alone; a changed recipe rebuilds
it; an image without the label is a real one (pulled from AWS's registry) and is never touched.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from lambda_image import rootfs
from lambda_image.docker import docker, image_label, remove_images

REPOSITORY: Final = "public.ecr.aws/lambda/python"
PYTHON_VERSION: Final = "3.13"
RECIPE_LABEL: Final = "org.nxcloud.lambda-image.recipe"
IMAGE_FILES: Final = Path(__file__).resolve().parent / "image"


@dataclass(frozen=True, slots=True)
class Arch:
    """One Lambda architecture under its three names: Lambda's, Debian's and the manylinux wheels'."""

    lambda_name: str
    debian: str
    machine: str

    @property
    def tag(self) -> str:
        """The base image SAM looks for (``samcli/local/docker/lambda_image.py``)."""
        return f"{REPOSITORY}:{PYTHON_VERSION}-{self.lambda_name}"

    @property
    def platform(self) -> str:
        return f"linux/{self.debian}"


ARCHES: Final = {a.lambda_name: a for a in (Arch("x86_64", "amd64", "x86_64"), Arch("arm64", "arm64", "aarch64"))}


def recipe_hash(rie: Path) -> str:
    """A digest of every input of the image: rebuild when one changes."""
    digest = hashlib.sha256()
    for path in [*sorted(p for p in IMAGE_FILES.iterdir() if p.is_file()), rie]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(f"{rootfs.SUITE} {rootfs.MIRROR} {rootfs.PACKAGES}".encode())
    return digest.hexdigest()[:16]


def ensure_image(arch: Arch, rie_dir: Path, work: Path, *, force: bool = False, force_rootfs: bool = False) -> str:
    """Build the stand-in for ``arch`` unless it is present; say what was done."""
    rie = rie_dir / f"aws-lambda-rie-{arch.lambda_name}"
    recipe = recipe_hash(rie)
    present = image_label(arch.tag, RECIPE_LABEL)
    if present == "" and not force:
        return f"{arch.tag}: present, not built here (a real image): left alone"
    if present == recipe and not (force or force_rootfs):
        return f"{arch.tag}: present (recipe {recipe})"
    started = time.monotonic()
    base = rootfs.ensure_rootfs_image(arch.debian, work, force=force_rootfs)
    context = write_context(arch, rie, work / f"context-{arch.lambda_name}")
    print(f"lambda-image: docker build {arch.tag} ({arch.platform}, FROM {base}: nothing pulled)", flush=True)
    docker(
        "build",
        "--network", "host",
        "--platform", arch.platform,
        "--build-arg", f"ROOTFS={base}",
        "--label", f"{RECIPE_LABEL}={recipe}",
        "--tag", arch.tag,
        str(context),
        log=work / f"docker-build-{arch.lambda_name}.log",
    )  # fmt: skip
    shutil.rmtree(context, ignore_errors=True)
    smoke_test(arch)
    # SAM derives an image from the base (the runtime interface emulator added, then the layers) and, with
    # --skip-pull-image, never rebuilds it: a stale one would hide the new base.
    stale = remove_images(REPOSITORY, f"{PYTHON_VERSION}-rapid-{arch.lambda_name}")
    stale += remove_images("samcli/lambda-python", f"{PYTHON_VERSION}-{arch.lambda_name}-")
    size = int(docker("image", "inspect", "--format", "{{.Size}}", arch.tag)) / 1e6
    dropped = f"; removed SAM's derived {', '.join(stale)}" if stale else ""
    return f"{arch.tag}: built in {time.monotonic() - started:.0f} s, {size:.0f} MB (recipe {recipe}){dropped}"


def write_context(arch: Arch, rie: Path, context: Path) -> Path:
    """The build context: the files of ``image/``, /var/runtime's packages for the target, and the emulator."""
    shutil.rmtree(context, ignore_errors=True)
    runtime = context / "runtime"
    runtime.mkdir(parents=True)
    for name in ("bootstrap", "bootstrap.py"):
        shutil.copy(IMAGE_FILES / name, runtime / name)
    for name in ("Dockerfile", "lambda-entrypoint.sh"):
        shutil.copy(IMAGE_FILES / name, context / name)
    shutil.copy(rie, context / "aws-lambda-rie")
    install_runtime_packages(arch, runtime)
    return context


def install_runtime_packages(arch: Arch, target: Path) -> None:
    """Wheels for the target's platform and CPython 3.13, from PyPI, whatever the host is."""
    platforms = [f"--platform={tag}_{arch.machine}" for tag in ("manylinux2014", "manylinux_2_28", "manylinux_2_34")]
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input",
            "--no-deps", "--no-compile", "--only-binary=:all:", "--implementation=cp",
            f"--python-version={PYTHON_VERSION}", "--abi=cp313", *platforms,
            "--target", str(target), "--requirement", str(IMAGE_FILES / "requirements.txt"),
        ],
        check=True,
    )  # fmt: skip
    shutil.rmtree(target / "bin", ignore_errors=True)


def smoke_test(arch: Arch) -> None:
    """The interpreter, the runtime client's C extension and boto3 load, on the target's CPU (or qemu's)."""
    code = (
        "import platform, ssl, sys, awslambdaric, runtime_client, boto3; "
        "print(sys.version.split()[0], platform.machine(), 'boto3', boto3.__version__)"
    )
    try:
        found = docker(
            "run", "--rm", "--network", "host", "--platform", arch.platform, "--env", "PYTHONPATH=/var/runtime",
            "--entrypoint", f"/var/lang/bin/python{PYTHON_VERSION}", arch.tag, "-c", code,
        )  # fmt: skip
    except RuntimeError:
        docker("rmi", arch.tag)
        raise
    if arch.machine not in found:
        docker("rmi", arch.tag)
        raise RuntimeError(f"{arch.tag} runs on the wrong machine: {found}")
    print(f"lambda-image: {arch.tag} smoke test: {found}", flush=True)
