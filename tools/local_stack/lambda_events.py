"""Build the events Lambda receives, in the exact shapes AWS sends, and the context object it passes.

* :func:`receive_sqs_event` does what the SQS event source mapping does: long-poll the queue (with all system and
  message attributes) and wrap the messages as an ``aws:sqs`` event.
* :func:`settle_sqs_batch` does what the mapping does with the function's answer: delete the records that are not in
  ``batchItemFailures``; the failed ones stay and come back after their visibility timeout.
* :func:`api_event` turns an HTTP request into an API Gateway REST proxy event.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass
class LambdaContext:
    """The attributes and method of Lambda's context object that handlers and Powertools use, with a deadline.

    Types as the Python runtime gives them: ``memory_limit_in_mb`` is a string there (awslambdaric reads it from the
    environment), so every log line says ``"function_memory_size": "512"``; make sam-local compares the two.
    """

    function_name: str = "SenderFunction"
    memory_limit_in_mb: str = "512"
    timeout_seconds: float = 30.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/SenderFunction"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def receive_sqs_event(sqs: Any, queue_url: str, *, batch_size: int = 10, wait_seconds: int = 1) -> dict[str, Any]:
    """Long-poll up to ``batch_size`` messages and return them as the event Lambda would get (maybe no records)."""
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    region = arn.split(":")[3]
    messages = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=batch_size,
        WaitTimeSeconds=wait_seconds,
        MessageSystemAttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    return {"Records": [_sqs_record(m, arn, region) for m in messages]}


def _sqs_record(message: dict[str, Any], arn: str, region: str) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }


def settle_sqs_batch(
    sqs: Any, queue_url: str, event: dict[str, Any], response: dict[str, Any] | None, *, retry_delay: int | None = None
) -> list[str]:
    """Delete what succeeded; return the ids left for redelivery. ``response`` None means the invocation failed.

    ``retry_delay`` shortens the failed records' remaining visibility (local runs and tests do not wait 3 minutes).
    """
    records = event.get("Records", [])
    if response is None:
        failed = {r["messageId"] for r in records}
    else:
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    done = [r for r in records if r["messageId"] not in failed]
    for start in range(0, len(done), 10):
        chunk = done[start : start + 10]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
        )
    if retry_delay is not None:
        for record in records:
            if record["messageId"] in failed:
                sqs.change_message_visibility(
                    QueueUrl=queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=retry_delay
                )
    return sorted(failed)


def api_event(
    body: str | bytes | None,
    *,
    method: str = "POST",
    path: str = "/messages",
    headers: dict[str, str] | None = None,
    stage: str = "v1",
    api_key_id: str | None = None,
    source_ip: str = "127.0.0.1",
    query: dict[str, list[str]] | None = None,
    resource: str | None = None,
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0) for one request. ``path`` is as sent (API Gateway
    leaves its percent-encoding); ``query`` is decoded, each name with its values (the last one is
    ``queryStringParameters``'); ``resource`` is the route's template (``/suppressions/{number}``), default ``path``."""
    headers = dict(headers or {})
    query = query or {}
    binary = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource or path,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "local",
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "apiKey": "local", "apiKeyId": api_key_id, "userAgent": None},
            "domainName": "127.0.0.1",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": binary,
    }


def http_api_event(
    body: str | bytes | None,
    *,
    route: str,
    path: str,
    path_parameters: dict[str, str] | None = None,
    method: str = "POST",
    headers: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API proxy event (payload format 2.0), as the webhook function receives it."""
    binary = isinstance(body, bytes)
    text = base64.b64encode(body).decode() if isinstance(body, bytes) else body
    now = datetime.now(UTC)
    route_key = f"{method} {route}"
    return {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {k.lower(): v for k, v in (headers or {"content-type": "application/json"}).items()},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip, "userAgent": ""},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "pathParameters": path_parameters or {},
        "body": text,
        "isBase64Encoded": binary,
    }
