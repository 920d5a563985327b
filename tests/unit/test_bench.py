"""The bench's pure helpers: statistics, formatting, the events it sends and the report it prints.

No timing is asserted here: ``make bench`` prints figures for people to read. These tests only make sure a bench
run cannot fail (or mislead) because of its own arithmetic, formatting or malformed messages.
"""

import json
import math

import pytest
from bench import child, coldstart, report
from bench.events import message_body, sqs_event
from bench.stats import Spread, ms, rate, ratio, spread_ms, table, times, verdict
from bench.warm import Latency, Memory, Throughput


def test_spread_is_the_median_with_its_range() -> None:
    spread = Spread.of([0.3, 0.1, 0.2, 0.9])

    assert spread.median == pytest.approx(0.25)
    assert (spread.low, spread.high, spread.n) == (0.1, 0.9, 4)
    assert spread.as_dict() == {"median": pytest.approx(0.25), "min": 0.1, "max": 0.9, "n": 4}
    with pytest.raises(ValueError, match="no samples"):
        Spread.of([])


def test_ratio_and_rate_never_divide_by_zero() -> None:
    assert ratio(3.0, 2.0) == 1.5
    assert math.isinf(ratio(1.0, 0.0))
    assert rate(300, 1.5) == 200
    assert math.isinf(rate(10, 0.0))


def test_units_are_formatted_for_reading() -> None:
    assert ms(0.4124) == "412 ms"
    assert spread_ms(Spread.of([0.398, 0.412, 0.46])) == "412 ms (398-460, n=3)"
    assert times(1.4321) == "1.43x"
    assert verdict(1.5, 1.5) == "within"
    assert verdict(1.51, 1.5) == "OVER"


def test_table_aligns_values_and_keeps_section_titles_whole() -> None:
    rows = [("A section title much longer than any measure", "", ""), ("  a", "1 ms", "x"), ("  bb", "22 ms", "")]
    text = table(rows)
    lines = text.splitlines()

    assert lines[0].split() == ["measure", "value", "against"]
    assert set(lines[1]) == {"-"}
    assert lines[2] == "A section title much longer than any measure"
    assert lines[3].index("1 ms") + len("1 ms") == lines[4].index("22 ms") + len("22 ms")  # right-aligned values
    assert not lines[4].endswith(" ")


def test_bench_messages_are_valid_and_each_record_has_its_own_key() -> None:
    from nxcloud_wa.models import parse_message

    event = sqs_event(10, start=5)
    records = event["Records"]

    assert len({r["messageId"] for r in records}) == 10
    assert all(r["eventSource"] == "aws:sqs" and r["awsRegion"] == "us-east-1" for r in records)
    for record in records:
        request = parse_message(record["body"])
        assert request.idempotency_key is None  # the message id is the key: every message really gets sent
    assert json.loads(message_body(7))["to"] != json.loads(message_body(8))["to"]


def test_the_child_context_counts_down_like_lambdas() -> None:
    context = child.Context(timeout_s=30)

    assert 29_000 < context.get_remaining_time_in_millis() <= 30_000
    assert context.memory_limit_in_mb == 512


def test_a_sample_that_traced_when_it_should_not_is_refused() -> None:
    off = coldstart.Probe("handler", "handler")
    on = coldstart.Probe("traced", "handler", active_tracing=True)

    assert coldstart.check(off, {"tracing": "_NoTracer"}) == {"tracing": "_NoTracer"}
    assert coldstart.check(on, {"tracing": "Tracer"}) == {"tracing": "Tracer"}
    with pytest.raises(RuntimeError, match="expected the opposite"):
        coldstart.check(off, {"tracing": "Tracer"})
    with pytest.raises(RuntimeError):
        coldstart.check(coldstart.Probe("tracer", "tracer", active_tracing=True), {"disabled": True})


def test_child_environment_is_the_functions_without_tracing_or_instance_metadata() -> None:
    env = coldstart.child_env({"DLQ_URL": "http://127.0.0.1:1/q"})
    traced = coldstart.active_tracing_env(env, "127.0.0.1:2000")

    assert env["DLQ_URL"] == "http://127.0.0.1:1/q"
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert "LAMBDA_TASK_ROOT" not in env
    assert traced["LAMBDA_TASK_ROOT"].endswith("functions/sender")
    assert traced["AWS_XRAY_DAEMON_ADDRESS"] == "127.0.0.1:2000"


def _cold_sample(import_s: float, first_s: float = 0.0, tracing: str = "_NoTracer") -> dict[str, object]:
    return {
        "import_s": import_s,
        "first_invocation_s": first_s,
        "cpu_s": import_s + first_s,
        "failures": 0,
        "tracing": tracing,
        "maxrss_mb": 64.0,
        "disabled": tracing == "_NoTracer",
    }


def _figures() -> tuple[coldstart.ColdStart, Throughput, Latency, Memory]:
    cold = coldstart.ColdStart(
        {
            coldstart.BOTO3: [_cold_sample(0.2), _cold_sample(0.3)],
            coldstart.HANDLER: [_cold_sample(0.4, 0.2), _cold_sample(0.5, 0.3)],
            coldstart.TRACED: [_cold_sample(0.5, 0.2, "Tracer"), _cold_sample(0.6, 0.3, "Tracer")],
            coldstart.TRACER_OFF: [_cold_sample(0.2)],
            coldstart.TRACER_ON: [_cold_sample(0.1, tracing="Tracer")],
        }
    )
    warm = Throughput(300, 30, 10, 1.5, 6.0, Spread.of([0.2, 0.2]), 3.0, 0.2, 300)
    latency = Latency(0.2, 10, Spread.of([0.25, 0.3, 0.26]), 30)
    memory = Memory(512, 64.0, 90.0, 0.4)
    return cold, warm, latency, memory


def test_cold_start_figures_are_ratios_to_the_boto3_floor() -> None:
    cold, *_ = _figures()

    assert cold.floor.median == pytest.approx(0.25)
    assert cold.total().median == pytest.approx(0.7)
    assert cold.vs_floor() == pytest.approx(2.8)
    assert cold.vs_floor(coldstart.TRACED) == pytest.approx(3.2)
    assert cold.as_dict()["target_vs_boto3"] == 1.5


def test_report_prints_every_section_and_json_holds_the_same_figures() -> None:
    cold, warm, latency, memory = _figures()
    host = report.machine("python -m bench")

    text = report.render(host, cold, warm, latency, memory)
    document = json.loads(json.dumps(report.document(host, cold, warm, latency, memory)))

    for title in ("1. Cold start", "2. Handler overhead", "3. Batch of 10", "4. Peak memory"):
        assert title in text
    assert "2.80x floor" in text and "OVER the 1.5x target" in text
    assert "1.30x latency" in text
    assert "18% of MemorySize 512 MB" in text  # 90 of 512 MB
    assert document["handler_overhead"]["messages_per_cpu_s"] == 200
    assert document["batch_latency"]["batch_wall_vs_latency"] == pytest.approx(1.3)
    assert document["memory"]["function_memory_size_mb"] == 512
    assert document["machine"]["command"] == "python -m bench"
