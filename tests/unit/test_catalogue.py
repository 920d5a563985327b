"""The container's template catalogue, against the simulator, on a clock the test moves: kept for its TTL, fetched
again after it, fetched early (at most once per interval) for a template it lacks or holds unapproved, and never
trusted after a failed fetch for what it does not hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from nxcloud_simulator import NXCloudSimulator
from nxcloud_wa.catalogue import TemplateCatalogue
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import TemplateApiError
from nxcloud_wa.template_client import TemplateClient
from tests.page_templates import ORDER_UPDATE, TEN_BTN4, TEXT_TEMPLATE

APPKEY, PHONE = "app1", "8618512348399"
CREDENTIALS = Credentials("AK", "SK")
TTL, MISS, RETRY = 600.0, 30.0, 20.0


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    sim: NXCloudSimulator
    clock: Clock
    catalogue: TemplateCatalogue

    def lookup(self, name: str | None = None, language: str = "en_US", appkey: str = APPKEY) -> list[str]:
        want = (name, language) if name else None
        return [t.name for t in self.catalogue.templates(appkey, PHONE, CREDENTIALS, want=want)]

    @property
    def fetches(self) -> int:
        """getTemplate listings the simulator answered (one page each here)."""
        return len(self.sim.template_requests)


@pytest.fixture
def world(make_simulator: Callable[..., NXCloudSimulator]) -> World:
    sim = make_simulator(templates={(APPKEY, PHONE): [ORDER_UPDATE]})
    clock = Clock()
    catalogue = TemplateCatalogue(TemplateClient(sim.url), ttl=TTL, miss_interval=MISS, retry_after=RETRY, clock=clock)
    return World(sim, clock, catalogue)


def test_a_listing_is_kept_for_its_ttl_then_fetched_again(world: World) -> None:
    assert world.lookup("order_update") == ["order_update"]
    world.sim.set_templates(APPKEY, PHONE, [ORDER_UPDATE, TEN_BTN4])
    world.clock.now += TTL - 1

    assert world.lookup("order_update") == ["order_update"]  # from the cache: TEN_BTN4 not seen yet
    assert world.fetches == 1
    world.clock.now += 1
    assert world.lookup("order_update") == ["order_update", "ten_btn4"]
    assert world.fetches == 2
    assert world.catalogue.fetches == 2


def test_a_template_the_cache_lacks_triggers_one_refresh(world: World) -> None:
    world.lookup("order_update")
    world.sim.set_templates(APPKEY, PHONE, [ORDER_UPDATE, TEN_BTN4])  # approved a minute ago
    world.clock.now += MISS

    assert world.lookup("ten_btn4") == ["order_update", "ten_btn4"]
    assert world.fetches == 2


def test_refreshes_for_a_missing_template_are_rate_limited(world: World) -> None:
    world.lookup("order_update")
    world.clock.now += MISS
    for _ in range(5):  # a flood of messages naming a misspelt template
        assert world.lookup("order_updte") == ["order_update"]
        world.clock.now += 1

    assert world.fetches == 2  # the first listing, and one refresh for the miss
    world.clock.now += MISS
    world.lookup("order_updte")
    assert world.fetches == 3


def test_a_template_not_yet_approved_in_the_cache_triggers_a_refresh_too(world: World) -> None:
    world.sim.set_templates(APPKEY, PHONE, [{**ORDER_UPDATE, "status": "PENDING"}])
    world.lookup("order_update")
    world.sim.set_templates(APPKEY, PHONE, [ORDER_UPDATE])
    world.clock.now += MISS

    templates = world.catalogue.templates(APPKEY, PHONE, CREDENTIALS, want=("order_update", "en_US"))
    assert templates.usable("order_update", "en_US")
    assert world.fetches == 2


def test_a_known_template_never_triggers_a_refresh(world: World) -> None:
    world.lookup("order_update")
    world.clock.now += TTL - 1
    world.lookup("order_update")
    world.lookup()  # the whole listing (nxwa)

    assert world.fetches == 1


def test_accounts_are_kept_apart(world: World) -> None:
    world.sim.set_templates("other", PHONE, [TEXT_TEMPLATE])

    assert world.lookup("order_update") == ["order_update"]
    assert world.lookup("text_template", appkey="other") == ["text_template"]
    assert world.fetches == 2


# --- failing fetches


def test_a_failed_fetch_raises_and_is_not_tried_again_until_retry_after(world: World) -> None:
    world.sim.add_fault(kind="http_status", status=500, endpoint="getTemplate", times=1)
    with pytest.raises(TemplateApiError, match="HTTP 500"):
        world.lookup("order_update")
    world.clock.now += RETRY - 1
    with pytest.raises(TemplateApiError, match="HTTP 500"):  # the same error, at once: no request
        world.lookup("order_update")

    assert world.fetches == 1
    world.clock.now += 1
    assert world.lookup("order_update") == ["order_update"]
    assert world.fetches == 2


def test_an_expired_listing_is_not_used_when_its_refresh_fails(world: World) -> None:
    world.lookup("order_update")
    world.sim.add_fault(kind="code", code=9001, endpoint="getTemplate")
    world.clock.now += TTL

    with pytest.raises(TemplateApiError, match="9001"):
        world.lookup("order_update")
    world.clock.now += RETRY
    with pytest.raises(TemplateApiError, match="9001"):
        world.lookup("order_update")
    assert world.fetches == 3  # the first listing, its failed refresh and one retry after RETRY


def test_after_a_failed_early_refresh_what_the_listing_holds_stands_and_what_it_lacks_is_unconfirmed(
    world: World,
) -> None:
    world.lookup("order_update")
    world.sim.add_fault(kind="drop", endpoint="getTemplate")
    world.clock.now += MISS

    with pytest.raises(TemplateApiError):
        world.lookup("ten_btn4")  # the refresh it triggered failed: no "not found" from an unconfirmed listing
    assert world.lookup("order_update") == ["order_update"]  # still fresh and holding it
    with pytest.raises(TemplateApiError):
        world.lookup("ten_btn4")  # within the interval: the same failure, no new request
    assert world.fetches == 2


def test_an_auth_error_fails_the_fetch(world: World) -> None:
    world.sim.set_account("AK", "rotated")

    with pytest.raises(TemplateApiError) as caught:
        world.lookup("order_update")
    assert caught.value.classification.reason == "nxcloud_auth"


def test_clear_forgets_every_listing(world: World) -> None:
    world.lookup("order_update")
    world.catalogue.clear()
    world.lookup("order_update")

    assert world.fetches == 2
