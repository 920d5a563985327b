"""Running the SAM CLI from ``.venv-sam`` through ``hostnet.py``, with an environment that keeps it on loopback.

* ``sam build`` for another architecture (the x86_64 copy of the template; the arm64 build is ``make build``'s);
* ``sam local invoke`` of one event, timed;
* ``sam local start-api`` as a context manager that waits until the API answers and stops it by its process id.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from local_stack.invoke import FunctionSpec
from local_stack.template import load_template, serverless_functions

ROOT: Final = Path(__file__).resolve().parents[2]
SAM_VENV: Final = ROOT / ".venv-sam"
HOSTNET: Final = Path(__file__).with_name("hostnet.py")
STATE: Final = ROOT / ".cache" / "sam-local"
HOST_NETWORK: Final = ("--skip-pull-image", "--docker-network", "host", "--container-host", "127.0.0.1")
CLOSED_PORT: Final = "http://127.0.0.1:1"
"""Where SAM's start-up STS call goes: a closed loopback port, so it fails at once instead of leaving the machine."""


def sam_environment(base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The caller's environment without AWS settings or the functions' variables, plus offline-safe SAM settings.

    SAM copies the shell's value of every variable a function declares into its container; dropping those leaves
    the template and ``--env-vars`` as the only sources. The fake credentials reach the container (moto takes any).
    """
    template = load_template()
    declared = {
        name for function in serverless_functions(template) for name in FunctionSpec(template, function).environment
    }
    env = {k: v for k, v in base.items() if not k.startswith("AWS_") and k not in declared}
    env.update(
        SAM_CLI_TELEMETRY="0",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto's placeholder, not a secret
        AWS_ENDPOINT_URL_STS=CLOSED_PORT,
        AWS_MAX_ATTEMPTS="1",
        __SAM_CLI_APP_DIR=str(STATE / "sam-app"),  # SAM's metadata.json, not in ~/.aws-sam
        SAM_LAYER_CACHE_BASEDIR=str(STATE / "layers"),
    )
    return env


@dataclass(frozen=True, slots=True)
class SamRun:
    """One SAM command: its exit status, output and wall time (SAM's start-up and the container's included)."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


def sam(*args: str, timeout: float = 600, extra_env: Mapping[str, str] | None = None) -> SamRun:
    """Run ``sam ARGS`` through the host-network launcher."""
    started = time.monotonic()
    done = subprocess.run(
        [str(SAM_VENV / "bin" / "python"), str(HOSTNET), *args],
        cwd=ROOT,
        env={**sam_environment(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SamRun(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def build(template: Path, build_dir: Path, architecture: str) -> SamRun:
    """``sam build`` without containers, as ``make build`` runs it, for ``architecture``'s copy of the template."""
    return sam(
        "build", "--template-file", str(template), "--build-dir", str(build_dir),
        "--cache-dir", str(build_dir.parent / f"cache-{architecture}"), "--cached", "--parallel",
        extra_env={"LAMBDA_ARCHITECTURE": architecture},
    )  # fmt: skip


def invoke(template: Path, function: str, event: Path, env_vars: Path) -> SamRun:
    """``sam local invoke`` of one function on one event file, in a fresh container."""
    return sam(
        "local", "invoke", function, "--template", str(template), "--event", str(event),
        "--env-vars", str(env_vars), *HOST_NETWORK,
    )  # fmt: skip


@contextmanager
def start_api(template: Path, env_vars: Path, port: int, log: Path) -> Iterator[str]:
    """``sam local start-api`` on 127.0.0.1:``port`` (warm containers); yields its URL, stops it on exit."""
    command = [
        str(SAM_VENV / "bin" / "python"), str(HOSTNET), "local", "start-api", "--template", str(template),
        "--env-vars", str(env_vars), "--host", "127.0.0.1", "--port", str(port), "--warm-containers", "EAGER",
        *HOST_NETWORK,
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with log.open("w", encoding="utf-8") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=sam_environment(), stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_until_answering(url, server, timeout=300)
            yield url
        finally:
            server.send_signal(signal.SIGINT)  # SAM stops its warm containers on Ctrl-C
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)


def wait_until_answering(url: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    """Until the API answers any HTTP status (``GET /`` is a 403 from SAM's gateway), or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sam local start-api exited with status {server.returncode}")
        try:
            urllib.request.urlopen(url + "/", timeout=2).close()  # noqa: S310 - loopback
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"sam local start-api did not answer on {url} within {timeout:.0f} s")
