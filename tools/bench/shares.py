"""The cold start and a warm container under Lambda's CPU share of each memory size, beside the unconstrained run.

For each size: fresh interpreters, alternately ``import boto3`` alone and the handler's import + first invocation
(:mod:`bench.child`), then one warm container (``child warm``: CPU per message over instant batches, and batches of
10 with NXCloud answering in ``latency_s``). All of it inside a cgroup capped at the size's share of one CPU
(:mod:`bench.cpushare`); moto and the simulator stay outside, as AWS and NXCloud are outside a Lambda function.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import coldstart, cpushare
from bench.events import sqs_event
from bench.services import Remote
from bench.stats import Spread, ratio

DEFAULT_SIZES = (128, 256, 512, 1024)
CHILD_TIMEOUT_S = 600.0
"""A cold start at 128 MB (0.07 vCPU) takes ~15 s where it takes 1 s unconstrained."""


@dataclass(frozen=True, slots=True)
class ShareRun:
    """What one memory size (None: no limit) measured."""

    memory_mb: int | None
    share: float | None
    floor: Spread
    cold: Spread
    cold_cpu: Spread
    cpu_ms_per_message: float
    batch: Spread
    latency_batch: Spread
    latency_s: float
    maxrss_mb: float
    accepted: int
    messages: int

    @property
    def cold_vs_floor(self) -> float:
        return ratio(self.cold.median, self.floor.median)

    @property
    def latency_multiple(self) -> float:
        return ratio(self.latency_batch.median, self.latency_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "memory_mb": self.memory_mb,
            "vcpu_share": self.share,
            "boto3_import_s": self.floor.as_dict(),
            "cold_start_s": self.cold.as_dict(),
            "cold_start_cpu_s": self.cold_cpu.as_dict(),
            "cold_start_vs_boto3": self.cold_vs_floor,
            "cpu_ms_per_message": self.cpu_ms_per_message,
            "batch_wall_s": self.batch.as_dict(),
            "latency_batch_wall_s": self.latency_batch.as_dict(),
            "latency_batch_vs_latency": self.latency_multiple,
            "warm_maxrss_mb": self.maxrss_mb,
            "accepted_by_simulator": f"{self.accepted}/{self.messages}",
        }


def parse_sizes(text: str) -> tuple[int, ...]:
    """``128,256`` -> (128, 256); empty -> () (no per-size runs)."""
    sizes = tuple(int(part) for part in text.split(",") if part.strip())
    if any(size <= 0 for size in sizes):
        raise ValueError("memory sizes must be positive")
    return sizes


def measure(
    function_env: Mapping[str, str],
    remote: Remote,
    sizes: Sequence[int],
    *,
    repeats: int,
    batches: int,
    latency_batches: int,
    latency_s: float,
    progress: Callable[[str], None] = lambda _: None,
) -> list[ShareRun]:
    """The unconstrained run first, then one run per size, each in its own cgroup (removed afterwards)."""
    controller = cpushare.Controller.find()
    plan = _Plan(coldstart.child_env(function_env), remote, repeats, batches, latency_batches, latency_s)
    runs = [plan.run(None, None)]
    for size in sizes:
        share = cpushare.vcpu_share(size)
        progress(f"CPU share of {size} MB ({share:.3f} vCPU)")
        with controller.limited(share, f"nxwa-bench-{os.getpid()}-{size}mb") as cgroup:
            runs.append(plan.run(size, cgroup))
    return runs


@dataclass(frozen=True, slots=True)
class _Plan:
    """What every memory size runs: the same children, the same counts."""

    env: dict[str, str]
    remote: Remote
    repeats: int
    batches: int
    latency_batches: int
    latency_s: float

    def run(self, size: int | None, cgroup: Path | None) -> ShareRun:
        return _run(self, size, cgroup)


def _run(plan: _Plan, size: int | None, cgroup: Path | None) -> ShareRun:
    env, remote, repeats = plan.env, plan.remote, plan.repeats
    batches, latency_batches, latency_s = plan.batches, plan.latency_batches, plan.latency_s
    share = None if size is None else cpushare.vcpu_share(size)
    floors, colds, cpus = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-share-") as tmp:
        workdir = Path(tmp)
        for index in range(repeats):
            floor = coldstart.run_child("boto3", env, workdir, cgroup=cgroup, timeout_s=CHILD_TIMEOUT_S)
            event = sqs_event(1, start=60_000 + (size or 0) * 100 + index)
            cold = coldstart.run_child("handler", env, workdir, event, cgroup=cgroup, timeout_s=CHILD_TIMEOUT_S)
            if cold["failures"]:
                raise RuntimeError(f"a cold-start record failed at {size} MB")
            floors.append(floor["import_s"])
            colds.append(cold["import_s"] + cold["first_invocation_s"])
            cpus.append(cold["cpu_s"])
        args = (remote.simulator_url, str(batches), str(latency_batches), str(latency_s))
        warm = coldstart.run_child("warm", env, workdir, args=args, cgroup=cgroup, timeout_s=CHILD_TIMEOUT_S)
    return ShareRun(
        memory_mb=size,
        share=share,
        floor=Spread.of(floors),
        cold=Spread.of(colds),
        cold_cpu=Spread.of(cpus),
        cpu_ms_per_message=warm["cpu_ms_per_message"],
        batch=_spread(warm["batch_wall_s"]),
        latency_batch=_spread(warm["latency_batch_wall_s"]),
        latency_s=latency_s,
        maxrss_mb=warm["maxrss_mb"],
        accepted=warm["accepted"],
        messages=warm["messages"],
    )


def _spread(data: Mapping[str, float]) -> Spread:
    return Spread(data["median"], data["min"], data["max"], int(data["n"]))
