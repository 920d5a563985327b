"""The idempotency store against DynamoDB as moto implements it (in-process: no server), request by request.

The compatibility tests run Powertools' own DynamoDB persistence layer on the same table: it must read the records
this store writes, and this store must honour the records Powertools writes (what earlier versions of the function
left in the table). If a new Powertools version changes its record format, they fail.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError

from idempotency import (
    Claim,
    Claimed,
    Completed,
    IdempotencyStore,
    InProgress,
    Interrupted,
    KeyReused,
    Unclaimed,
)
from nxcloud_wa.idempotency_keys import KEY_PREFIX

TABLE = "idempotency"
PAYLOAD = {"to": "8613800000000", "template": {"name": "order_update", "language": {"code": "en_US"}}}
OTHER_PAYLOAD = {**PAYLOAD, "to": "8613800000001"}
SENT = {"status": "sent", "message_id": "wamid-1", "trace_id": "t-1", "at": "2026-11-29T00:00:00.000+00:00"}


def requests_of(client: Any) -> Counter[str]:
    """Counts every DynamoDB request the client sends from now on, by operation."""
    seen: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: seen.update([model.name]))
    return seen


def store(client: Any, *, take_over: bool = False, clock: Any = time.time) -> IdempotencyStore:
    return IdempotencyStore(client, TABLE, expiry_seconds=3600, take_over_interrupted=take_over, clock=clock)


def soon() -> int:
    return int(time.time() * 1000) + 30_000


def item(client: Any, claim: Claim) -> dict[str, Any]:
    return client.get_item(TableName=TABLE, Key={"id": {"S": claim.record_id}}, ConsistentRead=True).get("Item", {})


def test_claims_are_keyed_and_hashed_as_powertools_does() -> None:
    claim = Claim.of("order-42", PAYLOAD)
    assert claim.record_id.startswith(f"{KEY_PREFIX}#") and len(claim.record_id) == len(KEY_PREFIX) + 1 + 32
    assert Claim.of("order-42", dict(reversed(PAYLOAD.items()))) == claim  # key order does not matter
    assert Claim.of("order-43", PAYLOAD).record_id != claim.record_id
    assert Claim.of("order-42", OTHER_PAYLOAD).payload_hash != claim.payload_hash


def test_a_batch_of_new_keys_is_claimed_in_one_request(dynamodb: Any) -> None:
    claims = [Claim.of(f"k{n}", PAYLOAD) for n in range(10)]
    seen = requests_of(dynamodb)
    until = soon()

    results = store(dynamodb).claim(claims, until)

    assert seen == Counter({"BatchExecuteStatement": 1})  # ten INSERTs, no read: nothing was refused
    assert results == {c.record_id: Claimed() for c in claims}
    stored = item(dynamodb, claims[3])
    assert stored["status"] == {"S": "INPROGRESS"}
    assert stored["in_progress_expiration"] == {"N": str(until)}
    assert stored["validation"] == {"S": claims[3].payload_hash}
    assert int(stored["expiration"]["N"]) - time.time() == pytest.approx(3600, abs=5)


def test_more_keys_than_one_request_takes_are_claimed_25_a_request(dynamodb: Any) -> None:
    claims = [Claim.of(f"k{n}", PAYLOAD) for n in range(30)]
    seen = requests_of(dynamodb)

    assert store(dynamodb).claim(claims, soon()) == {c.record_id: Claimed() for c in claims}
    assert seen == Counter({"BatchExecuteStatement": 2})


def test_a_lone_key_is_claimed_with_one_conditional_put(dynamodb: Any) -> None:
    claim = Claim.of("api-1", PAYLOAD)
    seen = requests_of(dynamodb)

    assert store(dynamodb).claim([claim], soon()) == {claim.record_id: Claimed()}
    assert store(dynamodb).claim([claim], soon()) == {claim.record_id: InProgress()}
    assert seen == Counter({"PutItem": 2})


def test_settling_stores_outcomes_and_releases_claims_in_one_request(dynamodb: Any) -> None:
    kept, released = Claim.of("kept", PAYLOAD), Claim.of("released", PAYLOAD)
    s = store(dynamodb)
    s.claim([kept, released], soon())
    seen = requests_of(dynamodb)

    assert s.settle([(kept, SENT)], [released]) == set()

    assert seen == Counter({"BatchWriteItem": 1})
    assert item(dynamodb, released) == {}
    assert s.claim([kept, released], soon()) == {kept.record_id: Completed(SENT), released.record_id: Claimed()}


def test_a_batch_with_taken_keys_reads_them_in_a_second_request(dynamodb: Any) -> None:
    done, busy, reused = Claim.of("done", PAYLOAD), Claim.of("busy", PAYLOAD), Claim.of("reused", PAYLOAD)
    fresh = [Claim.of(f"fresh{n}", PAYLOAD) for n in range(3)]
    s = store(dynamodb)
    s.claim([done, busy, reused], soon())
    s.settle([(done, SENT), (reused, SENT)], [])
    before = {c.record_id: item(dynamodb, c) for c in (done, busy, reused)}
    seen = requests_of(dynamodb)

    results = s.claim([done, *fresh, busy, Claim.of("reused", OTHER_PAYLOAD)], soon())

    assert seen == Counter({"BatchExecuteStatement": 1, "BatchGetItem": 1})  # the fresh keys claimed by the first
    assert results[done.record_id] == Completed(SENT)
    assert results[busy.record_id] == InProgress()
    assert results[reused.record_id] == KeyReused()
    assert [results[c.record_id] for c in fresh] == [Claimed()] * 3
    assert {c.record_id: item(dynamodb, c) for c in (done, busy, reused)} == before  # a refused INSERT writes nothing


def test_an_unfinished_claim_past_its_deadline_is_interrupted_under_dead_letter(dynamodb: Any) -> None:
    claim = Claim.of("killed", PAYLOAD)
    store(dynamodb).claim([claim], int(time.time() * 1000) - 1)  # an invocation that died before its deadline

    assert store(dynamodb).claim([claim], soon()) == {claim.record_id: Interrupted()}
    assert item(dynamodb, claim)["status"] == {"S": "INPROGRESS"}  # never handed over


def test_an_unfinished_claim_past_its_deadline_is_taken_over_under_retry(dynamodb: Any) -> None:
    claim = Claim.of("killed", PAYLOAD)
    store(dynamodb, take_over=True).claim([claim], int(time.time() * 1000) - 1)
    until = soon()

    assert store(dynamodb, take_over=True).claim([claim], until) == {claim.record_id: Claimed()}
    assert item(dynamodb, claim)["in_progress_expiration"] == {"N": str(until)}


def test_an_unfinished_claim_before_its_deadline_is_never_taken_over(dynamodb: Any) -> None:
    claim = Claim.of("running", PAYLOAD)
    store(dynamodb).claim([claim], soon())

    assert store(dynamodb, take_over=True).claim([claim], soon()) == {claim.record_id: InProgress()}


def test_an_expired_record_is_claimed_again(dynamodb: Any) -> None:
    claim = Claim.of("old", PAYLOAD)
    s = store(dynamodb)
    s.claim([claim], soon())
    s.settle([(claim, SENT)], [])
    later = store(dynamodb, clock=lambda: time.time() + 3601)  # past the record's expiration, before TTL deletes it

    assert later.claim([claim], soon()) == {claim.record_id: Claimed()}


# --- a batch's keys an INSERT found taken: read, interpreted, and taken when stale


def put_record(client: Any, claim: Claim, **attributes: dict[str, str]) -> None:
    """A record of ``claim``'s key as an earlier delivery left it (only the given attributes besides the key)."""
    client.put_item(TableName=TABLE, Item={"id": {"S": claim.record_id}, **attributes})


STALE_RECORDS = {
    "expired, completed": {"status": {"S": "COMPLETED"}, "expiration": {"N": "100"}, "data": {"S": "{}"}},
    "expired, in progress": {"status": {"S": "INPROGRESS"}, "expiration": {"N": "100"}},
    "interrupted": {
        "status": {"S": "INPROGRESS"},
        "expiration": {"N": "99999999999"},
        "in_progress_expiration": {"N": "1"},
    },
}


@pytest.mark.parametrize("policy_takes_over", [False, True])
@pytest.mark.parametrize(
    "record",
    [
        *STALE_RECORDS.values(),
        {"status": {"S": "COMPLETED"}, "expiration": {"N": "99999999999"}, "data": {"S": "{}"}},
        {
            "status": {"S": "INPROGRESS"},
            "expiration": {"N": "99999999999"},
            "in_progress_expiration": {"N": "99999999999999"},
        },
        {"status": {"S": "INPROGRESS"}, "expiration": {"N": "99999999999"}},
        {"status": {"S": "INPROGRESS"}},
    ],
)
def test_a_batch_takes_a_taken_key_exactly_when_a_lone_claim_would(
    dynamodb: Any, record: dict[str, dict[str, str]], policy_takes_over: bool
) -> None:
    """The read-and-take path decides staleness from the record in hand (``_stale``), the lone claim by its
    condition (``_condition``): the same rule twice, held to the same answers record by record."""
    alone, batched = Claim.of("alone", PAYLOAD), Claim.of("batched", PAYLOAD)
    for claim in (alone, batched):
        put_record(dynamodb, claim, validation={"S": claim.payload_hash}, **record)
    s = store(dynamodb, take_over=policy_takes_over)

    lone = s.claim([alone], soon())[alone.record_id]
    batch = s.claim([batched, Claim.of("fresh", PAYLOAD)], soon())[batched.record_id]

    assert type(batch) is type(lone)


def test_a_stale_key_in_a_batch_is_read_then_taken_with_one_conditional_put(dynamodb: Any) -> None:
    stale, fresh = Claim.of("stale", PAYLOAD), Claim.of("fresh", PAYLOAD)
    put_record(dynamodb, stale, validation={"S": "another payload's"}, **STALE_RECORDS["expired, completed"])
    seen = requests_of(dynamodb)
    until = soon()

    results = store(dynamodb).claim([stale, fresh], until)

    assert seen == Counter({"BatchExecuteStatement": 1, "BatchGetItem": 1, "PutItem": 1})
    assert results == {stale.record_id: Claimed(), fresh.record_id: Claimed()}
    stored = item(dynamodb, stale)
    assert stored["status"] == {"S": "INPROGRESS"} and stored["validation"] == {"S": stale.payload_hash}
    assert stored["in_progress_expiration"] == {"N": str(until)} and "data" not in stored


def test_an_interrupted_claim_in_a_batch_is_taken_over_under_retry_and_reported_under_dead_letter(
    dynamodb: Any,
) -> None:
    killed, fresh = Claim.of("killed", PAYLOAD), Claim.of("fresh", PAYLOAD)
    put_record(dynamodb, killed, validation={"S": killed.payload_hash}, **STALE_RECORDS["interrupted"])

    assert store(dynamodb).claim([killed, fresh], soon())[killed.record_id] == Interrupted()
    assert item(dynamodb, killed)["in_progress_expiration"] == {"N": "1"}  # never handed over
    assert store(dynamodb, take_over=True).claim([killed, fresh], soon())[killed.record_id] == Claimed()


def test_a_key_released_between_the_insert_and_the_read_is_claimed(dynamodb: Any) -> None:
    gone, fresh = Claim.of("gone", PAYLOAD), Claim.of("fresh", PAYLOAD)
    store(dynamodb).claim([gone], soon())
    release_before_the_read(dynamodb, lambda: store(dynamodb).settle([], [gone]))

    assert store(dynamodb).claim([gone, fresh], soon()) == {gone.record_id: Claimed(), fresh.record_id: Claimed()}
    assert item(dynamodb, gone)["status"] == {"S": "INPROGRESS"}


def release_before_the_read(client: Any, step: Any) -> None:
    """Run ``step`` once, just before the client's next ``BatchGetItem`` (another delivery acting in between)."""
    real = client.batch_get_item

    def first_the_step(**kwargs: Any) -> Any:
        client.batch_get_item = real
        step()
        return real(**kwargs)

    client.batch_get_item = first_the_step


@pytest.mark.parametrize(
    ("stale", "takes_over"),
    [("expired, completed", False), ("expired, completed", True), ("interrupted", True)],  # what a policy takes
)
def test_of_two_deliveries_racing_for_one_stale_key_one_claims_it(dynamodb: Any, stale: str, takes_over: bool) -> None:
    """Both INSERTs are refused and both reads find the key stale; the second delivery takes it between the first's
    read and its conditional put, so the first's condition fails on the second's claim: in progress, never both."""
    key = Claim.of("contested", PAYLOAD)
    put_record(dynamodb, key, validation={"S": key.payload_hash}, **STALE_RECORDS[stale])
    first, second = store(dynamodb, take_over=takes_over), store(dynamodb, take_over=takes_over)
    results: dict[str, Any] = {}
    real = dynamodb.put_item

    def second_goes_first(**kwargs: Any) -> Any:
        dynamodb.put_item = real
        results["second"] = second.claim([key, Claim.of("second's", PAYLOAD)], soon())[key.record_id]
        return real(**kwargs)

    dynamodb.put_item = second_goes_first
    results["first"] = first.claim([key, Claim.of("first's", PAYLOAD)], soon())[key.record_id]

    assert results == {"second": Claimed(), "first": InProgress()}


def throttle_statements(client: Any, *keys: Claim, code: str = "ThrottlingError") -> None:
    """Answer the statements of these keys in the next BatchExecuteStatement with a per-statement ``code`` (as
    DynamoDB does; moto never does), forwarding only the others."""
    real = client.batch_execute_statement
    ids = {k.record_id for k in keys}

    def some_refused(**kwargs: Any) -> Any:
        client.batch_execute_statement = real
        statements = kwargs["Statements"]
        refused = [s["Parameters"][0]["S"] in ids for s in statements]
        passed = iter(real(Statements=[s for s, r in zip(statements, refused, strict=True) if not r])["Responses"])
        error = {"Error": {"Code": code, "Message": "Throughput exceeds the current capacity of your table or index."}}
        return {"Responses": [error if r else next(passed) for r in refused]}

    client.batch_execute_statement = some_refused


def test_a_throttled_statement_leaves_its_key_unclaimed_and_the_others_claimed(dynamodb: Any) -> None:
    throttled, others = Claim.of("throttled", PAYLOAD), [Claim.of(f"k{n}", PAYLOAD) for n in range(3)]
    throttle_statements(dynamodb, throttled)

    results = store(dynamodb).claim([throttled, *others], soon())

    unclaimed = results[throttled.record_id]
    assert isinstance(unclaimed, Unclaimed) and isinstance(unclaimed.error, ClientError)
    assert unclaimed.error.response["Error"]["Code"] == "ThrottlingError"
    assert [results[c.record_id] for c in others] == [Claimed()] * 3
    assert item(dynamodb, throttled) == {}  # nothing to release: a later delivery claims it
    assert store(dynamodb).claim([throttled, others[0]], soon())[throttled.record_id] == Claimed()


def test_when_the_read_of_the_taken_keys_fails_they_are_unclaimed_and_the_new_keys_stay_claimed(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken, fresh = Claim.of("taken", PAYLOAD), Claim.of("fresh", PAYLOAD)
    store(dynamodb).claim([taken], soon())

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchGetItem")

    monkeypatch.setattr(dynamodb, "batch_get_item", down)
    results = store(dynamodb).claim([taken, fresh], soon())

    assert isinstance(results[taken.record_id], Unclaimed)
    assert results[fresh.record_id] == Claimed()


def test_a_taken_key_the_read_leaves_unprocessed_is_unclaimed(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nxcloud_wa.dynamo

    taken, fresh = Claim.of("taken", PAYLOAD), Claim.of("fresh", PAYLOAD)
    store(dynamodb).claim([taken], soon())
    monkeypatch.setattr(nxcloud_wa.dynamo.time, "sleep", lambda _: None)

    def throttled(RequestItems: Any) -> Any:
        return {"Responses": {TABLE: []}, "UnprocessedKeys": RequestItems}

    monkeypatch.setattr(dynamodb, "batch_get_item", throttled)
    results = store(dynamodb).claim([taken, fresh], soon())

    unclaimed = results[taken.record_id]
    assert isinstance(unclaimed, Unclaimed) and isinstance(unclaimed.error, ClientError)
    assert unclaimed.error.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert results[fresh.record_id] == Claimed()


def test_when_the_claims_request_itself_fails_the_claim_raises_and_nothing_is_written(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = [Claim.of("a", PAYLOAD), Claim.of("b", PAYLOAD)]

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchExecuteStatement")

    monkeypatch.setattr(dynamodb, "batch_execute_statement", down)

    with pytest.raises(ClientError):
        store(dynamodb).claim(claims, soon())
    assert [item(dynamodb, c) for c in claims] == [{}, {}]


def test_our_own_claim_met_again_is_ours(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore resends a claim whose answer was lost: the second try meets the first's write, and knows it."""
    import idempotency

    claims = [Claim.of("a", PAYLOAD), Claim.of("b", PAYLOAD)]
    monkeypatch.setattr(idempotency.uuid, "uuid4", lambda: idempotency.uuid.UUID(int=7))  # the same token twice
    s = store(dynamodb)
    s.claim(claims, soon())

    assert s.claim(claims, soon()) == {c.record_id: Claimed() for c in claims}


def test_a_failed_settlement_is_tried_again(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    claim = Claim.of("late", PAYLOAD)
    s = store(dynamodb)
    s.claim([claim], soon())
    real, calls = dynamodb.batch_write_item, []

    def fails_first(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 1:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchWriteItem")
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, "batch_write_item", fails_first)

    assert s.settle([(claim, SENT)], []) == set()
    assert len(calls) == 2
    assert item(dynamodb, claim)["status"] == {"S": "COMPLETED"}


def test_a_settlement_that_keeps_failing_names_what_it_could_not_write(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept, released = Claim.of("kept", PAYLOAD), Claim.of("released", PAYLOAD)
    s = store(dynamodb)
    s.claim([kept, released], soon())

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchWriteItem")

    monkeypatch.setattr(dynamodb, "batch_write_item", down)

    assert s.settle([(kept, SENT)], [released]) == {kept.record_id, released.record_id}


# --- Powertools' own persistence layer on the same records


@pytest.fixture
def powertools(dynamodb: Any) -> Any:
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

    layer = DynamoDBPersistenceLayer(table_name=TABLE, boto3_client=dynamodb)
    config = IdempotencyConfig(
        event_key_jmespath="idempotency_key", payload_validation_jmespath="message", expires_after_seconds=3600
    )
    layer.configure(config=config, key_prefix=KEY_PREFIX)
    return layer


def powertools_data(key: str, payload: dict[str, Any]) -> dict[str, Any]:
    """What the Powertools-based versions passed to their idempotent function."""
    return {"idempotency_key": key, "message": payload}


def test_powertools_reads_the_records_this_store_writes(dynamodb: Any, powertools: Any) -> None:
    claim = Claim.of("order-42", PAYLOAD)
    s = store(dynamodb)
    s.claim([claim], soon())
    s.settle([(claim, SENT)], [])

    record = powertools.get_record(powertools_data("order-42", PAYLOAD))

    assert record.status == "COMPLETED"
    assert record.response_json_as_dict() == SENT
    assert record.payload_hash == claim.payload_hash


def test_powertools_refuses_another_payload_under_a_key_this_store_wrote(dynamodb: Any, powertools: Any) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError

    claim = Claim.of("order-42", PAYLOAD)
    store(dynamodb).claim([claim], soon())

    with pytest.raises(IdempotencyValidationError):
        powertools.get_record(powertools_data("order-42", OTHER_PAYLOAD))


def test_this_store_honours_the_records_powertools_writes(dynamodb: Any, powertools: Any) -> None:
    running, done = powertools_data("running", PAYLOAD), powertools_data("done", PAYLOAD)
    powertools.save_inprogress(running, remaining_time_in_millis=30_000)
    powertools.save_inprogress(done, remaining_time_in_millis=30_000)
    powertools.save_success(done, SENT)

    results = store(dynamodb).claim(
        [Claim.of("running", PAYLOAD), Claim.of("done", PAYLOAD), Claim.of("done-other", PAYLOAD)], soon()
    )
    reused = store(dynamodb).claim([Claim.of("done", OTHER_PAYLOAD)], soon())

    assert results[Claim.of("running", PAYLOAD).record_id] == InProgress()
    assert results[Claim.of("done", PAYLOAD).record_id] == Completed(SENT)
    assert results[Claim.of("done-other", PAYLOAD).record_id] == Claimed()
    assert reused == {Claim.of("done", OTHER_PAYLOAD).record_id: KeyReused()}
