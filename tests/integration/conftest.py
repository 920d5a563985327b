"""Fixtures for the function's integration tests: moto's server for AWS, the simulator for NXCloud.

Every test gets its own queues, table and secret (unique names on one moto server), the function's environment
pointing at them, and a fresh runtime and Powertools cache, so tests cannot see each other's state.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local_stack.aws import MotoServer, Resources, provision
from local_stack.lambda_events import LambdaContext, api_event, http_api_event, receive_sqs_event, settle_sqs_batch
from local_stack.streams import StreamReader

ACCESS_SECRET = "s3cr3t-never-log-me"
WEBHOOK_TOKEN = "whk-7Rq2ZpL9xV4mT8nB3cY6dF1gH5jK0sW"
"""The path token NXCloud's callbacks carry (at least 32 characters)."""
SECRET = {
    "accessKey": "AK",
    "accessSecret": ACCESS_SECRET,
    "webhook_token": WEBHOOK_TOKEN,
    "tenant_id": 1,
    "appkey": "app1",
    "business_phone": "8618512348399",
}


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@dataclass
class Stack:
    """The function wired to moto and the simulator, with helpers to drive both triggers."""

    resources: Resources
    sqs: Any
    _stream: StreamReader | None = None

    def enqueue(self, body: str | dict[str, Any], attributes: dict[str, str] | None = None) -> str:
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
        message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
        sent = self.sqs.send_message(
            QueueUrl=self.resources.send_queue_url, MessageBody=text, MessageAttributes=message_attributes
        )
        return str(sent["MessageId"])

    def receive(self, batch_size: int = 10) -> dict[str, Any]:
        return receive_sqs_event(self.sqs, self.resources.send_queue_url, batch_size=batch_size, wait_seconds=0)

    def invoke(self, event: dict[str, Any], timeout: float = 30.0) -> Any:
        import app

        return app.lambda_handler(event, LambdaContext(timeout_seconds=timeout))

    def run_batch(self, batch_size: int = 10) -> tuple[dict[str, Any], dict[str, Any]]:
        """Receive a batch, invoke the handler, settle it like the event source mapping; return (event, response)."""
        event = self.receive(batch_size)
        if not event["Records"]:  # the event source mapping never invokes with an empty batch
            return event, {"batchItemFailures": []}
        response = self.invoke(event)
        settle_sqs_batch(self.sqs, self.resources.send_queue_url, event, response, retry_delay=0)
        return event, response

    def call_api(self, body: str | bytes | dict[str, Any] | None, headers: dict[str, str] | None = None) -> Any:
        text = json.dumps(body, ensure_ascii=False) if isinstance(body, dict) else body
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        return self.invoke(api_event(text, headers=hdrs))

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
            for message in batch:
                found[message["MessageId"]] = message
            if not batch:
                break
        return list(found.values())

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

    def events(self) -> list[dict[str, Any]]:
        """The events the publisher put on the stack's bus, as a subscriber's queue receives them (consumed)."""
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.resources.events_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.resources.events_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return found

    def queue_depth(self, url: str | None = None) -> int:
        attrs = self.sqs.get_queue_attributes(
            QueueUrl=url or self.resources.send_queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


@pytest.fixture
def stack(moto_server: MotoServer, simulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    from aws_lambda_powertools.utilities import parameters

    resources = provision(moto_server.url, prefix=f"t{uuid.uuid4().hex[:10]}", secret=SECRET, max_receive_count=3)
    env = {
        **resources.function_env(),
        "NXCLOUD_BASE_URL": simulator.url,
        "NXCLOUD_READ_TIMEOUT": "0.5",
        "NXCLOUD_CONNECT_TIMEOUT": "0.5",
        "POWERTOOLS_METRICS_NAMESPACE": "Test",
        "POWERTOOLS_SERVICE_NAME": "nxcloud-wa-sender",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("DEFAULT_TENANT_ID", "DEFAULT_APPKEY", "DEFAULT_BUSINESS_PHONE", "UNKNOWN_OUTCOME_POLICY"):
        monkeypatch.delenv(name, raising=False)
    simulator.set_account("AK", ACCESS_SECRET)
    _reset_functions()
    parameters.clear_caches()
    yield Stack(resources, resources.client("sqs"))
    _reset_functions()
    parameters.clear_caches()


def _reset_functions() -> None:
    """Every function's container state: the next invocation reads the environment again, as a cold start does."""
    import publisher
    import runtime
    import webhook

    runtime.reset()
    webhook.reset()
    publisher.reset()


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """Everything the function's Powertools logger writes, at every level (it writes to stdout, not through root)."""
    from observability import logger

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logger.registered_formatter)
    logger.addHandler(handler)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


def message(to: str = "8613800000000", **overrides: Any) -> dict[str, Any]:
    """A valid message relying on the secret's defaults."""
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


@pytest.fixture
def page_example_texts() -> list[str]:
    """The three request examples of NXCloud's page, with real digits in place of the masked ones."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "data" / "page_examples"
    texts = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.json"))]
    assert len(texts) == 3, f"expected the page's three examples in {folder}"
    return texts
