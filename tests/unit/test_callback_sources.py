"""What a callback body implies for the suppression list, before any I/O: inbound texts parsed leniently, each change
found in the body's order, and keyed by the first business number available (nxcloud_wa.suppression_sources).
The webhook end to end (moto, the store, durability): tests/integration/test_suppression_sources.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nxcloud_wa.audience import AddEntry, AudienceSettings, RemoveEntry
from nxcloud_wa.callbacks import parse_callback
from nxcloud_wa.messages_table import SendRecord
from nxcloud_wa.suppression_sources import SendRecordsUnreadError, implied, keyed
from nxcloud_wa.suppressions import Reason, Scope
from nxcloud_wa.timeline import SendRecords

SETTINGS = AudienceSettings()
USER = "8613800000000"
BUSINESS = "8618512348399"
OTHER = "85291234867"


def body(*messages: dict[str, Any], statuses: list[dict[str, Any]] | None = None, **top: Any) -> Any:
    return parse_callback(json.dumps({"messages": list(messages), "statuses": statuses or [], **top}))


def text(said: Any, **extra: Any) -> dict[str, Any]:
    return {"id": "in-1", "from": USER, "timestamp": "1764403400", "type": "text", "text": {"body": said}, **extra}


def failed(code: int, **extra: Any) -> dict[str, Any]:
    return {"id": "m-1", "status": "failed", "timestamp": "1", "errors": [{"code": code}], **extra}


def send_record(message_id: str, business: str | None, recipient: str = USER) -> SendRecord:
    return SendRecord(message_id, "key", "promo", "en_US", business, None, recipient, "2026-12-06T00:00:00.000+00:00")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (text("STOP"), "STOP"),
        (text("STOP", type="image"), None),
        ({**text("x"), "text": "STOP"}, None),
        ({**text("x"), "text": {"body": 7}}, None),
        ({k: v for k, v in text("x").items() if k != "text"}, None),
    ],
)
def test_an_inbound_texts_body_is_read_and_any_other_shape_is_none(entry: dict[str, Any], expected: str | None) -> None:
    [message] = body(entry).messages
    assert message.text_body == expected


def test_each_source_is_found_statuses_first_then_messages_in_order() -> None:
    click = {
        "id": "evt-1",
        "from": USER,
        "timestamp": "1",
        "type": "button",
        "button": {"payload": "STOP", "text": "Stop promotions"},
    }
    statuses = [failed(131026, recipient_id=USER), failed(131049), failed(470), {**failed(131050), "status": "read"}]

    found = implied(body(text("start"), click, text("hello"), statuses=statuses), SETTINGS)

    assert [(c.entry, type(c.change)) for c in found] == [
        ("status", AddEntry),
        ("text", RemoveEntry),
        ("click", AddEntry),
    ]
    status, _, click_change = (c.change for c in found)
    assert isinstance(status, AddEntry) and (status.scope, status.reason) == (Scope.ALL, Reason.UNDELIVERABLE)
    assert click_change.source == "STOP"


def never(_: list[str]) -> SendRecords:
    raise AssertionError("no send record should be read")


def test_the_bodys_number_then_the_contexts_come_before_any_read() -> None:
    click = {
        "id": "evt-1",
        "from": USER,
        "timestamp": "1",
        "type": "button",
        "button": {"payload": "Stop promotions"},
        "context": {"from": OTHER, "id": "m-1"},
    }

    [named], _ = keyed(implied(body(click, business_phone=BUSINESS), SETTINGS), never, lambda: None)
    [from_context], _ = keyed(implied(body(click), SETTINGS), never, lambda: None)

    assert named.key == (BUSINESS, USER)
    assert from_context.key == (OTHER, USER)


def test_send_records_are_read_once_for_the_body_then_the_default_once() -> None:
    statuses = [failed(131026, id="m-1"), failed(131050, id="m-2"), failed(131026, id="m-3", recipient_id=USER)]
    reads: list[list[str]] = []
    defaults: list[int] = []

    def records(ids: list[str]) -> SendRecords:
        reads.append(ids)
        return SendRecords(
            {"m-1": send_record("m-1", OTHER), "m-2": send_record("m-2", None, "+86 138 0000 0001")}, frozenset()
        )

    def default() -> str:
        defaults.append(1)
        return "+86 185 1234 8399"

    ready, unkeyed = keyed(implied(body(statuses=statuses), SETTINGS), records, default)

    assert reads == [["m-1", "m-2", "m-3"]]
    assert defaults == [1]  # asked once, for the two that needed it
    assert [r.key for r in ready] == [(OTHER, USER), (BUSINESS, "8613800000001"), (BUSINESS, USER)]
    assert unkeyed == []


def test_what_cannot_be_keyed_says_why_and_is_not_raised() -> None:
    statuses = [
        failed(131026, id="m-1"),
        failed(131026, id="m-2", recipient_id=USER),
        failed(131026, id="m-3", recipient_id="12"),
    ]

    ready, unkeyed = keyed(
        implied(body(statuses=statuses), SETTINGS), lambda ids: SendRecords({}, frozenset()), lambda: None
    )

    assert ready == []
    assert [u.why.split(" ")[0:2] for u in unkeyed] == [["no", "recipient"], ["no", "business"], ["no", "business"]]
    ready, unkeyed = keyed(
        implied(body(statuses=statuses[2:]), SETTINGS), lambda ids: SendRecords({}, frozenset()), lambda: BUSINESS
    )
    assert [u.why.split(" ")[0] for u in unkeyed] == ["recipient"]


def test_a_send_record_left_unread_raises_rather_than_guess() -> None:
    changes = implied(body(statuses=[failed(131026, recipient_id=USER)]), SETTINGS)

    with pytest.raises(SendRecordsUnreadError):
        keyed(changes, lambda ids: SendRecords({}, frozenset(ids)), lambda: BUSINESS)
