"""How entries get onto the suppression list: NXCloud's callbacks through the real webhook handler, moto's server (the
messages table, the suppression list, the kept-callbacks queue, the secret) and, end to end, the NXCloud simulator.

The rules themselves (which payload, keyword or code means what) are nxcloud_wa.audience's, unit-tested there; these
tests check that the webhook applies them to the right (business number, recipient) pair, durably. Callback bodies are
written out here in NXCloud's shapes (docs/nxcloud.md section 5), not built by the code under test.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore

from .conftest import SECRET, Stack, message

BUSINESS = "8618512348399"
"""The secret's default business number (tests/stack.py)."""
OTHER_BUSINESS = "85291234867"
"""A second business number of the same account."""
USER = "8613800000000"
NOW = 1_800_000_000.0
"""The suppression store's clock in these tests (epoch seconds)."""
DAY = 86_400


@pytest.fixture
def store(stack: Stack) -> SuppressionStore:
    """The list as the webhook's receiver writes it, its clock fixed at NOW (so an entry's ``at`` and ``expiration``
    are exact); the same store reads it back."""
    return _fixed_clock(stack)


def _fixed_clock(stack: Stack) -> SuppressionStore:
    import webhook

    suppressions = webhook.receiver().suppressions
    suppressions.clock = lambda: NOW
    return suppressions


@pytest.fixture
def webhook_logs() -> Iterator[io.StringIO]:
    """Everything the webhook's logger writes, at every level."""
    import webhook

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(webhook.logger.registered_formatter)
    level = webhook.logger.level
    webhook.logger.addHandler(handler)
    webhook.logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        webhook.logger.removeHandler(handler)
        webhook.logger.setLevel(level)


# --- NXCloud's bodies ------------------------------------------------------------------------------------------------


def failed(
    message_id: str, code: int, *, recipient: str | None = USER, business: str | None = BUSINESS
) -> dict[str, Any]:
    """A ``failed`` status body; ``business`` None leaves ``business_phone`` out (the page's own examples do)."""
    status: dict[str, Any] = {
        "id": message_id,
        "status": "failed",
        "timestamp": "1764403260",
        "errors": [{"code": code, "title": "..."}],
    }
    if recipient:
        status["recipient_id"] = recipient
    body: dict[str, Any] = {"statuses": [status], "messaging_product": "whatsapp"}
    if business:
        body["business_phone"] = business
    return body


def click(
    payload: str,
    text: str | None = None,
    *,
    event_id: str = "evt-1",
    answered: str | None = "m-1",
    context_from: str | None = BUSINESS,
    business: str | None = BUSINESS,
    user: str = USER,
) -> dict[str, Any]:
    """A template button click; ``answered`` None: no ``context``; ``business`` None: no ``business_phone``."""
    entry: dict[str, Any] = {
        "from": user,
        "id": event_id,
        "timestamp": "1764403300",
        "type": "button",
        "button": {"payload": payload, "text": payload if text is None else text},
        "wa_ext": json.dumps({"templateId": 1234, "templateName": "promo", "components": []}),
    }
    if answered:
        entry["context"] = {"id": answered, **({"from": context_from} if context_from else {})}
    body: dict[str, Any] = {
        "contacts": [{"wa_id": user, "profile": {"name": "Ann"}}],
        "messages": [entry],
        "messaging_product": "whatsapp",
    }
    if business:
        body["business_phone"] = business
    return body


def text(body: str, *, event_id: str = "in-1", business: str | None = BUSINESS, user: str = USER) -> dict[str, Any]:
    """An inbound text message in the Cloud API's shape (NXCloud's page documents none)."""
    entry = {"from": user, "id": event_id, "timestamp": "1764403400", "type": "text", "text": {"body": body}}
    out: dict[str, Any] = {"messages": [entry], "messaging_product": "whatsapp"}
    if business:
        out["business_phone"] = business
    return out


def ok(answer: dict[str, Any], received: int = 1) -> None:
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"received": received}


def entries(stack: Stack) -> list[dict[str, Any]]:
    """Every item of the list, as stored (a Scan: only tests may)."""
    items = stack.resources.client("dynamodb").scan(TableName=stack.resources.suppressions_table)["Items"]
    return sorted(items, key=lambda item: item["id"]["S"])


def send_one(stack: Stack, **fields: Any) -> str:
    """Send one message through the queue; return NXCloud's message_id (the send record's id)."""
    stack.enqueue(message(**fields))
    _, response = stack.run_batch()
    assert response == {"batchItemFailures": []}
    [item] = [
        i
        for i in stack.resources.client("dynamodb").scan(TableName=stack.resources.messages_table)["Items"]
        if i.get("kind", {}).get("S") == "send" and i["recipient"]["S"] == fields.get("to", USER)
    ]
    return str(item["id"]["S"])


# --- each source and its scope ---------------------------------------------------------------------------------------


def test_a_stop_promotions_click_opts_the_user_out_of_marketing(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(click("Stop promotions")))

    assert store.get(BUSINESS, USER) == Suppression(
        BUSINESS, USER, Scope.MARKETING, Reason.OPTED_OUT, "Stop promotions", "2027-01-15T08:00:00.000+00:00"
    )
    [item] = entries(stack)
    assert item["id"]["S"] == f"{BUSINESS}#{USER}"
    assert "expiration" not in item  # an opt-out is permanent


def test_the_click_on_nxclouds_page_opts_out_by_its_label(stack: Stack, store: SuppressionStore) -> None:
    """NXCloud's page shows payload ``STOP`` with label ``Stop promotions``: the label matches, the payload is the
    entry's source."""
    ok(stack.call_webhook(click("STOP", "Stop promotions")))

    entry = store.get(BUSINESS, USER)
    assert entry is not None
    assert (entry.scope, entry.reason, entry.source) == (Scope.MARKETING, Reason.OPTED_OUT, "STOP")


def test_another_click_adds_nothing_and_is_still_stored(stack: Stack) -> None:
    ok(stack.call_webhook(click("yes", "Yes, confirm")))

    assert entries(stack) == []
    assert stack.resources.client("dynamodb").scan(TableName=stack.resources.messages_table)["Items"]  # the click


def test_a_131050_failure_stops_marketing_for_good(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(failed("m-1", 131050)))

    entry = store.get(BUSINESS, USER)
    assert entry is not None
    assert (entry.scope, entry.reason, entry.source, entry.expiration) == (
        Scope.MARKETING,
        Reason.MARKETING_STOPPED,
        "131050",
        None,
    )


@pytest.mark.parametrize(("setting", "days"), [(None, 30), ("7", 7)])
def test_a_131026_failure_stops_everything_until_its_expiry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, setting: str | None, days: int
) -> None:
    import webhook

    if setting:
        monkeypatch.setenv("UNDELIVERABLE_SUPPRESSION_DAYS", setting)
        webhook.reset()
    store = _fixed_clock(stack)

    ok(stack.call_webhook(failed("m-1", 131026)))

    entry = store.get(BUSINESS, USER)
    assert entry is not None
    assert (entry.scope, entry.reason, entry.source) == (Scope.ALL, Reason.UNDELIVERABLE, "131026")
    assert entry.expiration == int(NOW) + days * DAY
    [item] = entries(stack)
    assert item["expiration"] == {"N": str(int(NOW) + days * DAY)}  # DynamoDB's TTL attribute
    store.clock = lambda: NOW + days * DAY  # the second it expires, it no longer applies
    assert store.get(BUSINESS, USER) is None


@pytest.mark.parametrize("code", [131049, 470, 131000])
def test_other_failures_add_nothing(stack: Stack, code: int) -> None:
    """131049 (Meta's per-user marketing limit) is a retry, not a suppression: the failure is stored with its retry
    (the template's category is unknown here, so marketing: tests/integration/test_marketing_limit_retry.py)."""
    message_id = send_one(stack)
    ok(stack.call_webhook(failed(message_id, code)))

    assert entries(stack) == []
    from local_stack.lambda_events import api_event

    found = json.loads(stack.invoke(api_event(None, method="GET", path=f"/messages/{message_id}"))["body"])
    assert (found["status"], found["errors"][0]["code"]) == ("retry_scheduled" if code == 131049 else "failed", code)


@pytest.mark.parametrize("status", ["sent", "delivered", "read", "deleted"])
def test_a_status_that_is_not_failed_adds_nothing_whatever_it_carries(stack: Stack, status: str) -> None:
    body = failed("m-1", 131026)
    body["statuses"][0]["status"] = status

    ok(stack.call_webhook(body))

    assert entries(stack) == []


# --- inbound texts ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "keyword"), [("STOP", "stop"), ("  stop ", "stop"), ("ＳＴＯＰ", "stop"), ("退订", "退订")]
)
def test_a_text_that_is_an_opt_out_keyword_opts_out(
    stack: Stack, store: SuppressionStore, said: str, keyword: str
) -> None:
    ok(stack.call_webhook(text(said)))

    entry = store.get(BUSINESS, USER)
    assert entry is not None
    assert (entry.scope, entry.reason, entry.source) == (Scope.MARKETING, Reason.OPTED_OUT, f"keyword:{keyword}")


@pytest.mark.parametrize("said", ["don't stop", "STOP!", "stop please", "Stop promotions", ""])
def test_a_text_that_only_contains_a_keyword_adds_nothing(stack: Stack, said: str) -> None:
    ok(stack.call_webhook(text(said)))

    assert entries(stack) == []


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "text", "text": "STOP"},  # not {"body": ...}
        {"type": "text", "text": {"body": 7}},
        {"type": "text"},
        {"type": "image", "image": {"id": "media-1"}, "text": {"body": "STOP"}},  # only a text message's text counts
    ],
)
def test_a_message_of_another_shape_is_ignored_quietly(stack: Stack, entry: dict[str, Any]) -> None:
    body = {"messages": [{"from": USER, "id": "in-1", "timestamp": "1764403400", **entry}], "business_phone": BUSINESS}

    ok(stack.call_webhook(body))

    assert entries(stack) == []
    assert stack.peek(stack.resources.kept_callbacks_queue_url) == []


# --- opting back in --------------------------------------------------------------------------------------------------


def test_an_opt_in_keyword_removes_an_opt_out(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(text("STOP")))
    ok(stack.call_webhook(text("start", event_id="in-2")))

    assert entries(stack) == []


def test_an_opt_in_payload_removes_an_opt_out_and_a_131050_entry(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import webhook

    monkeypatch.setenv("OPT_IN_PAYLOADS", "Resume promotions")
    webhook.reset()
    store = _fixed_clock(stack)
    other = "8613800000001"
    ok(stack.call_webhook(click("Stop promotions")))
    ok(stack.call_webhook(failed("m-2", 131050, recipient=other)))

    ok(stack.call_webhook(click("Resume promotions", event_id="evt-2")))
    ok(stack.call_webhook(click("Resume promotions", event_id="evt-3", user=other)))

    assert store.get(BUSINESS, USER) is None
    assert store.get(BUSINESS, other) is None


@pytest.mark.parametrize("first", ["undeliverable", "manual"])
def test_an_opt_in_never_removes_an_undeliverable_or_manual_entry(
    stack: Stack, store: SuppressionStore, first: str
) -> None:
    if first == "undeliverable":
        ok(stack.call_webhook(failed("m-1", 131026)))
    else:
        store.put(Suppression(BUSINESS, USER, Scope.ALL, Reason.MANUAL, "api", "2027-01-15T08:00:00.000+00:00"))
    before = store.get(BUSINESS, USER)

    ok(stack.call_webhook(text("START")))

    assert before is not None
    assert store.get(BUSINESS, USER) == before


def test_an_opt_out_outlives_the_undeliverable_entry_it_replaces(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(failed("m-1", 131026)))
    ok(stack.call_webhook(click("Stop promotions")))

    entry = store.get(BUSINESS, USER)
    assert entry is not None
    assert (entry.reason, entry.expiration) == (Reason.OPTED_OUT, None)


def test_an_opt_out_and_an_opt_in_in_one_body_apply_in_the_bodys_order(stack: Stack, store: SuppressionStore) -> None:
    body = text("STOP")
    body["messages"].append({**body["messages"][0], "id": "in-2", "text": {"body": "START"}})
    ok(stack.call_webhook(body), 2)
    assert store.get(BUSINESS, USER) is None

    body["messages"].reverse()
    ok(stack.call_webhook(body), 2)
    assert store.get(BUSINESS, USER) is not None


# --- whose list: the business number -------------------------------------------------------------------------------


def test_the_bodys_business_number_comes_first(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(click("Stop promotions", business=OTHER_BUSINESS, context_from=BUSINESS)))

    assert [item["id"]["S"] for item in entries(stack)] == [f"{OTHER_BUSINESS}#{USER}"]


def test_a_click_without_one_takes_its_contexts(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(click("Stop promotions", business=None, context_from=OTHER_BUSINESS)))

    assert [item["id"]["S"] for item in entries(stack)] == [f"{OTHER_BUSINESS}#{USER}"]


def test_a_status_without_one_takes_its_send_records(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both the business number and, when the status leaves it out, the recipient; for a whole body, one read."""
    from nxcloud_wa.timeline import Timeline

    first = send_one(stack, business_phone=OTHER_BUSINESS)
    second = send_one(stack, to="8613800000001", business_phone=OTHER_BUSINESS)
    reads: list[list[str]] = []
    read = Timeline.send_records
    monkeypatch.setattr(Timeline, "send_records", lambda self, ids: reads.append(ids) or read(self, ids))
    body = failed(first, 131026, business=None)
    body["statuses"].append(failed(second, 131050, business=None, recipient=None)["statuses"][0])

    ok(stack.call_webhook(body), 2)

    assert reads == [[first, second]]
    assert [(item["id"]["S"], item["reason"]["S"]) for item in entries(stack)] == [
        (f"{OTHER_BUSINESS}#{USER}", "undeliverable"),
        (f"{OTHER_BUSINESS}#8613800000001", "marketing_stopped"),
    ]


def test_a_body_that_names_its_number_reads_no_send_record(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    from nxcloud_wa.timeline import Timeline

    def no_reads(self: Timeline, ids: list[str]) -> Any:
        raise AssertionError("a send record was read")

    monkeypatch.setattr(Timeline, "send_records", no_reads)

    ok(stack.call_webhook(failed("m-1", 131026)))
    ok(stack.call_webhook(click("Stop promotions", business=None)))  # its context names it

    assert len(entries(stack)) == 1


def test_without_a_send_record_the_secrets_default_is_used(stack: Stack) -> None:
    ok(stack.call_webhook(failed("wamid.never-sent", 131026, business=None)))
    ok(stack.call_webhook(text("STOP", business=None, user="8613800000001")))

    assert [item["id"]["S"] for item in entries(stack)] == [f"{BUSINESS}#{USER}", f"{BUSINESS}#8613800000001"]


def test_the_environments_default_comes_before_the_secrets(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sender fills a message's business number from DEFAULT_BUSINESS_PHONE over the secret's: the list's key
    must be the number it sent from."""
    import webhook

    monkeypatch.setenv("DEFAULT_BUSINESS_PHONE", "+852 9123 4867")
    webhook.reset()

    ok(stack.call_webhook(text("STOP", business=None)))

    assert [item["id"]["S"] for item in entries(stack)] == [f"{OTHER_BUSINESS}#{USER}"]


def _count(printed: str, metric: str) -> list[dict[str, Any]]:
    """The EMF documents printed that carry ``metric``."""
    found = []
    for line in printed.splitlines():
        if line.startswith("{") and f'"{metric}"' in line:
            document = json.loads(line)
            if metric in document:
                found.append(document)
    return found


def test_without_any_business_number_the_callback_is_stored_logged_masked_and_counted(
    stack: Stack, webhook_logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    from aws_lambda_powertools.utilities import parameters

    secret = {k: v for k, v in SECRET.items() if k != "business_phone"}
    stack.resources.client("secretsmanager").put_secret_value(
        SecretId=stack.resources.secret_id, SecretString=json.dumps(secret)
    )
    parameters.clear_caches()

    ok(stack.call_webhook(text("STOP", business=None)))
    ok(stack.call_webhook(failed("m-1", 131026, business=None)))

    assert entries(stack) == []
    assert stack.peek(stack.resources.kept_callbacks_queue_url) == []  # nothing a replay could fix
    lines = [json.loads(line) for line in webhook_logs.getvalue().splitlines()]
    unkeyed = [line for line in lines if line["message"].startswith("suppression not recorded")]
    assert [(line["why"], line["entry"], line["recipient"]) for line in unkeyed] == [
        ("no business number", "text", "+86*******0000"),
        ("no business number", "status", "+86*******0000"),
    ]
    assert USER not in webhook_logs.getvalue()
    assert len(_count(capfd.readouterr().out, "SuppressionsUnkeyed")) == 2


def test_a_recipient_that_is_not_a_number_is_logged_and_skipped(stack: Stack, webhook_logs: io.StringIO) -> None:
    ok(stack.call_webhook(text("STOP", user="12")))

    assert entries(stack) == []
    [line] = [json.loads(x) for x in webhook_logs.getvalue().splitlines() if "suppression not recorded" in x]
    assert line["why"].startswith("recipient ")


# --- what is logged and counted ------------------------------------------------------------------------------------


def test_each_change_is_one_masked_log_line_and_a_metric(
    stack: Stack, store: SuppressionStore, webhook_logs: io.StringIO, capfd: pytest.CaptureFixture[str]
) -> None:
    ok(stack.call_webhook(failed("m-1", 131026)))
    ok(stack.call_webhook(click("Stop promotions")))
    ok(stack.call_webhook(text("START")))
    ok(stack.call_webhook(text("START", event_id="in-2")))  # nothing left to remove: no change

    logs = webhook_logs.getvalue()
    lines = [json.loads(line) for line in logs.splitlines()]
    changes = [line for line in lines if line["message"] in ("suppression added", "suppression removed")]
    assert [(line["message"], line.get("reason"), line["source"]) for line in changes] == [
        ("suppression added", "undeliverable", "131026"),
        ("suppression added", "opted_out", "Stop promotions"),
        ("suppression removed", None, "keyword:start"),
    ]
    assert {(line["business_phone"], line["recipient"]) for line in changes} == {("+86*******8399", "+86*******0000")}
    assert USER not in logs and BUSINESS not in logs
    printed = capfd.readouterr().out
    added = _count(printed, "SuppressionsAdded")
    assert sorted(document["Reason"] for document in added) == ["opted_out", "undeliverable"]
    assert len(_count(printed, "SuppressionsRemoved")) == 1
    assert USER not in printed


# --- durability ----------------------------------------------------------------------------------------------------


def test_when_the_list_cannot_be_written_the_body_is_kept_and_acknowledged(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, webhook_logs: io.StringIO
) -> None:
    import webhook

    monkeypatch.setenv("SUPPRESSIONS_TABLE", stack.resources.suppressions_table + "-missing")
    webhook.reset()
    body = json.dumps(failed("m-1", 131026))

    ok(stack.call_webhook(body))

    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    assert kept["Body"] == body
    assert kept["MessageAttributes"]["reason"]["StringValue"] == "store_failed"
    assert kept["MessageAttributes"]["error_message"]["StringValue"] == "SuppressionsUnavailableError"
    logs = webhook_logs.getvalue()
    assert "suppression list" in logs and "SuppressionsUnavailableError" in logs  # the failure, with its traceback
    assert USER not in logs and BUSINESS not in logs


def test_when_neither_the_list_nor_the_queue_can_be_written_the_answer_is_503(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook

    monkeypatch.setenv("SUPPRESSIONS_TABLE", stack.resources.suppressions_table + "-missing")
    monkeypatch.setenv("KEPT_CALLBACKS_QUEUE_URL", stack.resources.kept_callbacks_queue_url + "-missing")
    webhook.reset()

    assert stack.call_webhook(click("Stop promotions"))["statusCode"] == 503


def test_a_send_record_left_unread_keeps_the_body_rather_than_guess_the_number(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nxcloud_wa.timeline import SendRecords, Timeline

    monkeypatch.setattr(Timeline, "send_records", lambda self, ids: SendRecords({}, frozenset(ids)))

    ok(stack.call_webhook(failed("m-1", 131026, business=None)))

    assert entries(stack) == []
    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    assert kept["MessageAttributes"]["error_message"]["StringValue"] == "SendRecordsUnreadError"


def test_a_kept_body_replayed_stores_its_entries_and_a_second_replay_changes_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook

    message_id = send_one(stack)
    body = failed(message_id, 131026)
    body["statuses"].append({**body["statuses"][0], "id": "m-other", "recipient_id": "8613800000001"})
    body["statuses"][1]["errors"] = [{"code": 131050, "title": "..."}]
    monkeypatch.setenv("SUPPRESSIONS_TABLE", stack.resources.suppressions_table + "-missing")
    webhook.reset()
    ok(stack.call_webhook(body), 2)
    [kept] = stack.peek(stack.resources.kept_callbacks_queue_url)
    monkeypatch.setenv("SUPPRESSIONS_TABLE", stack.resources.suppressions_table)
    webhook.reset()
    _fixed_clock(stack)

    ok(stack.call_webhook(kept["Body"]), 2)  # what nxwa webhooks replay does
    once = entries(stack)
    ok(stack.call_webhook(kept["Body"]), 2)
    stack.publish()

    assert entries(stack) == once
    assert [(item["reason"]["S"], item.get("expiration")) for item in once] == [
        ("undeliverable", {"N": str(int(NOW) + 30 * DAY)}),
        ("marketing_stopped", None),
    ]
    failures = [e["detail"]["status"] for e in stack.events() if e["detail"]["message_id"] == message_id]
    assert failures == ["failed"]  # the status itself: stored once, published once


def test_a_replayed_opt_in_removes_once_and_then_finds_nothing(stack: Stack, store: SuppressionStore) -> None:
    ok(stack.call_webhook(text("STOP")))
    body = json.dumps(text("START", event_id="in-2"))

    ok(stack.call_webhook(body))
    ok(stack.call_webhook(body))

    assert entries(stack) == []


# --- end to end: the simulator's callbacks ---------------------------------------------------------------------------


def test_a_simulated_send_whose_callbacks_create_the_entries(stack: Stack) -> None:
    """The simulator posts, over HTTP, to the webhook behind the local API: a 131026 for one recipient and a click
    on Meta's ``Stop promotions`` button for a marketing template's reader."""
    import webhook
    from local_stack.emulators import ApiServer, Invoker
    from nxcloud_simulator import STOP_PROMOTIONS

    from .conftest import WEBHOOK_TOKEN

    undeliverable, reader = "8613800000001", "8613800000002"
    stack.simulator.add_outcome(to=undeliverable, final="failed", code=131026, after_sent=True)
    stack.simulator.add_button(template="spring_sale", buttons=[dict(STOP_PROMOTIONS)], click="Stop promotions")
    api = ApiServer(Invoker(), webhook=Invoker(webhook.lambda_handler, timeout=10)).start()
    try:
        stack.simulator.set_webhook_url(api.webhook_url + WEBHOOK_TOKEN)
        store = _fixed_clock(stack)
        stack.enqueue(message(to=undeliverable))
        promo = message(to=reader)
        promo["template"]["name"] = "spring_sale"
        stack.enqueue(promo)
        while stack.queue_depth():
            stack.run_batch()
        assert stack.simulator.drain(30)
    finally:
        api.stop()

    gone, opted_out = store.get(BUSINESS, undeliverable), store.get(BUSINESS, reader)
    assert gone is not None and opted_out is not None
    assert (gone.scope, gone.reason, gone.expiration) == (Scope.ALL, Reason.UNDELIVERABLE, int(NOW) + 30 * DAY)
    assert (opted_out.scope, opted_out.reason, opted_out.source) == (
        Scope.MARKETING,
        Reason.OPTED_OUT,
        "Stop promotions",
    )
    assert len(entries(stack)) == 2
