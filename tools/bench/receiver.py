"""The webhook receiver, warm in this process: CPU per callback and the time of each webhook request.

The real ``webhook.lambda_handler`` stores NXCloud's status callbacks in moto's messages table over HTTP, as
NXCloud would call it: ``sent``, ``delivered``, ``read`` for each of a number of messages, one request each (the
webhook's usual traffic, three requests per message). The DynamoDB requests it makes are counted on the wire.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from typing import Any

from bench.stats import Spread

STATUSES = ("sent", "delivered", "read")


@dataclass(frozen=True, slots=True)
class Receiver:
    requests: int
    cpu_ms_per_callback: float
    wall_ms: Spread
    p99_ms: float
    dynamodb_per_callback: float
    """DynamoDB requests per callback, on the wire (retries included)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cpu_ms_per_callback": round(self.cpu_ms_per_callback, 3),
            "wall_ms": self.wall_ms.as_dict(),
            "p99_ms": round(self.p99_ms, 2),
            "dynamodb_requests_per_callback": round(self.dynamodb_per_callback, 2),
        }


def measure(token: str, *, messages: int = 100) -> Receiver:
    """Post ``messages`` x 3 status callbacks to the warm webhook; the process's CPU is the receiver's."""
    import webhook
    from local_stack.lambda_events import LambdaContext, http_api_event

    def call(message_id: str, status: str, second: int) -> None:
        body = {
            "statuses": [
                {
                    "id": message_id,
                    "status": status,
                    "timestamp": str(1_900_000_000 + second),
                    "recipient_id": "8613800000000",
                }
            ],
            "messaging_product": "whatsapp",
        }
        event = http_api_event(
            json.dumps(body),
            route="/webhooks/nxcloud/{token}",
            path=f"/webhooks/nxcloud/{token}",
            path_parameters={"token": token},
        )
        answer = webhook.lambda_handler(event, LambdaContext(timeout_seconds=10))
        if answer["statusCode"] != 200:
            raise RuntimeError(f"the webhook answered {answer['statusCode']}: {answer.get('body')}")

    call("warm-up", "sent", 0)  # the container's first request reads the secret and builds its clients
    requests: list[str] = []
    webhook.receiver().timeline.client.meta.events.register(
        "before-send.dynamodb", lambda request, **_: requests.append(request.headers["X-Amz-Target"].decode())
    )
    walls: list[float] = []
    cpu_before = time.process_time()
    for n in range(messages):
        for second, status in enumerate(STATUSES):
            started = time.perf_counter()
            call(f"bench-{n}", status, second)
            walls.append((time.perf_counter() - started) * 1000)
    cpu = time.process_time() - cpu_before
    calls = len(walls)
    return Receiver(
        requests=calls,
        cpu_ms_per_callback=cpu * 1000 / calls,
        wall_ms=Spread.of(walls),
        p99_ms=statistics.quantiles(walls, n=100)[98],
        dynamodb_per_callback=len(requests) / calls,
    )
