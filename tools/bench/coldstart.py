"""Cold start: fresh interpreters, each timing one thing from the inside (see :mod:`bench.child`).

The probes are interleaved (boto3, handler, handler traced, Tracer, boto3, handler, ...) rather than run one after
the other, so a burst of load from anything else on the machine touches every probe alike and the ratios to the
boto3 floor stay meaningful.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench import cpushare
from bench.events import sqs_event
from bench.stats import Spread, ratio

FUNCTION_DIR: Final = Path(__file__).resolve().parents[2] / "functions" / "sender"
KEPT_ENV: Final = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
"""What a child inherits from the bench's environment; everything else is the function's, as Lambda sets it."""
CHILD_TIMEOUT_S: Final = 60.0
TRACE_HEADER: Final = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"

BOTO3, HANDLER, TRACED, TRACER_OFF, TRACER_ON = "boto3", "handler", "handler_traced", "tracer_off", "tracer_on"


@dataclass(frozen=True, slots=True)
class Probe:
    """One kind of fresh interpreter: the child's mode and whether it runs as in Lambda with Active tracing."""

    name: str
    mode: str
    active_tracing: bool = False


PROBES: Final = (
    Probe(BOTO3, "boto3"),
    Probe(HANDLER, "handler"),
    Probe(TRACED, "handler", active_tracing=True),
    Probe(TRACER_OFF, "tracer"),
    Probe(TRACER_ON, "tracer", active_tracing=True),
)


@dataclass(frozen=True, slots=True)
class ColdStart:
    """The samples of every probe, and the figures the report shows."""

    samples: dict[str, list[dict[str, Any]]]

    def spread(self, probe: str, *keys: str) -> Spread:
        """The spread of ``probe``'s samples, each the sum of ``keys``."""
        return Spread.of([sum(s[k] for k in keys) for s in self.samples[probe]])

    @property
    def floor(self) -> Spread:
        return self.spread(BOTO3, "import_s")

    def total(self, probe: str = HANDLER) -> Spread:
        return self.spread(probe, "import_s", "first_invocation_s")

    def vs_floor(self, probe: str = HANDLER) -> float:
        return ratio(self.total(probe).median, self.floor.median)

    @property
    def cpu_vs_floor(self) -> float:
        return ratio(self.spread(HANDLER, "cpu_s").median, self.spread(BOTO3, "cpu_s").median)

    @property
    def maxrss_mb(self) -> float:
        return max(s["maxrss_mb"] for s in self.samples[HANDLER])

    @property
    def failures(self) -> int:
        return sum(s["failures"] for probe in (HANDLER, TRACED) for s in self.samples[probe])

    def as_dict(self) -> dict[str, Any]:
        return {
            "boto3_import_s": self.floor.as_dict(),
            "boto3_import_cpu_s": self.spread(BOTO3, "cpu_s").as_dict(),
            "handler_import_s": self.spread(HANDLER, "import_s").as_dict(),
            "handler_first_invocation_s": self.spread(HANDLER, "first_invocation_s").as_dict(),
            "handler_total_s": self.total().as_dict(),
            "handler_total_cpu_s": self.spread(HANDLER, "cpu_s").as_dict(),
            "handler_total_vs_boto3": self.vs_floor(),
            "handler_total_cpu_vs_boto3": self.cpu_vs_floor,
            "target_vs_boto3": 1.5,
            "handler_active_tracing_total_s": self.total(TRACED).as_dict(),
            "handler_active_tracing_total_vs_boto3": self.vs_floor(TRACED),
            "tracer_instantiation_disabled_s": self.spread(TRACER_OFF, "import_s").as_dict(),
            "tracer_instantiation_active_s": self.spread(TRACER_ON, "import_s").as_dict(),
            "handler_process_maxrss_mb": self.maxrss_mb,
            "failed_records": self.failures,
        }


def child_env(function_env: Mapping[str, str]) -> dict[str, str]:
    """A Lambda-like environment: a few basics and the function's variables. No ``LAMBDA_TASK_ROOT``: tracing is
    off, as it is outside Lambda. No instance metadata: credentials come from the environment, as in Lambda."""
    base = {name: os.environ[name] for name in KEPT_ENV if name in os.environ}
    return {**base, **function_env, "AWS_EC2_METADATA_DISABLED": "true"}


def active_tracing_env(env: Mapping[str, str], daemon_address: str) -> dict[str, str]:
    """What Lambda adds with ``Tracing: Active``: the task root and a sampled trace header. Segments go over UDP to
    ``daemon_address``, a socket of ours on 127.0.0.1 (Lambda's X-Ray daemon is not here)."""
    return {
        **env,
        "LAMBDA_TASK_ROOT": str(FUNCTION_DIR),
        "AWS_LAMBDA_FUNCTION_NAME": "SenderFunction",
        "_X_AMZN_TRACE_ID": TRACE_HEADER,
        "AWS_XRAY_DAEMON_ADDRESS": daemon_address,
    }


@contextmanager
def udp_sink() -> Iterator[str]:
    """A UDP socket on 127.0.0.1 that stands in for the X-Ray daemon (nothing is read: segments are dropped)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        host, port = sock.getsockname()
        yield f"{host}:{port}"


def run_child(
    mode: str,
    env: Mapping[str, str],
    workdir: Path,
    event: dict[str, Any] | None = None,
    *,
    args: tuple[str, ...] = (),
    cgroup: Path | None = None,
    timeout_s: float = CHILD_TIMEOUT_S,
) -> dict[str, Any]:
    """Run one fresh interpreter in ``mode`` (inside ``cgroup`` when given) and return what it measured."""
    result_path = workdir / f"{mode}.json"
    argv = [sys.executable, "-m", "bench.child", mode, str(result_path)]
    if event is not None:
        event_path = workdir / "event.json"
        event_path.write_text(json.dumps(event), encoding="utf-8")
        argv.append(str(event_path))
    argv += args
    completed = subprocess.run(  # noqa: S603 - our own interpreter and module
        cpushare.wrap(cgroup, argv),
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout_s,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench.child {mode} failed:\n{completed.stderr.decode(errors='replace')[-2000:]}")
    return dict(json.loads(result_path.read_text(encoding="utf-8")))


def measure(function_env: Mapping[str, str], repeats: int) -> ColdStart:
    """``repeats`` interleaved samples of every probe, each in a fresh interpreter."""
    samples: dict[str, list[dict[str, Any]]] = {probe.name: [] for probe in PROBES}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, udp_sink() as daemon:
        env = child_env(function_env)
        traced_env = active_tracing_env(env, daemon)
        for index in range(repeats):
            for number, probe in enumerate(PROBES):
                event = sqs_event(1, start=index * len(PROBES) + number) if probe.mode == "handler" else None
                probe_env = traced_env if probe.active_tracing else env
                samples[probe.name].append(check(probe, run_child(probe.mode, probe_env, Path(tmp), event)))
    return ColdStart(samples)


def check(probe: Probe, result: dict[str, Any]) -> dict[str, Any]:
    """Refuse a sample that did not measure what its probe says: traced when it should not be, or the reverse."""
    if probe.mode == "handler":
        traced = result["tracing"] != "_NoTracer"
    elif probe.mode == "tracer":
        traced = not result["disabled"]
    else:
        return result
    if traced != probe.active_tracing:
        raise RuntimeError(f"probe {probe.name}: tracing {'on' if traced else 'off'}, expected the opposite")
    return result
