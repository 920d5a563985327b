"""The delivery's screen step (the suppression check), with DynamoDB and SQS as moto implements them in-process and a
sender scripted per recipient (the handler end to end: tests/integration/test_suppression_check.py)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from delivery import Delivery
from local_stack.aws import suppressions_table
from nxcloud_wa.audience import FrequencyCap
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import TemplateApiError
from nxcloud_wa.models import Defaults
from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore, send_tag
from nxcloud_wa.templates import TemplateSet, TemplateSpec
from outcomes import DeadLettered, RetryLater, Sent, Skipped
from screen import Screen
from tests.unit import test_delivery
from tests.unit.test_delivery import World, body, deliver, queued

world = test_delivery.world
"""The delivery tests' fixture: moto in-process, the idempotency table, a dead-letter queue, the scripted sender."""

BUSINESS = "8618512348399"
SUPPRESSED = "8613800000001"
LIST = "suppressions"


class DefaultsSender:
    """The scripted sender with the deployment's defaults (the screen reads the business number from them)."""

    def __init__(self, world: World) -> None:
        self.inner = world.sender

    def credentials(self, *, refresh: bool = False) -> Credentials:
        return self.inner.credentials(refresh=refresh)

    def send(self, request: Any, credentials: Credentials | None = None) -> Any:
        return self.inner.send(request, credentials)

    def defaults_for(self, credentials: Credentials) -> Defaults:
        return Defaults(tenant_id=1, appkey="app1", business_phone=BUSINESS)


class Catalogue:
    """A catalogue with one category for order_update; ``down``: getTemplate is unavailable."""

    def __init__(self, category: str = "MARKETING", *, down: bool = False) -> None:
        self.category = category
        self.down = down
        self.reads = 0

    def templates(self, appkey: str, business_phone: str, credentials: Credentials, **_: Any) -> TemplateSet:
        self.reads += 1
        if self.down:
            raise TemplateApiError("api_error", "getTemplate is down")
        return TemplateSet([TemplateSpec("order_update", "en_US", "APPROVED", self.category)])


def screened(world: World, catalogue: Catalogue | None, *entries: Suppression) -> Delivery:
    suppressions_table(world.dynamodb, LIST)
    store = SuppressionStore(world.dynamodb, LIST)
    for e in entries:
        store.put(e)
    delivery = world.delivery()
    delivery.sender = DefaultsSender(world)  # type: ignore[assignment]
    delivery.screen = Screen(store, catalogue)  # type: ignore[arg-type]
    return delivery


def opted_out(scope: Scope = Scope.MARKETING, reason: Reason = Reason.OPTED_OUT) -> Suppression:
    return Suppression(BUSINESS, SUPPRESSED, scope, reason, "Stop promotions", "2026-12-01T00:00:00.000+00:00")


def requests_by_name(world: World) -> Counter[str]:
    seen: Counter[str] = Counter()
    world.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: seen.update([model.name]))
    return seen


def test_a_suppressed_recipient_is_skipped_unclaimed_unsent_and_the_rest_of_the_batch_sent(world: World) -> None:
    delivery = screened(world, Catalogue(), opted_out())
    seen = requests_by_name(world)

    outcomes = deliver(delivery, *(queued(body(f"86138000000{n:02d}"), n) for n in range(10)))

    assert isinstance(outcomes[1], Skipped) and outcomes[1].suppression_reason == "opted_out"
    assert all(isinstance(o, Sent) for i, o in enumerate(outcomes) if i != 1)
    assert SUPPRESSED not in world.sender.sent and len(world.sender.sent) == 9
    assert seen["BatchGetItem"] == 1  # one read of the list for the whole batch
    assert not world.dead_letters()
    claimed = world.dynamodb.scan(TableName="idempotency")["Items"]
    assert len(claimed) == 9  # the skipped message left no claim (the nine sent ones are stored outcomes)


def test_the_category_decides_what_a_marketing_entry_stops(world: World) -> None:
    delivery = screened(world, Catalogue("UTILITY"), opted_out())

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Sent)


def test_an_all_entry_stops_utility_too(world: World) -> None:
    delivery = screened(world, Catalogue("UTILITY"), opted_out(Scope.ALL, Reason.UNDELIVERABLE))

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Skipped) and outcome.suppression_reason == "undeliverable"


@pytest.mark.parametrize("catalogue", [None, Catalogue(down=True)], ids=["no catalogue", "getTemplate down"])
def test_a_category_that_cannot_be_known_is_marketing(world: World, catalogue: Catalogue | None) -> None:
    delivery = screened(world, catalogue, opted_out())

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Skipped)


def test_the_catalogue_is_read_only_for_a_message_with_an_entry(world: World) -> None:
    catalogue = Catalogue()
    delivery = screened(world, catalogue, opted_out())

    deliver(delivery, *(queued(body(f"86138000000{n:02d}"), n) for n in range(10)))

    assert catalogue.reads == 1


@pytest.mark.parametrize(("category", "sent"), [("MARKETING", False), ("UTILITY", True), ("AUTHENTICATION", True)])
def test_an_unreadable_list_retries_marketing_and_sends_utility(
    world: World, monkeypatch: pytest.MonkeyPatch, category: str, sent: bool
) -> None:
    from botocore.exceptions import ClientError

    delivery = screened(world, Catalogue(category))

    def down(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "BatchGetItem")

    monkeypatch.setattr(world.dynamodb, "batch_get_item", down)
    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    if sent:
        assert isinstance(outcome, Sent)
    else:
        assert isinstance(outcome, RetryLater) and outcome.failure.reason == "suppressions_unavailable"
        assert not world.sender.sent
        assert not world.dynamodb.scan(TableName="idempotency")["Items"]  # never claimed


def test_a_skipped_message_is_not_dead_lettered_on_the_api_either(world: World) -> None:
    delivery = screened(world, Catalogue(), opted_out())

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)), queue=False)

    assert isinstance(outcome, Skipped) and not isinstance(outcome, DeadLettered)
    assert outcome.failure.api_status == 422 and outcome.failure.reason == "recipient_suppressed"


def test_no_screen_sends_to_a_suppressed_recipient(world: World) -> None:
    delivery = screened(world, Catalogue(), opted_out())
    delivery.screen = None  # SUPPRESSION_CHECK=off

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Sent)


# --- the marketing frequency cap


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def capped(world: World, catalogue: Catalogue | None, cap: str | None, clock: Clock, *, check: bool = True) -> Delivery:
    """A delivery whose screen counts marketing sends under ``cap`` (None: off), with the list's clock the test's.
    No timeline: delivery tracking is off, and the count works without it."""
    suppressions_table(world.dynamodb, LIST)
    delivery = world.delivery()
    delivery.sender = DefaultsSender(world)  # type: ignore[assignment]
    store = SuppressionStore(world.dynamodb, LIST, clock=clock)
    delivery.screen = Screen(store, catalogue, check=check, cap=FrequencyCap.parse(cap or ""))  # type: ignore[arg-type]
    return delivery


def requests_to(world: World) -> list[tuple[str, dict[str, Any]]]:
    """Every DynamoDB request made from now on: its operation and its parameters."""
    seen: list[tuple[str, dict[str, Any]]] = []
    world.dynamodb.meta.events.register(
        "provide-client-params.dynamodb.*", lambda params, model, **_: seen.append((model.name, dict(params)))
    )
    return seen


def count_item(world: World, recipient: str = SUPPRESSED) -> dict[str, Any] | None:
    item: dict[str, Any] | None = world.dynamodb.get_item(
        TableName=LIST, Key={"id": {"S": f"cap#{BUSINESS}#{recipient}"}}
    ).get("Item")
    return item


def test_a_recipient_at_the_cap_is_skipped_until_the_window_rolls(world: World) -> None:
    clock = Clock()
    delivery = capped(world, Catalogue(), "1/24h", clock)

    [first] = deliver(delivery, queued(body(SUPPRESSED), 0, key="promo-1"))
    clock.now += 24 * 3600 - 1
    [second] = deliver(delivery, queued(body(SUPPRESSED), 1, key="promo-2"))
    clock.now += 1  # exactly one window after the first send
    [third] = deliver(delivery, queued(body(SUPPRESSED), 2, key="promo-3"))

    assert isinstance(first, Sent) and isinstance(third, Sent)
    assert isinstance(second, Skipped) and (second.reason, second.cap) == ("frequency_cap", "1/24h")
    assert world.sender.sent[SUPPRESSED] == 2 and not world.dead_letters()
    claimed = world.dynamodb.scan(TableName="idempotency")["Items"]
    assert len(claimed) == 2  # the capped message was never claimed: sent again later with its key, it is checked again
    assert count_item(world) == {
        "id": {"S": f"cap#{BUSINESS}#{SUPPRESSED}"},
        "sent": {"M": {send_tag("promo-3"): {"N": str(int(clock.now))}}},  # the first has left the window: trimmed
        "expiration": {"N": str(int(clock.now) + 24 * 3600)},
    }


def test_the_cap_costs_no_request_of_its_own_one_read_and_the_settlement_s_one_write(world: World) -> None:
    delivery = capped(world, Catalogue(), "2/24h", Clock())
    seen = requests_to(world)

    outcomes = deliver(delivery, *(queued(body(SUPPRESSED), n, key=f"promo-{n}") for n in range(3)))

    assert [type(o) for o in outcomes] == [Sent, Sent, Skipped]  # the batch's own messages count
    names = [name for name, _ in seen]
    assert names.count("BatchGetItem") == 1 and names.count("BatchWriteItem") == 1
    [(_, read)] = [(n, p) for n, p in seen if n == "BatchGetItem"]
    assert {k["id"]["S"] for k in read["RequestItems"][LIST]["Keys"]} == {
        f"{BUSINESS}#{SUPPRESSED}",
        f"cap#{BUSINESS}#{SUPPRESSED}",
    }
    [(_, write)] = [(n, p) for n, p in seen if n == "BatchWriteItem"]
    [put] = write["RequestItems"][LIST]  # two sends to one pair: one item
    assert set(put["PutRequest"]["Item"]["sent"]["M"]) == {send_tag("promo-0"), send_tag("promo-1")}


@pytest.mark.parametrize("category", ["UTILITY", "AUTHENTICATION"])
def test_utility_and_authentication_are_never_capped_nor_counted(world: World, category: str) -> None:
    delivery = capped(world, Catalogue(category), "1/24h", Clock())

    outcomes = deliver(delivery, *(queued(body(SUPPRESSED), n, key=f"otp-{n}") for n in range(3)))

    assert all(isinstance(o, Sent) for o in outcomes)
    assert count_item(world) is None


def test_a_message_that_did_not_go_out_is_not_counted(world: World) -> None:
    from nxcloud_wa.error_codes import classify_http_status
    from nxcloud_wa.exceptions import RetryableSendError

    delivery = capped(world, Catalogue(), "1/24h", Clock())
    world.sender.script[SUPPRESSED] = test_delivery.raises(
        RetryableSendError("NXCloud answered HTTP 500", classify_http_status(500), http_status=500)
    )

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, RetryLater)
    assert count_item(world) is None


def test_an_opt_out_outranks_the_cap(world: World) -> None:
    delivery = capped(world, Catalogue(), "1/24h", Clock())
    assert delivery.screen is not None
    delivery.screen.store.put(opted_out())

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Skipped) and outcome.reason == "suppressed"
    assert count_item(world) is None


def test_the_cap_alone_reads_no_entry(world: World) -> None:
    delivery = capped(world, Catalogue(), "1/24h", Clock(), check=False)  # SUPPRESSION_CHECK=off
    assert delivery.screen is not None
    delivery.screen.store.put(opted_out())
    seen = requests_to(world)

    [outcome] = deliver(delivery, queued(body(SUPPRESSED)))

    assert isinstance(outcome, Sent)  # the list is not enforced; the send is counted
    [(_, read)] = [(n, p) for n, p in seen if n == "BatchGetItem"]
    assert read["RequestItems"][LIST]["Keys"] == [{"id": {"S": f"cap#{BUSINESS}#{SUPPRESSED}"}}]
    assert count_item(world) is not None


def test_with_the_cap_off_nothing_is_read_or_written_for_it(world: World) -> None:
    catalogue = Catalogue()
    delivery = capped(world, catalogue, None, Clock())
    seen = requests_to(world)

    outcomes = deliver(delivery, *(queued(body(SUPPRESSED), n, key=f"promo-{n}") for n in range(3)))

    assert all(isinstance(o, Sent) for o in outcomes)
    [(_, read)] = [(n, p) for n, p in seen if n == "BatchGetItem"]
    assert read["RequestItems"][LIST]["Keys"] == [{"id": {"S": f"{BUSINESS}#{SUPPRESSED}"}}]
    assert all(LIST not in p.get("RequestItems", {}) for n, p in seen if n == "BatchWriteItem")
    assert catalogue.reads == 0  # no entry, no cap: no category needed


def test_a_message_sent_and_delivered_again_is_answered_from_its_send_not_capped(world: World) -> None:
    delivery = capped(world, Catalogue(), "1/24h", Clock())
    [first] = deliver(delivery, queued(body(SUPPRESSED), 0, key="promo-1"))

    [again] = deliver(delivery, queued(body(SUPPRESSED), 1, key="promo-1"))  # SQS redelivers it

    assert isinstance(first, Sent) and isinstance(again, Sent) and again.replayed
    assert world.sender.sent[SUPPRESSED] == 1


def test_two_copies_of_a_message_in_one_batch_take_one_place_under_the_cap(world: World) -> None:
    delivery = capped(world, Catalogue(), "1/24h", Clock())

    outcomes = deliver(delivery, queued(body(SUPPRESSED), 0, key="promo-1"), queued(body(SUPPRESSED), 1, key="promo-1"))

    assert isinstance(outcomes[0], Sent) and not isinstance(outcomes[1], Skipped)  # the copy waits for the first
    assert world.sender.sent[SUPPRESSED] == 1
