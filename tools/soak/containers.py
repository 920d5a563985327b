"""Lambda execution environments as processes, so a timeout can kill one mid-batch exactly as Lambda does.

Why processes and not threads in one interpreter: the function keeps its runtime (settings, boto3 clients, the urllib3
pool, Powertools' secret cache) at module level, one per container. Several "containers" as threads of one process
would share all of it, and a thread cannot be stopped mid-call, so a timeout could only be pretended. Here each
container is a process forked from a server that has the handler's modules imported (``multiprocessing``'s
forkserver with a preload), so it starts cold like a new execution environment (its runtime is built on the first
invocation) in a fraction of a second, and a timeout is a ``SIGKILL``: whatever the function had done by then (an
idempotency record left ``INPROGRESS``, a message sent, a dead-letter written) stays done; nothing after it happens;
the batch is not settled, so SQS delivers its records again after their visibility timeout; the next invocation gets
a fresh container.

The container's context carries the invocation's deadline: the function's timeout, or for a chaos kill a random
tiny one, so the in-progress expiry Powertools derives from the remaining time matches the moment of the kill.

The function's stdout (its JSON log lines and EMF metrics) goes to /dev/null; the sender's outcome lines
(``outcome`` = sent / dead_lettered / retry, per SQS message id) are collected and returned with the answer, like
reading CloudWatch. A killed invocation returns nothing.

The same containers run the webhook, the publisher and the planner (``handler``: the module whose
``lambda_handler`` is invoked), so their invocations can be killed mid-way too.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import multiprocessing
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Final

PRELOAD: Final = ["soak.preload"]
READY_TIMEOUT: Final = 60.0
SENDER: Final = "app"
"""The sender's handler module; the webhook's is ``webhook``, the publisher's ``publisher``."""
FUNCTION_NAMES: Final = {
    SENDER: "SenderFunction",
    "webhook": "WebhookFunction",
    "publisher": "PublisherFunction",
    "planner": "PlannerFunction",
}


class InvocationKilled(Exception):
    """The invocation ran past its deadline and its container was killed (``reason``: timeout or chaos)."""

    def __init__(self, reason: str, deadline: float) -> None:
        super().__init__(f"invocation killed at its {deadline:.3f} s deadline ({reason})")
        self.reason = reason
        self.deadline = deadline


class FunctionError(Exception):
    """The handler raised: Lambda reports an invocation error, and the event source retries the whole batch."""


def _context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class Container:
    """One execution environment: a process that runs one invocation at a time until it is killed or closed."""

    def __init__(self, env: dict[str, str], name: str, handler: str = SENDER) -> None:
        context = _context()
        self.name = name
        self.conn, child = context.Pipe()
        self.process = context.Process(target=container_main, args=(child, env, handler), name=name, daemon=True)
        self.process.start()
        child.close()
        if not self.conn.poll(READY_TIMEOUT):
            self.kill()
            raise RuntimeError(f"container {name} did not start within {READY_TIMEOUT} s")
        self.conn.recv()
        self.invocations = 0
        self.cpu_s = 0.0

    def invoke(self, event: dict[str, Any], deadline_s: float, reason: str) -> tuple[Any, list[dict[str, Any]]]:
        """Run one invocation; return (response, outcome lines) or raise InvocationKilled / FunctionError."""
        deadline = time.monotonic() + deadline_s
        self.invocations += 1
        self.conn.send((event, deadline))
        if not self.conn.poll(max(0.0, deadline - time.monotonic())):
            self.kill()
            raise InvocationKilled(reason, deadline_s)
        kind, payload, outcomes, self.cpu_s = self.conn.recv()
        if kind == "error":
            raise FunctionError(payload)
        return payload, outcomes

    def kill(self) -> None:
        if self.process.is_alive():
            self.cpu_s = max(self.cpu_s, _process_cpu_s(self.process.pid))
            self.process.kill()
        self.process.join(5)
        self.conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(None)
        self.process.join(2)
        self.kill()


class Slot:
    """One concurrent execution of a function (the event source's or the API's): invokes a container, replaces it
    when killed. Callable like :class:`local_stack.emulators.Invoker`, so the emulated triggers can use it.

    A chaos kill gives the invocation a deadline drawn from ``chaos_deadline`` (seconds) instead of the function's
    timeout: it is killed there if it has not answered by then, at whatever point it has reached. ``sure_kill_at``
    (the n-th invocation, 1-based; 0: none) is a chaos kill at the range's low end whatever the draw, so a short run
    kills at least once however the draws and the machine's speed fall."""

    def __init__(
        self,
        env: dict[str, str],
        name: str,
        *,
        function_timeout: float,
        kill_probability: float,
        seed: int,
        on_result: Callable[[dict[str, Any], Any, list[dict[str, Any]], str | None], None],
        handler: str = SENDER,
        chaos_deadline: tuple[float, float] = (0.02, 0.5),
        on_start: Callable[[dict[str, Any], float], None] | None = None,
        sure_kill_at: int = 0,
    ) -> None:
        self.env, self.name = env, name
        self.handler = handler
        self.chaos_deadline = chaos_deadline
        self.function_timeout = function_timeout
        self.kill_probability = kill_probability
        self.sure_kill_at = sure_kill_at
        self._rng = random.Random(f"kills-{seed}-{name}")
        self.on_result = on_result
        self.on_start = on_start
        """Told each event and the wall-clock time (``time.time()``) just before it is handed to the container:
        whatever the invocation does (the suppression check's read, the claim) comes after."""
        self.container: Container | None = None
        self.starts = 0
        self.kills: dict[str, int] = {"timeout": 0, "chaos": 0}
        self.errors = 0
        self.invocations = 0
        self.retired_cpu_s = 0.0

    def __call__(self, event: dict[str, Any]) -> Any:
        if self.container is None:
            self.starts += 1
            self.container = Container(self.env, f"{self.name}#{self.starts}", self.handler)
        self.invocations += 1
        chaos = self._rng.random() < self.kill_probability
        deadline = self._rng.uniform(*self.chaos_deadline) if chaos else self.function_timeout
        if self.invocations == self.sure_kill_at:
            chaos, deadline = True, self.chaos_deadline[0]
        if self.on_start is not None:
            self.on_start(event, time.time())
        try:
            response, outcomes = self.container.invoke(event, deadline, "chaos" if chaos else "timeout")
        except InvocationKilled as killed:
            self.retired_cpu_s += self.container.cpu_s
            self.container = None
            self.kills[killed.reason] += 1
            self.on_result(event, None, [], killed.reason)
            raise
        except FunctionError:
            self.errors += 1
            self.on_result(event, None, [], "error")
            raise
        self.on_result(event, response, outcomes, None)
        return response

    @property
    def cpu_s(self) -> float:
        """CPU seconds used by this slot's containers so far."""
        return self.retired_cpu_s + (self.container.cpu_s if self.container is not None else 0.0)

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.retired_cpu_s += self.container.cpu_s
            self.container = None


def _process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a running process (Linux /proc; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class SlotPool:
    """Several slots behind one callable: the API's concurrent executions (ApiServer serves requests in threads)."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self._free.put(slot)

    def __call__(self, event: dict[str, Any]) -> Any:
        slot = self._free.get(timeout=120)
        try:
            return slot(event)
        finally:
            self._free.put(slot)


# ---------------------------------------------------------------------------------------------------------------------
# Inside the container process


class _OutcomeCollector(logging.Handler):
    """Keeps the function's outcome lines, its ``idempotency=unrecorded`` warnings (formatted, so the per-thread
    ``sqs_message_id`` key is in them) and its ``frequency_cap=unrecorded`` warnings (a batch's cap count unwritten)."""

    FIELDS: Final = (
        "outcome",
        "sqs_message_id",
        "reason",
        "error_code",
        "replayed",
        "message_id",
        "idempotency_key",
        "idempotency",
        "rate_wait_ms",
        "suppression_reason",
        "frequency_cap",
    )

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self._lock = threading.Lock()
        self._lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if all(getattr(record, name, None) is None for name in ("outcome", "idempotency", "frequency_cap")):
            return
        line = json.loads(self.format(record))
        with self._lock:
            self._lines.append({k: line.get(k) for k in self.FIELDS})

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            lines, self._lines = self._lines, []
        return lines


def container_main(conn: Any, env: dict[str, str], handler: str = SENDER) -> None:
    """The container's loop: receive (event, deadline), invoke the real handler, send back the answer."""
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the function's log lines and EMF metrics
    from local_stack.lambda_events import LambdaContext

    function = importlib.import_module(handler)
    collector = _OutcomeCollector()
    if handler == SENDER:
        from observability import logger

        collector.setFormatter(logger.registered_formatter)
        logger.addHandler(collector)
    conn.send(("ready", os.getpid(), None))
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            return
        if item is None:
            return
        event, deadline = item
        context = LambdaContext(
            function_name=FUNCTION_NAMES.get(handler, handler), timeout_seconds=max(0.0, deadline - time.monotonic())
        )
        try:
            response = function.lambda_handler(event, context)
        except Exception as exc:  # an invocation error, as Lambda reports it
            conn.send(("error", f"{type(exc).__name__}: {exc}", collector.drain(), time.process_time()))
        else:
            conn.send(("ok", response, collector.drain(), time.process_time()))
