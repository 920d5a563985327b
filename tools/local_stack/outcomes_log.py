"""Follow each queued message to its end by reading the function's own structured log lines.

The function logs one line per message outcome (``outcome`` = ``sent`` / ``skipped`` / ``dead_lettered`` /
``retry``, with ``sqs_message_id``); this handler keeps them, so the runner can tell "retried 2 times then sent" from
the same signals an operator would read in CloudWatch, without any hook in the function.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Trail:
    """What happened to one queue message, in order."""

    retries: int = 0
    final: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class OutcomeLog(logging.Handler):
    """A logging handler that records outcome lines by SQS message id."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._lock = threading.Lock()
        self.trails: dict[str, Trail] = defaultdict(Trail)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "outcome", None) is None:
            return
        # Formatted, not read off the record: Powertools adds per-thread keys (sqs_message_id) in its formatter.
        line = json.loads(self.format(record))
        outcome, message_id = line.get("outcome"), line.get("sqs_message_id")
        if message_id is None:
            return
        with self._lock:
            trail = self.trails[message_id]
            if outcome == "retry":
                trail.retries += 1
            elif outcome in ("sent", "skipped", "dead_lettered"):
                trail.final = outcome
                trail.detail = {k: line.get(k) for k in ("message_id", "reason", "error_code", "replayed")}

    def trail(self, message_id: str) -> Trail:
        with self._lock:
            return self.trails.get(message_id, Trail())

    def attach(self) -> OutcomeLog:
        from observability import logger

        self.setFormatter(logger.registered_formatter)
        logger.addHandler(self)
        return self

    def detach(self) -> None:
        from observability import logger

        logger.removeHandler(self)
