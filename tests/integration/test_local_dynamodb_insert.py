"""The local stack's DynamoDB (moto's server over real HTTP, boto3 as a function uses it) refuses a PartiQL ``INSERT``
on an existing key as DynamoDB documents it: ``DuplicateItemException`` from ``ExecuteStatement``, a ``DuplicateItem``
entry of its own in a ``BatchExecuteStatement`` (``local_stack.moto_fixes``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from local_stack.aws import MotoServer, provision
from local_stack.moto_fixes import DUPLICATE_ITEM_MESSAGE
from local_stack.stack import LOCAL_SECRET


def test_the_idempotency_table_refuses_a_duplicate_insert_alone(moto_server: MotoServer) -> None:
    res = provision(moto_server.url, prefix=f"ins{uuid.uuid4().hex[:8]}", secret=LOCAL_SECRET)
    dynamodb = res.client("dynamodb")
    insert = f"INSERT INTO \"{res.table_name}\" VALUE {{'id': ?, 'claim': ?}}"

    def statement(key: str, claim: str) -> dict[str, Any]:
        return {"Statement": insert, "Parameters": [{"S": key}, {"S": claim}]}

    dynamodb.execute_statement(**statement("taken", "first"))
    with pytest.raises(dynamodb.exceptions.DuplicateItemException) as refused:
        dynamodb.execute_statement(**statement("taken", "second"))
    answer = dynamodb.batch_execute_statement(
        Statements=[statement("new1", "b"), statement("taken", "third"), statement("new2", "b")]
    )

    assert refused.value.response["Error"] == {"Code": "DuplicateItemException", "Message": DUPLICATE_ITEM_MESSAGE}
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert [entry.get("Error") for entry in answer["Responses"]] == [
        None,
        {"Code": "DuplicateItem", "Message": DUPLICATE_ITEM_MESSAGE},
        None,
    ]
    stored = dynamodb.scan(TableName=res.table_name, ConsistentRead=True)["Items"]
    assert sorted((item["id"]["S"], item["claim"]["S"]) for item in stored) == [
        ("new1", "b"),
        ("new2", "b"),
        ("taken", "first"),
    ]
