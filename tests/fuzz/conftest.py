"""Fuzzing set-up: Hypothesis profiles, and one stack (moto + simulator + the real handler) per test module.

The stack is tests/stack.py's ``module_stack`` (the session's moto server, a simulator of the module's own), with
SQS's character and size rules added to the function's SQS client (:func:`fuzz_stack`).

Profiles (``HYPOTHESIS_PROFILE``):

* ``ci`` (default, what ``make test`` runs): derandomized, so every run tries the same examples and a failure
  reproduces; no example database; modest example counts so the folder stays well under a minute.
* ``long`` (``HYPOTHESIS_PROFILE=long make fuzz``): random, 20 times the examples, failures saved in
  ``.hypothesis/`` (git-ignored) and replayed first on the next run.

Tests with costly examples (a handler invocation against moto) ask for a fraction of the profile's count through
:func:`examples`, so one switch scales them all.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

from local_stack.emulators import ApiServer, Invoker
from tests.stack import Stack

from .strategies import sqs_can_carry

ROOT = Path(__file__).resolve().parents[2]


def _restore_hypothesis_printer() -> None:
    """Undo the part of schemathesis' process-wide Hypothesis patch that hides failing examples.

    schemathesis is installed for tests/fuzz/test_schemathesis.py, so pytest loads its plugin in every session, and
    importing it swaps Hypothesis' printer for one that prints nothing: a failing property test then reports
    ``test(records=, )``. Its other changes (a 4x larger buffer, a PRNG registration shortcut) do not affect what
    a failure shows, and are left alone. ``-p no:schemathesis`` in pytest's addopts would avoid the patch altogether.
    """
    patched = sys.modules.get("schemathesis.generation.hypothesis")
    if patched is None or not getattr(patched.setup, "_is_patched", False):
        return
    from hypothesis import core
    from hypothesis.vendor import pretty

    core.RepresentationPrinter = pretty.RepresentationPrinter  # type: ignore[misc]


_restore_hypothesis_printer()
CI_EXAMPLES = 100
LONG_FACTOR = 20

_common = {
    "deadline": None,  # handler examples cross HTTP to moto: their time varies with the machine, not the input
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, **_common)
settings.register_profile(
    "long",
    max_examples=CI_EXAMPLES * LONG_FACTOR,
    database=DirectoryBasedExampleDatabase(str(ROOT / ".hypothesis" / "examples")),
    **_common,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def examples(ci_count: int) -> int:
    """``ci_count`` examples under the ci profile, scaled with the loaded profile's ``max_examples``."""
    return max(1, ci_count * settings.default.max_examples // CI_EXAMPLES)


# ---------------------------------------------------------------------------------------------------------------------
# Records, and SQS's rules


def sqs_record(body: Any = "{}", **overrides: Any) -> dict[str, Any]:
    """One record of an SQS event, in the shape the event source mapping sends; ``overrides`` replace keys."""
    record = {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "fuzz-" + uuid.uuid4().hex,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1700000000000",
            "SenderId": "AIDAFUZZ",
            "ApproximateFirstReceiveTimestamp": "1700000000000",
        },
        "messageAttributes": {},
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:fuzz-send",
        "awsRegion": "us-east-1",
    }
    record.update(overrides)
    return record


SQS_MAX_MESSAGE_BYTES = 1024 * 1024  # SQS's hard limit; each queue's own MaximumMessageSize (template.yaml) is lower
"""A queue's MaximumMessageSize by default (and at most): body and message attributes count against it."""


def _enforce_sqs_rules(sqs_client: Any) -> None:
    """Make the function's SQS client refuse what real SQS refuses and moto lets through.

    * Characters outside SQS's set in a body or an attribute value (moto takes them, or fails with a 500 on lone
      surrogates).
    * A message whose body and attributes together exceed the queue's maximum size (moto counts the body only).

    Without this, a handler that forwards what SQS cannot carry would look fine here and fail in AWS.
    """
    from botocore.exceptions import ClientError

    def refuse(code: str, message: str) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": message}}, "SendMessage")

    def check(params: dict[str, Any], **_: Any) -> None:
        body = params.get("MessageBody")
        attributes = params.get("MessageAttributes") or {}
        values = [body, *(a.get("StringValue") for a in attributes.values())]
        if any(isinstance(v, str) and not sqs_can_carry(v) for v in values):
            raise refuse("InvalidMessageContents", "Invalid binary character")
        size = len(str(body).encode("utf-8", "surrogatepass")) + sum(
            len(f"{name}{a.get('DataType', '')}{a.get('StringValue', '')}".encode("utf-8", "surrogatepass"))
            for name, a in attributes.items()
        )
        if size > SQS_MAX_MESSAGE_BYTES:
            raise refuse("InvalidParameterValue", f"Message must be shorter than {SQS_MAX_MESSAGE_BYTES} bytes.")

    sqs_client.meta.events.register("provide-client-params.sqs.SendMessage", check)


# ---------------------------------------------------------------------------------------------------------------------
# The stack, once per module: provisioning per example would cost more than the examples themselves.


@pytest.fixture(scope="module")
def fuzz_stack(module_stack: Stack) -> Stack:
    """The module's stack, its function refusing what real SQS refuses (see :func:`_enforce_sqs_rules`)."""
    import runtime

    _enforce_sqs_rules(runtime.get().sqs)  # the runtime lives until module_stack resets it at the module's end
    return module_stack


@pytest.fixture(scope="module")
def api_server(fuzz_stack: Stack) -> Iterator[ApiServer]:
    """The REST API's emulation (API key check, 10 MB limit) on 127.0.0.1, invoking the handler of ``fuzz_stack``."""
    server = ApiServer(Invoker(timeout=30)).start()
    yield server
    server.stop()
