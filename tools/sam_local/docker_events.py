"""Watch Docker's event stream during a run and say whether every container stayed on the host's network.

A container on the host's network produces one ``network connect`` event, for the network named ``host``; one on the
default bridge connects to ``bridge``. So the rules are: no network other than ``host`` is ever connected, every
container that starts was connected to ``host``, no network is created, and no image is pulled.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lambda_image.docker import DOCKER


@dataclass
class Verdict:
    """What the events show: counts by kind, and every breach of the rules (empty when all is well)."""

    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        started, host = self.counts["container start"], self.counts["network connect host"]
        text = f"{started} containers started, {host} connected to the host network, {self.counts['image pull']} pulls"
        return text + (f"; {len(self.violations)} VIOLATIONS" if self.violations else "")


def judge(events: list[dict[str, Any]]) -> Verdict:
    """Apply the rules to ``docker events --format '{{json .}}'`` records."""
    verdict = Verdict()
    on_host: set[str] = set()
    for event in events:
        kind, action = event.get("Type", ""), event.get("Action", "")
        attributes = (event.get("Actor") or {}).get("Attributes") or {}
        verdict.counts[f"{kind} {action}"] += 1
        if kind == "network" and action == "connect":
            network, container = attributes.get("name", "?"), attributes.get("container", "?")
            verdict.counts[f"network connect {network}"] += 1
            if network == "host":
                on_host.add(container)
            else:
                verdict.violations.append(f"container {container[:12]} connected to network {network!r}")
        elif kind == "network" and action == "create":
            verdict.violations.append(f"network {attributes.get('name', '?')!r} created")
        elif kind == "image" and action == "pull":
            verdict.violations.append(f"image pulled: {(event.get('Actor') or {}).get('ID', '?')}")
    for event in events:
        if event.get("Type") == "container" and event.get("Action") == "start":
            container = (event.get("Actor") or {}).get("ID", "?")
            if container not in on_host:
                image = ((event.get("Actor") or {}).get("Attributes") or {}).get("image", "?")
                verdict.violations.append(f"container {container[:12]} ({image}) started off the host network")
    return verdict


class EventWatcher:
    """``docker events`` in a child process for the length of a ``with`` block; :meth:`verdict` judges them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> EventWatcher:
        self._process = subprocess.Popen(
            [DOCKER, "events", "--format", "{{json .}}"], stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, name="docker-events", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            if line.strip():
                self.events.append(json.loads(line))

    def __exit__(self, *_: object) -> None:
        time.sleep(1)  # the daemon reports the last container's removal a moment after the client returns
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=10)

    def verdict(self) -> Verdict:
        return judge(list(self.events))
