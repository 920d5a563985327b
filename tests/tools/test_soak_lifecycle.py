"""The soak's lifecycle ledger on made-up runs: each kind of loss it must catch, and what it must allow (repeated
events, reordered callbacks, a refused callback stored in part)."""

from __future__ import annotations

from collections import Counter

from soak.lifecycle import (
    BUTTON_CLICKED,
    STATUS_CHANGED,
    EventTally,
    LifecycleLedger,
    Posted,
    Stored,
    Truth,
    build_lifecycle,
    status_change,
    stored_item,
)

# --- the ledger's verdict

M = "gBGGhSNXV1dfAglVQ0RRuE3YWhc"


def _posted(status: str | None, http_status: int | None = 200, event_id: str | None = None) -> Posted:
    return Posted(M, status, event_id, http_status, None if http_status else "timed out", duplicate=False)


def _events(*statuses: str, clicks: int = 0) -> EventTally:
    tally = EventTally()
    for status in statuses:
        tally.add({"detail-type": STATUS_CHANGED, "detail": {"message_id": M, "status": status}})
    for n in range(clicks):
        tally.add({"detail-type": BUTTON_CLICKED, "detail": {"context_message_id": M, "dedupe_id": f"c{n}"}})
    return tally


def _ledger(
    posted: list[Posted],
    stored: Stored | None,
    changes: list[tuple[str | None, str]],
    events: EventTally,
    statuses: tuple[str, ...] = ("sent", "delivered", "read"),
) -> LifecycleLedger:
    acknowledged = frozenset(p.status for p in posted if p.ok and p.status)
    return build_lifecycle(
        {M: Truth(statuses, acknowledged)},
        posted,
        stored={M: stored} if stored else {},
        send_records={M},
        changes={M: changes},
        events=events,
        answer_lost=set(),
    )


HAPPY = [_posted("sent"), _posted("delivered"), _posted("read")]
READ = Stored("read", frozenset({"sent", "delivered", "read"}), frozenset())
IN_ORDER = [(None, "sent"), ("sent", "delivered"), ("delivered", "read")]


def test_callbacks_stored_and_every_change_published_pass() -> None:
    ledger = _ledger(HAPPY, READ, IN_ORDER, _events("sent", "delivered", "read", "read"))

    assert ledger.failures() == []
    assert (ledger.final_equal, ledger.events_distinct, ledger.events_duplicates) == (1, 3, 1)


def test_reordered_callbacks_expect_events_only_for_statuses_that_were_current() -> None:
    ledger = _ledger(HAPPY, READ, [(None, "read")], _events("read"))

    assert ledger.failures() == []
    assert ledger.changes == 1


def test_an_acknowledged_callback_missing_from_the_table_is_a_loss() -> None:
    stored = Stored("delivered", frozenset({"sent", "delivered"}), frozenset())
    ledger = _ledger(HAPPY, stored, IN_ORDER[:2], _events("sent", "delivered"))

    assert ledger.callbacks_lost == 1
    assert ledger.final_differs == 1
    assert any("not in the messages table" in problem for problem in ledger.failures())


def test_a_refused_callback_stored_before_its_invocation_failed_is_explained_not_a_failure() -> None:
    posted = [_posted("sent"), _posted("delivered"), _posted("read", http_status=502)]
    ledger = _ledger(posted, READ, IN_ORDER, _events("sent", "delivered", "read"))

    assert (ledger.final_explained, ledger.final_differs, ledger.statuses_refused_but_stored) == (1, 0, 1)
    assert ledger.refused == Counter({"HTTP 502": 1})
    assert ledger.failures() == []


def test_a_status_never_posted_is_caught() -> None:
    stored = Stored("failed", frozenset({"sent", "delivered", "read", "failed"}), frozenset())
    ledger = _ledger(HAPPY, stored, [*IN_ORDER, ("read", "failed")], _events("sent", "delivered", "read", "failed"))

    assert ledger.statuses_invented == 1
    assert ledger.final_differs == 1


def test_a_change_without_its_event_fails_and_an_event_for_no_change_fails() -> None:
    missing = _ledger(HAPPY, READ, IN_ORDER, _events("sent", "read"))
    extra = _ledger(HAPPY, READ, [(None, "read")], _events("delivered", "read"))

    assert missing.events_missing == 1 and missing.failures()
    assert extra.events_unexpected == 1 and extra.failures()


def test_a_status_moving_back_in_the_stream_fails() -> None:
    ledger = _ledger(HAPPY, READ, [(None, "read"), ("read", "delivered"), ("delivered", "read")], _events())

    assert ledger.changes_backwards == 1
    assert ledger.failures()


def test_a_stored_status_the_stream_never_showed_fails() -> None:
    ledger = _ledger(HAPPY, READ, IN_ORDER[:2], _events("sent", "delivered"))

    assert ledger.final_not_a_change == 1
    assert ledger.failures()


def test_an_acknowledged_click_must_be_stored_and_published() -> None:
    posted = [*HAPPY, _posted(None, event_id="wamid.click")]
    clicked = Stored("read", READ.statuses, frozenset({"wamid.click"}))

    lost = _ledger(posted, READ, IN_ORDER, _events("sent", "delivered", "read"))
    unpublished = _ledger(posted, clicked, IN_ORDER, _events("sent", "delivered", "read"))
    published = _ledger(posted, clicked, IN_ORDER, _events("sent", "delivered", "read", clicks=1))

    assert lost.clicks_lost == 1 and lost.failures()
    assert unpublished.click_events_missing == 1 and unpublished.failures()
    assert published.failures() == []


def test_kept_callbacks_left_after_the_replay_and_an_unfinished_lifecycle_fail() -> None:
    ledger = _ledger(HAPPY, READ, IN_ORDER, _events("sent", "delivered", "read"))
    ledger.kept_left = 1
    ledger.unsettled = ["the publisher did not read the stream to its end"]

    assert len(ledger.failures()) == 2


def test_stream_records_and_items_are_read_as_the_publisher_writes_them() -> None:
    record = {
        "dynamodb": {
            "Keys": {"id": {"S": f"status#{M}"}},
            "OldImage": {"status": {"S": "sent"}},
            "NewImage": {"status": {"S": "read"}},
        }
    }
    repeat = {"dynamodb": {**record["dynamodb"], "OldImage": {"status": {"S": "read"}}}}
    send = {"dynamodb": {"Keys": {"id": {"S": M}}, "NewImage": {"kind": {"S": "send"}}}}
    item = {
        "id": {"S": f"status#{M}"},
        "status": {"S": "read"},
        "at_sent": {"S": "t1"},
        "at_read": {"S": "t3"},
        "click_ids": {"SS": ["wamid.click"]},
    }

    assert status_change(record) == (M, "sent", "read")
    assert status_change(repeat) is None
    assert status_change(send) is None
    assert stored_item(item) == Stored("read", frozenset({"sent", "read"}), frozenset({"wamid.click"}))
