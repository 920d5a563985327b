"""The soak's moto patch for TransactWriteItems: a cancelled transaction leaves every table exactly as it was.

Run in a subprocess: the patch changes moto for the whole process, as it does in the soak's moto process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"

SCRIPT = textwrap.dedent(
    """
    import boto3
    from moto import mock_aws
    from soak.aws_service import speed_up_moto

    speed_up_moto()
    key = [{"AttributeName": "id", "KeyType": "HASH"}]
    ranged = [*key, {"AttributeName": "k", "KeyType": "RANGE"}]
    attrs = [{"AttributeName": "id", "AttributeType": "S"}, {"AttributeName": "k", "AttributeType": "S"}]
    new = {"ConditionExpression": "attribute_not_exists(id)"}
    with mock_aws():
        c = boto3.client("dynamodb", region_name="us-east-1")
        c.create_table(TableName="t", KeySchema=key, AttributeDefinitions=attrs[:1], BillingMode="PAY_PER_REQUEST")
        c.create_table(TableName="r", KeySchema=ranged, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST")
        c.put_item(TableName="t", Item={"id": {"S": "taken"}, "v": {"S": "old"}})
        c.put_item(TableName="t", Item={"id": {"S": "upd"}, "v": {"S": "old"}})
        try:
            c.transact_write_items(TransactItems=[
                {"Put": {"TableName": "t", "Item": {"id": {"S": "new1"}}, **new}},
                {"Put": {"TableName": "r", "Item": {"id": {"S": "a"}, "k": {"S": "1"}}}},
                {"Update": {"TableName": "t", "Key": {"id": {"S": "upd"}}, "UpdateExpression": "SET v = :n",
                            "ExpressionAttributeValues": {":n": {"S": "new"}}}},
                {"Put": {"TableName": "t", "Item": {"id": {"S": "taken"}, "v": {"S": "new"}}, **new,
                         "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            ])
        except c.exceptions.TransactionCanceledException as exc:
            reasons = exc.response["CancellationReasons"]
            assert [r["Code"] for r in reasons] == ["None", "None", "None", "ConditionalCheckFailed"], reasons
            assert reasons[3]["Item"] == {"id": {"S": "taken"}, "v": {"S": "old"}}
        else:
            raise AssertionError("the transaction was not cancelled")
        t = sorted((i["id"]["S"], i["v"]["S"]) for i in c.scan(TableName="t")["Items"])
        assert t == [("taken", "old"), ("upd", "old")], t
        assert c.scan(TableName="r")["Items"] == []
        c.transact_write_items(TransactItems=[{"Put": {"TableName": "t", "Item": {"id": {"S": f"n{i}"}}, **new}}
                                              for i in range(10)])
        assert c.scan(TableName="t", Select="COUNT")["Count"] == 12
    print("ok")
    """
)


def test_a_cancelled_transaction_is_rolled_back_item_by_item_and_a_valid_one_commits() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={"PYTHONPATH": str(TOOLS), "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "ok"
