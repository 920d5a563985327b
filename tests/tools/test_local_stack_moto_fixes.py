"""The local stack's moto refuses a PartiQL ``INSERT`` on an existing key the way DynamoDB documents it
("PartiQL insert statements for DynamoDB", "BatchStatementError"), in-process (``mock_aws``).

The fix changes moto for the whole process, as it does in every process of the project where moto runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend

from local_stack.moto_fixes import DUPLICATE_ITEM_MESSAGE, refuse_duplicate_partiql_inserts

TABLE = "claims"
RANGED = "ranged"
DUPLICATE = {"Code": "DuplicateItem", "Message": DUPLICATE_ITEM_MESSAGE}
"""A duplicate ``INSERT``'s entry in a ``BatchExecuteStatement`` answer, exactly (no ``Item``: DynamoDB documents one
only for a failed condition check)."""


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    refuse_duplicate_partiql_inserts()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.create_table(
            TableName=RANGED,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "N"},
            ],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def items(client: Any, table: str = TABLE) -> list[dict[str, Any]]:
    return sorted(client.scan(TableName=table)["Items"], key=repr)


def test_an_insert_on_an_existing_key_fails_duplicate_item_and_leaves_the_item(dynamodb: Any) -> None:
    dynamodb.execute_statement(Statement=f"INSERT INTO \"{TABLE}\" VALUE {{'id': 'k1', 'v': 'first'}}")

    with pytest.raises(dynamodb.exceptions.DuplicateItemException) as refused:
        dynamodb.execute_statement(Statement=f"INSERT INTO \"{TABLE}\" VALUE {{'id': 'k1', 'v': 'second'}}")

    assert refused.value.response["Error"] == {"Code": "DuplicateItemException", "Message": DUPLICATE_ITEM_MESSAGE}
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert items(dynamodb) == [{"id": {"S": "k1"}, "v": {"S": "first"}}]


def test_a_batch_refuses_its_duplicate_insert_alone_and_writes_the_others(dynamodb: Any) -> None:
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "taken"}, "v": {"S": "old"}})
    insert = f"INSERT INTO \"{TABLE}\" VALUE {{'id': ?, 'v': ?}}"

    answer = dynamodb.batch_execute_statement(
        Statements=[
            {"Statement": insert, "Parameters": [{"S": "new1"}, {"S": "a"}]},
            {"Statement": insert, "Parameters": [{"S": "taken"}, {"S": "new"}]},
            {"Statement": insert, "Parameters": [{"S": "new2"}, {"S": "b"}]},
        ]
    )

    assert answer["Responses"] == [{"TableName": TABLE}, {"Error": DUPLICATE}, {"TableName": TABLE}]
    assert items(dynamodb) == [
        {"id": {"S": "new1"}, "v": {"S": "a"}},
        {"id": {"S": "new2"}, "v": {"S": "b"}},
        {"id": {"S": "taken"}, "v": {"S": "old"}},
    ]


def test_a_duplicate_carries_no_item_even_when_the_statement_asks_for_the_old_one(dynamodb: Any) -> None:
    """``ReturnValuesOnConditionCheckFailure: ALL_OLD`` returns the item of a failed condition check (DynamoDB's
    ``BatchStatementError.Item``); a ``DuplicateItem`` is not one, so a claim must read the record it met."""
    dynamodb.put_item(TableName=TABLE, Item={"id": {"S": "taken"}, "v": {"S": "old"}})
    insert = f"INSERT INTO \"{TABLE}\" VALUE {{'id': ?, 'v': ?}}"

    answer = dynamodb.batch_execute_statement(
        Statements=[
            {
                "Statement": insert,
                "Parameters": [{"S": "taken"}, {"S": "new"}],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
            {
                "Statement": insert,
                "Parameters": [{"S": "free"}, {"S": "new"}],
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            },
        ]
    )

    assert answer["Responses"] == [{"Error": DUPLICATE}, {"TableName": TABLE}]


def test_the_key_is_the_whole_primary_key_of_a_ranged_table(dynamodb: Any) -> None:
    insert = f"INSERT INTO \"{RANGED}\" VALUE {{'pk': ?, 'sk': ?}}"
    dynamodb.execute_statement(Statement=insert, Parameters=[{"S": "a"}, {"N": "1"}])

    dynamodb.execute_statement(Statement=insert, Parameters=[{"S": "a"}, {"N": "2"}])
    dynamodb.execute_statement(Statement=insert, Parameters=[{"S": "b"}, {"N": "1"}])
    with pytest.raises(dynamodb.exceptions.DuplicateItemException):
        dynamodb.execute_statement(Statement=insert, Parameters=[{"S": "a"}, {"N": "1"}])

    assert [(i["pk"]["S"], i["sk"]["N"]) for i in items(dynamodb, RANGED)] == [("a", "1"), ("a", "2"), ("b", "1")]


def test_parameters_are_bound_in_order_at_any_depth_and_must_match_in_number(dynamodb: Any) -> None:
    insert = f"INSERT INTO \"{TABLE}\" VALUE {{'id': ?, 'n': ?, 'm': {{'s': ?, 'fixed': 'x'}}, 'l': [?, 3]}}"

    dynamodb.execute_statement(
        Statement=insert, Parameters=[{"S": "it's"}, {"N": "17"}, {"SS": ["a", "b"]}, {"BOOL": True}]
    )
    for wrong in ([{"S": "k2"}], [{"S": "k2"}, {"N": "1"}, {"S": "s"}, {"S": "l"}, {"S": "extra"}]):
        with pytest.raises(dynamodb.exceptions.ClientError, match="Number of parameters"):
            dynamodb.execute_statement(Statement=insert, Parameters=wrong)

    assert items(dynamodb) == [
        {
            "id": {"S": "it's"},
            "n": {"N": "17"},
            "m": {"M": {"s": {"SS": ["a", "b"]}, "fixed": {"S": "x"}}},
            "l": {"L": [{"BOOL": True}, {"N": "3"}]},
        }
    ]


def test_select_update_and_delete_still_run_as_moto_runs_them(dynamodb: Any) -> None:
    dynamodb.execute_statement(
        Statement=f"INSERT INTO \"{TABLE}\" VALUE {{'id': ?, 'v': ?}}", Parameters=[{"S": "k"}, {"S": "a"}]
    )

    dynamodb.execute_statement(
        Statement=f'UPDATE "{TABLE}" SET v = ? WHERE id = ?', Parameters=[{"S": "b"}, {"S": "k"}]
    )
    selected = dynamodb.execute_statement(Statement=f'SELECT * FROM "{TABLE}" WHERE id = ?', Parameters=[{"S": "k"}])
    dynamodb.execute_statement(Statement=f"DELETE FROM \"{TABLE}\" WHERE id = 'k'")

    assert selected["Items"] == [{"id": {"S": "k"}, "v": {"S": "b"}}]
    assert items(dynamodb) == []


def test_an_insert_into_a_missing_table_is_resource_not_found(dynamodb: Any) -> None:
    with pytest.raises(dynamodb.exceptions.ResourceNotFoundException):
        dynamodb.execute_statement(Statement="INSERT INTO \"nowhere\" VALUE {'id': 'k'}")


def test_the_fix_fails_loudly_when_moto_no_longer_has_what_it_replaces(monkeypatch: pytest.MonkeyPatch) -> None:
    def moved(self: Any, statement: str, parameters: list[Any], limit: int) -> list[Any]:
        return []

    monkeypatch.setattr(DynamoDBBackend, "execute_statement", moved)

    with pytest.raises(RuntimeError, match=r"moto .* no longer has DynamoDBBackend\.execute_statement"):
        refuse_duplicate_partiql_inserts()
