"""The bench's pure helpers: statistics, formatting, the events it sends and the report it prints.

No timing is asserted here: ``make bench`` prints figures for people to read. These tests only make sure a bench
run cannot fail (or mislead) because of its own arithmetic, formatting or malformed messages.
"""

import json
import math
from pathlib import Path

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
    assert "2.80x floor" in text and "OVER the 2.0x goal" in text
    assert "1.30x latency" in text
    assert "18% of MemorySize 512 MB" in text  # 90 of 512 MB
    assert document["handler_overhead"]["messages_per_cpu_s"] == 200
    assert document["batch_latency"]["batch_wall_vs_latency"] == pytest.approx(1.3)
    assert document["memory"]["function_memory_size_mb"] == 512
    assert document["machine"]["command"] == "python -m bench"


def test_lambda_cpu_share_is_proportional_to_memory_up_to_one_vcpu() -> None:
    from bench import cpushare

    assert cpushare.vcpu_share(1769) == 1.0
    assert cpushare.vcpu_share(512) == pytest.approx(0.289, abs=0.001)
    assert cpushare.vcpu_share(128) == pytest.approx(0.072, abs=0.001)
    assert cpushare.vcpu_share(3008) == 1.0
    assert cpushare.quota_us(0.289) == 28_900
    assert cpushare.quota_us(0.001) == cpushare.MIN_QUOTA_US
    with pytest.raises(ValueError):
        cpushare.vcpu_share(0)


def test_cgroup_limits_are_written_for_either_interface(tmp_path: Path) -> None:
    from bench import cpushare

    v1 = cpushare.Controller(tmp_path, 1).limit_files(0.5)
    v2 = cpushare.Controller(tmp_path, 2).limit_files(0.5)

    assert v1 == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}
    assert v2 == {"cpu.max": "50000 100000"}


def test_the_controller_found_is_v1_when_its_quota_file_exists_else_v2_else_none(tmp_path: Path) -> None:
    from bench import cpushare

    v1, v2 = tmp_path / "cpu", tmp_path / "unified"
    v1.mkdir()
    v2.mkdir()
    with pytest.raises(RuntimeError, match="no cgroup cpu controller"):
        cpushare.Controller.find(v1, v2)
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory\n")
    assert cpushare.Controller.find(v1, v2) == cpushare.Controller(v2, 2)
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert cpushare.Controller.find(v1, v2) == cpushare.Controller(v1, 1)


def test_a_limited_cgroup_is_created_with_its_limit_and_removed_afterwards(tmp_path: Path) -> None:
    """On a fake v1 hierarchy (plain folders: the kernel's files are written as files, rmdir needs them gone)."""
    from bench import cpushare

    controller = cpushare.Controller(tmp_path, 1)
    seen = {}
    with pytest.raises(OSError), controller.limited(0.25, "g") as path:  # rmdir fails: a real cgroup has no files
        seen = {name: (path / name).read_text() for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us")}

    assert seen == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "25000"}


def test_a_child_joins_the_cgroup_through_the_shell_before_it_runs() -> None:
    from bench import cpushare

    assert cpushare.wrap(None, ["python", "-V"]) == ["python", "-V"]
    wrapped = cpushare.wrap(Path("/sys/fs/cgroup/cpu/g"), ["python", "-V"])
    assert wrapped[:2] == ["/bin/sh", "-c"]
    assert wrapped[3:] == ["/sys/fs/cgroup/cpu/g", "python", "-V"]
    assert wrapped[2] == 'echo $$ > "$0/cgroup.procs" && exec "$@"'


def test_requests_on_the_wire_are_counted_per_operation_with_their_write_units() -> None:
    import base64

    from bench import wire

    def line(target: str, body: dict[str, object], encoded: bool = False) -> str:
        text = json.dumps(body)
        raw = base64.b64encode(text.encode()).decode() if encoded else text
        return json.dumps({"headers": {"X-Amz-Target": target}, "body": raw, "body_encoded": encoded})

    lines = [
        line("DynamoDB_20120810.TransactWriteItems", {"TransactItems": [{}] * 10}),
        line("DynamoDB_20120810.BatchWriteItem", {"RequestItems": {"t": [{}] * 9}}, encoded=True),
        line("DynamoDB_20120810.PutItem", {}),
        line("AmazonSQS.SendMessageBatch", {"Entries": [{}]}),
        line("secretsmanager.GetSecretValue", {}),
        json.dumps({"headers": {}, "body": ""}),
        "",
    ]
    counts, units = wire.count(lines)

    assert counts == {
        "dynamodb:TransactWriteItems": 1,
        "dynamodb:BatchWriteItem": 1,
        "dynamodb:PutItem": 1,
        "sqs:SendMessageBatch": 1,
        "secretsmanager:GetSecretValue": 1,
        "other": 1,
    }
    assert units == 20 + 9 + 1
    counted = wire.WireCount(2, 10, dict(counts), units)
    assert counted.per_batch("dynamodb") == 1.5
    assert counted.write_units_per_message == 1.5


def test_lambda_cost_per_million_messages_follows_the_published_prices() -> None:
    from bench import costs

    # 100,000 invocations of 0.25 s at 512 MB: 12,500 GB-s, and 100,000 requests
    expected = 12_500 * costs.LAMBDA_ARM_GB_SECOND + 100_000 * costs.LAMBDA_REQUEST
    assert costs.lambda_per_million(0.25, 512) == pytest.approx(expected)
    assert costs.lambda_per_million(0.2494, 512) == pytest.approx(expected)  # billed per started millisecond
    assert costs.dynamodb_per_million(3.0) == pytest.approx(1.875)
    assert costs.sqs_per_million(1.2) == pytest.approx(0.48)


def test_memory_sizes_are_parsed_and_refused_when_not_positive() -> None:
    from bench import shares

    assert shares.parse_sizes("128, 256,1024") == (128, 256, 1024)
    assert shares.parse_sizes("") == ()
    with pytest.raises(ValueError):
        shares.parse_sizes("128,0")


def test_the_report_shows_issue_9s_table_the_wire_and_every_memory_size() -> None:
    from bench import shares, wire

    cold, warm, latency, memory = _figures()
    counted = wire.WireCount(5, 10, {"dynamodb:TransactWriteItems": 5, "dynamodb:BatchWriteItem": 5}, 150)
    spread = Spread.of([0.25])
    runs = [
        shares.ShareRun(None, None, spread, Spread.of([0.5]), spread, 1.2, spread, Spread.of([0.23]), 0.2, 70.0, 1, 1),
        shares.ShareRun(512, 0.289, spread, Spread.of([1.5]), spread, 1.3, spread, Spread.of([0.3]), 0.2, 71.0, 1, 1),
    ]
    host = report.machine("python -m bench")

    text = report.render(host, cold, warm, latency, memory, wire=counted, shares=runs)
    document = report.document(host, cold, warm, latency, memory, wire=counted, shares=runs)

    assert "0. Issue 9's table" in text and "6. Under Lambda's CPU share" in text
    assert "DynamoDB requests per SQS batch of 10 (wire)" in text
    summary = text.split("1. Cold start")[0]
    assert " 2.0 " in summary  # requests per batch
    assert "64 / 70 MB" in summary  # the warm container's own peak, not the bench process's
    row = next(line for line in text.splitlines() if line.lstrip().startswith("512 MB"))
    assert "6.00x" in row and "1.50x" in row and "1.30 ms" in row
    cost = document["cost_per_million_messages"][0]
    assert cost["memory_mb"] == 512
    assert cost["dynamodb_usd"] == pytest.approx(1.875)
    assert cost["total_usd"] == pytest.approx(cost["lambda_usd"] + 1.875)
    assert "not measured" in report.render(host, cold, warm, latency, memory, shares_skipped="not root")


def test_the_rate_limiter_row_reads_as_a_share_of_the_handler_and_a_price() -> None:
    from bench.rate_limit import LimiterCost, rows

    _, warm, _, _ = _figures()  # 1.5 s of handler CPU for 300 messages: 5 ms each
    cost = LimiterCost(batches=300, cpu_s=0.15, walls=Spread.of([0.002, 0.004]), requests=300)

    assert cost.cpu_us_per_message == pytest.approx(50.0)
    assert cost.share_of(warm) == pytest.approx(0.01)
    assert cost.requests_per_batch == 1.0
    assert cost.usd_per_million == pytest.approx(0.0625)  # 100,000 write units at $0.625 per million
    title, cpu, requests, wall, price = rows(cost, warm)
    assert title[0].startswith("9. Rate limiter")
    assert cpu[1:] == ("50.0 us", "1.0% of the handler's 5.00 ms (section 2, which includes it)")
    assert (requests[1], wall[1], price[1]) == ("1.00", "3 ms (2-4, n=2)", "$0.0625")
    cold, _, latency, memory = _figures()
    text = report.render(report.machine("python -m bench"), cold, warm, latency, memory, limiter=cost)
    document = report.document(report.machine("python -m bench"), cold, warm, latency, memory, limiter=cost)
    assert "9. Rate limiter, far from the rate" in text
    assert document["rate_limiter"]["dynamodb_requests_per_batch"] == 1.0


def test_the_summary_names_the_limiters_request_apart_from_the_idempotency_tables() -> None:
    from bench import wire

    cold, warm, latency, memory = _figures()
    operations = {"dynamodb:TransactWriteItems": 5, "dynamodb:BatchWriteItem": 5, "dynamodb:UpdateItem": 5}
    counted = wire.WireCount(5, 10, operations, 155)

    text = report.render(report.machine("python -m bench"), cold, warm, latency, memory, wire=counted)

    summary = text.split("1. Cold start")[0]
    assert "2.0 + 1.0 limiter" in summary


def test_the_summary_names_the_suppression_lists_read_apart_too() -> None:
    from bench import wire

    cold, warm, latency, memory = _figures()
    operations = {
        "dynamodb:TransactWriteItems": 5,
        "dynamodb:BatchWriteItem": 5,
        "dynamodb:UpdateItem": 5,
        "dynamodb:BatchGetItem": 5,
    }
    counted = wire.WireCount(5, 10, operations, 155)

    text = report.render(report.machine("python -m bench"), cold, warm, latency, memory, wire=counted)

    assert "2.0 + 1.0 limiter + 1.0 list" in text.split("1. Cold start")[0]


def test_an_item_written_to_the_messages_index_costs_one_more_write_unit() -> None:
    put = {"PutRequest": {"Item": {"id": {"S": "m"}, "idempotency_key": {"S": "k"}}}}
    plain = {"PutRequest": {"Item": {"id": {"S": "nxcloud-wa-send#h"}}}}
    release = {"DeleteRequest": {"Key": {"id": {"S": "nxcloud-wa-send#g"}}}}
    body = {"RequestItems": {"idempotency": [plain, release], "messages": [put]}}
    from bench import wire

    assert wire.write_units("dynamodb:BatchWriteItem", body, index_keys=frozenset({"idempotency_key"})) == 4
    # template.yaml's messages table has no index: the send's record costs its one write unit only
    assert wire.messages_index_keys() == frozenset()
    assert wire.write_units("dynamodb:BatchWriteItem", body) == 3


def test_the_template_check_row_reads_as_a_share_of_the_handler() -> None:
    from bench.template_check import CheckCost, rows

    _, warm, _, _ = _figures()  # 1.5 s of handler CPU for 300 messages: 5 ms each
    cost = CheckCost(messages=20_000, cpu_s=1.0, fetch_walls=Spread.of([0.004, 0.006]))

    assert cost.cpu_us_per_message == pytest.approx(50.0)
    assert cost.share_of(warm) == pytest.approx(0.01)
    title, check, fetch = rows(cost, warm)
    assert title[0].startswith("7. Template check")
    assert check[1:] == ("50.0 us", "1.0% of the handler's 5.00 ms (section 2, which includes it)")
    assert fetch[1] == "5 ms (4-6, n=2)"
    assert cost.as_dict(warm)["share_of_handler_cpu_per_message"] == pytest.approx(0.01)


def test_bench_messages_fit_the_local_catalogue_so_the_check_figure_is_a_pass() -> None:
    from local_stack.stack import LOCAL_SECRET, demo_templates
    from nxcloud_wa.models import parse_message
    from nxcloud_wa.templates import TemplateSet, TemplateSpec, check

    account = (str(LOCAL_SECRET["appkey"]), str(LOCAL_SECRET["business_phone"]))
    templates = TemplateSet(TemplateSpec.from_api(t) for t in demo_templates()[account])

    assert all(check(parse_message(message_body(i)).template, templates) == [] for i in range(3))


def test_the_suppression_check_row_reads_per_message_per_batch_and_one_read_unit_per_message() -> None:
    from bench.suppression_check import ScreenCost, rows

    _, warm, _, _ = _figures()  # 1.5 s of handler CPU for 300 messages: 5 ms each
    cost = ScreenCost(batches=300, cpu_s=0.3, walls=Spread.of([0.002, 0.004]), requests=300)

    assert cost.cpu_us_per_message == pytest.approx(100.0)
    assert cost.cpu_us_per_batch == pytest.approx(1000.0)
    assert cost.share_of(warm) == pytest.approx(0.02)
    assert cost.usd_per_million == pytest.approx(0.125)  # 1,000,000 read units at $0.125 per million
    title, cpu, batch, requests, wall, price = rows(cost, warm)
    assert title[0].startswith("10. Suppression check")
    assert cpu[1:] == ("100.0 us", "2.0% of the handler's 5.00 ms (section 2, which includes it)")
    assert (batch[1], requests[1], wall[1], price[1]) == ("1000 us", "1.00", "3 ms (2-4, n=2)", "$0.1250")
    cold, _, latency, memory = _figures()
    document = report.document(report.machine("python -m bench"), cold, warm, latency, memory, suppression=cost)
    text = report.render(report.machine("python -m bench"), cold, warm, latency, memory, suppression=cost)
    assert "10. Suppression check" in text
    assert document["suppression_check"]["read_units_per_message"] == 1.0


def test_the_frequency_cap_row_adds_a_read_unit_and_a_write_unit_per_message() -> None:
    from bench.suppression_check import ScreenCost, rows

    _, warm, _, _ = _figures()
    cost = ScreenCost(batches=300, cpu_s=0.45, walls=Spread.of([0.002, 0.004]), requests=300, cap="1/24h")

    assert (cost.read_units_per_message, cost.write_units_per_message) == (2.0, 1.0)
    assert cost.usd_per_million == pytest.approx(0.25 + 0.625)  # 2 RRU at $0.125, 1 WRU at $0.625 per million
    title, cpu, batch, requests, _, price = rows(cost, warm)
    assert title[0].startswith("10b. The same with MarketingCapPerRecipient=1/24h")
    assert (cpu[1], batch[2], requests[1], price[1]) == (
        "150.0 us",
        "one BatchGetItem, ten verdicts, the counts built",
        "1.00",
        "$0.8750",
    )
    cold, _, latency, memory = _figures()
    document = report.document(report.machine("python -m bench"), cold, warm, latency, memory, capped=cost)
    assert document["frequency_cap"]["write_units_per_message"] == 1.0 and document["frequency_cap"]["cap"] == "1/24h"


def test_the_planner_section_reads_cpu_per_row_and_the_ceiling_it_sets() -> None:
    from bench.planner_pass import PlannerCost, audience
    from bench.planner_pass import rows as planner_rows

    cost = PlannerCost(rows=2000, passes=1, cpu_s=1.2, wall_s=40.0)
    assert cost.cpu_us_per_row == pytest.approx(600.0)
    assert cost.rows_per_s == pytest.approx(50.0)
    title, cpu, ceiling, wall = planner_rows(cost)
    assert title[0].startswith("11. Campaign planner")
    assert cpu[1] == "600 us"
    assert ceiling[1] == f"{512 / 1769 * 1e6 / 600:,.0f} /s"  # 0.29 vCPU at 512 MB over 600 us a row: 482
    assert wall[1] == "50"
    cold, warm, latency, memory = _figures()
    text = report.render(report.machine("python -m bench"), cold, warm, latency, memory, planner=cost)
    document = report.document(report.machine("python -m bench"), cold, warm, latency, memory, planner=cost)
    assert "11. Campaign planner" in text
    assert document["campaign_planner"]["cpu_us_per_row"] == pytest.approx(600.0)
    lines = audience(3).decode().splitlines()
    assert lines[0] == "to,body.1,ref" and len(set(lines[1:])) == 3


def test_the_default_share_leaves_the_api_its_slots_and_a_full_queue_does_not() -> None:
    """The design claim section 12 measures, on the real limiter (moto in-process, a simulated clock): with the
    campaign at CampaignRateShare (0.8) an API message waits for no slot at p99; with the campaign at the whole rate
    it waits; a campaign's backlog beyond the rate makes it wait at most CAMPAIGN_WAIT_SECONDS; a queue of plain
    messages flooded beyond the rate pushes it to the wait's limit and has it refused."""
    import boto3
    from bench import rate_share
    from moto import mock_aws

    from delivery import CAMPAIGN_WAIT_SECONDS

    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="rate",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        alone, shared, whole, backlog, flooded = rate_share.measure(dynamodb, "rate")

    interval = 1 / rate_share.RATE
    assert alone.percentile(99) <= interval and shared.percentile(99) <= interval
    assert shared.queue_per_s == pytest.approx(0.8 * rate_share.RATE, rel=0.02)  # the campaign kept its pace
    assert whole.percentile(99) > 10 * interval
    # a campaign's rows never take a slot further than CAMPAIGN_WAIT_SECONDS ahead; plain messages do
    assert backlog.refused == 0 and max(backlog.waits) <= CAMPAIGN_WAIT_SECONDS + 2 * interval
    assert flooded.refused > 0 and flooded.percentile(50) > 4 * backlog.percentile(99)
    title, *lines = rate_share.rows([alone, shared, whole, backlog, flooded])
    assert title[0].startswith("12. The number shared") and len(lines) == 5
    assert shared.as_dict()["api_messages"] == alone.as_dict()["api_messages"]  # the same arrivals in each
