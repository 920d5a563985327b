"""The suppression list's store (nxcloud_wa.suppressions) against moto's DynamoDB, the table created as template.yaml
declares it, with a clock and a sleep of the test's own: the item format, the one-request batch read and its retries,
which entry wins, what an opt-in removes, paging, and expired entries that DynamoDB has not deleted yet."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local_stack.aws import suppressions_table
from nxcloud_wa.dynamo import BATCH_GET_LIMIT
from nxcloud_wa.exceptions import SuppressionsUnavailableError
from nxcloud_wa.suppressions import (
    INDEX,
    OPT_IN_REMOVES,
    Reason,
    Scope,
    Suppression,
    SuppressionStore,
    decode,
    decode_sends,
    encode,
    encode_sends,
    item_id,
    key_of,
    send_tag,
    sends_id,
)

TABLE = "suppressions"
BUSINESS = "8618512348399"
OTHER_BUSINESS = "8618512348400"
RECIPIENT = "8613800138000"
NOW = 1_800_000_000.0
AT = "2027-01-15T08:00:00.000+00:00"


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    """In-process moto for the module (starting it is most of a test's time); each test gets a new table."""
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture
def client(aws: Any) -> Iterator[Any]:
    suppressions_table(aws, TABLE)
    yield aws
    aws.delete_table(TableName=TABLE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def store(client: Any, clock: Clock, sleeps: list[float]) -> SuppressionStore:
    return SuppressionStore(client, TABLE, clock=clock, sleep=sleeps.append)


def entry(
    recipient: str = RECIPIENT,
    scope: Scope = Scope.MARKETING,
    reason: Reason = Reason.OPTED_OUT,
    *,
    business: str = BUSINESS,
    source: str = "Stop promotions",
    expiration: int | None = None,
) -> Suppression:
    return Suppression(business, recipient, scope, reason, source, AT, expiration)


def recipients(count: int) -> list[str]:
    """Valid Chinese mobile numbers, distinct, in ascending order."""
    return [f"86138{n:08d}" for n in range(count)]


# --- keys and the item format -----------------------------------------------------------------------------------------


def test_the_key_is_both_numbers_as_digits_with_the_country_code() -> None:
    assert key_of("+86 185-1234-8399", "0086 138 0013 8000") == (BUSINESS, RECIPIENT)
    assert item_id(key_of("+86 185 1234 8399", "+8613800138000")) == f"{BUSINESS}#{RECIPIENT}"


@pytest.mark.parametrize(
    ("business", "recipient", "which"), [("123", RECIPIENT, "business_phone"), (BUSINESS, "x", "recipient")]
)
def test_a_key_that_is_not_two_numbers_says_which_is_wrong(business: str, recipient: str, which: str) -> None:
    with pytest.raises(ValueError, match=f"^{which} "):
        key_of(business, recipient)


def test_the_item_format() -> None:
    permanent = entry()
    temporary = entry(scope=Scope.ALL, reason=Reason.UNDELIVERABLE, source="131026", expiration=1_802_592_000)

    assert encode(permanent) == {
        "id": {"S": f"{BUSINESS}#{RECIPIENT}"},
        "business_phone": {"S": BUSINESS},
        "recipient": {"S": RECIPIENT},
        "scope": {"S": "marketing"},
        "reason": {"S": "opted_out"},
        "source": {"S": "Stop promotions"},
        "at": {"S": AT},
    }
    assert encode(temporary)["expiration"] == {"N": "1802592000"}
    assert decode(encode(permanent)) == permanent
    assert decode(encode(temporary)) == temporary


def test_decoding_errs_on_the_safe_side() -> None:
    """An item written by hand or by another version: an unknown scope stops everything, an unknown reason is one no
    opt-in removes, and the numbers come from the id when their attributes are missing."""
    item = {"id": {"S": f"{BUSINESS}#{RECIPIENT}"}, "scope": {"S": "promotions"}, "reason": {"S": "?"}}

    decoded = decode(item)

    assert (decoded.key, decoded.scope, decoded.reason, decoded.expiration) == (
        (BUSINESS, RECIPIENT),
        Scope.ALL,
        Reason.MANUAL,
        None,
    )
    assert decoded.reason not in OPT_IN_REMOVES
    with pytest.raises(ValueError, match="id"):
        decode({"id": {"S": BUSINESS}})


def test_expiry_is_the_entrys_own_clock() -> None:
    temporary = entry(expiration=int(NOW))
    assert not temporary.expired(NOW - 1)
    assert temporary.expired(NOW)
    assert not entry().expired(NOW + 10**9)  # permanent


# --- put and get ------------------------------------------------------------------------------------------------------


def test_put_stores_the_item_and_get_reads_it_back(store: SuppressionStore, client: Any) -> None:
    stored = entry()

    assert store.put(stored) is True

    raw = client.get_item(TableName=TABLE, Key={"id": {"S": f"{BUSINESS}#{RECIPIENT}"}})["Item"]
    assert raw == encode(stored)
    assert store.get("+86 185 1234 8399", "+86 138 0013 8000") == stored
    assert store.get(BUSINESS, "8613800138001") is None


KINDS = {
    "opted_out": entry(),
    "marketing_temporary": entry(reason=Reason.MANUAL, source="api", expiration=int(NOW) + 3600),
    "manual_all": entry(scope=Scope.ALL, reason=Reason.MANUAL, source="api"),
    "undeliverable": entry(scope=Scope.ALL, reason=Reason.UNDELIVERABLE, source="131026", expiration=int(NOW) + 86_400),
}
STRENGTH = {"marketing_temporary": 0, "undeliverable": 1, "opted_out": 2, "manual_all": 3}
"""Permanent before temporary, then all before marketing."""


@pytest.mark.parametrize(("first", "second"), list(itertools.product(KINDS, KINDS)))
def test_a_later_entry_replaces_one_only_if_it_stops_as_much_for_as_long(
    store: SuppressionStore, first: str, second: str
) -> None:
    store.put(KINDS[first])

    replaced = store.put(KINDS[second])

    assert replaced is (STRENGTH[second] >= STRENGTH[first])
    assert replaced is KINDS[second].outranks(KINDS[first])  # the condition and the rule agree
    assert store.get(BUSINESS, RECIPIENT) == KINDS[second if replaced else first]


def test_all_is_never_downgraded_to_marketing(store: SuppressionStore) -> None:
    store.put(KINDS["manual_all"])

    assert store.put(entry(reason=Reason.MARKETING_STOPPED, source="131050")) is False
    assert store.get(BUSINESS, RECIPIENT) == KINDS["manual_all"]


def test_undeliverable_never_replaces_a_permanent_opt_out_which_would_then_expire(store: SuppressionStore) -> None:
    store.put(KINDS["opted_out"])

    assert store.put(KINDS["undeliverable"]) is False
    assert store.get(BUSINESS, RECIPIENT) == KINDS["opted_out"]


def test_an_opt_out_replaces_an_undeliverable_entry_so_it_outlives_it(store: SuppressionStore) -> None:
    store.put(KINDS["undeliverable"])

    assert store.put(KINDS["opted_out"]) is True
    assert store.get(BUSINESS, RECIPIENT) == KINDS["opted_out"]


def test_an_expired_entry_is_replaced_by_anything(store: SuppressionStore, clock: Clock) -> None:
    store.put(KINDS["undeliverable"])
    clock.now = KINDS["undeliverable"].expiration or 0

    weaker = entry(reason=Reason.MANUAL, source="api", expiration=int(clock.now) + 3600)  # the weakest kind
    assert store.put(weaker) is True
    assert store.get(BUSINESS, RECIPIENT) == weaker


def test_a_repeated_undeliverable_failure_extends_the_entry(store: SuppressionStore) -> None:
    store.put(KINDS["undeliverable"])
    later = entry(scope=Scope.ALL, reason=Reason.UNDELIVERABLE, source="131026", expiration=int(NOW) + 2 * 86_400)

    assert store.put(later) is True
    assert store.get(BUSINESS, RECIPIENT) == later


# --- expired entries (DynamoDB's TTL deletes them days later) ---------------------------------------------------------


def test_an_expired_entry_still_stored_is_absent_on_every_read(
    store: SuppressionStore, clock: Clock, client: Any
) -> None:
    temporary = KINDS["undeliverable"]
    store.put(temporary)
    assert store.lookup([(BUSINESS, RECIPIENT)]) == {(BUSINESS, RECIPIENT): temporary}

    clock.now = temporary.expiration or 0

    assert "Item" in client.get_item(TableName=TABLE, Key={"id": {"S": f"{BUSINESS}#{RECIPIENT}"}})  # still there
    assert store.lookup([(BUSINESS, RECIPIENT)]) == {}
    assert store.get(BUSINESS, RECIPIENT) is None
    assert store.list(BUSINESS).entries == []


# --- lookup: one BatchGetItem per batch -------------------------------------------------------------------------------


class Recording:
    """The moto client, with every BatchGetItem request kept (and optionally some keys left unprocessed)."""

    def __init__(self, client: Any, unprocessed_rounds: int = 0, unprocessed: int = 0) -> None:
        self.client = client
        self.batches: list[dict[str, Any]] = []
        self.unprocessed_rounds = unprocessed_rounds
        self.unprocessed = unprocessed

    def batch_get_item(self, **request: Any) -> dict[str, Any]:
        self.batches.append(request)
        if len(self.batches) > self.unprocessed_rounds:
            return dict(self.client.batch_get_item(**request))
        table = request["RequestItems"][TABLE]
        kept, left = table["Keys"][: -self.unprocessed], table["Keys"][-self.unprocessed :]
        answer = dict(self.client.batch_get_item(RequestItems={TABLE: {**table, "Keys": kept}})) if kept else {}
        return answer | {"UnprocessedKeys": {TABLE: {**table, "Keys": left}}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_lookup_reads_a_batch_in_one_strongly_consistent_request(client: Any, clock: Clock) -> None:
    recording = Recording(client)
    store = SuppressionStore(recording, TABLE, clock=clock)
    store.put(entry())
    store.put(entry(business=OTHER_BUSINESS, scope=Scope.ALL, reason=Reason.MANUAL, source="import"))
    pairs = [(BUSINESS, RECIPIENT), (BUSINESS, RECIPIENT), (OTHER_BUSINESS, RECIPIENT), (BUSINESS, "8613800138001")]

    found = store.lookup(pairs)

    assert found == {
        (BUSINESS, RECIPIENT): entry(),
        (OTHER_BUSINESS, RECIPIENT): entry(
            business=OTHER_BUSINESS, scope=Scope.ALL, reason=Reason.MANUAL, source="import"
        ),
    }
    [request] = recording.batches
    table = request["RequestItems"][TABLE]
    assert table["ConsistentRead"] is True  # an entry stored before the read is seen by it
    assert len(table["Keys"]) == 3  # a pair asked for twice is read once


def test_lookup_of_nothing_makes_no_request(store: SuppressionStore) -> None:
    assert store.lookup([]) == {}
    assert store.requests == 0


def test_lookup_asks_for_at_most_100_keys_a_request(client: Any, clock: Clock) -> None:
    recording = Recording(client)
    store = SuppressionStore(recording, TABLE, clock=clock)
    numbers = recipients(250)
    for number in numbers[::50]:
        store.put(entry(number))

    found = store.lookup((BUSINESS, number) for number in numbers)

    assert sorted(recipient for _, recipient in found) == numbers[::50]
    assert [len(b["RequestItems"][TABLE]["Keys"]) for b in recording.batches] == [BATCH_GET_LIMIT, BATCH_GET_LIMIT, 50]


def test_unprocessed_keys_are_asked_for_again_after_a_growing_pause(
    client: Any, clock: Clock, sleeps: list[float]
) -> None:
    recording = Recording(client, unprocessed_rounds=2, unprocessed=1)
    store = SuppressionStore(recording, TABLE, clock=clock, sleep=sleeps.append, jitter=lambda: 1.0)
    numbers = recipients(3)
    for number in numbers:
        store.put(entry(number))
    puts = store.requests

    found = store.lookup((BUSINESS, number) for number in numbers)

    assert sorted(recipient for _, recipient in found) == numbers
    assert [len(b["RequestItems"][TABLE]["Keys"]) for b in recording.batches] == [3, 1, 1]
    assert sleeps == [0.05, 0.1]
    assert store.requests - puts == 3


def test_keys_still_unprocessed_after_the_retries_make_the_list_unavailable(
    client: Any, clock: Clock, sleeps: list[float]
) -> None:
    recording = Recording(client, unprocessed_rounds=10, unprocessed=1)
    store = SuppressionStore(recording, TABLE, clock=clock, sleep=sleeps.append, attempts=3, jitter=lambda: 1.0)

    with pytest.raises(SuppressionsUnavailableError, match="1 of 2 suppression keys stayed unprocessed"):
        store.lookup([(BUSINESS, RECIPIENT), (BUSINESS, "8613800138001")])

    assert len(recording.batches) == 3
    assert sleeps == [0.05, 0.1]


def test_a_table_that_cannot_be_read_makes_the_list_unavailable(client: Any, clock: Clock) -> None:
    store = SuppressionStore(client, "no-such-table", clock=clock)

    with pytest.raises(
        SuppressionsUnavailableError, match="batch_get_item failed: ResourceNotFoundException"
    ) as caught:
        store.lookup([(BUSINESS, RECIPIENT)])
    with pytest.raises(SuppressionsUnavailableError, match="put_item failed"):
        store.put(entry())

    assert RECIPIENT not in str(caught.value)


@pytest.mark.parametrize(
    "key",
    [
        (BUSINESS, "not a number"),
        ("+86 185 1234 8399", RECIPIENT),
        (BUSINESS, "８６１３８００１３８０００"),
        (BUSINESS, "123"),
    ],
)
def test_lookup_takes_normalised_keys_only(store: SuppressionStore, key: tuple[str, str]) -> None:
    """Its keys come from validated messages, already normalised: a spelling that is not is refused, never missed."""
    with pytest.raises(ValueError, match="key_of"):
        store.lookup([key])
    assert store.requests == 0


# --- remove -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_opt_in_removes_an_opt_out_and_nothing_else(store: SuppressionStore, kind: str) -> None:
    stored = KINDS[kind]
    store.put(stored)

    removed = store.remove(BUSINESS, RECIPIENT, only_reasons=OPT_IN_REMOVES)

    assert removed is (stored.reason in {Reason.OPTED_OUT, Reason.MARKETING_STOPPED})
    assert store.get(BUSINESS, RECIPIENT) == (None if removed else stored)


def test_opt_in_removes_exactly_the_recipients_own_reasons() -> None:
    assert frozenset({Reason.OPTED_OUT, Reason.MARKETING_STOPPED}) == OPT_IN_REMOVES


def test_marketing_stopped_is_removed_by_an_opt_in(store: SuppressionStore) -> None:
    store.put(entry(reason=Reason.MARKETING_STOPPED, source="131050"))

    assert store.remove(BUSINESS, RECIPIENT, only_reasons=OPT_IN_REMOVES) is True
    assert store.get(BUSINESS, RECIPIENT) is None


@pytest.mark.parametrize("kind", list(KINDS))
def test_a_plain_remove_removes_any_entry(store: SuppressionStore, kind: str) -> None:
    store.put(KINDS[kind])

    assert store.remove("+86 185 1234 8399", "+86 138 0013 8000") is True
    assert store.get(BUSINESS, RECIPIENT) is None


def test_removing_what_is_not_there(store: SuppressionStore) -> None:
    assert store.remove(BUSINESS, RECIPIENT) is False
    assert store.remove(BUSINESS, RECIPIENT, only_reasons=OPT_IN_REMOVES) is False
    store.put(entry())
    assert store.remove(BUSINESS, RECIPIENT, only_reasons=()) is False  # no reason given: nothing may go
    assert store.get(BUSINESS, RECIPIENT) == entry()


# --- list: one business number's entries, paged through the index -----------------------------------------------------


def test_list_pages_through_one_numbers_entries_in_recipient_order(
    store: SuppressionStore, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = recipients(7)
    for number in reversed(numbers):
        store.put(entry(number))
    store.put(entry(business=OTHER_BUSINESS))
    queries: list[dict[str, Any]] = []
    query = client.query

    def recorded(**request: Any) -> Any:
        queries.append(request)
        return query(**request)

    monkeypatch.setattr(client, "query", recorded)
    pages, cursor = [], None
    while True:
        page = store.list("+86 185 1234 8399", limit=3, cursor=cursor)
        pages.append([e.recipient for e in page.entries])
        cursor = page.cursor
        if cursor is None:
            break

    assert [number for page in pages for number in page] == numbers
    assert all(len(page) <= 3 for page in pages)
    assert {q["IndexName"] for q in queries} == {INDEX}  # a Query on the index, never a Scan


def test_a_cursor_is_opaque_and_tied_to_its_business_number(store: SuppressionStore) -> None:
    for number in recipients(3):
        store.put(entry(number))
    cursor = store.list(BUSINESS, limit=1).cursor
    assert cursor is not None
    assert RECIPIENT[:5] not in cursor and BUSINESS not in cursor  # not readable as it stands

    with pytest.raises(ValueError, match="cursor"):
        store.list(OTHER_BUSINESS, limit=1, cursor=cursor)
    for forged in ("garbage!", "e30", cursor[:-4]):
        with pytest.raises(ValueError, match="cursor"):
            store.list(BUSINESS, limit=1, cursor=forged)


@pytest.mark.parametrize("limit", [0, 1001])
def test_list_refuses_a_page_size_out_of_range(store: SuppressionStore, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        store.list(BUSINESS, limit=limit)


def test_the_store_counts_its_requests(store: SuppressionStore) -> None:
    store.put(entry())
    store.get(BUSINESS, RECIPIENT)
    store.lookup([(BUSINESS, RECIPIENT)])
    store.list(BUSINESS)
    store.remove(BUSINESS, RECIPIENT)

    assert store.requests == 5


# --- the marketing frequency cap's counts -----------------------------------------------------------------------------


def test_the_sends_item_format_round_trips_and_names_no_indexed_attribute() -> None:
    item = encode_sends((BUSINESS, RECIPIENT), {"1a2b": 1_800_000_000, "3c4d": 1_800_000_060}, 1_800_086_460)

    assert item == {
        "id": {"S": f"cap#{BUSINESS}#{RECIPIENT}"},
        "sent": {"M": {"1a2b": {"N": "1800000000"}, "3c4d": {"N": "1800000060"}}},
        "expiration": {"N": "1800086460"},
    }
    assert sends_id((BUSINESS, RECIPIENT)) == item["id"]["S"]
    assert decode_sends(item) == ((BUSINESS, RECIPIENT), {"1a2b": 1_800_000_000, "3c4d": 1_800_000_060})
    with pytest.raises(ValueError):
        decode_sends({"id": {"S": "cap#nothing"}})


def test_a_message_s_tag_is_short_stable_and_not_its_key() -> None:
    key = "campaign-7:8613800138000"

    assert send_tag(key) == send_tag(key) != send_tag(key + "x")
    assert len(send_tag(key)) == 16 and "8613800138000" not in send_tag(key)


def test_read_asks_for_entries_and_sends_in_the_same_request(client: Any, clock: Clock) -> None:
    recording = Recording(client)
    store = SuppressionStore(recording, TABLE, clock=clock)
    store.put(entry())
    client.put_item(TableName=TABLE, Item=encode_sends((BUSINESS, RECIPIENT), {"1a2b": 1_800_000_000}, 1_800_086_400))
    pairs = [(BUSINESS, RECIPIENT), (BUSINESS, "8613800138001")]

    found = store.read(pairs, entries=True, sends=True)

    assert found.entries == {(BUSINESS, RECIPIENT): entry()}
    assert found.sends == {(BUSINESS, RECIPIENT): {"1a2b": 1_800_000_000}}
    [request] = recording.batches
    assert len(request["RequestItems"][TABLE]["Keys"]) == 4  # two keys a pair, one request
    assert store.lookup(pairs) == found.entries  # the list alone: no sends asked for
    assert len(recording.batches[-1]["RequestItems"][TABLE]["Keys"]) == 2


def test_read_of_sends_alone_asks_for_no_entry(client: Any, clock: Clock) -> None:
    recording = Recording(client)
    store = SuppressionStore(recording, TABLE, clock=clock)
    store.put(entry())

    found = store.read([(BUSINESS, RECIPIENT)], entries=False, sends=True)

    assert found.entries == {} and found.sends == {}
    [request] = recording.batches
    assert request["RequestItems"][TABLE]["Keys"] == [{"id": {"S": f"cap#{BUSINESS}#{RECIPIENT}"}}]


def test_a_sends_item_is_never_listed(client: Any, store: SuppressionStore) -> None:
    store.put(entry())
    client.put_item(TableName=TABLE, Item=encode_sends((BUSINESS, RECIPIENT), {"1a2b": 1_800_000_000}, 1_800_086_400))

    assert store.list(BUSINESS).entries == [entry()]
