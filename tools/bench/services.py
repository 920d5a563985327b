"""moto's server and the NXCloud simulator, each in its own process on 127.0.0.1.

Separate processes, so the CPU time the bench reports for the handler is the handler's (and its clients') alone:
moto and the simulator do real work per message (DynamoDB writes, signature checks) that a deployed function never
pays. Their own CPU time is read from ``/proc`` and reported beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

from local_stack.aws import Resources, provision
from local_stack.stack import LOCAL_SECRET, demo_templates

HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux ``/proc``; None elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_for_port(port: int, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{process.args} did not listen on {port} within {START_TIMEOUT_S} s")


def _stop(process: subprocess.Popen[Any]) -> None:
    """Ask the process to stop (SIGTERM); kill it if it has not within a few seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Services:
    """moto + simulator processes and the resources provisioned in moto. Use as a context manager."""

    moto: subprocess.Popen[Any] | None = None
    simulator: subprocess.Popen[Any] | None = None
    moto_url: str = ""
    simulator_url: str = ""
    resources: Resources | None = None
    recording_path: str = ""

    def start(self) -> Services:
        """Start both processes and provision the stack's resources; on any failure, stop what was started."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> Services:
        port = free_port()
        handle, self.recording_path = tempfile.mkstemp(prefix="bench-moto-", suffix=".jsonl")
        os.close(handle)
        self.moto = subprocess.Popen(  # noqa: S603 - our own interpreter, fixed arguments
            [sys.executable, "-m", "bench.moto_server", "-H", HOST, "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Where moto's recorder writes the requests it receives while recording (bench.wire counts them).
            env={**os.environ, "MOTO_RECORDER_FILEPATH": self.recording_path},
        )
        self.simulator = subprocess.Popen(  # noqa: S603
            [
                *(sys.executable, "-m", "nxcloud_simulator", "--host", HOST, "--port", "0"),
                *("--access-key", LOCAL_SECRET["accessKey"], "--access-secret", LOCAL_SECRET["accessSecret"]),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.simulator_url = (self.simulator.stdout.readline() if self.simulator.stdout else "").strip()
        if not self.simulator_url.startswith("http://"):
            raise RuntimeError("the NXCloud simulator did not print its URL")
        _wait_for_port(port, self.moto)
        self.moto_url = f"http://{HOST}:{port}"
        self.resources = provision(self.moto_url, prefix=f"bench-{uuid.uuid4().hex[:8]}", secret=LOCAL_SECRET)
        for (appkey, phone), templates in demo_templates().items():  # the template check runs as deployed
            account = {"appkey": appkey, "business_phone": phone, "templates": templates}
            self.simulator_control("POST", "templates", account)
        return self

    def stop(self) -> None:
        for process in (self.simulator, self.moto):
            if process is not None:
                _stop(process)
        if self.recording_path:
            with contextlib.suppress(OSError):
                os.remove(self.recording_path)

    def __enter__(self) -> Services:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def function_env(self) -> dict[str, str]:
        """The function's environment against these services; tracing is off, as outside Lambda."""
        if self.resources is None:
            raise RuntimeError("the services are not started")
        return {
            **self.resources.function_env(),
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "NXCLOUD_BASE_URL": self.simulator_url,
            "NXCLOUD_TEMPLATE_BASE_URL": self.simulator_url,
            # The limiter runs, as deployed, at a rate the bench never reaches: its cost is in every figure, and no
            # batch waits for a slot (bench.rate_limit measures it alone).
            "MESSAGES_PER_SECOND": str(rate_limit_far()),
            "POWERTOOLS_SERVICE_NAME": "nxcloud-wa-sender",
            "POWERTOOLS_METRICS_NAMESPACE": "NXCloudWhatsApp",
        }

    def remote(self) -> Remote:
        """What a child process needs to reach these services."""
        return Remote(
            self.simulator_url,
            self.moto.pid if self.moto else None,
            self.simulator.pid if self.simulator else None,
        )

    def cpu_s(self) -> dict[str, float | None]:
        """CPU seconds used so far by moto and by the simulator."""
        return {
            "moto": process_cpu_s(self.moto.pid) if self.moto else None,
            "simulator": process_cpu_s(self.simulator.pid) if self.simulator else None,
        }

    def simulator_control(self, method: str, route: str, payload: Any = None) -> Any:
        """Call the simulator's control API (``/__sim/...``): faults and reset."""
        return simulator_control(self.simulator_url, method, route, payload)


@dataclass
class Remote:
    """The services as a child process of the bench sees them: their URLs and process ids, not their processes."""

    simulator_url: str
    moto_pid: int | None = None
    simulator_pid: int | None = None

    def cpu_s(self) -> dict[str, float | None]:
        return {
            "moto": process_cpu_s(self.moto_pid) if self.moto_pid else None,
            "simulator": process_cpu_s(self.simulator_pid) if self.simulator_pid else None,
        }

    def simulator_control(self, method: str, route: str, payload: Any = None) -> Any:
        return simulator_control(self.simulator_url, method, route, payload)


def rate_limit_far() -> int:
    from bench.rate_limit import FAR_FROM_THE_RATE

    return FAR_FROM_THE_RATE


def simulator_control(simulator_url: str, method: str, route: str, payload: Any = None) -> Any:
    """Call the simulator's control API (``/__sim/...``): faults and reset."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
        f"{simulator_url}/__sim/{route}", data=data, method=method
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
        return json.loads(answer.read() or b"null")
