"""The local stack's suppression list: created as template.yaml declares it, named in the functions' environment,
and used by the store over real HTTP (moto's server), as a deployed function uses DynamoDB."""

from __future__ import annotations

import uuid

from local_stack.aws import MotoServer, provision
from local_stack.stack import LOCAL_SECRET
from local_stack.template import resource_properties
from nxcloud_wa.audience import AddEntry, AudienceSettings, status_action
from nxcloud_wa.suppressions import INDEX, OPT_IN_REMOVES, Reason, Scope, Suppression, SuppressionStore

BUSINESS = str(LOCAL_SECRET["business_phone"])
RECIPIENT = "8613612345759"


def test_the_local_stack_creates_the_suppressions_table_of_the_template(moto_server: MotoServer) -> None:
    res = provision(moto_server.url, prefix=f"sup{uuid.uuid4().hex[:8]}", secret=LOCAL_SECRET)
    dynamodb = res.client("dynamodb")

    table = dynamodb.describe_table(TableName=res.suppressions_table)["Table"]
    declared = resource_properties("SuppressionsTable")
    assert table["KeySchema"] == declared["KeySchema"]
    [index] = table["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"]) == (INDEX, declared["GlobalSecondaryIndexes"][0]["KeySchema"])
    assert index["Projection"] == {"ProjectionType": "ALL"}
    ttl = dynamodb.describe_time_to_live(TableName=res.suppressions_table)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiration")
    assert res.function_env()["SUPPRESSIONS_TABLE"] == res.suppressions_table


def test_a_callbacks_entry_round_trip_over_http(moto_server: MotoServer) -> None:
    res = provision(moto_server.url, prefix=f"sup{uuid.uuid4().hex[:8]}", secret=LOCAL_SECRET)
    settings = AudienceSettings.from_env(res.function_env())
    store = SuppressionStore(res.client("dynamodb"), settings.suppressions_table, clock=lambda: 1_800_000_000.0)
    undeliverable = status_action(settings, 131026)
    opted_out = Suppression(BUSINESS, RECIPIENT, Scope.MARKETING, Reason.OPTED_OUT, "Stop promotions", "2027-01-15")
    assert isinstance(undeliverable, AddEntry)

    assert store.put(undeliverable.entry((BUSINESS, RECIPIENT), 1_800_000_000.0)) is True
    assert store.put(opted_out) is True  # a permanent opt-out outranks the 30-day entry
    assert store.lookup([(BUSINESS, RECIPIENT), (BUSINESS, "8613800138000")]) == {(BUSINESS, RECIPIENT): opted_out}
    assert store.list(BUSINESS).entries == [opted_out]
    assert store.remove(BUSINESS, RECIPIENT, only_reasons=OPT_IN_REMOVES) is True
    assert store.get(BUSINESS, RECIPIENT) is None
