"""The committed openapi.json is the document Powertools generates from the API's code."""

import json
import re
from pathlib import Path

import api

ROOT = Path(__file__).resolve().parents[2]


def test_committed_openapi_document_is_current() -> None:
    committed = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    generated = json.loads(api.openapi_document())

    assert committed == generated, "openapi.json is stale: run `make openapi` and commit it"


def test_document_requires_the_api_key_and_describes_every_answer() -> None:
    document = json.loads(api.openapi_document())
    operation = document["paths"]["/messages"]["post"]

    assert document["security"] == [{"apiKey": []}]
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
    }
    assert set(operation["responses"]) >= {"200", "202", "400", "409", "422", "502", "503", "504"}
    assert {p["name"] for p in operation["parameters"]} == {"idempotency-key", "prefer"}
    schema = document["components"]["schemas"]["SendRequest"]
    assert set(schema["required"]) == {"to", "template"}


def test_every_reference_in_the_document_names_one_of_its_schemas() -> None:
    """api.py drops Powertools' validation-error schemas (the API answers 400, not 422): nothing may still point at
    them, and nothing the document names is missing."""
    document = json.loads(api.openapi_document())
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(document)))

    assert references <= set(document["components"]["schemas"])
    assert not references & set(api.VALIDATION_ERROR_SCHEMAS)
    assert "422" not in document["paths"]["/messages/{message_id}"]["get"]["responses"]
