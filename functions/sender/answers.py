"""What every route of the REST API answers with, in one place: the error models, a documented answer's entry, and
the one way an answer's JSON is made. :mod:`api` (``/messages``, ``/suppressions``) and :mod:`campaigns_api`
(``/audiences``, ``/campaigns``) both build on it, so the document has one ``ErrorResponse`` and one JSON shape.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel


class FieldError(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorResponse(BaseModel):
    error: str
    message: str
    code: int | str | None = None
    trace_id: str | None = None
    errors: list[FieldError] | None = None


class GatewayError(BaseModel):
    """API Gateway's own answer, given before the function is called."""

    message: str


def doc(description: str, model: type[BaseModel]) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


def json_answer(status: int, body: BaseModel, headers: dict[str, str] | None = None) -> Response[Any]:
    """Every answer the function gives: its body is the model ``openapi.json`` documents for it, so the two cannot
    drift (tests/integration/test_api_answers.py validates each kind against the document)."""
    return Response(status, content_types.APPLICATION_JSON, dump(body), headers=headers)


def dump(body: BaseModel) -> dict[str, Any]:
    """An answer's JSON: a field its kind does not set is left out (``errors`` without field errors, ``code`` in a
    404), one it sets without a value is ``null`` (``trace_id`` before NXCloud answered); both are as documented."""
    return body.model_dump(mode="json", exclude_unset=True)
