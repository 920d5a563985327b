"""The NXCloud simulator, driven by hand-built HTTP requests.

Requests are signed here by an independent re-computation of NXCloud's rule (docs/nxcloud.md, "Signing") with
hashlib, not with ``nxcloud_wa.signing``: if both shared one mistake, the client's tests against the simulator would
pass while NXCloud refused every request.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nxcloud_simulator import Fault, FaultKind, NXCloudSimulator
from nxcloud_wa.error_codes import NXCLOUD_CODES
from tests.upstream import TO, independent_sign, upstream_body

FIXED_NOW = 1_700_000_000.0
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{27}$")
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


def compact(body: Any) -> str:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"))


def signed_headers(
    body_text: str,
    *,
    access_key: str = "AK",
    secret: str = "SK",
    ts: str | None = None,
    biz_type: str = "2",
    action: str = "mt",
    now: float | None = None,
) -> dict[str, str]:
    ts = ts if ts is not None else str(int((now if now is not None else time.time()) * 1000))
    headers = {"accessKey": access_key, "ts": ts, "bizType": biz_type, "action": action}
    return headers | {"sign": independent_sign(headers, body_text, secret), "Content-Type": "application/json"}


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.raw)

    @property
    def code(self) -> int:
        return self.document["code"]


def request(
    sim: NXCloudSimulator,
    method: str,
    path: str,
    body: bytes | str = b"",
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = 5.0,
) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=timeout)
    try:
        data = body.encode("utf-8") if isinstance(body, str) else body
        connection.request(method, path, body=data or None, headers=dict(headers or {}))
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def send(
    sim: NXCloudSimulator,
    body: Any = None,
    *,
    text: str | None = None,
    overrides: Mapping[str, str | None] | None = None,
    timeout: float = 5.0,
    **sign_args: Any,
) -> Answer:
    """POST a body (signed over exactly the text sent unless ``text`` differs); ``overrides`` set or drop headers."""
    signed_text = compact(upstream_body() if body is None else body)
    headers: dict[str, str] = signed_headers(signed_text, **sign_args)
    for name, value in (overrides or {}).items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    sent = signed_text if text is None else text
    return request(sim, "POST", "/saas/wa/send", sent, headers=headers, timeout=timeout)


def assert_refused(answer: Answer, code: int) -> None:
    assert answer.status == 200
    document = answer.document
    assert document["code"] == code
    assert document["message"] == NXCLOUD_CODES[code].message
    assert TRACE_ID.match(document["traceId"])
    assert document["data"] is None


# --- acceptance --------------------------------------------------------------------------------------------------


def test_accepts_a_correctly_signed_request_in_the_pages_response_shape(simulator: NXCloudSimulator) -> None:
    answer = send(simulator)

    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/json"
    document = answer.document
    assert set(document) == {"code", "message", "data", "traceId"}
    assert document["code"] == 0
    assert document["message"] == ""
    assert MESSAGE_ID.match(document["data"]["message_id"])
    assert TRACE_ID.match(document["traceId"])
    [record] = simulator.accepted
    assert record.message_id == document["data"]["message_id"]
    assert record.trace_id == document["traceId"]


def test_records_what_was_received_and_answered(simulator: NXCloudSimulator) -> None:
    body = upstream_body()
    first, second = send(simulator, body), send(simulator, upstream_body(tenant_id=...))

    records = simulator.requests
    assert [r.seq for r in records] == [1, 2]
    assert records[0].body_text == compact(body)
    assert records[0].body == body
    assert records[0].headers["accessKey"] == "AK"
    assert records[0].headers["sign"] == signed_headers(compact(body), ts=records[0].headers["ts"])["sign"]
    assert (records[0].http_status, records[0].code, records[0].accepted) == (200, 0, True)
    assert records[0].message_id == first.document["data"]["message_id"]
    assert (records[1].code, records[1].accepted, records[1].message_id) == (21058, False, None)
    assert records[1].trace_id == second.document["traceId"]
    assert records[0].to == TO and records[0].template == "order_ready"
    assert records[0].client[0] == "127.0.0.1" and records[0].client[1] > 0
    assert records[0].received_at <= records[1].received_at
    assert simulator.accepted == [records[0]]


def test_message_ids_are_unique_under_concurrent_sends(simulator: NXCloudSimulator) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            answer = send(simulator)
            with lock:
                ids.append(answer.document["data"]["message_id"])

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(ids) == 200
    assert len(set(ids)) == 200
    assert all(MESSAGE_ID.match(i) for i in ids)
    assert len(simulator.requests) == 200
    assert sorted(r.message_id for r in simulator.accepted) == sorted(ids)
    assert sorted(r.seq for r in simulator.requests) == list(range(1, 201))


def test_accepted_count_for_filters_by_recipient_and_template(simulator: NXCloudSimulator) -> None:
    other = "5511987654321"
    send(simulator)
    send(simulator)
    send(simulator, upstream_body(to=other))
    send(simulator, upstream_body(to=other, appkey=...))  # refused: not counted

    assert simulator.accepted_count_for(to=TO) == 2
    assert simulator.accepted_count_for(to=other) == 1
    assert simulator.accepted_count_for(template="order_ready") == 3
    assert simulator.accepted_count_for(to=other, template="nope") == 0
    assert simulator.accepted_count_for() == 3


def test_keeps_connections_alive(simulator: NXCloudSimulator) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", simulator.port, timeout=5)
    try:
        for _ in range(3):
            text = compact(upstream_body())
            connection.request("POST", "/saas/wa/send", body=text.encode(), headers=signed_headers(text))
            response = connection.getresponse()
            assert json.loads(response.read())["code"] == 0
    finally:
        connection.close()

    assert len({record.client for record in simulator.requests}) == 1


# --- auth checks (1001-1005) -------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["accessKey", "ts", "bizType", "action", "sign"])
def test_each_missing_header_is_1001(simulator: NXCloudSimulator, header: str) -> None:
    assert_refused(send(simulator, overrides={header: None}), 1001)
    assert simulator.accepted == []


@pytest.mark.parametrize("header", ["accessKey", "ts", "sign"])
def test_an_empty_header_counts_as_missing(simulator: NXCloudSimulator, header: str) -> None:
    assert_refused(send(simulator, overrides={header: ""}), 1001)


@pytest.mark.parametrize(("biz_type", "action"), [("1", "mt"), ("02", "mt"), ("2", "mo"), ("2", "MT")])
def test_wrong_biztype_or_action_is_1002_even_when_signed(
    simulator: NXCloudSimulator, biz_type: str, action: str
) -> None:
    assert_refused(send(simulator, biz_type=biz_type, action=action), 1002)


def test_ts_is_checked_against_the_injected_clock_with_60_s_tolerance(make_simulator: Any) -> None:
    sim = make_simulator(clock=lambda: FIXED_NOW)
    now_ms = int(FIXED_NOW * 1000)

    assert send(sim, ts=str(now_ms - 60_000)).code == 0
    assert send(sim, ts=str(now_ms + 60_000)).code == 0
    assert_refused(send(sim, ts=str(now_ms - 60_001)), 1004)
    assert_refused(send(sim, ts=str(now_ms + 60_001)), 1004)


def test_stale_ts_is_1004(simulator: NXCloudSimulator) -> None:
    assert_refused(send(simulator, now=time.time() - 61), 1004)


@pytest.mark.parametrize(
    "ts",
    [
        pytest.param(str(int(time.time())), id="seconds-not-ms"),
        pytest.param(f"{time.time() * 1000:.1f}", id="fractional"),
        pytest.param("abc", id="not-digits"),
        pytest.param("-1", id="negative"),
        pytest.param("9" * 5000, id="huge"),
    ],
)
def test_ts_that_is_not_ms_digits_is_1004(simulator: NXCloudSimulator, ts: str) -> None:
    assert_refused(send(simulator, ts=ts), 1004)


def test_unknown_access_key_is_1005(simulator: NXCloudSimulator) -> None:
    assert_refused(send(simulator, access_key="NOBODY", secret="SK"), 1005)


def test_wrong_secret_is_1003(simulator: NXCloudSimulator) -> None:
    assert_refused(send(simulator, secret="not-the-secret"), 1003)


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param(lambda body: json.dumps(body, ensure_ascii=False), id="spaces-after-separators"),
        pytest.param(lambda body: compact(body) + "\n", id="trailing-newline"),
        pytest.param(lambda body: json.dumps(body, separators=(",", ":")), id="non-ascii-escaped"),
        pytest.param(lambda body: compact(dict(reversed(body.items()))), id="other-key-order"),
    ],
)
def test_a_body_changed_after_signing_is_1003(simulator: NXCloudSimulator, sent: Any) -> None:
    body = upstream_body(template={"name": "t", "language": {"code": "zh_CN"}, "note": "你好"})
    text = sent(body)
    assert text != compact(body) and json.loads(text) == body

    assert_refused(send(simulator, body, text=text), 1003)


def test_a_secret_rotated_in_the_simulator_takes_effect(simulator: NXCloudSimulator) -> None:
    simulator.set_account("AK", "NEW")

    assert_refused(send(simulator, secret="SK"), 1003)
    assert send(simulator, secret="NEW").code == 0


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_wrong_content_type_is_1003(simulator: NXCloudSimulator, content_type: str | None) -> None:
    assert_refused(send(simulator, overrides={"Content-Type": content_type}), 1003)


def test_content_type_parameters_are_allowed(simulator: NXCloudSimulator) -> None:
    assert send(simulator, overrides={"Content-Type": "Application/JSON; charset=utf-8"}).code == 0


@pytest.mark.parametrize("text", ["[1,2]", '"text"', "not json", "{", ""])
def test_a_signed_body_that_is_not_a_json_object_is_1002(simulator: NXCloudSimulator, text: str) -> None:
    headers = signed_headers(text)
    assert_refused(request(simulator, "POST", "/saas/wa/send", text, headers=headers), 1002)


def test_a_body_that_is_not_utf8_is_1002(simulator: NXCloudSimulator) -> None:
    raw = compact(upstream_body(appkey="é")).encode("latin-1")
    headers = signed_headers(raw.decode("latin-1"))
    assert_refused(request(simulator, "POST", "/saas/wa/send", raw, headers=headers), 1002)


@pytest.mark.parametrize(
    ("sign_args", "overrides", "code"),
    [
        pytest.param({"biz_type": "1"}, {"sign": None}, 1001, id="missing-header-before-bizType"),
        pytest.param({"biz_type": "1", "ts": "1"}, {}, 1002, id="bizType-before-ts"),
        pytest.param({"ts": "1", "access_key": "NOBODY"}, {}, 1004, id="ts-before-accessKey"),
        pytest.param({"access_key": "NOBODY"}, {"Content-Type": "text/plain"}, 1005, id="accessKey-before-type"),
    ],
)
def test_auth_checks_run_in_the_documented_order(
    simulator: NXCloudSimulator, sign_args: dict[str, str], overrides: dict[str, str | None], code: int
) -> None:
    assert_refused(send(simulator, overrides=overrides, **sign_args), code)


def test_auth_is_checked_before_the_body(simulator: NXCloudSimulator) -> None:
    assert_refused(send(simulator, upstream_body(tenant_id=...), secret="wrong"), 1003)


# --- body checks (21058-21063 and the business codes) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "code"),
    [
        ("tenant_id", 21058),
        ("appkey", 21059),
        ("business_phone", 21060),
        ("to", 21061),
        ("type", 21062),
        ("template", 21063),
    ],
)
def test_each_missing_body_field_has_its_code(simulator: NXCloudSimulator, field: str, code: int) -> None:
    assert_refused(send(simulator, upstream_body(**{field: ...})), code)
    assert simulator.accepted == []


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        pytest.param({"tenant_id": "1"}, 21058, id="tenant_id-string"),
        pytest.param({"tenant_id": True}, 21058, id="tenant_id-bool"),
        pytest.param({"tenant_id": 1.5}, 21058, id="tenant_id-float"),
        pytest.param({"appkey": "  "}, 21059, id="appkey-blank"),
        pytest.param({"business_phone": 8613800138000}, 21060, id="business_phone-number"),
        pytest.param({"to": ""}, 21061, id="to-empty"),
        pytest.param({"type": "text"}, 21062, id="type-text"),
        pytest.param({"messaging_product": "sms"}, 21062, id="messaging_product"),
        pytest.param({"messaging_product": ...}, 21062, id="messaging_product-missing"),
        pytest.param({"recipient_type": "group"}, 21062, id="recipient_type"),
        pytest.param({"template": "order_ready"}, 21063, id="template-string"),
        pytest.param({"template": {"language": {"code": "en_US"}}}, 21063, id="template-without-name"),
        pytest.param({"business_phone": "86-138"}, 22123, id="business_phone-not-digits"),
        pytest.param({"to": "+8613800138001"}, 22090, id="to-not-digits"),
        pytest.param({"template": {"name": "t", "language": {"code": "xx"}}}, 22092, id="unknown-language"),
        pytest.param({"template": {"name": "t"}}, 22092, id="no-language"),
    ],
)
def test_wrong_body_values_have_their_codes(simulator: NXCloudSimulator, changes: dict[str, Any], code: int) -> None:
    assert_refused(send(simulator, upstream_body(**changes)), code)


def test_body_codes_follow_the_pages_order(simulator: NXCloudSimulator) -> None:
    assert_refused(send(simulator, upstream_body(tenant_id=..., to=...)), 21058)
    assert_refused(send(simulator, upstream_body(to=..., template=...)), 21061)


# --- HTTP-level behaviour ----------------------------------------------------------------------------------------


def test_unknown_paths_and_methods(simulator: NXCloudSimulator) -> None:
    assert request(simulator, "POST", "/saas/wa/other", "{}").status == 404
    answer = request(simulator, "GET", "/saas/wa/send")
    assert answer.status == 405
    assert answer.headers["Allow"] == "POST"
    assert simulator.requests == []


def test_oversized_and_chunked_bodies_are_refused_at_http_level(make_simulator: Any) -> None:
    sim = make_simulator(max_body_bytes=100)
    text = compact(upstream_body())
    assert request(sim, "POST", "/saas/wa/send", text, headers=signed_headers(text)).status == 413

    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        connection.request("POST", "/saas/wa/send", body=iter([b"{}"]), headers={"Transfer-Encoding": "chunked"})
        assert connection.getresponse().status == 411
    finally:
        connection.close()


# --- faults ------------------------------------------------------------------------------------------------------


def test_latency_delays_the_answer_and_processes_normally(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="latency", seconds=0.2)
    started = time.monotonic()
    answer = send(simulator)

    assert time.monotonic() - started >= 0.2
    assert answer.code == 0
    [record] = simulator.accepted
    assert record.latency == 0.2
    assert record.fault is None


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_http_status_answers_without_processing(simulator: NXCloudSimulator, status: int) -> None:
    fault = simulator.add_fault(kind="http_status", status=status, retry_after="2" if status == 429 else None)
    answer = send(simulator)

    assert answer.status == status
    assert answer.headers.get("Retry-After") == ("2" if status == 429 else None)
    with pytest.raises(ValueError):
        json.loads(answer.raw)
    assert simulator.accepted == []
    [record] = simulator.requests
    assert (record.http_status, record.code, record.fault) == (status, None, "http_status")
    assert fault.applied == 1


def test_times_limits_how_often_a_fault_applies(simulator: NXCloudSimulator) -> None:
    fault = simulator.add_fault(kind="http_status", status=503, times=2)

    statuses = [send(simulator).status for _ in range(4)]

    assert statuses == [503, 503, 200, 200]
    assert fault.applied == 2 and fault.exhausted
    assert len(simulator.accepted) == 2


def test_drop_closes_the_connection_without_an_answer(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="drop")

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        send(simulator)

    [record] = simulator.requests
    assert (record.fault, record.http_status, record.accepted) == ("drop", None, False)
    assert record.body == upstream_body()


def test_read_timeout_after_accept_accepts_then_never_answers(make_simulator: Any) -> None:
    sim = make_simulator()
    sim.add_fault(kind="read_timeout_after_accept", hang=30)

    with pytest.raises(TimeoutError):
        send(sim, timeout=0.3)

    [record] = sim.accepted
    assert MESSAGE_ID.match(record.message_id or "")
    assert (record.fault, record.http_status, record.code) == ("read_timeout_after_accept", None, 0)
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1.0


def test_read_timeout_after_accept_on_an_invalid_request_accepts_nothing(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="read_timeout_after_accept", hang=30)

    with pytest.raises(TimeoutError):
        send(simulator, secret="wrong", timeout=0.3)

    [record] = simulator.requests
    assert (record.accepted, record.code) == (False, 1003)


@pytest.mark.parametrize("code", [22090, 22125, 1003, -1, 21058])
def test_code_answers_an_nxcloud_code_without_processing(simulator: NXCloudSimulator, code: int) -> None:
    simulator.add_fault(kind="code", code=code)
    answer = send(simulator)

    assert_refused(answer, code)
    [record] = simulator.requests
    assert (record.code, record.fault, record.accepted) == (code, "code", False)
    assert record.trace_id == answer.document["traceId"]


def test_code_can_carry_its_own_message_and_an_unknown_code(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="code", code=22141, message="WhatsApp 发送失败: 131026", times=1)
    simulator.add_fault(kind="code", code=99999, times=1)

    assert send(simulator).document["message"] == "WhatsApp 发送失败: 131026"
    unknown = send(simulator).document
    assert (unknown["code"], unknown["message"]) == (99999, "")


def test_garbage_accepts_then_answers_non_json(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="garbage", body="<html>oops</html>")
    answer = send(simulator)

    assert answer.status == 200
    assert answer.raw == b"<html>oops</html>"
    [record] = simulator.accepted
    assert (record.fault, record.code) == ("garbage", 0)


def test_faults_match_by_recipient(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="code", code=22091, to="5511987654321")

    assert send(simulator).code == 0
    assert send(simulator, upstream_body(to="5511987654321")).code == 22091
    assert simulator.accepted_count_for(to="5511987654321") == 0


def test_faults_match_by_template_name(simulator: NXCloudSimulator) -> None:
    template = {"name": "promo", "language": {"code": "pt_BR"}}
    simulator.add_fault(kind="http_status", status=502, template="promo")

    assert send(simulator).status == 200
    assert send(simulator, upstream_body(template=template)).status == 502


def test_the_first_matching_answer_rule_wins_and_latency_adds_up(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="latency", seconds=0.05)
    simulator.add_fault(kind="code", code=22125)
    simulator.add_fault(kind="http_status", status=500)
    simulator.add_fault(kind="latency", seconds=0.05)

    answer = send(simulator)

    assert answer.code == 22125
    [record] = simulator.requests
    assert record.latency == pytest.approx(0.1)
    assert [rule.applied for rule in simulator.faults] == [1, 1, 0, 1]


def test_probabilistic_faults_replay_with_the_same_seed(make_simulator: Any) -> None:
    patterns = []
    for _ in range(2):
        sim = make_simulator(seed=42)
        sim.add_fault(kind="http_status", status=503, probability=0.5)
        patterns.append([send(sim).status for _ in range(20)])

    assert patterns[0] == patterns[1]
    assert 503 in patterns[0] and 200 in patterns[0]


def test_probability_zero_never_applies(simulator: NXCloudSimulator) -> None:
    fault = simulator.add_fault(Fault(FaultKind.DROP, probability=0.0))

    assert {send(simulator).status for _ in range(5)} == {200}
    assert fault.applied == 0


def test_clear_faults_and_reset(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="http_status", status=500)
    assert simulator.clear_faults() == 1
    assert send(simulator).code == 0
    simulator.add_fault(kind="drop")

    simulator.reset()

    assert simulator.requests == [] and simulator.faults == []
    assert send(simulator).code == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "explode"},
        {"kind": "drop", "probability": 1.5},
        {"kind": "drop", "times": 0},
        {"kind": "http_status", "status": 99},
        {"kind": "latency", "seconds": -1},
        {"kind": "code", "code": "22090"},
    ],
)
def test_invalid_fault_rules_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Fault(**fields)


def test_stop_is_quick_and_idempotent_with_an_idle_keep_alive_connection(make_simulator: Any) -> None:
    sim = make_simulator()
    connection = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    text = compact(upstream_body())
    connection.request("POST", "/saas/wa/send", body=text.encode(), headers=signed_headers(text))
    assert json.loads(connection.getresponse().read())["code"] == 0

    started = time.monotonic()
    sim.stop()
    sim.stop()

    assert time.monotonic() - started < 1.0
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        connection.request("POST", "/saas/wa/send", body=text.encode(), headers=signed_headers(text))
        connection.getresponse()
    connection.close()


# --- control API -------------------------------------------------------------------------------------------------


def control(sim: NXCloudSimulator, method: str, route: str, payload: Any = None) -> tuple[int, Any]:
    body = json.dumps(payload) if payload is not None else b""
    answer = request(sim, method, f"/__sim/{route}", body, headers={"Content-Type": "application/json"})
    return answer.status, answer.document


def test_control_api_adds_lists_and_removes_faults(simulator: NXCloudSimulator) -> None:
    status, created = control(simulator, "POST", "faults", {"kind": "http_status", "status": 503, "times": 1})
    assert status == 201
    fault_id = created["fault"]["id"]
    assert send(simulator).status == 503

    status, listed = control(simulator, "GET", "faults")
    assert status == 200
    assert [(f["id"], f["kind"], f["applied"]) for f in listed["faults"]] == [(fault_id, "http_status", 1)]

    assert control(simulator, "DELETE", f"faults/{fault_id}") == (200, {"removed": fault_id})
    assert control(simulator, "DELETE", f"faults/{fault_id}")[0] == 404
    control(simulator, "POST", "faults", {"kind": "drop"})
    assert control(simulator, "DELETE", "faults") == (200, {"cleared": 1})
    assert send(simulator).code == 0


def test_control_api_refuses_bad_rules(simulator: NXCloudSimulator) -> None:
    for payload in ({"kind": "drop", "colour": "red"}, {"status": 500}, {"kind": "nope"}, [1]):
        status, answer = control(simulator, "POST", "faults", payload)
        assert status == 400, payload
        assert answer["error"]
    assert simulator.faults == []
    assert control(simulator, "GET", "nothing")[0] == 404


def test_control_api_lists_requests_and_resets(simulator: NXCloudSimulator) -> None:
    accepted = send(simulator).document["data"]["message_id"]
    send(simulator, secret="wrong")

    status, listed = control(simulator, "GET", "requests")
    assert status == 200
    rows = listed["requests"]
    assert [(r["code"], r["accepted"], r["message_id"]) for r in rows] == [(0, True, accepted), (1003, False, None)]
    assert rows[0]["body"] == upstream_body()

    assert request(simulator, "POST", "/__sim/reset").status == 200  # no body, no Content-Length: as curl -X POST
    assert simulator.requests == []


# --- CLI ---------------------------------------------------------------------------------------------------------


def test_cli_serves_until_terminated() -> None:
    root = Path(__file__).resolve().parents[2]
    paths = [str(root / "tools"), str(root / "layers" / "core" / "python"), os.environ.get("PYTHONPATH", "")]
    process = subprocess.Popen(
        [sys.executable, "-m", "nxcloud_simulator", "--port", "0", "--access-key", "K1", "--access-secret", "S1"],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, paths))},
    )
    try:
        url = (process.stdout.readline() if process.stdout else "").strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        port = int(url.rsplit(":", 1)[1])
        text = compact(upstream_body())
        headers = signed_headers(text, access_key="K1", secret="S1")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        connection.request("POST", "/saas/wa/send", body=text.encode(), headers=headers)
        assert json.loads(connection.getresponse().read())["code"] == 0
        connection.close()
    finally:
        process.terminate()
        assert process.wait(timeout=5) == 0
