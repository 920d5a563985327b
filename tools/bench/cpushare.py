"""Lambda's CPU share, reproduced with the Linux ``cpu`` cgroup controller so the bench can run under it.

Lambda gives a function CPU in proportion to its memory: one full vCPU at 1,769 MB, so about 0.29 vCPU at 512 MB
and 0.07 at 128 MB. A CFS quota of ``share x period`` per period caps a cgroup's processes at the same fraction of
one CPU. cgroup v1 (``/sys/fs/cgroup/cpu/.../cpu.cfs_quota_us``) and v2 (``cpu.max``) are both handled; creating a
cgroup needs root. Each cgroup made here is removed on the way out, its processes moved back to the parent first.

A child runs inside by way of ``/bin/sh``, which writes its own pid into the cgroup and then ``exec``s the command:
no ``preexec_fn`` (unsafe once the bench has threads) and nothing of the bench itself inside the limit.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

FULL_VCPU_MB: Final = 1769
"""Lambda's memory size with one full vCPU (AWS documentation, "Lambda memory and computing power")."""
PERIOD_US: Final = 100_000
MIN_QUOTA_US: Final = 1_000
"""The kernel refuses a CFS quota below 1 ms."""
V1_ROOT: Final = Path("/sys/fs/cgroup/cpu")
V2_ROOT: Final = Path("/sys/fs/cgroup")


def vcpu_share(memory_mb: int) -> float:
    """The fraction of one vCPU Lambda gives a function of ``memory_mb`` (capped at one: this bench is 1 thread of
    Python work at a time, the GIL holder, and above 1,769 MB Lambda adds a second vCPU it could not use)."""
    if memory_mb <= 0:
        raise ValueError("memory must be positive")
    return min(1.0, memory_mb / FULL_VCPU_MB)


def quota_us(share: float, period_us: int = PERIOD_US) -> int:
    """The CFS quota, per period, that caps a cgroup at ``share`` of one CPU."""
    return max(MIN_QUOTA_US, round(share * period_us))


@dataclass(frozen=True, slots=True)
class Controller:
    """Where cpu cgroups are made, and which interface they speak."""

    root: Path
    version: int

    @classmethod
    def find(cls, v1_root: Path = V1_ROOT, v2_root: Path = V2_ROOT) -> Controller:
        """The cpu controller of this machine; raises ``RuntimeError`` saying why none is usable."""
        if (v1_root / "cpu.cfs_quota_us").is_file():
            found = cls(v1_root, 1)
        elif "cpu" in _read(v2_root / "cgroup.controllers").split():
            found = cls(v2_root, 2)
        else:
            raise RuntimeError(f"no cgroup cpu controller (neither {v1_root}/cpu.cfs_quota_us nor cpu in {v2_root})")
        if not os.access(found.root, os.W_OK):
            raise RuntimeError(f"cannot create cgroups under {found.root} (needs root)")
        return found

    def limit_files(self, share: float) -> dict[str, str]:
        """What to write into a new cgroup to cap it at ``share`` of one CPU."""
        quota = quota_us(share)
        if self.version == 1:
            return {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(quota)}
        return {"cpu.max": f"{quota} {PERIOD_US}"}

    @contextlib.contextmanager
    def limited(self, share: float, name: str) -> Iterator[Path]:
        """A new cgroup capped at ``share`` of one CPU for the duration of the block, then removed."""
        if self.version == 2:
            _write(self.root / "cgroup.subtree_control", "+cpu")
        path = self.root / name
        path.mkdir()
        try:
            for file, value in self.limit_files(share).items():
                _write(path / file, value)
            yield path
        finally:
            _remove(path, self.root)


def wrap(cgroup: Path | None, argv: list[str]) -> list[str]:
    """``argv`` run inside ``cgroup`` (unchanged when None): the shell joins it, then becomes the command."""
    if cgroup is None:
        return argv
    return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *argv]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii")
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w", encoding="ascii") as handle:
        handle.write(value)


def _remove(path: Path, parent: Path) -> None:
    """Move what is left in the cgroup to its parent (a child that outlived its run) and remove the cgroup."""
    for pid in _read(path / "cgroup.procs").split():
        with contextlib.suppress(OSError):
            _write(parent / "cgroup.procs", pid)
    path.rmdir()
