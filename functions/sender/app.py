"""Lambda entry point: one function, two triggers.

``lambda_handler`` recognises the event: an SQS batch goes to :mod:`sqs_trigger` (partial batch responses), an API
Gateway REST proxy request to :mod:`api` (Powertools' resolver), except a body too large for a message, which is
answered 413 (``TOO_LARGE`` in the error table, :func:`api.too_large`) before the resolver runs. Anything else is
refused with a clear error.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

import runtime
import snapstart
from nxcloud_wa.models import MAX_MESSAGE_BYTES
from observability import logger, metrics, tracer

snapstart.register()  # SnapStart's runtime hooks, when Lambda's runtime offers them (the SnapStart parameter)


@metrics.log_metrics(capture_cold_start_metric=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _is_sqs(event):
        return _handle_sqs(event, context)
    if isinstance(event, dict) and "httpMethod" in event and "requestContext" in event:
        return _handle_api(event, context)
    raise ValueError("unsupported event: expected an SQS batch or an API Gateway REST proxy request")


@logger.inject_lambda_context(clear_state=True)
def _handle_sqs(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    from sqs_trigger import handle_batch

    tracer.put_annotation(key="trigger", value="sqs")
    response = handle_batch(event, context, runtime.get())
    tracer.put_annotation(key="records", value=len(event["Records"]))
    tracer.put_annotation(key="retried", value=len(response.get("batchItemFailures", [])))
    return response


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
def _handle_api(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tracer.put_annotation(key="trigger", value="api")
    import api  # deferred: the resolver and its OpenAPI models are not needed for SQS

    if _body_size(event) > MAX_MESSAGE_BYTES:
        return api.too_large(MAX_MESSAGE_BYTES)
    response = api.app.resolve(event, context)
    tracer.put_annotation(key="status", value=int(response.get("statusCode", 0)))
    return response


def _is_sqs(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    return (
        bool(records)
        and isinstance(records, list)
        and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)
    )


def _body_size(event: dict[str, Any]) -> int:
    """Bytes of the request body once decoded (API Gateway base64-encodes binary bodies)."""
    body = event.get("body") or ""
    if not isinstance(body, str):
        return 0
    # surrogatepass: a lone surrogate (a "\ud800" escape in the event) is for validation to refuse, not a crash here
    return len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8", "surrogatepass"))
