"""`python -m local_stack.invoke` (`make invoke`) as a user runs it: a subprocess with no AWS settings at all.

Each run that invokes starts its own ephemeral local stack (about 2 s), so there are only four of those, plus one
against a stack this test starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_stack.stack import LocalStack

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
EXPECTED = json.loads((EVENTS / "expected.json").read_text(encoding="utf-8"))["events"]


def clean_env() -> dict[str, str]:
    """The caller's environment without anything that configures AWS, the function or Powertools."""
    prefixes = ("AWS_", "NXCLOUD_", "POWERTOOLS_", "DEFAULT_")
    names = {"DLQ_URL", "SEND_QUEUE_URL", "IDEMPOTENCY_TABLE", "UNKNOWN_OUTCOME_POLICY"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes) and k not in names}
    env["PYTHONPATH"] = str(ROOT / "tools")
    return env


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local_stack.invoke", *map(str, args)],
        cwd=ROOT,
        env={**clean_env(), **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


def load_body(name: str) -> str:
    return str(json.loads((EVENTS / name).read_text(encoding="utf-8"))["body"])


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_sqs_event_prints_only_the_handler_result_and_logs_to_stderr(tmp_path: Path) -> None:
    env_vars = tmp_path / "env.json"
    env_vars.write_text(
        json.dumps({"Parameters": {"POWERTOOLS_SERVICE_NAME": "invoke-test"}, "SenderFunction": {"INVOKE_MARK": "1"}})
    )
    done = run("events/sqs-mixed-batch.json", "--env-vars", env_vars)

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # the whole of stdout is one JSON document
    expected = EXPECTED["sqs-mixed-batch.json"]["batchItemFailures"]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(expected)
    assert "started an ephemeral local stack" in done.stderr
    assert "INVOKE_MARK not declared in template.yaml" in done.stderr
    logs = json_lines(done.stderr)
    outcomes = [line.get("outcome") for line in logs if "outcome" in line]
    assert sorted(outcomes) == sorted(
        ["sent", "sent", "dead_lettered", "dead_lettered", "dead_lettered", "retry", "retry"]
    )
    assert {line["service"] for line in logs if "outcome" in line} == {"invoke-test"}  # --env-vars honoured
    assert any("_aws" in line for line in logs)  # the EMF metrics too
    assert all(line["function_name"] == "SenderFunction" for line in logs if "level" in line)


def test_times_two_on_an_idempotent_request_gives_the_same_answer_and_sends_once() -> None:
    done = run("events/api-idempotent-repeat.json", "--times", "2")

    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert first["statusCode"] == second["statusCode"] == 200
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert json.loads(first["body"])["message_id"]
    assert second["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    sent = [line for line in json_lines(done.stderr) if line.get("outcome") == "sent"]
    assert [line["replayed"] for line in sent] == [False, True]


def test_a_webhook_callback_runs_the_webhook_function_the_event_is_routed_to() -> None:
    """No --function: the HTTP API event's route is WebhookFunction's in template.yaml; its own resource variables
    start the ephemeral stack, and the answer is the documented one."""
    done = run("events/webhook-callback.json")

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["statusCode"] == EXPECTED["webhook-callback.json"]["response"]["statusCode"]
    assert json.loads(result["body"]) == EXPECTED["webhook-callback.json"]["response"]["body"]
    assert "invoke: WebhookFunction: the function template.yaml wires to this event's source" in done.stderr
    assert "NXCLOUD_SECRET_ID, MESSAGES_TABLE, KEPT_CALLBACKS_QUEUE_URL not set: started an ephemeral" in done.stderr
    logs = [line for line in json_lines(done.stderr) if "level" in line]
    assert logs and {(line["function_name"], line["service"]) for line in logs} == {
        ("WebhookFunction", "nxcloud-wa-webhook")
    }


def test_a_stream_batch_runs_the_publisher_and_function_overrides_the_choice(tmp_path: Path) -> None:
    done = run("events/publisher-stream.json", "--function", "PublisherFunction")
    wrong = run("events/publisher-stream.json", "--function", "NoSuchFunction")
    unrouted = tmp_path / "unrouted.json"
    unrouted.write_text(json.dumps({"detail-type": "Scheduled Event"}))
    unknown = run(unrouted)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"batchItemFailures": []}
    assert "wires to this event's source" not in done.stderr
    assert "MESSAGES_TABLE not set: started an ephemeral local stack" in done.stderr
    assert (wrong.returncode, wrong.stdout) == (2, "")
    assert "no function 'NoSuchFunction' to run here" in wrong.stderr and "PublisherFunction" in wrong.stderr
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "name the function with --function (FUNCTION=)" in unknown.stderr


def test_the_users_environment_is_used_instead_of_an_ephemeral_stack() -> None:
    """AWS_ENDPOINT_URL, NXCLOUD_BASE_URL and the resource variables of a running stack: the function uses them."""
    with LocalStack() as stack:
        done = run("events/api-send-sync.json", env=stack.function_env())
        accepted = stack.simulator.accepted

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["statusCode"] == 200
    assert "ephemeral" not in done.stderr
    assert [r.to for r in accepted] == [json.loads(load_body("api-send-sync.json"))["to"]]


def test_partial_configuration_exits_non_zero_naming_what_is_missing() -> None:
    done = run("events/api-send-sync.json", env={"DLQ_URL": "http://127.0.0.1:9/queue/dlq"})

    assert done.returncode == 2
    assert done.stdout == ""
    assert "NXCLOUD_SECRET_ID, SEND_QUEUE_URL, IDEMPOTENCY_TABLE not set" in done.stderr


def test_bad_event_file_exits_non_zero_with_a_message(tmp_path: Path) -> None:
    missing = run("events/no-such-event.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"Records": [')
    invalid = run(broken)

    assert (missing.returncode, invalid.returncode) == (2, 2)
    assert missing.stdout == invalid.stdout == ""
    assert "event file not found: events/no-such-event.json" in missing.stderr
    assert "is not valid JSON" in invalid.stderr


def test_help() -> None:
    done = run("--help")

    assert done.returncode == 0
    assert "usage: python -m local_stack.invoke" in done.stdout
    assert "--times" in done.stdout and "--env-vars" in done.stdout and "--function" in done.stdout
