"""The AWS faults the soak injects for the lifecycle, checked without a server: PutEvents answered with some
entries failed exactly as AWS shapes it (read back through botocore's own parser and the service's model), and the
rules' table filter."""

from __future__ import annotations

import json

import botocore.parsers
import botocore.session
import pytest
from soak.aws_faults import AwsFault, FaultDecider, batch_statements_answer, put_events_answer, request_without

PUT_EVENTS = "EventBridge.PutEvents"
STATEMENTS = "DynamoDB.BatchExecuteStatement"

# --- PutEvents answered with some entries failed


def _put_events(count: int) -> bytes:
    entries = [
        {"Source": "s", "DetailType": "d", "Detail": json.dumps({"n": n}), "EventBusName": "b"} for n in range(count)
    ]
    return json.dumps({"Entries": entries}).encode()


def _parse_put_events_answer(body: bytes) -> dict[str, object]:
    """The answer as boto3 would hand it to the publisher (botocore's JSON parser and the service's model)."""
    model = botocore.session.get_session().get_service_model("events").operation_model("PutEvents")
    response = {"body": body, "headers": {}, "status_code": 200}
    return dict(botocore.parsers.create_parser("json").parse(response, model.output_shape))


def test_a_partial_failure_forwards_only_the_entries_that_pass_and_answers_in_the_requests_order() -> None:
    failing = [(1, "InternalFailure", "unknown error"), (3, "ThrottlingException", "throttled")]

    forwarded = request_without(PUT_EVENTS, _put_events(4), failing)
    assert forwarded is not None
    moto_answer = json.dumps({"FailedEntryCount": 0, "Entries": [{"EventId": "e0"}, {"EventId": "e2"}]}).encode()
    parsed = _parse_put_events_answer(put_events_answer(4, failing, moto_answer))

    assert [json.loads(e["Detail"])["n"] for e in json.loads(forwarded)["Entries"]] == [0, 2]
    assert parsed["FailedEntryCount"] == 2
    assert parsed["Entries"] == [
        {"EventId": "e0"},
        {"ErrorCode": "InternalFailure", "ErrorMessage": "unknown error"},
        {"EventId": "e2"},
        {"ErrorCode": "ThrottlingException", "ErrorMessage": "throttled"},
    ]


def test_when_every_entry_fails_nothing_reaches_the_bus() -> None:
    failing = [(0, "InternalFailure", "x"), (1, "InternalFailure", "x")]

    assert request_without(PUT_EVENTS, _put_events(2), failing) is None
    parsed = _parse_put_events_answer(put_events_answer(2, failing, None))

    assert parsed["FailedEntryCount"] == 2
    assert all("EventId" not in entry for entry in parsed["Entries"])  # type: ignore[union-attr]


def test_a_partial_fault_fails_at_least_one_entry_with_a_retryable_code() -> None:
    rule = AwsFault("EventBridge.PutEvents", "partial", 1.0)
    decider = FaultDecider([rule], seed=1)

    picks = [decider.failing_entries(rule, 10) for _ in range(50)]

    assert all(picks)
    assert {code for pick in picks for _, code, _ in pick} == {"InternalFailure", "ThrottlingException"}
    assert decider.injected[f"{rule.label}: entries failed"] == sum(len(p) for p in picks)


def test_partial_failures_are_put_events_and_batch_statements_only() -> None:
    with pytest.raises(ValueError, match=r"PutEvents and DynamoDB\.BatchExecuteStatement"):
        AwsFault("DynamoDB.UpdateItem", "partial", 0.1)


# --- BatchExecuteStatement answered with some statements failed


def _statements(count: int) -> bytes:
    insert = "INSERT INTO \"t\" VALUE {'id': ?}"
    return json.dumps({"Statements": [{"Statement": insert, "Parameters": [{"S": f"k{n}"}]} for n in range(count)]})


def test_a_partial_batch_of_statements_forwards_the_others_and_answers_each_failed_one_in_its_place() -> None:
    failing = [(0, "ThrottlingError", "throttled"), (2, "InternalServerError", "oops")]

    forwarded = request_without(STATEMENTS, _statements(3).encode(), failing)
    assert forwarded is not None
    moto_answer = json.dumps({"Responses": [{"TableName": "t"}]}).encode()
    model = botocore.session.get_session().get_service_model("dynamodb").operation_model("BatchExecuteStatement")
    answer = {"body": batch_statements_answer(3, failing, moto_answer), "headers": {}, "status_code": 200}
    parsed = botocore.parsers.create_parser("json").parse(answer, model.output_shape)

    assert [s["Parameters"] for s in json.loads(forwarded)["Statements"]] == [[{"S": "k1"}]]
    assert parsed["Responses"] == [
        {"Error": {"Code": "ThrottlingError", "Message": "throttled"}},
        {"TableName": "t"},
        {"Error": {"Code": "InternalServerError", "Message": "oops"}},
    ]


def test_a_statement_fails_with_a_code_that_is_not_about_its_item() -> None:
    rule = AwsFault(STATEMENTS, "partial", 1.0)
    decider = FaultDecider([rule], seed=1)

    codes = {code for _ in range(50) for _, code, _ in decider.failing_entries(rule, 10)}

    assert codes == {"ThrottlingError", "ProvisionedThroughputExceeded", "InternalServerError"}


@pytest.mark.parametrize(
    ("body", "fires"),
    [
        ({"TableName": "soak-1-messages", "Key": {}}, True),
        ({"TableName": "soak-1-idempotency", "Key": {}}, False),
        ({"RequestItems": {"soak-1-messages": {"Keys": []}}}, True),
        ({"TransactItems": [{"Put": {"TableName": "soak-1-messages"}}]}, True),
    ],
)
def test_a_table_rule_fires_only_for_requests_on_that_table(body: dict[str, object], fires: bool) -> None:
    decider = FaultDecider([AwsFault("DynamoDB.UpdateItem", "error", 1.0, table="-messages")], seed=1)
    headers = {"X-Amz-Target": "DynamoDB_20120810.UpdateItem"}

    assert (decider.decide(headers, json.dumps(body).encode()) is not None) is fires


def test_dynamodb_attempts_are_counted_per_table_too() -> None:
    """The limiter's UpdateItem and the webhook's are one operation: the campaign's ledger counts the rate table's."""
    decider = FaultDecider([AwsFault("DynamoDB.UpdateItem", "error", 1.0, table="-rate")], seed=1)
    headers = {"X-Amz-Target": "DynamoDB_20120810.UpdateItem"}

    for table in ("soak-1-rate", "soak-1-messages", "soak-1-rate"):
        decider.decide(headers, json.dumps({"TableName": table, "Key": {}}).encode())

    stats = decider.stats()
    assert stats["calls"] == {"DynamoDB.UpdateItem": 3}
    assert stats["table_calls"] == {"DynamoDB.UpdateItem soak-1-rate": 2, "DynamoDB.UpdateItem soak-1-messages": 1}
    assert stats["injected"] == {"DynamoDB.UpdateItem(-rate) error": 2}
