"""The few Docker CLI calls the builder makes, through Debian's client (``/usr/bin/docker``, or ``$DOCKER``).

Debian's docker.io client (20.10) has the legacy builder; a newer client elsewhere on PATH may insist on buildx.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

DOCKER = os.environ.get("DOCKER", "/usr/bin/docker")


def docker(*args: str, capture: bool = True, log: Path | None = None) -> str:
    """Run one docker command; its output, or raise :class:`RuntimeError` with its last lines."""
    if log is not None:
        with log.open("w", encoding="utf-8") as out:
            done = subprocess.run([DOCKER, *args], stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:])
            raise RuntimeError(f"docker {args[0]} failed (log: {log}):\n{tail}")
        return ""
    done = subprocess.run([DOCKER, *args], capture_output=capture, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"docker {' '.join(args[:3])} failed: {(done.stderr or '').strip()[-2000:]}")
    return (done.stdout or "").strip()


def daemon_answers() -> bool:
    """True when the Docker daemon answers."""
    try:
        docker("info", "--format", "{{.ServerVersion}}")
    except (RuntimeError, OSError):
        return False
    return True


def image_label(tag: str, label: str) -> str | None:
    """The value of one label of a local image; None when the image is absent, "" when it lacks the label."""
    try:
        return docker("image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', tag).replace(
            "<no value>", ""
        )
    except (RuntimeError, OSError):  # absent, or no docker client at all
        return None


def image_architecture(tag: str) -> str:
    return docker("image", "inspect", "--format", "{{.Architecture}}", tag)


def remove_images(pattern_repository: str, tag_prefix: str) -> list[str]:
    """Remove the local images of a repository whose tag starts with ``tag_prefix``; return their names."""
    names = docker("images", "--format", "{{.Repository}}:{{.Tag}}", pattern_repository).splitlines()
    doomed = [n for n in names if n.split(":", 1)[1].startswith(tag_prefix)]
    if doomed:
        docker("rmi", *doomed)
    return doomed
