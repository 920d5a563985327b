"""The two ways to run the function on an event file: ``sam local invoke`` in a container, and ``make invoke``.

Both take the same event file and the same ``--env-vars`` file (SAM's format) and give back the handler's return
value, the function's JSON log lines and the wall time. Nothing else differs, so their results can be compared.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from local_stack.invoke import function_for_event
from sam_local import sam_cli
from sam_local.hostnet import REFUSED_PREFIX

IN_PROCESS_TIMEOUT: Final = 120
REPORT_DURATION: Final = re.compile(r"^REPORT RequestId: .*?(?<!Init )(?<!Billed )Duration: ([0-9.]+) ms", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Invoked:
    """One invocation: the handler's return value (None when there is none), its log lines, wall time, and why it
    failed (empty when it did not)."""

    result: Any
    logs: list[dict[str, Any]]
    seconds: float
    failure: str = ""
    refused: tuple[str, ...] = ()
    """Connections the SAM CLI's process tried to make to anything but loopback (refused by hostnet.py)."""
    duration_ms: float | None = None
    """The invocation's own duration as the runtime interface emulator reports it (``sam local`` only)."""


class InvokePath(Protocol):
    """A way to run the function once on an event file, with an ``--env-vars`` file."""

    name: str

    def __call__(self, event: Path, env_vars: Path) -> Invoked: ...


def json_lines(text: str) -> list[dict[str, Any]]:
    """The lines of ``text`` that are JSON objects (the function logs one per line; SAM's own lines are not JSON)."""
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except ValueError:
                continue
    return found


def parse_result(stdout: str) -> tuple[Any, str]:
    """The handler's answer: stdout as one JSON document (``make invoke``), else its last JSON line (SAM)."""
    try:
        return json.loads(stdout), ""
    except ValueError:
        pass
    for line in reversed(stdout.strip().splitlines()):
        try:
            return json.loads(line), ""
        except ValueError:
            continue
    return None, f"no JSON result on stdout: {stdout[-300:]!r}"


class SamLocalInvoke:
    """``sam local invoke <Function>`` on a built template (one fresh container per invocation). The function is the
    one ``make invoke`` picks for the event (:func:`local_stack.invoke.function_for_event`), so both run the same."""

    def __init__(self, template: Path, architecture: str) -> None:
        self.template = template
        self.name = f"sam local invoke ({architecture})"

    def __call__(self, event: Path, env_vars: Path) -> Invoked:
        function = function_for_event(json.loads(event.read_text(encoding="utf-8")))
        run = sam_cli.invoke(self.template, function, event, env_vars)
        result, failure = parse_result(run.stdout)
        if run.returncode:
            failure = f"exit status {run.returncode}: {run.stderr[-1500:]}"
        refused = tuple(line for line in run.stderr.splitlines() if line.startswith(REFUSED_PREFIX))
        report = REPORT_DURATION.search(run.stderr)
        duration = float(report.group(1)) if report else None
        return Invoked(result, json_lines(run.stderr), run.seconds, failure, refused, duration)


class MakeInvoke:
    """``make invoke`` (``python -m local_stack.invoke``): the handler in-process, as it is run without Docker."""

    name = "make invoke"

    def __call__(self, event: Path, env_vars: Path) -> Invoked:
        tools = Path(__file__).resolve().parents[1]
        env = {k: v for k, v in sam_cli.sam_environment().items() if not k.startswith(("SAM_", "__SAM_"))}
        env["PYTHONPATH"] = str(tools)
        for name in ("AWS_ENDPOINT_URL_STS", "AWS_MAX_ATTEMPTS"):  # SAM's process needs them; the function does not
            env.pop(name, None)
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "local_stack.invoke", "--env-vars", str(env_vars), str(event)],
            cwd=tools.parent,
            env={**env, "PATH": os.environ.get("PATH", "")},
            capture_output=True,
            text=True,
            timeout=IN_PROCESS_TIMEOUT,
            check=False,
        )
        result, failure = parse_result(done.stdout)
        if done.returncode not in (0, 1):  # 1: the handler raised, and its error document is the result
            failure = f"exit status {done.returncode}: {done.stderr[-1500:]}"
        return Invoked(result, json_lines(done.stderr), time.monotonic() - started, failure)
