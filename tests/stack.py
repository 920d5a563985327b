"""The one test stack: the real handler wired to moto's server (AWS) and the NXCloud simulator, for every suite.

A pytest plugin (``pytest_plugins`` in tests/conftest.py), so the integration, fuzz and security suites share one
moto server per session and one way of wiring the function:

* :func:`moto_server`: moto's server on 127.0.0.1, started once per session;
* :func:`stack`: per test, queues, table and secret of its own (unique names on that server), the function's
  environment pointing at them and at the test's ``simulator``, and a fresh runtime and Powertools cache, so tests
  cannot see each other's state;
* :func:`module_stack`: the same once per test module with a simulator of its own, for property tests whose examples
  would cost less than provisioning (call :meth:`Stack.reset` between examples).

Both reset the function's runtime with :func:`reset_function_runtime` before and after.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from local_stack.aws import MotoServer, Resources, provision, queue_depth, send_message
from local_stack.lambda_events import LambdaContext, api_event, http_api_event, receive_sqs_event, settle_sqs_batch
from local_stack.streams import CAMPAIGNS, StreamReader
from nxcloud_simulator import NXCloudSimulator

ACCESS_KEY = "AK"
ACCESS_SECRET = "s3cr3t-never-log-me"
WEBHOOK_TOKEN = "whk-7Rq2ZpL9xV4mT8nB3cY6dF1gH5jK0sW"
"""The path token NXCloud's callbacks carry (at least 32 characters)."""
SECRET = {
    "accessKey": ACCESS_KEY,
    "accessSecret": ACCESS_SECRET,
    "webhook_token": WEBHOOK_TOKEN,
    "tenant_id": 1,
    "appkey": "app1",
    "business_phone": "8618512348399",
}
"""The secret every stack stores; its simulator accepts this key and secret."""

UNSET_VARIABLES = (
    "DEFAULT_TENANT_ID",
    "DEFAULT_APPKEY",
    "DEFAULT_BUSINESS_PHONE",
    "UNKNOWN_OUTCOME_POLICY",
    "MESSAGES_PER_SECOND",
    "RATE_WAIT_SECONDS",
)
"""Optional settings of the function, removed so that the secret's defaults, the default policy and rate apply."""
MAX_RECEIVE_COUNT = 3
"""The test queues' redrive policy (few receives, so retries run out quickly), told to the function as well."""


def message(to: str = "8613800000000", **overrides: Any) -> dict[str, Any]:
    """A valid message relying on the secret's defaults (tenant, appkey, business number)."""
    body: dict[str, Any] = {
        "to": to,
        "template": {
            "name": "order_update",
            "language": {"code": "en_US"},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": "David"}]}],
        },
    }
    body.update(overrides)
    return body


class AdvancingClock:
    """Epoch seconds: the wall clock plus what the test advanced it by. For moto's SQS (delays, visibility), the
    function's rate limiter and its caches, advancing it is time passing, without waiting for it."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def __call__(self) -> float:
        return time.time() + self.ahead

    def advance(self, seconds: float) -> None:
        self.ahead += seconds


def reset_function_runtime() -> None:
    """Every function's container state (the sender's runtime, the webhook's, the publisher's, the planner's) and
    Powertools' parameter cache (the secret): the next invocation reads the environment again, as a cold start does."""
    from aws_lambda_powertools.utilities import parameters

    import planner
    import publisher
    import runtime
    import webhook

    runtime.reset()
    webhook.reset()
    publisher.reset()
    planner.reset()
    parameters.clear_caches()


@dataclass
class Stack:
    """The function wired to moto and the simulator, with helpers to drive both triggers and read what it did."""

    resources: Resources
    sqs: Any
    simulator: NXCloudSimulator
    _stream: StreamReader | None = None
    _campaign_stream: StreamReader | None = None

    # --- driving the function

    def invoke(self, event: Any, timeout: float = 30.0) -> Any:
        """Call the handler in-process, with a context whose deadline is ``timeout`` seconds away."""
        import app

        return app.lambda_handler(event, LambdaContext(timeout_seconds=timeout))

    def call_api(self, body: str | bytes | dict[str, Any] | None, headers: dict[str, str] | None = None) -> Any:
        """``POST /messages`` as a JSON request: a dict body is encoded, ``Content-Type`` is JSON unless overridden."""
        text = json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body
        return self.call_api_raw(text, {"Content-Type": "application/json", **(headers or {})})

    def call_api_raw(self, body: str | bytes | None, headers: dict[str, str] | None = None) -> Any:
        """``POST /messages`` with exactly this body and these headers, nothing added (for arbitrary requests)."""
        return self.invoke(api_event(body, headers=headers))

    def enqueue(self, body: str | dict[str, Any], attributes: dict[str, str] | None = None) -> str:
        """Send a message to the send queue as a producer would; return its SQS message id."""
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        return send_message(self.sqs, self.resources.send_queue_url, text, attributes)

    def receive(self, batch_size: int = 10) -> dict[str, Any]:
        """Receive a batch from the send queue as the event source mapping would (maybe no records)."""
        return receive_sqs_event(self.sqs, self.resources.send_queue_url, batch_size=batch_size, wait_seconds=0)

    def run_batch(self, batch_size: int = 10) -> tuple[dict[str, Any], dict[str, Any]]:
        """Receive a batch, invoke the handler, settle it like the event source mapping; return (event, response)."""
        event = self.receive(batch_size)
        if not event["Records"]:  # the event source mapping never invokes with an empty batch
            return event, {"batchItemFailures": []}
        response = self.invoke(event)
        settle_sqs_batch(self.sqs, self.resources.send_queue_url, event, response, retry_delay=0)
        return event, response

    def call_webhook(self, body: str | bytes | dict[str, Any] | None, token: str = WEBHOOK_TOKEN) -> Any:
        """NXCloud calling POST /webhooks/nxcloud/{token} through the HTTP API."""
        import webhook

        text = json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body
        event = http_api_event(
            text,
            route="/webhooks/nxcloud/{token}",
            path=f"/webhooks/nxcloud/{token}",
            path_parameters={"token": token},
        )
        return webhook.lambda_handler(event, LambdaContext(timeout_seconds=10))

    def publish(self) -> int:
        """Hand the messages table's new stream records to the publisher, as its event source mapping does."""
        import publisher

        if self._stream is None:
            self._stream = StreamReader(self.resources)
        return self._stream.deliver(lambda event: publisher.lambda_handler(event, LambdaContext(timeout_seconds=30)))

    def publish_campaigns(self) -> int:
        """Hand the campaigns table's new stream records to the publisher, as its second event source does."""
        import publisher

        if self._campaign_stream is None:
            self._campaign_stream = StreamReader(self.resources, CAMPAIGNS)
        return self._campaign_stream.deliver(
            lambda event: publisher.lambda_handler(event, LambdaContext(timeout_seconds=30))
        )

    # --- reading what it did

    def dlq_messages(self) -> list[dict[str, Any]]:
        """Everything on the dead-letter queue (received and left there, visibility 0)."""
        return self.peek(self.resources.dlq_url)

    def peek(self, url: str) -> list[dict[str, Any]]:
        """Everything on a queue (received and left there, visibility 0)."""
        found: dict[str, dict[str, Any]] = {}
        for _ in range(5):
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], VisibilityTimeout=0
            ).get("Messages", [])
            for received in batch:
                found[received["MessageId"]] = received
            if not batch:
                break
        return list(found.values())

    def events(self) -> list[dict[str, Any]]:
        """The events the publisher put on the stack's bus, as a subscriber's queue receives them (consumed)."""
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for received in batch:
                found.append(json.loads(received["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.resources.events_queue_url, ReceiptHandle=received["ReceiptHandle"]
                )
        return found

    def queue_depth(self, url: str | None = None) -> int:
        """Visible plus in-flight messages of a queue (the send queue by default)."""
        return queue_depth(self.sqs, url or self.resources.send_queue_url)

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Receive and delete everything on a queue."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)
            self.sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )

    def dead_letters(self) -> dict[str, dict[str, Any]]:
        """The DLQ's messages by the id of the record (or request) they came from; the DLQ is emptied."""
        found = {}
        for received in self.drain(self.resources.dlq_url):
            attrs = {k: v["StringValue"] for k, v in received.get("MessageAttributes", {}).items()}
            found[attrs.get("source_message_id", received["MessageId"])] = {
                "body": received["Body"],
                "attributes": attrs,
            }
        return found

    def reset(self) -> None:
        """Between examples of a module's stack: forget the simulator's records; empty both queues."""
        self.simulator.reset()
        self.drain(self.resources.dlq_url)
        self.drain(self.resources.send_queue_url)


@contextmanager
def wired_stack(
    moto: MotoServer,
    simulator: NXCloudSimulator,
    patch: pytest.MonkeyPatch,
    *,
    read_timeout: float,
    connect_timeout: float,
) -> Iterator[Stack]:
    """Provision fresh resources on ``moto``, point the function's environment (through ``patch``) at them and at
    ``simulator``, and reset its runtime before and after."""
    resources = provision(
        moto.url, prefix=f"t{uuid.uuid4().hex[:10]}", secret=SECRET, max_receive_count=MAX_RECEIVE_COUNT
    )
    env = {
        **resources.function_env(),
        "MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
        "NXCLOUD_BASE_URL": simulator.url,
        "NXCLOUD_TEMPLATE_BASE_URL": simulator.url,
        # The suites send templates of every shape and name; only tests of the template check turn it on (and give
        # the simulator a catalogue): tests/integration/test_template_check.py.
        "TEMPLATE_CHECK": "off",
        "NXCLOUD_READ_TIMEOUT": str(read_timeout),
        "NXCLOUD_CONNECT_TIMEOUT": str(connect_timeout),
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "POWERTOOLS_SERVICE_NAME": "nxcloud-wa-sender",
    }
    for name, value in env.items():
        patch.setenv(name, value)
    for name in UNSET_VARIABLES:
        patch.delenv(name, raising=False)
    simulator.set_account(ACCESS_KEY, ACCESS_SECRET)
    reset_function_runtime()
    try:
        yield Stack(resources, resources.client("sqs"), simulator)
    finally:
        reset_function_runtime()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1, one for the whole session: every stack gets resources of its own on it."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def stack(moto_server: MotoServer, simulator: NXCloudSimulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack of the test's own, on the test's ``simulator``; short NXCloud timeouts (0.5 s) keep hangs quick."""
    with wired_stack(moto_server, simulator, monkeypatch, read_timeout=0.5, connect_timeout=0.5) as wired:
        yield wired


@pytest.fixture(scope="module")
def module_stack(moto_server: MotoServer) -> Iterator[Stack]:
    """One stack for a whole test module, with a simulator of its own: call :meth:`Stack.reset` between examples.

    NXCloud timeouts are longer (2 s read, 1 s connect) than :func:`stack`'s: many examples on a loaded machine must
    not turn a slow answer into an unknown outcome.
    """
    with (
        NXCloudSimulator({ACCESS_KEY: ACCESS_SECRET}) as simulator,
        pytest.MonkeyPatch.context() as patch,
        wired_stack(moto_server, simulator, patch, read_timeout=2, connect_timeout=1) as wired,
    ):
        yield wired
