"""What every table's code shares about DynamoDB items: the item's type, reading an attribute, a failed call's code.

The functions talk to DynamoDB through the low-level client (the resource layer's conversions cost CPU the sender
measures per message), so items travel in its typed form: ``{"id": {"S": "m-1"}, "expiration": {"N": "1800"}}``.
Each table's own module (``nxcloud_wa.messages_table``, the sender's ``idempotency`` and ``rate_limiter``) names
its attributes; this module knows only the form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools.shared.dynamodb_deserializer import TypeDeserializer
from botocore.exceptions import ClientError

Item = dict[str, dict[str, Any]]
"""A DynamoDB item (or key, or expression values) in the low-level client's typed form: name -> {type: value}."""

CONDITION_FAILED: Final = "ConditionalCheckFailedException"
"""The error code of a write whose condition did not hold."""

_DESERIALIZER: Final = TypeDeserializer()


def text(item: Mapping[str, Any], name: str) -> str | None:
    """The string attribute ``name`` of a typed item; None when it is missing or not a string."""
    value = item.get(name)
    return value.get("S") if isinstance(value, dict) else None


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """A typed item as Python values (numbers as ``Decimal``, sets as ``set``): the form Powertools'
    ``DynamoDBStreamEvent`` gives a stream's images in, with the same deserializer, so one decoder reads both."""
    return {name: _DESERIALIZER.deserialize(value) for name, value in item.items()}


def error_code(exc: ClientError) -> str:
    """The DynamoDB error code of a failed call (``ConditionalCheckFailedException``, ...)."""
    return str(exc.response.get("Error", {}).get("Code", ""))
