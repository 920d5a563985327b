"""What runs inside a fresh interpreter for one cold-start sample; the parent reads the JSON it writes.

    python -m bench.child MODE RESULT_PATH [EVENT_PATH]

Modes:

* ``boto3``: import boto3 alone, the floor every Python Lambda that touches AWS pays.
* ``handler``: import the handler module ``app`` and run its first invocation on the SQS event in EVENT_PATH.
* ``warm``: a warm container: handler CPU per message and batches under latency (``bench.shares`` runs it inside a
  cgroup with a Lambda memory size's CPU share). Arguments: SIMULATOR_URL BATCHES LATENCY_BATCHES LATENCY_S.
* ``tracer``: with boto3 and Powertools already imported (the handler imports both anyway), import and instantiate
  Powertools' ``Tracer``: what tracing adds to the import. Disabled (outside Lambda) or active (the parent sets
  ``LAMBDA_TASK_ROOT`` and a trace header, as Lambda does with ``Tracing: Active``).

Only the standard library is imported before the clock starts, and the result goes to a file, not stdout, because
the handler's logger and metrics write to stdout. Everything is timed with ``perf_counter`` inside this process, so
interpreter start-up (paid equally by every Lambda) is left out of all modes alike; CPU time (``process_time``) is
recorded too, as it is less disturbed than wall time by whatever else the machine is running.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any


class Context:
    """The Lambda context attributes the handler and Powertools read. Defined here rather than imported from
    ``local_stack.lambda_events``, whose imports (uuid, datetime, dataclasses...) would otherwise be paid before the
    clock starts and flatter both the handler and the boto3 floor."""

    function_name = "SenderFunction"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:SenderFunction"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/SenderFunction"
    log_stream_name = "bench"

    def __init__(self, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _maxrss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_boto3() -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    import boto3  # noqa: F401 - the import is what is measured

    return {"import_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}


def measure_handler(event_path: str) -> dict[str, Any]:
    """Import ``app``, then invoke it once as Lambda would, on a one-message SQS batch."""
    with open(event_path, encoding="utf-8") as handle:
        event = json.load(handle)
    context = Context(timeout_s=30)
    started, cpu = time.perf_counter(), time.process_time()
    import app

    imported = time.perf_counter()
    response = app.lambda_handler(event, context)
    done = time.perf_counter()
    return {
        "import_s": imported - started,
        "first_invocation_s": done - imported,
        "cpu_s": time.process_time() - cpu,
        "failures": len(response.get("batchItemFailures", [])),
        "tracing": type(app.tracer).__name__,
    }


def measure_tracer() -> dict[str, Any]:
    import aws_lambda_powertools  # noqa: F401 - imported before the clock: the handler pays these either way
    import boto3  # noqa: F401

    started = time.perf_counter()
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service="bench")
    return {"import_s": time.perf_counter() - started, "disabled": bool(tracer.disabled)}


def measure_warm(simulator_url: str, batches: int, latency_batches: int, latency_s: float) -> dict[str, Any]:
    """A warm container in this process: handler CPU per message over ``batches`` batches of 10 (after one
    warm-up batch), then ``latency_batches`` batches with every NXCloud answer delayed by ``latency_s``.

    Run by :mod:`bench.shares` inside a cgroup capped at a Lambda memory size's CPU share; nothing here is timed at
    import, so the bench's own modules may be imported.
    """
    from bench import warm
    from bench.services import Remote

    services = Remote(simulator_url)
    handler = warm.load_handler({})
    overhead = warm.throughput(handler, services, batches=batches)
    latency = warm.under_latency(handler, services, latency_s=latency_s, batches=latency_batches)
    return {
        "cpu_ms_per_message": overhead.cpu_s * 1000 / overhead.messages,
        "batch_wall_s": overhead.batch_walls.as_dict(),
        "latency_batch_wall_s": latency.walls.as_dict(),
        "latency_s": latency_s,
        "accepted": overhead.accepted + latency.accepted,
        "messages": overhead.messages + latency.walls.n * latency.batch_size,
    }


def main(argv: list[str]) -> int:
    mode, result_path = argv[0], argv[1]
    if mode == "boto3":
        result = measure_boto3()
    elif mode == "handler":
        result = measure_handler(argv[2])
    elif mode == "tracer":
        result = measure_tracer()
    elif mode == "warm":
        result = measure_warm(argv[2], int(argv[3]), int(argv[4]), float(argv[5]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["maxrss_mb"] = _maxrss_mb()
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
