"""``WhatsApp Campaign Status Changed``: every status move of a campaign reaches the bus through the campaigns
table's stream (the publisher's CampaignChanges source, filtered as template.yaml declares it), once per move, with
the previous status, the reason and the counts; a counts or checkpoint update publishes nothing."""

from __future__ import annotations

from typing import Any

from nxcloud_wa.campaigns import Action, Status
from nxcloud_wa.campaigns_table import Campaign, CampaignStore, Checkpoint

from .conftest import Stack

AT = "2027-01-15T08:00:00+00:00"


def _store(stack: Stack) -> CampaignStore:
    return CampaignStore(stack.resources.client("dynamodb"), stack.resources.campaigns_table)


def _campaign(campaign_id: str = "c-ev1") -> Campaign:
    return Campaign(campaign_id, "spring sale", "promo", "en_US", "audiences/a.csv", AT, AT, 64.0)


def _campaign_events(stack: Stack) -> list[dict[str, Any]]:
    while stack.publish_campaigns():
        pass
    return [e for e in stack.events() if e["detail-type"] == "WhatsApp Campaign Status Changed"]


def test_each_status_move_is_one_event_and_counts_updates_are_none(stack: Stack) -> None:
    store = _store(stack)
    store.create(_campaign())
    running = store.apply(store.get("c-ev1"), Action.START, "2027-01-15T08:01:00+00:00")
    store.advance(running, Checkpoint(offset=40, line=3, rows=2, tick=1), {"rows": 2, "queued": 2})
    store.add_counts("c-ev1", {"sent": 2})
    paused = store.apply(store.get("c-ev1"), Action.PAUSE, "2027-01-15T08:02:00+00:00", reason="the file was deleted")

    events = _campaign_events(stack)

    assert [(e["detail"]["previous_status"], e["detail"]["status"]) for e in events] == [
        (None, "scheduled"),
        ("scheduled", "running"),
        ("running", "paused"),
    ]
    last = events[-1]["detail"]
    assert last["reason"] == "the file was deleted"
    assert (last["counts"]["rows"], last["counts"]["sent"], last["counts"]["queued"]) == (2, 2, 2)
    assert last["at"] == "2027-01-15T08:02:00+00:00"
    assert len({e["detail"]["dedupe_id"] for e in events}) == 3
    assert paused.status is Status.PAUSED


def test_a_stream_batch_handed_over_again_repeats_the_same_dedupe_ids(stack: Stack) -> None:
    store = _store(stack)
    store.create(_campaign("c-ev2"))
    store.apply(store.get("c-ev2"), Action.CANCEL, AT)
    first = _campaign_events(stack)
    stack._campaign_stream = None  # a new reader from TRIM_HORIZON: Lambda handing the records over again
    again = _campaign_events(stack)
    assert [e["detail"]["dedupe_id"] for e in again] == [e["detail"]["dedupe_id"] for e in first]
    assert [e["detail"]["status"] for e in first] == ["scheduled", "cancelled"]
