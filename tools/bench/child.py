"""What runs inside a fresh interpreter for one cold-start sample; the parent reads the JSON it writes.

    python -m bench.child MODE RESULT_PATH [EVENT_PATH]

Modes:

* ``boto3``: import boto3 alone, the floor every Python Lambda that touches AWS pays.
* ``handler``: import the handler module ``app`` and run its first invocation on the SQS event in EVENT_PATH.
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


def main(argv: list[str]) -> int:
    mode, result_path = argv[0], argv[1]
    if mode == "boto3":
        result = measure_boto3()
    elif mode == "handler":
        result = measure_handler(argv[2])
    elif mode == "tracer":
        result = measure_tracer()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    result["maxrss_mb"] = _maxrss_mb()
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
