"""A warm function in this process: handler CPU per message, batch concurrency under latency, and memory.

The real ``app.lambda_handler`` runs here against moto's server (idempotency on DynamoDB over HTTP) and the NXCloud
simulator, both in their own processes (:mod:`bench.services`), so ``time.process_time`` of this process is the
handler's CPU: its Python work, boto3 and urllib3, and every thread of its send pool.
"""

from __future__ import annotations

import contextlib
import os
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from bench.events import sqs_event
from bench.services import Remote, Services
from bench.stats import Spread, rate, ratio

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

TRACE_ENV = ("LAMBDA_TASK_ROOT", "AWS_SAM_LOCAL", "_X_AMZN_TRACE_ID", "POWERTOOLS_TRACE_DISABLED")
"""Removed before the handler is imported: tracing is off here, as outside Lambda."""


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: the handler's JSON logs and EMF metrics would bury the report.

    At the descriptor level, so the cost of formatting and writing each line is still paid (as in Lambda, where
    stdout goes to CloudWatch), only not shown.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def load_handler(function_env: Mapping[str, str]) -> Handler:
    """Point this process at the services and import the handler (once per process, as in a Lambda container)."""
    for name in TRACE_ENV:
        os.environ.pop(name, None)
    os.environ.update(function_env)
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"  # credentials come from the environment, as in Lambda
    import app

    return app.lambda_handler  # type: ignore[no-any-return]


def invoke(handler: Handler, event: dict[str, Any]) -> None:
    """One invocation as Lambda makes it; a record left for retry would make every figure meaningless."""
    from local_stack.lambda_events import LambdaContext

    response = handler(event, LambdaContext(timeout_seconds=30))
    failures = response.get("batchItemFailures") or []
    if failures:
        raise RuntimeError(f"{len(failures)} record(s) of a bench batch failed: {failures[:3]}")


def accepted_by_simulator(services: Services | Remote) -> int:
    """Messages the simulator accepted since its last reset (dead-lettered ones never reach it accepted)."""
    records = services.simulator_control("GET", "requests")["requests"]
    return sum(1 for r in records if r.get("message_id"))


@dataclass(frozen=True, slots=True)
class Throughput:
    messages: int
    batches: int
    batch_size: int
    cpu_s: float
    wall_s: float
    batch_walls: Spread
    moto_cpu_s: float | None
    simulator_cpu_s: float | None
    accepted: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "batch_size": self.batch_size,
            "messages": self.messages,
            "accepted_by_simulator": self.accepted,
            "handler_process_cpu_s": self.cpu_s,
            "wall_s": self.wall_s,
            "batch_wall_s": self.batch_walls.as_dict(),
            "messages_per_cpu_s": rate(self.messages, self.cpu_s),
            "messages_per_wall_s": rate(self.messages, self.wall_s),
            "cpu_ms_per_message": self.cpu_s * 1000 / self.messages,
            "moto_process_cpu_s": self.moto_cpu_s,
            "simulator_process_cpu_s": self.simulator_cpu_s,
        }


def _delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def throughput(handler: Handler, services: Services | Remote, *, batches: int, batch_size: int = 10) -> Throughput:
    """Whole batches through the warm handler; the first (cold) one is a warm-up and not counted."""
    invoke(handler, sqs_event(batch_size, start=10_000))
    services.simulator_control("POST", "reset")
    events = [sqs_event(batch_size, start=20_000 + i * batch_size) for i in range(batches)]
    services_before = services.cpu_s()
    walls: list[float] = []
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    for event in events:
        started = time.perf_counter()
        invoke(handler, event)
        walls.append(time.perf_counter() - started)
    cpu, wall = time.process_time() - cpu_before, time.perf_counter() - wall_before
    services_after = services.cpu_s()
    return Throughput(
        messages=batches * batch_size,
        batches=batches,
        batch_size=batch_size,
        cpu_s=cpu,
        wall_s=wall,
        batch_walls=Spread.of(walls),
        moto_cpu_s=_delta(services_after["moto"], services_before["moto"]),
        simulator_cpu_s=_delta(services_after["simulator"], services_before["simulator"]),
        accepted=accepted_by_simulator(services),
    )


@dataclass(frozen=True, slots=True)
class Latency:
    latency_s: float
    batch_size: int
    walls: Spread
    accepted: int

    @property
    def multiple(self) -> float:
        return ratio(self.walls.median, self.latency_s)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added_latency_s": self.latency_s,
            "batch_size": self.batch_size,
            "batch_wall_s": self.walls.as_dict(),
            "batch_wall_vs_latency": self.multiple,
            "limit_vs_latency": 1.0,
            "sequential_vs_latency": float(self.batch_size),
            "accepted_by_simulator": self.accepted,
        }


def under_latency(
    handler: Handler, services: Services | Remote, *, latency_s: float, batches: int, batch_size: int = 10
) -> Latency:
    """Batches with every simulator answer delayed by ``latency_s``: concurrent sends take about one delay."""
    services.simulator_control("POST", "reset")
    services.simulator_control("POST", "faults", {"kind": "latency", "seconds": latency_s})
    walls: list[float] = []
    try:
        for index in range(batches):
            event = sqs_event(batch_size, start=30_000 + index * batch_size)
            started = time.perf_counter()
            invoke(handler, event)
            walls.append(time.perf_counter() - started)
    finally:
        services.simulator_control("DELETE", "faults")
    return Latency(latency_s, batch_size, Spread.of(walls), accepted_by_simulator(services))


@dataclass(frozen=True, slots=True)
class Memory:
    memory_size_mb: int
    cold_child_maxrss_mb: float
    warm_process_maxrss_mb: float
    batch_tracemalloc_peak_mb: float

    def as_dict(self) -> dict[str, Any]:
        size = self.memory_size_mb
        return {
            "function_memory_size_mb": size,
            "cold_start_process_maxrss_mb": self.cold_child_maxrss_mb,
            "cold_start_process_maxrss_vs_memory_size": ratio(self.cold_child_maxrss_mb, size),
            "warm_process_maxrss_mb": self.warm_process_maxrss_mb,
            "warm_process_maxrss_vs_memory_size": ratio(self.warm_process_maxrss_mb, size),
            "batch_tracemalloc_peak_mb": self.batch_tracemalloc_peak_mb,
        }


def maxrss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def batch_allocation_peak_mb(handler: Handler, *, batch_size: int = 10) -> float:
    """Peak Python heap a warm batch allocates on top of what is already there (tracemalloc; slow, so untimed)."""
    tracemalloc.start()
    try:
        invoke(handler, sqs_event(batch_size, start=40_000))
        return tracemalloc.get_traced_memory()[1] / (1024 * 1024)
    finally:
        tracemalloc.stop()


def memory_size_mb() -> int:
    """The function's MemorySize: its own property, else the template's Globals."""
    from local_stack.template import function_setting

    return int(function_setting("SenderFunction", "MemorySize"))
