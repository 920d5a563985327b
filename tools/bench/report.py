"""Turn the measured figures into the printed table (and the JSON document of ``--json``)."""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

from bench.coldstart import HANDLER, TRACED, TRACER_OFF, TRACER_ON, ColdStart
from bench.stats import ms, rate, ratio, spread_ms, table, times, verdict
from bench.warm import Latency, Memory, Throughput

COLD_START_TARGET = 1.5
"""Issue 3: handler import + first invocation within 1.5x the boto3 import floor, tracing off."""


def machine(command: str) -> dict[str, Any]:
    """What the figures were measured on: they are ratios, but the machine (and its load) still explains their
    noise."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "cpu_count": os.cpu_count(),
        "usable_cpus": affinity,
        "platform": f"{platform.system()} {platform.machine()}",
        "load_average_1min": load,
        "command": command,
    }


def command_line(args: list[str]) -> str:
    """How this run was started, as someone would retype it (``make bench`` runs the same)."""
    executable = os.path.relpath(sys.executable)
    executable = sys.executable if executable.startswith("..") else executable
    return " ".join([executable, "-m", "bench", *args])


def document(
    host: dict[str, Any], cold: ColdStart, warm: Throughput, latency: Latency, memory: Memory
) -> dict[str, Any]:
    """Every figure, as ``--json`` prints it."""
    return {
        "machine": host,
        "cold_start": cold.as_dict(),
        "handler_overhead": warm.as_dict(),
        "batch_latency": latency.as_dict(),
        "memory": memory.as_dict(),
    }


def cold_rows(cold: ColdStart) -> list[tuple[str, str, str]]:
    total = cold.vs_floor()
    tracer_note = "on top of boto3 + Powertools"
    return [
        (f"1. Cold start (fresh interpreters, median of {cold.floor.n})", "", ""),
        ("  import boto3 alone (the floor)", spread_ms(cold.floor), "1.00x floor"),
        ("  import app (tracing off)", spread_ms(cold.spread(HANDLER, "import_s")), ""),
        ("  first invocation, 1-message SQS batch", spread_ms(cold.spread(HANDLER, "first_invocation_s")), ""),
        (
            "  import + first invocation",
            spread_ms(cold.total()),
            f"{times(total)} floor, CPU time {times(cold.cpu_vs_floor)} "
            f"({verdict(total, COLD_START_TARGET)} the {COLD_START_TARGET}x target)",
        ),
        ("  the same, Active tracing", spread_ms(cold.total(TRACED)), f"{times(cold.vs_floor(TRACED))} floor"),
        ("  Tracer() alone, disabled (not Lambda)", spread_ms(cold.spread(TRACER_OFF, "import_s")), tracer_note),
        ("  Tracer() alone, active (as in Lambda)", spread_ms(cold.spread(TRACER_ON, "import_s")), tracer_note),
    ]


def _per_message(cpu_s: float | None, messages: int) -> str:
    return "n/a" if cpu_s is None else f"{cpu_s * 1000 / messages:.2f} ms/msg"


def warm_rows(warm: Throughput) -> list[tuple[str, str, str]]:
    title = (
        f"2. Handler overhead, warm ({warm.batches} batches of {warm.batch_size}, instant simulator, "
        "idempotency on moto over HTTP)"
    )
    return [
        (title, "", ""),
        ("  handler CPU per message", f"{warm.cpu_s * 1000 / warm.messages:.2f} ms", "process_time of this process"),
        ("  messages per CPU-second", f"{rate(warm.messages, warm.cpu_s):.0f}", "moto, simulator: other processes"),
        ("  messages per wall-second", f"{rate(warm.messages, warm.wall_s):.0f}", "sharing the CPUs with them"),
        ("  moto server CPU (not counted above)", _per_message(warm.moto_cpu_s, warm.messages), ""),
        ("  simulator CPU (not counted above)", _per_message(warm.simulator_cpu_s, warm.messages), ""),
        ("  accepted by the simulator", f"{warm.accepted}/{warm.messages}", ""),
    ]


def latency_rows(latency: Latency, warm: Throughput) -> list[tuple[str, str, str]]:
    title = (
        f"3. Batch of {latency.batch_size} with {ms(latency.latency_s)} simulator latency (median of {latency.walls.n})"
    )
    return [
        (title, "", ""),
        (
            "  batch wall time",
            spread_ms(latency.walls),
            f"{times(latency.multiple)} latency (limit 1.0x; sequential {latency.batch_size}x)",
        ),
        ("  the same batch, no added latency", spread_ms(warm.batch_walls), "section 2, per batch"),
        ("  accepted by the simulator", f"{latency.accepted}/{latency.walls.n * latency.batch_size}", ""),
    ]


def memory_rows(memory: Memory) -> list[tuple[str, str, str]]:
    def share(mb: float) -> str:
        return f"{ratio(mb, memory.memory_size_mb):.0%} of MemorySize {memory.memory_size_mb} MB"

    cold, warm = memory.cold_child_maxrss_mb, memory.warm_process_maxrss_mb
    return [
        ("4. Peak memory", "", ""),
        ("  cold start process (ru_maxrss)", f"{cold:.0f} MB", share(cold)),
        ("  warm process, all batches (ru_maxrss)", f"{warm:.0f} MB", share(warm) + " (bench included)"),
        ("  one warm batch (tracemalloc peak)", f"{memory.batch_tracemalloc_peak_mb:.1f} MB", "Python heap it adds"),
    ]


def render(host: dict[str, Any], cold: ColdStart, warm: Throughput, latency: Latency, memory: Memory) -> str:
    """The compact table ``make bench`` prints."""
    cpus = host["cpu_count"] if host["usable_cpus"] in (None, host["cpu_count"]) else f"{host['usable_cpus']} usable"
    load = "" if host["load_average_1min"] is None else f", load average {host['load_average_1min']:.1f} at the end"
    header = [
        f"machine: {host['implementation']} {host['python']}, {cpus} CPUs, {host['platform']}{load}",
        f"command: {host['command']}",
        "",
    ]
    rows = cold_rows(cold) + warm_rows(warm) + latency_rows(latency, warm) + memory_rows(memory)
    return "\n".join(header) + table(rows)
