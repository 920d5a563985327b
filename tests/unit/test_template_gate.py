"""The template gate the delivery calls: what each mode does with a message that fits or does not, and failing open
(counted, logged once per account) when the catalogue cannot be had. The catalogue is the real one, fetched from the
simulator; the delivery itself, end to end, is tests/integration/test_template_check.py."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import observability
from nxcloud_simulator import NXCloudSimulator
from nxcloud_wa.catalogue import TemplateCatalogue
from nxcloud_wa.config import TemplateCheckMode
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.models import Defaults, SendRequest, parse_message
from nxcloud_wa.phone import mask_phone
from nxcloud_wa.template_client import TemplateClient
from template_gate import SKIPPED_METRIC, WARNINGS_METRIC, TemplateGate
from tests.page_templates import ORDER_UPDATE, TEN_BTN4

APPKEY, PHONE = "app1", "8618512348399"
DEFAULTS = Defaults(tenant_id=1, appkey=APPKEY, business_phone=PHONE)
CREDENTIALS = Credentials("AK", "SK")


def request(name: str = "order_update", body_count: int = 3, **top: Any) -> SendRequest:
    components: list[dict[str, Any]] = [
        {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x.example/a.jpg"}}]},
        {"type": "button", "sub_type": "URL", "index": 0, "parameters": [{"type": "text", "text": "42"}]},
    ]
    if body_count:
        components.append({"type": "body", "parameters": [{"type": "text", "text": "x"}] * body_count})
    if name == "ten_btn4":
        components = [
            {
                "type": "button",
                "sub_type": "COPY_CODE",
                "index": 3,
                "parameters": [{"type": "coupon_code", "coupon_code": "1"}],
            }
        ]
    template = {"name": name, "language": {"code": "en_US"}, "components": components}
    return parse_message({"to": "8613800000001", "template": template, **top})


@pytest.fixture
def sim(make_simulator: Callable[..., NXCloudSimulator]) -> NXCloudSimulator:
    return make_simulator(templates={(APPKEY, PHONE): [ORDER_UPDATE, TEN_BTN4]})


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(observability.logger.registered_formatter)
    observability.logger.addHandler(handler)
    observability.metrics.clear_metrics()
    try:
        yield buffer
    finally:
        observability.logger.removeHandler(handler)
        observability.metrics.clear_metrics()


def gate(url: str, mode: TemplateCheckMode = TemplateCheckMode.ENFORCE) -> TemplateGate:
    return TemplateGate(TemplateCatalogue(TemplateClient(url), ttl=600), mode)


def counted(name: str) -> int:
    metric = observability.metrics.metric_set.get(name)
    return int(sum(metric["Value"])) if metric else 0


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_enforce_refuses_what_does_not_fit_and_passes_what_does(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    answers = gate(sim.url).refusals(
        [(request(), "k1"), (request(body_count=2), "k2"), (request("order_updte"), "k3")], DEFAULTS, CREDENTIALS
    )

    assert answers[0] is None
    assert answers[1] is not None and answers[1].kind == "body_parameters"
    assert str(answers[1]) == "template order_update (en_US) takes 3 body parameters, got 2"
    assert answers[2] is not None and answers[2].kind == "template_not_found"
    assert len(sim.template_requests) == 1  # one listing for the account; the miss was listed a moment ago
    assert (counted(SKIPPED_METRIC), counted(WARNINGS_METRIC)) == (0, 0)


def test_warn_sends_it_and_says_what_is_wrong(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    answers = gate(sim.url, TemplateCheckMode.WARN).refusals([(request(body_count=2), "k2")], DEFAULTS, CREDENTIALS)

    assert answers == [None]
    assert counted(WARNINGS_METRIC) == 1
    (line,) = [entry for entry in lines(logs) if entry.get("template_check") == "warn"]
    assert line["error_code"] == "body_parameters"
    assert line["error_message"] == "template order_update (en_US) takes 3 body parameters, got 2"
    assert (line["to"], line["idempotency_key"]) == (mask_phone("8613800000001"), "k2")


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "http_status", "status": 503},
        {"kind": "code", "code": 1003},
        {"kind": "code", "code": 9006},
        {"kind": "drop"},
        {"kind": "garbage"},
    ],
)
def test_an_unavailable_catalogue_lets_every_message_through_counted_and_logged_once(
    sim: NXCloudSimulator, logs: io.StringIO, fault: dict[str, Any]
) -> None:
    sim.add_fault(endpoint="getTemplate", **fault)
    messages = [(request(), "k1"), (request(body_count=2), "k2"), (request("nothing_like_it"), "k3")]

    answers = gate(sim.url).refusals(messages, DEFAULTS, CREDENTIALS)

    assert answers == [None, None, None]  # fail open on the catalogue: even the mismatched ones go ahead
    assert counted(SKIPPED_METRIC) == 3
    (line,) = [entry for entry in lines(logs) if entry.get("template_check") == "skipped"]
    assert line["level"] == "WARNING"
    assert line["appkey"] == APPKEY and line["business_phone"] == mask_phone(PHONE)
    assert line["reason"]
    assert PHONE not in json.dumps(line) and "SK" not in line["reason"]


def test_nobody_at_the_template_url_is_failing_open_too(logs: io.StringIO) -> None:
    answers = gate("http://127.0.0.1:9").refusals([(request(body_count=1), None)], DEFAULTS, CREDENTIALS)

    assert answers == [None]
    assert counted(SKIPPED_METRIC) == 1


def test_a_fault_in_the_check_itself_fails_open(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    broken = gate(sim.url)
    broken.catalogue.client.fetch = None  # type: ignore[assignment,method-assign]  # calling it raises TypeError

    assert broken.refusals([(request(body_count=1), None)], DEFAULTS, CREDENTIALS) == [None]
    assert counted(SKIPPED_METRIC) == 1
    assert any(entry.get("reason") == "TypeError" for entry in lines(logs))


def test_each_account_is_checked_against_its_own_templates(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    sim.set_templates("other", PHONE, [TEN_BTN4])
    answers = gate(sim.url).refusals(
        [(request("ten_btn4"), None), (request(appkey="other"), None), (request("ten_btn4", appkey="other"), None)],
        DEFAULTS,
        CREDENTIALS,
    )

    assert answers[0] is None and answers[2] is None
    assert answers[1] is not None and answers[1].kind == "template_not_found"
    assert sorted(r.body["appkey"] for r in sim.template_requests if r.body) == [APPKEY, "other"]


def test_a_message_without_an_account_is_left_to_the_send(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    answers = gate(sim.url).refusals([(request(body_count=2), None)], Defaults(), CREDENTIALS)

    assert answers == [None]  # to_upstream refuses it as invalid (no appkey, no business number)
    assert sim.template_requests == []
    assert counted(SKIPPED_METRIC) == 0


def test_a_fault_in_the_rules_fails_open_too(
    sim: NXCloudSimulator, logs: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    import template_gate

    def broken(*_: object) -> list[object]:
        raise KeyError("a bug")

    monkeypatch.setattr(template_gate, "check", broken)

    assert gate(sim.url).refusals([(request(body_count=2), None)], DEFAULTS, CREDENTIALS) == [None]
    assert counted(SKIPPED_METRIC) == 1


def test_off_refuses_nothing_even_when_given_a_gate(sim: NXCloudSimulator, logs: io.StringIO) -> None:
    assert gate(sim.url, TemplateCheckMode.OFF).refusals([(request(body_count=2), None)], DEFAULTS, CREDENTIALS) == [
        None
    ]
    assert counted(WARNINGS_METRIC) == 0
