"""The simulator's rate per business number: a token bucket, refused as NXCloud would (HTTP 429, or a code quoting
Meta's 130429), counted; set from code, the control API and the command line."""

from __future__ import annotations

import pytest

from nxcloud_simulator import NXCloudSimulator, RateLimit
from nxcloud_simulator.rates import RateBook
from tests.tools.test_simulator import control, send
from tests.upstream import upstream_body

NUMBER = "8613800138000"


def test_a_bucket_lets_its_burst_through_then_its_rate() -> None:
    book = RateBook()
    book.configure(RateLimit(per_second=10, burst=3))

    at_once = [book.take(NUMBER, 100.0) for _ in range(4)]
    later = [book.take(NUMBER, 100.125), book.take(NUMBER, 100.125), book.take(NUMBER, 100.25)]

    assert [r is None for r in at_once] == [True, True, True, False]
    assert [r is None for r in later] == [True, False, True]  # a token every 0.1 s
    assert book.counts() == {"admitted": {NUMBER: 5}, "refused": {NUMBER: 2}, "refused_total": 2}


def test_each_number_has_its_bucket_and_may_have_its_rate() -> None:
    book = RateBook()
    book.configure(RateLimit(per_second=1, numbers={"85291234867": 5}))

    assert book.take(NUMBER, 0.0) is None
    refusal = book.take(NUMBER, 0.0)
    assert refusal is not None and refusal.retry_after == 1
    assert [book.take("85291234867", 0.0) is None for _ in range(6)] == [True] * 5 + [False]
    assert book.take(None, 0.0) is None  # no number: not counted (NXCloud refuses it for its fields)


def test_no_rate_no_limit() -> None:
    book = RateBook()
    assert all(book.take(NUMBER, 0.0) is None for _ in range(1000))
    assert book.counts()["refused_total"] == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"per_second": 0},
        {"per_second": 5, "burst": 0.5},
        {"per_second": 5, "answer": "503"},
        {"per_second": "5"},
        {"per_second": 5, "numbers": {NUMBER: -1}},
        {"per_second": 5, "extra": 1},
        [],
    ],
)
def test_a_rate_that_cannot_be_is_refused_naming_why(fields: object) -> None:
    with pytest.raises(ValueError):
        RateLimit.from_dict(fields)


def test_over_the_rate_the_simulator_answers_429_with_retry_after_and_accepts_nothing(
    simulator: NXCloudSimulator,
) -> None:
    simulator.set_rate_limit(per_second=1, burst=2)

    answers = [send(simulator) for _ in range(3)]

    assert [a.status for a in answers] == [200, 200, 429]
    assert answers[2].headers["Retry-After"] == "1"
    assert len(simulator.accepted) == 2
    refused = simulator.requests[2]
    assert (refused.fault, refused.http_status, refused.message_id) == ("rate_limit", 429, None)
    assert simulator.rate_counts["refused"] == {NUMBER: 1}


def test_the_refusal_can_be_nxclouds_code_quoting_metas(simulator: NXCloudSimulator) -> None:
    simulator.set_rate_limit(per_second=1, burst=1, answer="code")

    send(simulator)
    answer = send(simulator)

    assert answer.status == 200
    assert answer.code == 22141
    assert "130429" in answer.document["message"]
    assert simulator.requests[1].fault == "rate_limit"


def test_a_request_the_gateway_fails_never_reaches_the_rate(simulator: NXCloudSimulator) -> None:
    simulator.set_rate_limit(per_second=1, burst=1)
    simulator.add_fault(kind="http_status", status=502, times=2)

    statuses = [send(simulator).status for _ in range(3)]

    assert statuses == [502, 502, 200]
    assert simulator.rate_counts["admitted"] == {NUMBER: 1}


def test_only_an_accepted_message_spends_its_token(simulator: NXCloudSimulator) -> None:
    """WhatsApp counts what it sends: NXCloud's errors (a code, a failed check) leave the bucket as it was."""
    simulator.set_rate_limit(per_second=1, burst=1)
    simulator.add_fault(kind="code", code=-1, times=1)

    codes = [send(simulator).code, send(simulator, upstream_body(to="not-digits")).code, send(simulator).code]

    assert codes == [-1, 22090, 0]
    assert send(simulator).status == 429
    assert simulator.rate_counts["admitted"] == {NUMBER: 1}


def test_the_control_api_sets_reads_and_clears_the_rate(simulator: NXCloudSimulator) -> None:
    status, answer = control(simulator, "POST", "rate", {"per_second": 2, "burst": 1})
    assert status == 200 and answer["rate"]["per_second"] == 2
    send(simulator)
    send(simulator, upstream_body(to="8613800138001"))

    status, answer = control(simulator, "GET", "rate")
    assert answer["counts"] == {"admitted": {NUMBER: 1}, "refused": {NUMBER: 1}, "refused_total": 1}
    assert control(simulator, "POST", "rate", {"per_second": -1})[0] == 400

    simulator.reset()  # the rate stays, its counts go
    assert simulator.rate_counts["refused_total"] == 0
    assert control(simulator, "DELETE", "rate")[1]["rate"] is None
    assert all(send(simulator).status == 200 for _ in range(3))


def test_the_command_line_takes_a_rate() -> None:
    from nxcloud_simulator.__main__ import parse_args

    args = parse_args(["--rate", "50", "--burst", "60", "--rate-answer", "code"])
    assert (args.rate, args.burst, args.rate_answer) == (50.0, 60.0, "code")
