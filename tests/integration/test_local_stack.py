"""The local whole stack (make run) and the operator tool (nxwa) against it, end to end over real HTTP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waops import cli

from local_stack.__main__ import run_samples
from local_stack.campaign_row import FAILING, RECIPIENTS, SAMPLE
from local_stack.runner import MAKE_RUN_CAP, Row, Runner
from local_stack.samples import load_samples
from local_stack.stack import CAPPED_RECIPIENT, MARKETING_LIMITED

ROOT = Path(__file__).resolve().parents[2]
ONE_BODY_PARAMETER = {"type": "body", "parameters": [{"type": "text", "text": "A-1001"}]}
"""What the local catalogue's order_update (en_US) takes (events/templates.json)."""


EXTRA_ROWS = 4
"""Rows that are not one sample: the 131049 retry, the frequency cap, the request without an API key."""


@pytest.fixture(scope="module")
def runner() -> Iterator[Runner]:
    saved = dict(os.environ)
    with Runner(retry_delay=0) as running:
        yield running
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def sample_rows(runner: Runner) -> list[Row]:
    return run_samples(runner, load_samples(), timeout=90)


def test_every_sample_ends_as_documented(sample_rows: list[Row]) -> None:
    mismatches = [(r.sample, r.outcome, r.expected) for r in sample_rows if not r.ok]

    assert mismatches == []
    assert len(sample_rows) == len(load_samples()) + EXTRA_ROWS


def test_nothing_was_sent_twice_and_the_queue_is_drained(runner: Runner, sample_rows: list[Row]) -> None:
    accepted = Counter(record.message_id for record in runner.stack.simulator.accepted)
    bodies = Counter(
        json.dumps(record.body, sort_keys=True, ensure_ascii=False)
        for record in runner.stack.simulator.accepted
        if record.to != MARKETING_LIMITED
    )

    assert accepted and max(accepted.values()) == 1
    assert max(bodies.values()) == 1  # no message reached NXCloud as an accepted send twice
    # but the one Meta's marketing limit stopped (131049), sent again once, as documented (docs/audience.md)
    assert runner.stack.simulator.accepted_count_for(to=MARKETING_LIMITED) == 2
    assert runner.queue_depth() == 0


def test_the_cap_row_sent_the_capped_recipient_what_the_cap_allows_and_the_utility_template(
    runner: Runner, sample_rows: list[Row]
) -> None:
    """MAKE_RUN_CAP's two marketing templates and the utility one reached NXCloud; the third marketing one did not."""
    templates = Counter(record.template for record in runner.stack.simulator.accepted if record.to == CAPPED_RECIPIENT)

    assert MAKE_RUN_CAP == "2/24h"
    assert templates == {"weekend_offer": 2, "order_update": 1}


def test_dead_letter_queue_holds_exactly_the_documented_failures(runner: Runner, sample_rows: list[Row]) -> None:
    reasons = Counter(attrs.get("reason", "retries_exhausted") for attrs in runner.dead_letters().values())

    expected = Counter(
        "retries_exhausted" if "redrive policy" in row.expected else row.expected.split(": ")[1].split()[0]
        for row in sample_rows
        if "dead_lettered" in row.expected and row.sample != SAMPLE  # the campaign's row shows a count of them
    )
    assert reasons == expected


def test_duplicate_delivery_is_sent_once(runner: Runner, sample_rows: list[Row]) -> None:
    template = {"name": "order_update", "language": {"code": "en_US"}, "components": [ONE_BODY_PARAMETER]}
    body = json.dumps({"to": "8613800000777", "template": template})
    first = runner.enqueue(body, {"idempotency_key": "dup-777"})
    second = runner.enqueue(body, {"idempotency_key": "dup-777"})

    assert runner.wait_until_settled([first, second], timeout=30)
    outcomes = sorted([runner.final_outcome(first)[0], runner.final_outcome(second)[0]])
    # Received apart, the second copy is answered from the stored outcome ("sent"); received in one batch, it waits
    # for the first (in progress: retried once) and is then answered the same. Which happens is the poller's timing.
    assert outcomes in (["sent", "sent"], ["retried 1 then sent", "sent"])
    assert runner.stack.simulator.accepted_count_for(to="8613800000777") == 1


def test_api_refuses_requests_without_the_key(runner: Runner) -> None:
    status, body = runner.post('{"to": "8613800000000"}', with_key=False)

    assert (status, body) == (403, {"message": "Forbidden"})


def _printed(out: str) -> list[dict[str, Any]]:
    """nxwa's JSON lines; the in-process function's log and EMF lines share the captured stdout."""
    documents = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [d for d in documents if "_aws" not in d and "level" not in d]


def _nxwa(runner: Runner, *args: str) -> list[str]:
    assert runner.api is not None
    res = runner.stack.res
    flags = [
        f"--endpoint-url={res.endpoint_url}",
        f"--api-url={runner.api.url}/messages",
        f"--api-key={runner.api.api_key}",
        f"--queue-url={res.send_queue_url}",
        f"--dlq-url={res.dlq_url}",
        f"--secret-id={res.secret_id}",
        f"--template-base-url={runner.stack.simulator.url}",
    ]
    return [*flags, *args]


def test_nxwa_send_through_the_api_and_the_queue(
    runner: Runner, sample_rows: list[Row], capsys: pytest.CaptureFixture[str]
) -> None:
    send = ("send", "--template", "order_update", "--param", "Ann")
    assert cli.main(_nxwa(runner, *send, "--to", "+86 138 0000 0888")) == 0
    (answer,) = _printed(capsys.readouterr().out)
    assert cli.main(_nxwa(runner, *send, "--to", "8613800000889", "--via", "queue")) == 0
    (queued,) = _printed(capsys.readouterr().out)

    assert answer["http_status"] == 200
    assert answer["message_id"] == runner.stack.simulator.accepted[-1].message_id
    assert queued["status"] == "queued"
    assert runner.wait_until_settled([queued["queue_message_id"]], timeout=30)
    assert runner.final_outcome(queued["queue_message_id"])[0] == "sent"


def test_nxwa_templates_list_is_a_table_of_the_accounts_templates(
    runner: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(_nxwa(runner, "templates", "list")) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if line and not line.startswith("{")]

    assert lines[0] == ["name", "language", "status", "category", "header", "body", "params", "buttons"]
    assert ["order_update", "en_US", "APPROVED", "UTILITY", "-", "1", "0:QUICK_REPLY"] in lines
    assert ["order_update", "zh_CN", "APPROVED", "UTILITY", "-", "3", "0:QUICK_REPLY"] in lines
    assert ["spring_sale", "en_US", "PENDING", "MARKETING", "image", "3", "0:URL+param"] in lines
    assert ["weekend_offer", "en_US", "APPROVED", "MARKETING", "-", "1", "-"] in lines  # the suppressed sample's
    assert lines[-1][:2] == ["6", "template(s)"]


def test_nxwa_templates_of_another_account_and_as_nxclouds_objects(
    runner: Runner, capsys: pytest.CaptureFixture[str]
) -> None:
    account = ("--appkey", "8exxxxyos", "--business-phone", "85291234867")
    assert cli.main(_nxwa(runner, "templates", "show", "ten_btn4", *account)) == 0
    shown = capsys.readouterr().out
    assert cli.main(_nxwa(runner, "templates", "show", "ten_btn4", "--json", *account)) == 0
    (raw,) = _printed(capsys.readouterr().out)

    assert "template ten_btn4 (en_US): APPROVED, MARKETING" in shown
    assert 'button 3 (COPY_CODE): one coupon_code parameter, sub_type "COPY_CODE", index 3' in shown
    assert "button 2 (URL): no parameter" in shown
    catalogue = json.loads((ROOT / "events" / "templates.json").read_text(encoding="utf-8"))
    assert raw == next(t for a in catalogue for t in a["templates"] if t["name"] == "ten_btn4")


def test_nxwa_send_check_says_what_is_wrong_and_sends_nothing(
    runner: Runner, sample_rows: list[Row], capsys: pytest.CaptureFixture[str]
) -> None:
    accepted = len(runner.stack.simulator.accepted)
    send = ("send", "--check", "--to", "+8613800000990", "--template", "order_update")

    assert cli.main(_nxwa(runner, *send, "--param", "A-1001", "--param", "extra")) == 1
    (mismatch,) = _printed(capsys.readouterr().out)
    assert cli.main(_nxwa(runner, *send, "--param", "A-1001")) == 0
    (fits,) = _printed(capsys.readouterr().out)
    assert cli.main(_nxwa(runner, *send, "--language", "pt_BR")) == 1
    (elsewhere,) = _printed(capsys.readouterr().out)

    assert mismatch["problems"] == [
        {"kind": "body_parameters", "text": "template order_update (en_US) takes 1 body parameter, got 2"}
    ]
    assert fits == {"check": "ok", "template": {"name": "order_update", "language": "en_US"}, "appkey": "localapp"}
    assert elsewhere["problems"][0]["text"] == "template order_update has no pt_BR version (it exists in en_US, zh_CN)"
    assert len(runner.stack.simulator.accepted) == accepted


def test_nxwa_send_check_when_the_catalogue_is_unavailable(runner: Runner, capsys: pytest.CaptureFixture[str]) -> None:
    flags = [f for f in _nxwa(runner) if not f.startswith("--template-base-url")]
    send = ("send", "--check", "--to", "+8613800000991", "--template", "order_update", "--param", "x")

    assert cli.main([*flags, "--template-base-url=http://127.0.0.1:9", *send]) == 2
    (answer,) = _printed(capsys.readouterr().out)
    assert (answer["check"], answer["reason"]) == ("unavailable", "connect_error")


def test_nxwa_dlq_list_shows_reasons_without_consuming(
    runner: Runner, sample_rows: list[Row], capsys: pytest.CaptureFixture[str]
) -> None:
    before = set(runner.dead_letters())
    assert cli.main(_nxwa(runner, "dlq", "list", "--json")) == 0
    listed = _printed(capsys.readouterr().out)

    assert {item["message_id"] for item in listed} == before
    assert any(
        item.get("reason") == "template_mismatch" and item.get("error_code") == "template_not_found" for item in listed
    )
    assert set(runner.dead_letters()) == before


def test_nxwa_dlq_redrive_dry_run_moves_nothing_then_redrive_moves_by_reason(
    runner: Runner, sample_rows: list[Row], capsys: pytest.CaptureFixture[str]
) -> None:
    before = runner.dead_letters()
    invalid = {mid for mid, attrs in before.items() if attrs.get("reason") == "invalid_message"}
    assert invalid

    assert cli.main(_nxwa(runner, "dlq", "redrive", "--dry-run")) == 0
    assert f"dry run: {len(before)} message(s)" in capsys.readouterr().out
    assert set(runner.dead_letters()) == set(before)

    assert cli.main(_nxwa(runner, "dlq", "redrive", "--reason", "invalid_message")) == 0
    assert f"moved {len(invalid)} message(s)" in capsys.readouterr().out
    runner.wait_until_settled([], timeout=30)
    after = runner.dead_letters()
    assert not invalid & set(after)  # moved out ...
    assert Counter(a.get("reason") for a in after.values())["invalid_message"] == len(invalid)  # ... and back, anew
    assert len(after) == len(before)


def make_run(*args: str) -> subprocess.CompletedProcess[str]:
    """``make run`` as a user runs it: a subprocess with no AWS or function settings from the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NXCLOUD_", "DLQ_", "SEND_", "IDEMP"))}
    env["PYTHONPATH"] = os.pathsep.join(str(ROOT / p) for p in ("tools", "layers/core/python", "functions/sender"))
    env["COLUMNS"] = "120"  # the table's width: a 120-column terminal
    command = [sys.executable, "-m", "local_stack", *args]
    return subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_make_run_prints_the_table_and_exits_zero(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"  # the folder is created
    done = make_run("--log-file", str(log))

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert (lines[0], lines[1].split()[:2]) == ("sample", ["path", "outcome"])
    assert max(len(line) for line in lines) <= 120  # make_run's terminal is 120 columns wide
    rows = len(load_samples()) + EXTRA_ROWS
    assert f"{rows} of {rows} outcomes as documented" in done.stdout
    assert lines[-1].startswith("OK: ")  # the one-line verdict
    assert not any(line.startswith("{") for line in lines)  # logs and metrics went elsewhere

    # Quiet: a few progress lines on stderr, no JSON; the function's logs and metrics in the file they name.
    progress = done.stderr.splitlines()
    assert not any("{" in line for line in progress), done.stderr[-3000:]
    assert len(progress) <= 10, done.stderr
    assert progress[0].startswith(f"make run: the function's logs go to {log}")
    assert progress[-1] == f"the function's logs: {log}"
    samples = load_samples()
    queued = sum(1 for sample in samples if sample.path == "sqs")
    steps = (
        "starting moto",
        f"pushing {len(samples)} samples: {queued} to the send queue, {len(samples) - queued} to the API",
        "waiting for the ",
        "  settled in ",
    )
    for step in steps:
        assert any(line.startswith(step) for line in progress), step
    written = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    outcomes = Counter(line.get("outcome") for line in written if "outcome" in line)
    assert outcomes["sent"] >= 1 and outcomes["dead_lettered"] >= 1 and outcomes["retry"] >= 1
    assert any("_aws" in line for line in written)  # the EMF metrics too


def test_make_run_verbose_shows_the_functions_logs_live_and_writes_no_file(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    done = make_run("--verbose", "--log-file", str(log))

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert (lines[0], lines[1].split()[:2]) == ("sample", ["path", "outcome"])
    shown = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(line.get("outcome") == "sent" for line in shown)
    assert any(line.startswith("pushing ") for line in done.stderr.splitlines())
    assert not log.exists()


def test_default_log_file_is_in_the_git_ignored_local_stack_folder() -> None:
    from local_stack.__main__ import default_log_path

    path = default_log_path(0)
    assert path.parent == ROOT / ".local-stack"
    assert re.fullmatch(r"run-\d{8}-\d{6}\.log", path.name)
    assert ".local-stack/" in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_the_runs_callbacks_created_the_demo_suppression_entries(runner: Runner, sample_rows: list[Row]) -> None:
    """Page example 3 fails with 131026, page example 2's reader taps Stop promotions (events/README.md)."""
    from local_stack.suppression_entries import all_entries

    found = {(e.business_phone, e.recipient): (e.scope, e.reason, e.source) for e in all_entries(runner.stack.res)}

    assert found[("85291234867", "8613612345759")] == ("all", "undeliverable", "131026")
    assert found[("8618512348399", "8613612349759")] == ("marketing", "opted_out", "Stop promotions")


def test_the_campaign_sent_each_recipient_once_and_no_invalid_row(runner: Runner, sample_rows: list[Row]) -> None:
    """The campaign row's file repeats two numbers in other spellings and has three invalid rows: NXCloud got one
    message per distinct valid number, each once, and nothing for the invalid rows."""
    campaign = Counter(record.to for record in runner.stack.simulator.accepted if record.to.startswith("8613700000"))
    assert len(campaign) == RECIPIENTS and set(campaign.values()) == {1}
    assert FAILING in campaign
    assert not {"8613700000580", "8613700000581"} & set(campaign)  # the invalid rows' numbers
