"""The local stack's DynamoDB (moto's server over real HTTP, boto3 as a function uses it) refuses a PartiQL ``INSERT``
on an existing key as DynamoDB documents it: ``DuplicateItemException`` from ``ExecuteStatement``, a ``DuplicateItem``
entry of its own in a ``BatchExecuteStatement`` (``local_stack.moto_fixes``)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
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


def test_of_inserts_of_one_key_racing_on_the_server_exactly_one_is_written(moto_server: MotoServer) -> None:
    """moto's server answers on several threads; DynamoDB writes one of several concurrent ``INSERT`` of a key and
    refuses the others, and so must the local stack (the claim's at-most-once rests on it)."""
    res = provision(moto_server.url, prefix=f"race{uuid.uuid4().hex[:8]}", secret=LOCAL_SECRET)
    insert = f"INSERT INTO \"{res.table_name}\" VALUE {{'id': ?, 'claim': ?}}"
    racers = 8

    def claim(n: int) -> dict[str, Any]:
        client = res.client("dynamodb")  # a client (a connection) each, as containers have
        statement = {"Statement": insert, "Parameters": [{"S": "contested"}, {"S": f"racer{n}"}]}
        [response] = client.batch_execute_statement(Statements=[statement])["Responses"]
        return dict(response)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(pool.map(claim, range(racers)))

    winners = [n for n, response in enumerate(responses) if "Error" not in response]
    assert len(winners) == 1
    assert sorted(r["Error"]["Code"] for r in responses if "Error" in r) == ["DuplicateItem"] * (racers - 1)
    stored = res.client("dynamodb").get_item(TableName=res.table_name, Key={"id": {"S": "contested"}})["Item"]
    assert stored["claim"] == {"S": f"racer{winners[0]}"}
