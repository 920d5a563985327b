"""The simulator's webhook: the callbacks it posts after accepted sends, to a tiny receiver on 127.0.0.1.

NXCloud's shapes are written out here from NXCloud's webhook page (status: ``statuses[]`` with ``id``, ``status``,
``timestamp`` as a string of Unix seconds, ``recipient_id``, ``conversation``, ``errors[{code, title}]`` on failed,
plus ``business_phone`` and ``messaging_product``; button click: ``contacts[]``, ``messages[]`` with ``button``,
``context`` and ``wa_ext`` as a JSON string), never taken from the simulator's code.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from nxcloud_simulator import ButtonRule, CallbackConfig, MessageTruth, NXCloudSimulator, OutcomeRule
from tests.tools.test_simulator import compact, request, send, signed_headers
from tests.upstream import TO
from tests.upstream import upstream_body as message

FIXED_NOW = 1_764_403_200.0
PHONE = "8613800138000"  # message()'s business_phone
HOOK_PATH = "/webhooks/nxcloud/0123456789abcdef0123456789abcdef"
BUTTONS = [{"payload": "confirm", "text": "Confirm"}, {"payload": "cancel", "text": "Cancel"}]
FAST = (0.0, 0.005)


# --- a tiny receiver ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Post:
    path: str
    content_type: str | None
    raw: bytes

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def statuses(self) -> list[str]:
        return [entry["status"] for entry in self.body.get("statuses", [])]


class Receiver:
    """Records every POST; answers the statuses queued in ``answers`` first, then ``default``; can hang."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.answers: list[int] = []
        self.default = 200
        self.hang = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._lock:
                    receiver.posts.append(Post(self.path, self.headers.get("Content-Type"), raw))
                    status = receiver.answers.pop(0) if receiver.answers else receiver.default
                if receiver.hang.is_set():
                    receiver.release.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{HOOK_PATH}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [post.body for post in self.posts]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def hooked(make_simulator: Any, receiver: Receiver) -> Callable[..., NXCloudSimulator]:
    """A simulator posting to ``receiver`` on a fixed clock, short delays; ``settings`` change CallbackConfig."""

    def make(seed: int = 0, **settings: Any) -> NXCloudSimulator:
        config = CallbackConfig(**({"delay": FAST} | settings))
        return make_simulator(clock=lambda: FIXED_NOW, seed=seed, webhook_url=receiver.url, callback_config=config)

    return make


def accept(sim: NXCloudSimulator, body: dict[str, Any] | None = None) -> str:
    """Send a valid message (signed for the fixed clock); return its message_id."""
    answer = send(sim, body, now=FIXED_NOW)
    assert answer.code == 0
    return answer.document["data"]["message_id"]


def drained(sim: NXCloudSimulator) -> NXCloudSimulator:
    assert sim.drain(5)
    return sim


def posts_for(receiver: Receiver, callback_id: str) -> list[Post]:
    """The POSTs about one message, in the order they arrived."""
    found = []
    for post in receiver.posts:
        body = post.body
        ids = [entry["id"] for entry in body.get("statuses", [])]
        ids += [event["context"]["id"] for event in body.get("messages", [])]
        if callback_id in ids:
            found.append(post)
    return found


# --- the default sequence, in NXCloud's shapes --------------------------------------------------------------------


def test_an_accepted_send_gets_sent_delivered_read_in_nxclouds_status_shape(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    message_id = accept(sim)
    drained(sim)

    assert [post.statuses for post in receiver.posts] == [["sent"], ["delivered"], ["read"]]
    conversation_ids = set()
    for post, (status, second) in zip(receiver.posts, [("sent", 1), ("delivered", 2), ("read", 3)], strict=True):
        assert post.path == HOOK_PATH
        assert post.content_type == "application/json"
        body = post.body
        assert set(body) == {"statuses", "business_phone", "messaging_product"}
        assert body["business_phone"] == PHONE
        assert body["messaging_product"] == "whatsapp"
        [entry] = body["statuses"]
        assert set(entry) == {"id", "status", "timestamp", "recipient_id", "conversation"}
        assert entry["id"] == message_id
        assert entry["status"] == status
        assert entry["timestamp"] == str(int(FIXED_NOW) + second)  # a string of Unix seconds, after the send
        assert entry["recipient_id"] == TO
        conversation = entry["conversation"]
        assert conversation["origin"] == {"type": "business_initiated"}
        assert isinstance(conversation["id"], str) and conversation["id"]
        conversation_ids.add(conversation["id"])
        if status == "sent":
            assert set(conversation) == {"id", "expiration_timestamp", "origin"}
            assert int(conversation["expiration_timestamp"]) > int(entry["timestamp"])
        else:
            assert set(conversation) == {"id", "origin"}
    assert len(conversation_ids) == 1  # one conversation for the message


def test_the_ledger_and_the_truth_of_the_default_sequence(hooked: Callable[..., NXCloudSimulator]) -> None:
    sim = hooked()
    message_id = accept(sim)
    drained(sim)

    records = sim.callbacks
    assert [(r.message_id, r.callback_id, r.kind, r.status) for r in records] == [
        (message_id, message_id, "status", status) for status in ("sent", "delivered", "read")
    ]
    assert [r.timestamp for r in records] == [str(int(FIXED_NOW) + n) for n in (1, 2, 3)]
    assert all(r.ok and r.http_status == 200 and r.error is None and r.attempts == 1 for r in records)
    assert [r.seq for r in records] == [1, 2, 3]
    assert len({r.delivery for r in records}) == 3
    counts = sim.callback_counts
    assert counts["messages"] == 1
    assert (counts["scheduled"], counts["posted"], counts["answered_2xx"], counts["failed"]) == (3, 3, 3, 0)
    assert (counts["pending"], counts["requests"], counts["retries"], counts["duplicates"]) == (0, 3, 0, 0)
    truth = sim.truth[message_id]
    assert (truth.final, truth.statuses, truth.errors, truth.buttons) == ("read", ["sent", "delivered", "read"], [], [])
    assert (truth.to, truth.template, truth.business_phone) == (TO, "order_ready", PHONE)
    assert truth.acknowledged == {"sent", "delivered", "read"}
    assert truth.acknowledged_final == "read"


def test_refused_and_unprocessed_sends_get_no_callbacks(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    send(sim, now=FIXED_NOW, secret="wrong")
    sim.add_fault(kind="code", code=22125, times=1)
    send(sim, now=FIXED_NOW)
    sim.add_fault(kind="http_status", status=503, times=1)
    send(sim, now=FIXED_NOW)

    assert drained(sim).callback_counts["scheduled"] == 0
    assert receiver.posts == [] and sim.truth == {}


def test_an_accepted_send_whose_answer_is_lost_or_garbled_still_gets_callbacks(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    sim.add_fault(kind="garbage", times=1)
    assert send(sim, now=FIXED_NOW).status == 200
    sim.add_fault(kind="read_timeout_after_accept", hang=30, times=1)
    with pytest.raises(TimeoutError):
        send(sim, now=FIXED_NOW, timeout=0.3)

    drained(sim)
    assert {r.message_id for r in sim.accepted} == set(sim.truth)
    assert len(receiver.posts) == 6


def test_without_a_webhook_url_nothing_is_posted_until_one_is_set(make_simulator: Any, receiver: Receiver) -> None:
    sim = make_simulator(callback_config=CallbackConfig(delay=FAST))
    send(sim)
    assert sim.drain(1) and sim.callback_counts["scheduled"] == 0

    sim.set_webhook_url(receiver.url)
    send(sim)

    assert drained(sim).callback_counts["answered_2xx"] == 3
    assert len(receiver.posts) == 3
    sim.set_webhook_url(None)
    send(sim)
    assert drained(sim).callback_counts["scheduled"] == 3


# --- outcomes: failed, deleted, never read --------------------------------------------------------------------------


def test_a_recipient_told_to_fail_gets_failed_with_the_whatsapp_error(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    other = "5511987654321"
    sim = hooked()
    sim.add_outcome(to=other, final="failed", code=131026, title="Message undeliverable")
    failed_id = accept(sim, message(to=other))
    ok_id = accept(sim)
    drained(sim)

    [post] = posts_for(receiver, failed_id)
    body = post.body
    assert set(body) == {"statuses", "business_phone", "messaging_product"}
    assert body["statuses"] == [
        {
            "id": failed_id,
            "status": "failed",
            "timestamp": str(int(FIXED_NOW) + 1),
            "recipient_id": other,
            "errors": [{"code": 131026, "title": "Message undeliverable"}],
        }
    ]
    assert [p.statuses for p in posts_for(receiver, ok_id)] == [["sent"], ["delivered"], ["read"]]
    truth = sim.truth[failed_id]
    assert (truth.final, truth.statuses, truth.errors) == (
        "failed",
        ["failed"],
        [{"code": 131026, "title": "Message undeliverable"}],
    )
    assert sim.truth[ok_id].final == "read"
    assert [rule.applied for rule in sim.outcomes] == [1]


def test_failed_after_sent_with_the_pages_470_example(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    title = "Message failed to send because more than 24 hours have passed since the customer last replied"
    sim.add_outcome(final="failed", code=470, title=title, after_sent=True, times=1)
    message_id = accept(sim)
    second_id = accept(sim)
    drained(sim)

    posts = posts_for(receiver, message_id)
    assert [p.statuses for p in posts] == [["sent"], ["failed"]]
    failed = posts[1].body["statuses"][0]
    assert failed["errors"] == [{"code": 470, "title": title}]
    assert "conversation" not in failed
    assert int(failed["timestamp"]) > int(posts[0].body["statuses"][0]["timestamp"])
    assert sim.truth[message_id].final == "failed"
    assert sim.truth[second_id].final == "read"  # times=1: the rule is used up


def test_deleted_after_read(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    sim = hooked()
    sim.add_outcome(template="order_ready", final="deleted")
    message_id = accept(sim)
    drained(sim)

    posts = posts_for(receiver, message_id)
    assert [p.statuses for p in posts] == [["sent"], ["delivered"], ["read"], ["deleted"]]
    deleted = posts[3].body["statuses"][0]
    assert (deleted["status"], deleted["type"], deleted["message"]) == ("deleted", "message", {"recipient_id": TO})
    assert deleted["timestamp"] == str(int(FIXED_NOW) + 4)
    assert "errors" not in deleted
    assert sim.truth[message_id].final == "read"  # deleted does not take precedence over read


@pytest.mark.parametrize(("final", "statuses"), [("sent", ["sent"]), ("delivered", ["sent", "delivered"])])
def test_a_message_can_stop_before_read(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver, final: str, statuses: list[str]
) -> None:
    sim = hooked()
    sim.add_outcome(final=final)
    message_id = accept(sim)
    drained(sim)

    assert [s for p in posts_for(receiver, message_id) for s in p.statuses] == statuses
    assert sim.truth[message_id].final == final


def test_outcome_probability_replays_with_the_same_seed(hooked: Callable[..., NXCloudSimulator]) -> None:
    finals = []
    for _ in range(2):
        sim = hooked(seed=5, delay=(0.0, 0.0))
        sim.add_outcome(final="failed", probability=0.5)
        ids = [accept(sim) for _ in range(16)]
        drained(sim)
        finals.append([sim.truth[i].final for i in ids])

    assert finals[0] == finals[1]
    assert set(finals[0]) == {"failed", "read"}


# --- button clicks ----------------------------------------------------------------------------------------------


def test_a_template_with_buttons_gets_a_click_after_read_in_nxclouds_shape(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    sim.add_button(template="order_ready", buttons=BUTTONS, name="David", template_id=1234567)
    body = message()
    message_id = accept(sim, body)
    drained(sim)

    posts = posts_for(receiver, message_id)
    assert [p.statuses for p in posts] == [["sent"], ["delivered"], ["read"], []]
    click = posts[3].body
    assert set(click) == {"contacts", "messages", "business_phone", "messaging_product"}
    assert click["contacts"] == [{"wa_id": TO, "profile": {"name": "David"}}]
    assert (click["business_phone"], click["messaging_product"]) == (PHONE, "whatsapp")
    [event] = click["messages"]
    assert set(event) == {"from", "id", "timestamp", "type", "button", "context", "wa_ext"}
    assert event["from"] == TO
    assert event["type"] == "button"
    assert event["button"] in BUTTONS
    assert event["context"] == {"from": PHONE, "id": message_id}
    assert event["id"].startswith("wamid.") and event["id"] != message_id
    read_at = posts[2].body["statuses"][0]["timestamp"]
    assert event["timestamp"] == str(int(read_at) + 1)
    assert isinstance(event["wa_ext"], str)
    wa_ext = json.loads(event["wa_ext"])
    assert wa_ext == {
        "templateId": 1234567,
        "templateName": "order_ready",
        "components": body["template"]["components"],
    }

    [record] = [r for r in sim.callbacks if r.kind == "button"]
    assert (record.status, record.event_id, record.callback_id) == (None, event["id"], message_id)
    truth = sim.truth[message_id]
    assert truth.buttons == [event["button"] | {"timestamp": event["timestamp"]}]
    assert (truth.final, truth.buttons_acknowledged) == ("read", 1)


def test_clicks_only_for_the_templates_told_and_only_after_read(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    sim.add_button(template="order_ready", buttons=BUTTONS)
    sim.add_outcome(to="5511987654321", final="failed")
    other = accept(sim, message(template={"name": "promo", "language": {"code": "en_US"}}))
    failed = accept(sim, message(to="5511987654321"))
    drained(sim)

    assert not [r for r in sim.callbacks if r.kind == "button"]
    assert len(posts_for(receiver, other)) == 3 and len(posts_for(receiver, failed)) == 1
    assert sim.buttons[0].applied == 0


def test_the_truths_final_status_is_the_projects_rule_not_the_last_one() -> None:
    truth = MessageTruth("m", "m", TO, "t", PHONE, [{"status": "read", "timestamp": "2"}], [], [])
    truth.timeline.insert(1, {"status": "sent", "timestamp": "1"})  # whatever the order of the list
    truth.acknowledged |= {"read", "sent"}

    assert (truth.final, truth.acknowledged_final) == ("read", "read")
    truth.acknowledged.add("failed")
    assert truth.acknowledged_final == "read"  # a failure does not take precedence over read
    truth.acknowledged.discard("read")
    assert truth.acknowledged_final == "failed"


def test_the_default_template_id_is_a_stable_number() -> None:
    first = ButtonRule(template="promo", buttons=BUTTONS).wa_template_id
    assert isinstance(first, int) and first == ButtonRule(template="promo", buttons=BUTTONS).wa_template_id
    assert first != ButtonRule(template="other", buttons=BUTTONS).wa_template_id


# --- ids --------------------------------------------------------------------------------------------------------


def test_wamid_mode_carries_an_id_unrelated_to_the_message_id(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked(ids="wamid")
    sim.add_button(template="order_ready", buttons=BUTTONS)
    message_id = accept(sim)
    drained(sim)

    status_ids = {entry["id"] for body in receiver.bodies() for entry in body.get("statuses", [])}
    [wamid] = status_ids
    assert re.fullmatch(r"wamid\.[A-Za-z0-9+/=]+", wamid)
    assert message_id not in wamid
    [click] = [body for body in receiver.bodies() if "messages" in body]
    assert click["messages"][0]["context"]["id"] == wamid
    assert click["messages"][0]["id"] != wamid
    assert sim.truth[message_id].callback_id == wamid
    assert {(r.message_id, r.callback_id) for r in sim.callbacks} == {(message_id, wamid)}


def test_each_message_gets_its_own_wamid(hooked: Callable[..., NXCloudSimulator]) -> None:
    sim = hooked(ids="wamid")
    ids = [accept(sim) for _ in range(3)]
    drained(sim)

    assert len({sim.truth[i].callback_id for i in ids}) == 3


# --- delivery imperfections ------------------------------------------------------------------------------------


def test_duplicates_post_the_same_body_again(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    sim = hooked(duplicate=1.0)
    message_id = accept(sim)
    drained(sim)

    raws = [post.raw for post in receiver.posts]
    assert len(raws) == 6 and len(set(raws)) == 3
    assert all(raws.count(raw) == 2 for raw in raws)
    posted = [(r.status, r.duplicate) for r in sim.callbacks]
    for status in ("sent", "delivered", "read"):  # each copy comes after its original
        assert posted.index((status, False)) < posted.index((status, True))
    assert sim.callback_counts["duplicates"] == 3
    assert sim.truth[message_id].statuses == ["sent", "delivered", "read"]


def test_reordering_posts_out_of_true_order_with_timestamps_in_true_order(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked(reorder=1.0)
    message_id = accept(sim)
    drained(sim)

    posted = [entry for body in receiver.bodies() for entry in body["statuses"]]
    assert [e["status"] for e in posted] != ["sent", "delivered", "read"]
    in_time_order = sorted(posted, key=lambda e: int(e["timestamp"]))
    assert [e["status"] for e in in_time_order] == ["sent", "delivered", "read"]
    truth = sim.truth[message_id]
    assert (truth.statuses, truth.final) == (["sent", "delivered", "read"], "read")
    assert truth.acknowledged_final == "read"


def test_batching_puts_a_messages_statuses_in_one_body(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked(batch=1.0)
    sim.add_button(template="order_ready", buttons=BUTTONS)
    message_id = accept(sim)
    drained(sim)

    bodies = receiver.bodies()
    assert len(bodies) == 2
    assert [e["status"] for e in bodies[0]["statuses"]] == ["sent", "delivered", "read"]
    assert {e["id"] for e in bodies[0]["statuses"]} == {message_id}
    assert set(bodies[0]) == {"statuses", "business_phone", "messaging_product"}
    assert "messages" in bodies[1]
    status_records = [r for r in sim.callbacks if r.kind == "status"]
    assert len({r.delivery for r in status_records}) == 1
    assert {r.batched for r in status_records} == {3}
    assert sim.callback_counts["requests"] == 2 and sim.callback_counts["posted"] == 4


def test_imperfections_replay_with_a_fixed_seed_and_never_change_the_truth(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    runs = []
    for _ in range(2):
        receiver.posts.clear()
        sim = hooked(seed=11, duplicate=0.3, reorder=0.5, batch=0.3)
        sim.add_outcome(final="failed", after_sent=True, probability=0.3)
        ids = [accept(sim) for _ in range(12)]
        drained(sim)
        runs.append([[post.statuses for post in posts_for(receiver, i)] for i in ids])
        for i in ids:  # whatever the posting did, the truth is what the outcome decided
            truth = sim.truth[i]
            assert truth.statuses in (["sent", "delivered", "read"], ["sent", "failed"])
            assert truth.final == ("failed" if "failed" in truth.statuses else "read")
            posted = {s for post in posts_for(receiver, i) for s in post.statuses}
            assert posted == set(truth.statuses)
            assert truth.acknowledged_final == truth.final

    assert runs[0] == runs[1]
    orders = [[s for post in per_message for s in post] for per_message in runs[0]]
    assert any(len(post) > 1 for per_message in runs[0] for post in per_message)  # some batched
    assert any(len(m) > len({tuple(post) for post in m}) for m in runs[0])  # some duplicated
    assert any(o not in (["sent", "delivered", "read"], ["sent", "failed"]) for o in orders)  # some reordered
    assert any(o == ["sent", "delivered", "read"] for o in orders)  # and some not touched at all


def test_many_concurrent_sends_lose_nothing(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    sim = hooked(duplicate=0.2, reorder=0.3, batch=0.2)
    sim.add_outcome(final="failed", probability=0.2)
    sim.add_button(template="order_ready", buttons=BUTTONS, probability=0.5)
    ids: list[str] = []

    def worker() -> None:
        for _ in range(25):
            ids.append(accept(sim))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drained(sim)

    counts = sim.callback_counts
    assert counts["messages"] == 100 == len(sim.truth)
    assert counts["posted"] == counts["scheduled"] == counts["answered_2xx"] == len(sim.callbacks)
    assert counts["requests"] == len(receiver.posts)
    statuses: dict[str, set[str]] = {}
    clicks: dict[str, int] = {}
    for body in receiver.bodies():
        for entry in body.get("statuses", []):
            statuses.setdefault(entry["id"], set()).add(entry["status"])
        for event in body.get("messages", []):
            clicks[event["context"]["id"]] = clicks.get(event["context"]["id"], 0) + 1
    for message_id in ids:
        truth = sim.truth[message_id]
        assert statuses[message_id] == set(truth.statuses)
        assert clicks.get(message_id, 0) >= len(truth.buttons)
        assert truth.acknowledged_final == truth.final


def test_delays_space_the_posts(hooked: Callable[..., NXCloudSimulator]) -> None:
    sim = hooked(delay=(0.05, 0.05))
    started = time.monotonic()
    accept(sim)
    drained(sim)

    assert time.monotonic() - started >= 0.15
    times = [r.posted_at for r in sim.callbacks]
    assert all(later - earlier >= 0.04 for earlier, later in itertools.pairwise(times))


# --- retries ------------------------------------------------------------------------------------------------------


def test_no_retries_by_default(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    receiver.default = 500
    sim = hooked()
    message_id = accept(sim)
    drained(sim)

    assert len(receiver.posts) == 3
    assert all(r.http_status == 500 and not r.ok and r.attempts == 1 for r in sim.callbacks)
    counts = sim.callback_counts
    assert (counts["posted"], counts["answered_2xx"], counts["failed"], counts["retries"]) == (3, 0, 3, 0)
    truth = sim.truth[message_id]
    assert (truth.final, truth.acknowledged, truth.acknowledged_final) == ("read", set(), None)


def test_retries_on_500_with_backoff(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    receiver.answers = [500, 503]
    sim = hooked(retries=3, backoff=0.02)
    message_id = accept(sim)
    drained(sim)

    assert [post.statuses for post in receiver.posts] == [["sent"], ["sent"], ["sent"], ["delivered"], ["read"]]
    first = sim.callbacks[0]
    assert (first.status, first.attempts, first.http_status, first.ok) == ("sent", 3, 200, True)
    counts = sim.callback_counts
    assert (counts["requests"], counts["retries"], counts["answered_2xx"], counts["failed"]) == (5, 2, 3, 0)
    assert sim.truth[message_id].acknowledged_final == "read"


def test_retries_give_up_after_n(hooked: Callable[..., NXCloudSimulator], receiver: Receiver) -> None:
    receiver.answers = [500, 500, 500]
    sim = hooked(retries=2, backoff=0.0)
    message_id = accept(sim)
    drained(sim)

    assert len(receiver.posts) == 5
    sent = sim.callbacks[0]
    assert (sent.status, sent.attempts, sent.http_status) == ("sent", 3, 500)
    assert sim.truth[message_id].acknowledged == {"delivered", "read"}


def test_a_receiver_that_is_not_listening_is_recorded_as_an_error(make_simulator: Any) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sim = make_simulator(webhook_url=f"http://127.0.0.1:{port}/hook", callback_config=CallbackConfig(delay=FAST))
    send(sim)
    drained(sim)

    records = sim.callbacks
    assert len(records) == 3
    assert all(r.http_status is None and r.error and "Connection" in r.error for r in records)
    assert sim.callback_counts["failed"] == 3


# --- drain, stop, reset ---------------------------------------------------------------------------------------------


def test_drain_waits_for_every_scheduled_callback(hooked: Callable[..., NXCloudSimulator]) -> None:
    sim = hooked(delay=(0.1, 0.1))
    accept(sim)

    assert sim.callback_counts["pending"] == 3  # counted the moment the send returned
    assert sim.drain(0.05) is False
    assert sim.drain(5) is True
    assert sim.callback_counts["pending"] == 0 and sim.callback_counts["posted"] == 3


def test_stop_cuts_a_hanging_post_and_leaves_no_threads(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    receiver.hang.set()
    sim = hooked(timeout=30)
    accept(sim)
    deadline = time.monotonic() + 5
    while not receiver.posts and time.monotonic() < deadline:
        time.sleep(0.005)
    assert receiver.posts  # the first POST is in flight, hanging

    started = time.monotonic()
    sim.stop()

    assert time.monotonic() - started < 1.0
    assert webhook_threads() == []
    assert sim.callback_counts["abandoned"] == 3 and sim.callback_counts["pending"] == 0
    assert sim.drain(0) is True


def test_reset_forgets_the_ledger_truth_rules_and_pending_callbacks(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    sim = hooked()
    sim.add_outcome(final="deleted")
    sim.add_button(template="order_ready", buttons=BUTTONS)
    accept(sim)
    drained(sim)
    sim.configure_callbacks(delay=(5.0, 5.0))
    accept(sim)

    sim.reset()

    assert (sim.callbacks, sim.truth, sim.outcomes, sim.buttons) == ([], {}, [], [])
    assert set(sim.callback_counts.values()) == {0}
    assert sim.drain(0)
    assert sim.callback_config.webhook_url == receiver.url  # settings are kept
    sim.configure_callbacks(delay=FAST)
    message_id = accept(sim)
    assert drained(sim).truth[message_id].statuses == ["sent", "delivered", "read"]


def webhook_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nxcloud-sim-webhook")]


def test_no_worker_threads_until_a_message_has_callbacks(make_simulator: Any, receiver: Receiver) -> None:
    sim = make_simulator(callback_config=CallbackConfig(delay=FAST))
    send(sim)
    assert webhook_threads() == []

    sim.set_webhook_url(receiver.url)
    send(sim)
    assert len(webhook_threads()) == 8
    drained(sim).stop()
    assert webhook_threads() == []


def test_a_stopped_simulator_can_start_again_and_post(hooked: Callable[..., NXCloudSimulator]) -> None:
    sim = hooked()
    sim.stop()
    sim.start()
    accept(sim)

    assert drained(sim).callback_counts["answered_2xx"] == 3


# --- settings and rules ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "ftp://127.0.0.1/hook",
        "http://127.0.0.1:notaport/hook",
        "127.0.0.1:3000/hook",
        42,
    ],
)
def test_only_loopback_http_urls_are_accepted(simulator: NXCloudSimulator, url: Any) -> None:
    with pytest.raises(ValueError, match="webhook_url"):
        simulator.set_webhook_url(url)
    with pytest.raises(ValueError, match="webhook_url"):
        NXCloudSimulator(webhook_url=url)
    assert simulator.callback_config.webhook_url is None


@pytest.mark.parametrize(
    "settings",
    [
        {"delay": (0.2, 0.1)},
        {"delay": (-1, 0)},
        {"delay": 0.1},
        {"duplicate": 1.5},
        {"reorder": -0.1},
        {"batch": True},
        {"ids": "uuid"},
        {"retries": -1},
        {"retries": 1.5},
        {"backoff": -1},
        {"timeout": 0},
        {"colour": "red"},
    ],
)
def test_invalid_callback_settings_are_refused(simulator: NXCloudSimulator, settings: dict[str, Any]) -> None:
    before = simulator.callback_config
    with pytest.raises(ValueError):
        simulator.configure_callbacks(**settings)
    assert simulator.callback_config == before


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (OutcomeRule, {"final": "accepted"}),
        (OutcomeRule, {"final": "failed", "code": "131026"}),
        (OutcomeRule, {"probability": 2}),
        (OutcomeRule, {"times": 0}),
        (OutcomeRule, {"after_sent": "yes"}),
        (ButtonRule, {"buttons": BUTTONS}),
        (ButtonRule, {"template": "t"}),
        (ButtonRule, {"template": "t", "buttons": [{"payload": "p"}]}),
        (ButtonRule, {"template": "t", "buttons": [{"payload": "", "text": "x"}]}),
        (ButtonRule, {"template": "t", "buttons": BUTTONS, "template_id": "1"}),
        (ButtonRule, {"template": "t", "buttons": BUTTONS, "click": "Confirm"}),  # a label, not a payload
    ],
)
def test_invalid_rules_are_refused(kind: type[OutcomeRule | ButtonRule], fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        kind(**fields)
    with pytest.raises(ValueError):
        kind.from_dict(fields)


# --- the audience's callbacks (docs/audience.md): WhatsApp's failures and Meta's opt-out button -----------------

WHATSAPP_TITLES = {
    131026: "Message undeliverable",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: (
        "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages on WhatsApp"
        " from your business."
    ),
}
"""WhatsApp's titles for the failures the audience rules act on (Meta's error-code reference)."""
OPT_OUT_BUTTON = {"payload": "Stop promotions", "text": "Stop promotions"}
"""Meta's marketing opt-out button as its click arrives: the label is the payload."""


@pytest.mark.parametrize("code", sorted(WHATSAPP_TITLES))
def test_recipients_told_to_fail_with_an_audience_code_get_it_with_whatsapps_title(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver, code: int
) -> None:
    other = "5511987654321"
    sim = hooked()
    sim.add_outcome(to=other, final="failed", code=code, after_sent=True)
    failed_id = accept(sim, message(to=other))
    ok_id = accept(sim)
    drained(sim)

    posts = posts_for(receiver, failed_id)
    assert [p.statuses for p in posts] == [["sent"], ["failed"]]
    [failed] = posts[1].body["statuses"]
    assert (failed["recipient_id"], failed["errors"]) == (other, [{"code": code, "title": WHATSAPP_TITLES[code]}])
    assert sim.truth[ok_id].final == "read"


def test_a_code_without_a_known_title_keeps_the_default_one() -> None:
    assert OutcomeRule(code=131047).title == "Message undeliverable"
    assert OutcomeRule(code=131050, title="custom").title == "custom"


def test_131049_once_then_delivered_for_the_retry(hooked: Callable[..., NXCloudSimulator]) -> None:
    other = "5511987654321"
    sim = hooked()
    sim.add_outcome(to=other, final="failed", code=131049, times=1)
    first = accept(sim, message(to=other))
    retry = accept(sim, message(to=other))
    drained(sim)

    assert (sim.truth[first].final, sim.truth[first].errors[0]["code"]) == ("failed", 131049)
    assert sim.truth[retry].final == "read"


def test_a_template_told_to_have_the_opt_out_button_gets_stop_promotions_clicks(
    hooked: Callable[..., NXCloudSimulator], receiver: Receiver
) -> None:
    from nxcloud_simulator import STOP_PROMOTIONS

    assert dict(STOP_PROMOTIONS) == OPT_OUT_BUTTON
    sim = hooked()
    shop = {"payload": "shop", "text": "Shop now"}
    sim.add_button(template="order_ready", buttons=[shop, dict(STOP_PROMOTIONS)], click="Stop promotions")
    ids = [accept(sim, message(to=f"55119876543{n:02d}")) for n in range(6)]
    drained(sim)

    for message_id in ids:
        click = posts_for(receiver, message_id)[-1].body
        [event] = click["messages"]
        assert (event["type"], event["button"], event["context"]["id"]) == ("button", OPT_OUT_BUTTON, message_id)
        assert click["contacts"][0]["wa_id"] == event["from"]
    assert sim.buttons[0].applied == 6


def test_the_control_api_takes_the_audience_rules(simulator: NXCloudSimulator) -> None:
    status, outcome = control(simulator, "POST", "outcomes", {"to": TO, "final": "failed", "code": 131050})
    assert status == 201
    assert outcome["outcome"]["title"] == WHATSAPP_TITLES[131050]
    rule = {"template": "promo", "buttons": [OPT_OUT_BUTTON], "click": "Stop promotions"}
    status, button = control(simulator, "POST", "buttons", rule)
    assert (status, button["button"]["click"]) == (201, "Stop promotions")
    status, refused = control(simulator, "POST", "buttons", rule | {"click": "Unsubscribe"})
    assert status == 400
    assert "click must be the payload of one of the buttons" in refused["error"]


# --- control API ---------------------------------------------------------------------------------------------------


def control(sim: NXCloudSimulator, method: str, route: str, payload: Any = None) -> tuple[int, Any]:
    body = json.dumps(payload) if payload is not None else b""
    answer = request(sim, method, f"/__sim/{route}", body, headers={"Content-Type": "application/json"})
    return answer.status, answer.document


def test_control_api_configures_callbacks(simulator: NXCloudSimulator, receiver: Receiver) -> None:
    status, shown = control(simulator, "GET", "callbacks/config")
    assert status == 200
    assert shown["config"] | {"delay": None} == {
        "webhook_url": None,
        "delay": None,
        "duplicate": 0.0,
        "reorder": 0.0,
        "batch": 0.0,
        "ids": "message_id",
        "retries": 0,
        "backoff": 0.2,
        "timeout": 5.0,
    }

    status, changed = control(
        simulator, "POST", "callbacks/config", {"webhook_url": receiver.url, "delay": [0, 0.005], "ids": "wamid"}
    )
    assert status == 200
    assert (changed["config"]["webhook_url"], changed["config"]["delay"], changed["config"]["ids"]) == (
        receiver.url,
        [0.0, 0.005],
        "wamid",
    )
    for bad in ({"webhook_url": "http://10.1.2.3/"}, {"retries": "3"}, {"nope": 1}, [1]):
        status, answer = control(simulator, "POST", "callbacks/config", bad)
        assert status == 400 and answer["error"], bad
    assert simulator.callback_config.webhook_url == receiver.url


def test_control_api_rules_ledger_truth_drain_and_reset(simulator: NXCloudSimulator, receiver: Receiver) -> None:
    control(simulator, "POST", "callbacks/config", {"webhook_url": receiver.url, "delay": [0, 0.005]})
    status, created = control(simulator, "POST", "outcomes", {"to": TO, "final": "failed", "code": 131049})
    assert status == 201 and created["outcome"]["final"] == "failed" and created["outcome"]["id"] == 1
    status, button = control(
        simulator, "POST", "buttons", {"template": "order_ready", "buttons": BUTTONS, "probability": 1}
    )
    assert status == 201 and button["button"]["buttons"] == BUTTONS
    assert control(simulator, "POST", "outcomes", {"final": "lost"})[0] == 400
    assert control(simulator, "POST", "buttons", {"template": "t"})[0] == 400

    failed_id = send(simulator).document["data"]["message_id"]
    assert control(simulator, "DELETE", "outcomes/1") == (200, {"removed": 1})
    assert control(simulator, "DELETE", "outcomes/1")[0] == 404
    read_id = send(simulator).document["data"]["message_id"]
    status, drained_answer = control(simulator, "POST", "drain", {"timeout": 5})
    assert status == 200 and drained_answer["drained"] is True
    assert drained_answer["counts"]["answered_2xx"] == 5  # failed: 1; read with a click: 4

    status, listed = control(simulator, "GET", "callbacks")
    assert status == 200
    assert listed["counts"]["posted"] == 5
    row = next(r for r in listed["callbacks"] if r["message_id"] == failed_id)
    assert (row["kind"], row["status"], row["http_status"], row["ok"]) == ("status", "failed", 200, True)
    status, truth = control(simulator, "GET", "truth")
    assert status == 200
    assert truth["messages"][failed_id]["final"] == "failed"
    title = "This message was not delivered to maintain healthy ecosystem engagement."  # WhatsApp's, for 131049
    assert truth["messages"][failed_id]["errors"] == [{"code": 131049, "title": title}]
    assert truth["messages"][read_id]["statuses"] == ["sent", "delivered", "read"]
    assert truth["messages"][read_id]["buttons"][0]["payload"] in {"confirm", "cancel"}
    assert [r["applied"] for r in control(simulator, "GET", "buttons")[1]["buttons"]] == [1]
    assert control(simulator, "GET", "outcomes")[1] == {"outcomes": []}
    assert control(simulator, "DELETE", "buttons") == (200, {"cleared": 1})
    assert control(simulator, "POST", "drain", {"timeout": "soon"})[0] == 400

    assert request(simulator, "POST", "/__sim/reset").status == 200
    assert control(simulator, "GET", "truth")[1] == {"messages": {}}
    assert control(simulator, "GET", "callbacks")[1]["callbacks"] == []


# --- CLI --------------------------------------------------------------------------------------------------------


def _cli(*args: str) -> subprocess.Popen[str]:
    root = Path(__file__).resolve().parents[2]
    paths = [str(root / "tools"), str(root / "layers" / "core" / "python"), os.environ.get("PYTHONPATH", "")]
    return subprocess.Popen(
        [sys.executable, "-m", "nxcloud_simulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, paths))},
    )


def test_cli_webhook_url_flag_posts_callbacks(receiver: Receiver) -> None:
    process = _cli("--webhook-url", receiver.url)
    try:
        url = (process.stdout.readline() if process.stdout else "").strip()
        port = int(url.rsplit(":", 1)[1])
        text = compact(message())
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/saas/wa/send", body=text.encode(), headers=signed_headers(text))
        assert json.loads(connection.getresponse().read())["code"] == 0
        connection.request("POST", "/__sim/drain", body=b'{"timeout": 5}', headers={"Content-Type": "application/json"})
        assert json.loads(connection.getresponse().read())["drained"] is True
        connection.close()
        assert [post.statuses for post in receiver.posts] == [["sent"], ["delivered"], ["read"]]
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0


def test_cli_refuses_a_webhook_url_off_this_machine() -> None:
    process = _cli("--webhook-url", "http://192.0.2.1/hook")
    _, err = process.communicate(timeout=10)

    assert process.returncode == 2
    assert "loopback" in err
