"""Cost per million messages from measured figures and published prices (us-east-1, on-demand, arm64).

Prices as published by AWS for us-east-1 in 2025 (DynamoDB on-demand after its November 2024 price cut); change them
here when they change. Every figure the bench prints is computed from these and from what it measured.
"""

from __future__ import annotations

from typing import Final

PRICES_AS_OF: Final = "us-east-1 list prices as published in 2025 (DynamoDB on-demand after the Nov 2024 cut)"
LAMBDA_ARM_GB_SECOND: Final = 0.0000133334
LAMBDA_REQUEST: Final = 0.20 / 1_000_000
DYNAMODB_WRITE_UNIT: Final = 0.625 / 1_000_000
DYNAMODB_READ_UNIT: Final = 0.125 / 1_000_000
SQS_REQUEST: Final = 0.40 / 1_000_000
API_GATEWAY_REST_REQUEST: Final = 3.50 / 1_000_000
"""REST API, first 333 million requests a month."""
SECRETS_MANAGER_CALL: Final = 0.05 / 10_000
SECRETS_MANAGER_SECRET_MONTH: Final = 0.40
MILLION: Final = 1_000_000


def lambda_per_million(duration_s: float, memory_mb: int, batch_size: int = 10) -> float:
    """Lambda's charge for a million messages delivered ``batch_size`` per invocation, each invocation lasting
    ``duration_s`` (billed per ms, rounded up) at ``memory_mb``."""
    invocations = MILLION / batch_size
    billed_s = -(-round(duration_s * 1000, 6) // 1) / 1000
    return invocations * (billed_s * memory_mb / 1024 * LAMBDA_ARM_GB_SECOND + LAMBDA_REQUEST)


def dynamodb_per_million(write_units_per_message: float, read_units_per_message: float = 0.0) -> float:
    return MILLION * (write_units_per_message * DYNAMODB_WRITE_UNIT + read_units_per_message * DYNAMODB_READ_UNIT)


def sqs_per_million(requests_per_message: float) -> float:
    return MILLION * requests_per_message * SQS_REQUEST
