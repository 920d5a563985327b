"""What a per-batch DynamoDB call costs the delivery, measured as sections 9 and 10 do: the figures and the client.

Both sections time the delivery's own call against moto's server over HTTP, ten messages a batch, with a boto3 client
configured as the function's (``runtime``: standard retries, no client-side validation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from bench.stats import Spread, ratio
from bench.warm import Throughput

BATCH: Final = 10


@dataclass(frozen=True, slots=True)
class BatchCost:
    """``batches`` calls of ``BATCH`` messages: their CPU (this process), wall times and DynamoDB requests."""

    batches: int
    cpu_s: float
    walls: Spread
    requests: int

    @property
    def messages(self) -> int:
        return self.batches * BATCH

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_s * 1e6 / self.messages

    @property
    def cpu_us_per_batch(self) -> float:
        return self.cpu_s * 1e6 / self.batches

    @property
    def requests_per_batch(self) -> float:
        return self.requests / self.batches

    @property
    def usd_per_million(self) -> float:
        raise NotImplementedError  # each section's own billing

    def share_of(self, warm: Throughput) -> float:
        return ratio(self.cpu_s / self.messages, warm.cpu_s / warm.messages)

    def as_dict(self, warm: Throughput | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "batches": self.batches,
            "batch_size": BATCH,
            "cpu_us_per_message": self.cpu_us_per_message,
            "batch_wall_s": self.walls.as_dict(),
            "dynamodb_requests_per_batch": self.requests_per_batch,
            "dynamodb_usd_per_million_messages": self.usd_per_million,
        }
        if warm is not None:
            document["share_of_handler_cpu_per_message"] = self.share_of(warm)
        return document


def moto_dynamodb(moto_url: str) -> Any:
    """A DynamoDB client on moto's server, configured as the function's."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "dynamodb",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - moto's placeholder
        config=Config(retries={"mode": "standard", "max_attempts": 3}, parameter_validation=False),
    )
