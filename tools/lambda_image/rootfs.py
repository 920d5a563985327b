"""A Debian minbase root filesystem for the target architecture, loaded into Docker as a one-layer image.

``debootstrap`` runs the target's own binaries for its second stage, so arm64 runs under qemu-user-static (binfmt_misc)
and takes minutes; the image it yields is the cache. The image is loaded with ``docker load`` from an archive written
here, not with ``docker import``: dockerd 20.10 ignores ``import --platform`` and would label an arm64 file system
amd64, after which ``docker build --platform linux/arm64`` looks for it in a registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

from lambda_image.docker import docker, image_architecture, image_label

SUITE = "trixie"  # Debian 13: the first whose archive has CPython 3.13 (python3.13)
PACKAGES = ("python3.13", "ca-certificates")
MIRROR = "http://deb.debian.org/debian"
INCLUDE_LABEL = "org.nxcloud.lambda-image.rootfs"
SLIM = ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


def rootfs_tag(debian_arch: str) -> str:
    return f"local/lambda-rootfs:{SUITE}-{debian_arch}"


def ensure_rootfs_image(debian_arch: str, work: Path, *, force: bool = False) -> str:
    """The rootfs image's tag, debootstrapping and loading it first unless an image of the same recipe exists."""
    tag = rootfs_tag(debian_arch)
    recipe = f"{SUITE} {MIRROR} {','.join(PACKAGES)}"
    if not force and image_label(tag, INCLUDE_LABEL) == recipe and image_architecture(tag) == debian_arch:
        print(f"lambda-image: {tag} exists", flush=True)
        return tag
    target = work / f"rootfs-{SUITE}-{debian_arch}"
    debootstrap(debian_arch, target, work / f"debootstrap-{SUITE}-{debian_arch}.log")
    try:
        load_image(target, tag, debian_arch, {INCLUDE_LABEL: recipe}, work)
    finally:
        shutil.rmtree(target, ignore_errors=True)  # the image is the cache; the directory is ~300 MB
    return tag


def debootstrap(debian_arch: str, target: Path, log: Path) -> None:
    """``debootstrap --variant=minbase`` into ``target``, then drop what an image needs none of."""
    shutil.rmtree(target, ignore_errors=True)
    started = time.monotonic()
    print(f"lambda-image: debootstrap {SUITE}/{debian_arch} (+ {', '.join(PACKAGES)}); log: {log}", flush=True)
    command = ["debootstrap", "--variant=minbase", f"--arch={debian_arch}", f"--include={','.join(PACKAGES)}"]
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run([*command, SUITE, str(target), MIRROR], stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-10:])
        raise RuntimeError(f"debootstrap failed (log: {log}):\n{tail}")
    for folder in SLIM:
        for child in (target / folder).glob("*"):
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    print(f"lambda-image: debootstrap {SUITE}/{debian_arch} took {time.monotonic() - started:.0f} s", flush=True)


def load_image(root: Path, tag: str, debian_arch: str, labels: dict[str, str], work: Path) -> None:
    """``docker load`` the directory as a one-layer image of the given architecture."""
    scratch = work / "load"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    layer = scratch / "layer.tar"
    # GNU tar keeps what tarfile would not: hard links, device nodes, capabilities; numeric owners as in the rootfs.
    subprocess.run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(layer), "."], check=True)
    config = image_config(_sha256(layer), debian_arch, labels)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag], "Layers": ["layer.tar"]}]).encode()
    archive = scratch / "image.tar"
    with tarfile.open(archive, "w") as out:
        for name, data in (("manifest.json", manifest), (config_name, config)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
        out.add(layer, "layer.tar")
    layer.unlink()
    docker("load", "--quiet", "--input", str(archive))
    shutil.rmtree(scratch, ignore_errors=True)
    if image_architecture(tag) != debian_arch:
        raise RuntimeError(f"{tag} was loaded with the wrong architecture")


def image_config(diff_id: str, debian_arch: str, labels: dict[str, str]) -> bytes:
    """The image's config document (OCI image config, as ``docker save`` writes it)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    config = {
        "architecture": debian_arch,
        "os": "linux",
        **({"variant": "v8"} if debian_arch == "arm64" else {}),
        "created": now,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/bash"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": now, "created_by": f"debootstrap --variant=minbase {SUITE} (lambda_image)"}],
    }
    return json.dumps(config).encode()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()
