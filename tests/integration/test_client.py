"""``NXCloudClient`` and ``Sender`` against the NXCloud simulator, over real HTTP on 127.0.0.1.

Timeouts are short and backoff tiny so the file runs in a few seconds; every resend decision is checked from what
the simulator actually received (how many requests, which ts and sign, whether the message was accepted).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

from nxcloud_simulator import NXCloudSimulator, RequestRecord
from nxcloud_wa.client import IDLE_RECYCLE_SECONDS, NXCloudClient, SendResult, encode_body
from nxcloud_wa.config import NXCloudSettings
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.error_codes import NXCLOUD_CODES, ErrorClass
from nxcloud_wa.exceptions import (
    AuthError,
    PermanentSendError,
    RetryableSendError,
    SendError,
    ThrottledError,
    UnknownOutcomeError,
)
from nxcloud_wa.models import parse_message
from nxcloud_wa.sender import Sender
from tests.upstream import TO, independent_sign, upstream_body

CREDENTIALS = Credentials("AK", "SK")
READ_TIMEOUT = 0.3
BACKOFF = 0.002


class Recorder:
    """A clock and a sleep that count their calls: one clock call per attempt, one sleep between attempts."""

    def __init__(self) -> None:
        self.clock_calls = 0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        self.clock_calls += 1
        return time.time()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        time.sleep(seconds)


def make_client(base_url: str, recorder: Recorder | None = None, **overrides: Any) -> NXCloudClient:
    recorder = recorder or Recorder()
    options: dict[str, Any] = {
        "connect_timeout": 0.5,
        "read_timeout": READ_TIMEOUT,
        "max_attempts": 3,
        "backoff": BACKOFF,
        "clock": recorder.clock,
        "sleep": recorder.sleep,
    }
    return NXCloudClient(base_url, **(options | overrides))


def md5_sign(record: RequestRecord, secret: str) -> str:
    """The signature NXCloud expects for this record, computed here without ``nxcloud_wa.signing``."""
    return independent_sign(record.headers, record.body_text, secret)


def expected_exception(code: int) -> type[SendError]:
    info = NXCLOUD_CODES[code]
    if info.auth:
        return AuthError
    return PermanentSendError if info.error_class is ErrorClass.PERMANENT else RetryableSendError


def free_port() -> int:
    """A port nothing listens on: bound to find it, then released without ever listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- success -----------------------------------------------------------------------------------------------------


def test_success_returns_the_message_id_and_trace_id(simulator: NXCloudSimulator) -> None:
    body = upstream_body()

    result = make_client(simulator.url).send(body, CREDENTIALS)

    [record] = simulator.accepted
    assert result == SendResult(record.message_id or "", record.trace_id)
    assert len(result.message_id) == 27
    assert record.body_text == encode_body(body)
    assert record.headers["sign"] == md5_sign(record, "SK")


def test_non_ascii_text_survives_byte_for_byte_and_the_signature_verifies(simulator: NXCloudSimulator) -> None:
    texts = ["您好,李先生", "مرحبا بك يا أحمد", "🎉 order #42 ✅ 👍🏽", 'quote " backslash \\ tab \t end']
    components = [{"type": "body", "parameters": [{"type": "text", "text": text} for text in texts]}]
    template = {"name": "多语言_promo", "language": {"code": "zh_CN", "policy": "deterministic"}}
    body = upstream_body(template=template | {"components": components})

    make_client(simulator.url).send(body, CREDENTIALS)

    [record] = simulator.accepted
    assert record.body == body
    assert record.body_text == encode_body(body)
    for text in texts[:3]:
        assert text in (record.body_text or "")  # sent as UTF-8, not \\u-escaped
    assert record.headers["sign"] == md5_sign(record, "SK")


def test_one_pooled_connection_serves_several_sends(simulator: NXCloudSimulator) -> None:
    client = make_client(simulator.url)

    for _ in range(5):
        client.send(upstream_body(), CREDENTIALS)

    assert len(simulator.accepted) == 5
    assert len({record.client for record in simulator.requests}) == 1
    assert client.pool.connection_from_url(client.url).num_connections == 1


def test_a_connection_idle_too_long_is_not_reused(simulator: NXCloudSimulator) -> None:
    client = make_client(simulator.url)
    client.send(upstream_body(), CREDENTIALS)
    client._last_used -= IDLE_RECYCLE_SECONDS + 1  # as after a frozen Lambda's pause
    client.send(upstream_body(), CREDENTIALS)
    client.send(upstream_body(), CREDENTIALS)

    ports = [record.client for record in simulator.requests]
    assert ports[0] != ports[1]
    assert ports[1] == ports[2]


# --- NXCloud codes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(NXCLOUD_CODES))
def test_every_nxcloud_code_maps_to_its_exception(simulator: NXCloudSimulator, code: int) -> None:
    simulator.add_fault(kind="code", code=code)

    with pytest.raises(SendError) as caught:
        make_client(simulator.url).send(upstream_body(), CREDENTIALS)

    error = caught.value
    assert type(error) is expected_exception(code)
    assert error.error_class is NXCLOUD_CODES[code].error_class
    assert error.code == code
    assert NXCLOUD_CODES[code].message in error.message
    [record] = simulator.requests  # an answered code is never resent by the client
    assert error.trace_id == record.trace_id
    assert error.trace_id is not None and len(error.trace_id) == 32


def test_the_simulators_own_checks_reach_the_client_as_codes(simulator: NXCloudSimulator) -> None:
    client = make_client(simulator.url)

    with pytest.raises(AuthError) as wrong_secret:
        client.send(upstream_body(), Credentials("AK", "not-SK"))
    with pytest.raises(PermanentSendError) as no_recipient:
        client.send({k: v for k, v in upstream_body().items() if k != "to"}, CREDENTIALS)

    assert (wrong_secret.value.code, no_recipient.value.code) == (1003, 21061)
    assert [record.code for record in simulator.requests] == [1003, 21061]


def test_an_unknown_code_is_retryable_and_not_resent(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="code", code=98765, message="something new")

    with pytest.raises(RetryableSendError) as caught:
        make_client(simulator.url).send(upstream_body(), CREDENTIALS)

    assert type(caught.value) is RetryableSendError
    assert caught.value.code == 98765
    assert "something new" in caught.value.message
    assert len(simulator.requests) == 1


# --- HTTP statuses -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_type"), [(500, RetryableSendError), (502, RetryableSendError), (400, PermanentSendError)]
)
def test_http_errors_are_classified_and_not_resent(
    simulator: NXCloudSimulator, status: int, error_type: type[SendError]
) -> None:
    simulator.add_fault(kind="http_status", status=status)
    recorder = Recorder()

    with pytest.raises(SendError) as caught:
        make_client(simulator.url, recorder).send(upstream_body(), CREDENTIALS)

    assert type(caught.value) is error_type
    assert (caught.value.http_status, caught.value.reason) == (status, f"http_{status}")
    assert len(simulator.requests) == 1
    assert recorder.sleeps == []


def test_unavailability_is_retried_with_a_fresh_ts_and_signature(simulator: NXCloudSimulator) -> None:
    status = 503
    simulator.add_fault(kind="http_status", status=status, retry_after="1", times=1)
    recorder = Recorder()

    result = make_client(simulator.url, recorder).send(upstream_body(), CREDENTIALS)

    first, second = simulator.requests
    assert (first.http_status, second.http_status) == (status, 200)
    assert result.message_id == second.message_id
    assert int(second.headers["ts"]) > int(first.headers["ts"])
    assert second.headers["sign"] != first.headers["sign"]
    assert all(record.headers["sign"] == md5_sign(record, "SK") for record in (first, second))
    assert first.body_text == second.body_text
    assert recorder.sleeps == [BACKOFF]


def test_unavailability_gives_up_after_max_attempts(simulator: NXCloudSimulator) -> None:
    status = 503
    simulator.add_fault(kind="http_status", status=status)
    recorder = Recorder()

    with pytest.raises(RetryableSendError) as caught:
        make_client(simulator.url, recorder, max_attempts=4).send(upstream_body(), CREDENTIALS)

    assert (caught.value.reason, caught.value.http_status) == (f"http_{status}", status)
    assert len(simulator.requests) == 4
    assert len({record.headers["ts"] for record in simulator.requests}) == 4
    assert len({record.headers["sign"] for record in simulator.requests}) == 4
    assert simulator.accepted == []
    assert recorder.sleeps == [BACKOFF, BACKOFF * 2, BACKOFF * 4]


@pytest.mark.parametrize(("retry_after", "seconds"), [("3", 3.0), (None, None)])
def test_a_throttle_is_not_resent_it_is_raised_with_its_retry_after(
    simulator: NXCloudSimulator, retry_after: str | None, seconds: float | None
) -> None:
    """A 429 resent at once would spend the business number's rate again: the delivery delays the message instead."""
    simulator.add_fault(kind="http_status", status=429, retry_after=retry_after)
    recorder = Recorder()

    with pytest.raises(ThrottledError) as caught:
        make_client(simulator.url, recorder, max_attempts=4).send(upstream_body(), CREDENTIALS)

    assert (caught.value.reason, caught.value.error_code, caught.value.retry_after) == (
        "throttled",
        "http_429",
        seconds,
    )
    assert len(simulator.requests) == 1
    assert recorder.sleeps == []


def test_metas_rate_code_in_nxclouds_answer_is_a_throttle(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="code", code=22141, message="(#130429) Rate limit hit")

    with pytest.raises(ThrottledError) as caught:
        make_client(simulator.url, Recorder()).send(upstream_body(), CREDENTIALS)

    assert (caught.value.error_code, caught.value.code) == ("130429", 22141)
    assert len(simulator.requests) == 1


def test_connection_refused_is_retried_then_retryable() -> None:
    recorder = Recorder()

    with pytest.raises(RetryableSendError) as caught:
        make_client(f"http://127.0.0.1:{free_port()}", recorder).send(upstream_body(), CREDENTIALS)

    assert type(caught.value) is RetryableSendError
    assert caught.value.reason == "connect_error"
    assert recorder.clock_calls == 3
    assert len(recorder.sleeps) == 2


# --- unknown outcomes: sent at most once -------------------------------------------------------------------------


def test_read_timeout_after_accept_is_an_unknown_outcome_sent_once(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="read_timeout_after_accept", hang=30)
    recorder = Recorder()
    started = time.monotonic()

    with pytest.raises(UnknownOutcomeError) as caught:
        make_client(simulator.url, recorder).send(upstream_body(), CREDENTIALS)

    assert caught.value.reason == "read_timeout"
    assert READ_TIMEOUT <= time.monotonic() - started < READ_TIMEOUT + 1
    assert simulator.accepted_count_for(to=TO) == 1
    assert len(simulator.requests) == 1
    assert recorder.sleeps == []


def test_latency_beyond_the_read_timeout_is_an_unknown_outcome(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="latency", seconds=READ_TIMEOUT + 0.5, times=1)
    client = make_client(simulator.url)

    with pytest.raises(UnknownOutcomeError):
        client.send(upstream_body(), CREDENTIALS)

    assert simulator.accepted_count_for(to=TO) == 1
    assert len(simulator.requests) == 1


def test_latency_within_the_read_timeout_is_fine(simulator: NXCloudSimulator) -> None:
    simulator.add_fault(kind="latency", seconds=READ_TIMEOUT / 3)

    result = make_client(simulator.url).send(upstream_body(), CREDENTIALS)

    assert result.message_id == simulator.accepted[0].message_id


@pytest.mark.parametrize(
    ("kind", "reason", "accepted"), [("drop", "connection_dropped", 0), ("garbage", "malformed_response", 1)]
)
def test_lost_or_garbled_answers_are_unknown_outcomes_not_resent(
    simulator: NXCloudSimulator, kind: str, reason: str, accepted: int
) -> None:
    simulator.add_fault(kind=kind)
    recorder = Recorder()

    with pytest.raises(UnknownOutcomeError) as caught:
        make_client(simulator.url, recorder).send(upstream_body(), CREDENTIALS)

    assert caught.value.reason == reason
    assert len(simulator.requests) == 1
    assert len(simulator.accepted) == accepted
    assert recorder.sleeps == []


@pytest.mark.parametrize("kind", ["drop", "read_timeout_after_accept", "garbage"])
def test_the_client_recovers_after_a_broken_exchange(simulator: NXCloudSimulator, kind: str) -> None:
    client = make_client(simulator.url)
    client.send(upstream_body(), CREDENTIALS)  # a pooled connection now exists
    simulator.add_fault(kind=kind, hang=30, times=1)

    with pytest.raises(UnknownOutcomeError):
        client.send(upstream_body(), CREDENTIALS)
    result = client.send(upstream_body(), CREDENTIALS)

    assert result.message_id == simulator.accepted[-1].message_id
    assert len(simulator.requests) == 3


# --- Sender: credential refresh ----------------------------------------------------------------------------------


class Loader:
    """A credentials loader (``load_credentials``' signature) that hands out secrets in turn and records its calls."""

    def __init__(self, secrets: Callable[[int], str]) -> None:
        self.secrets = secrets
        self.calls: list[tuple[str, int, bool]] = []

    def __call__(self, secret_id: str, *, max_age: int, refresh: bool = False) -> Credentials:
        self.calls.append((secret_id, max_age, refresh))
        return Credentials("AK", self.secrets(len(self.calls)))


def make_sender(simulator: NXCloudSimulator, loader: Loader) -> Sender:
    settings = NXCloudSettings(
        secret_id="nxcloud/test", base_url=simulator.url, read_timeout=READ_TIMEOUT, max_attempts=2
    )
    return Sender(settings, client=make_client(simulator.url, max_attempts=2), loader=loader)


def sender_message() -> Any:
    return parse_message(
        {
            "tenant_id": 1,
            "appkey": "pem28kje",
            "business_phone": "8613800138000",
            "to": TO,
            "template": {"name": "order_ready", "language": {"code": "en_US"}},
        }
    )


def test_sender_refreshes_rotated_credentials_once_and_succeeds(simulator: NXCloudSimulator) -> None:
    loader = Loader(lambda call: "old-secret" if call == 1 else "SK")

    result = make_sender(simulator, loader).send(sender_message())

    assert [refresh for _, _, refresh in loader.calls] == [False, True]
    assert loader.calls[0][0] == "nxcloud/test"
    first, second = simulator.requests
    assert (first.code, second.code) == (1003, 0)
    assert result.message_id == second.message_id
    assert simulator.accepted_count_for(to=TO) == 1


def test_sender_lets_auth_errors_through_after_exactly_one_refresh(simulator: NXCloudSimulator) -> None:
    loader = Loader(lambda call: "always-wrong")

    with pytest.raises(AuthError) as caught:
        make_sender(simulator, loader).send(sender_message())

    assert caught.value.code == 1003
    assert [refresh for _, _, refresh in loader.calls] == [False, True]
    assert [record.code for record in simulator.requests] == [1003, 1003]
    assert simulator.accepted == []
