"""``nxwa webhooks replay`` when the webhook gives no answer: every kept body stays kept and visible at once, and the
rest are still tried. A dropped connection used to end the command at that body and leave the rest of its batch
hidden for the listing's visibility timeout, so a replay right after found nothing to replay."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from waops import cli


@pytest.fixture
def kept_queue() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        import boto3

        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="kept-callbacks")["QueueUrl"]
        for n in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=f'{{"kept": {n}}}')
        yield sqs, url


def closed_port() -> int:
    """A loopback port nothing listens on: a connection to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_bodies_without_an_answer_stay_kept_and_visible(
    kept_queue: tuple[Any, str], capsys: pytest.CaptureFixture[str]
) -> None:
    sqs, url = kept_queue
    arguments = ["--region", "us-east-1", "--kept-callbacks-queue-url", url]
    arguments += ["--webhook-url", f"http://127.0.0.1:{closed_port()}/webhooks/nxcloud", "--webhook-token", "t"]

    status = cli.main([*arguments, "webhooks", "replay"])

    assert status == 1
    assert "replayed: no answer: 3; 3 left on the queue" in capsys.readouterr().out
    visible = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    assert len(visible) == 3
