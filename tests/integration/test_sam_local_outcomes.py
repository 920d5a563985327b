"""make sam-local's summaries and checks (tools/sam_local), proven on the path that needs no Docker: ``make invoke``.

Every sample event through ``make invoke`` must summarise to what events/expected.json documents, two runs of the same
event must summarise equally (or the parity check between ``sam local invoke`` and ``make invoke`` would mean nothing),
and a summary that departs from the manifest must be caught.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_stack.emulators import ApiServer, Invoker
from local_stack.invoke import RESOURCE_VARIABLES, FunctionSpec
from local_stack.stack import LocalStack
from local_stack.template import load_template, serverless_functions
from sam_local.api import sample_rows
from sam_local.events import ONE_OF_EACH_PATH, EventRunner, manifest
from sam_local.outcomes import describe, expected_text, problems, summarize
from sam_local.paths import MakeInvoke

MANIFEST = manifest()


@pytest.fixture(scope="module")
def runner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventRunner]:
    with LocalStack() as stack:
        yield EventRunner(stack, tmp_path_factory.mktemp("sam-local"))


@pytest.fixture(scope="module")
def summaries(runner: EventRunner) -> dict[str, dict[str, Any]]:
    found = {}
    for name, spec in MANIFEST.items():
        seen, invoked = runner.observe(name, spec, MakeInvoke())
        assert not [i.failure for i in invoked if i.failure], name
        found[name] = summarize(spec, seen)
    return found


@pytest.mark.parametrize("name", list(MANIFEST))
def test_make_invoke_gives_the_documented_outcome(name: str, summaries: dict[str, dict[str, Any]]) -> None:
    spec, summary = MANIFEST[name], summaries[name]

    assert problems(spec, summary) == []
    assert describe(spec, summary) == expected_text(spec)
    rejected_before_any_aws_call = spec["trigger"] == "api" and spec["response"]["statusCode"] == 400
    assert bool(summary["aws_calls"]) is not rejected_before_any_aws_call, summary["aws_calls"]


@pytest.mark.parametrize("name", ONE_OF_EACH_PATH)
def test_the_same_event_twice_summarises_the_same(
    name: str, runner: EventRunner, summaries: dict[str, dict[str, Any]]
) -> None:
    seen, _ = runner.observe(name, MANIFEST[name], MakeInvoke())

    assert summarize(MANIFEST[name], seen) == summaries[name]


def changed(summary: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    altered = copy.deepcopy(summary)
    target = altered
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return altered


@pytest.mark.parametrize(
    ("name", "path", "value"),
    [
        ("sqs-mixed-batch.json", ["batchItemFailures"], []),
        ("sqs-mixed-batch.json", ["records", "46ad1851-2c7d-4302-bc7b-82fd73591e07", "error_code"], "22090"),
        ("sqs-mixed-batch.json", ["records", "f4fc7045-1ce5-4c93-b8cd-3a3e23ae0757", "nxcloud"], [2, 2]),
        ("sqs-page-examples.json", ["dead_letters"], 1),
        ("api-send-sync.json", ["responses", 0, "statusCode"], 502),
        ("api-invalid.json", ["responses", 0, "errors"], []),
        ("api-send-async.json", ["responses", 0, "headers"], {}),
        ("api-send-async.json", ["final", "sent"], 0),
        ("api-idempotent-repeat.json", ["same_body"], False),
        ("api-permanent-rejection.json", ["nxcloud"], [2, 0]),
        ("webhook-callback.json", ["stored"], {}),
        ("webhook-callback.json", ["kept"], 1),
        ("webhook-callback.json", ["responses", 0, "body"], {"received": 2}),
        ("webhook-wrong-token.json", ["responses", 0, "statusCode"], 200),
        ("webhook-wrong-token.json", ["stored"], {"status#x": "delivered"}),
        ("publisher-stream.json", ["published"], []),
        ("publisher-stream.json", ["batchItemFailures"], ["700000000033251634202"]),
    ],
)
def test_a_departure_from_the_manifest_is_caught(
    name: str, path: list[Any], value: Any, summaries: dict[str, dict[str, Any]]
) -> None:
    assert problems(MANIFEST[name], changed(summaries[name], path, value))


def test_the_env_vars_file_names_only_declared_variables(runner: EventRunner) -> None:
    """`sam local --env-vars` applies only what a function declares: the file make sam-local writes has one section
    per function of the template, each pointing it at moto, with its resource variables."""
    resources, env_file = runner.fresh()
    document = json.loads(Path(env_file).read_text(encoding="utf-8"))
    template = load_template()

    assert set(document) == set(serverless_functions(template))
    for function, variables in document.items():
        assert set(variables) <= set(FunctionSpec(template, function).environment), function
        assert set(RESOURCE_VARIABLES[function]) <= set(variables), function
        assert variables["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:"), function
    assert document["WebhookFunction"]["MESSAGES_TABLE"] == document["PublisherFunction"]["MESSAGES_TABLE"]
    assert document["PublisherFunction"]["EVENT_BUS_NAME"] == resources.event_bus


def test_the_imitations_context_has_the_python_runtimes_types(summaries: dict[str, dict[str, Any]]) -> None:
    """Regression: awslambdaric reads memory_limit_in_mb from the environment, so Lambda's log lines say
    "function_memory_size": "512"; make invoke's context said 512 (an int). make sam-local's parity check found it."""
    runtime_types = {
        "function_name": "str",
        "function_memory_size": "str",
        "function_arn": "str",
        "function_request_id": "str",
        "cold_start": "bool",
    }
    logged = {name: summary["log_context"] for name, summary in summaries.items() if summary["log_context"]}
    for name, context in logged.items():
        assert context == runtime_types, name
    # Every sample whose function logs a structured line: all but the refused webhook call and the publisher (whose
    # success is its metrics only).
    assert set(logged) == set(MANIFEST) - {"webhook-wrong-token.json", "publisher-stream.json"}


def test_the_start_api_checks_send_each_api_sample_to_its_own_route(
    runner: EventRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``make sam-local``'s start-api rows (sam_local.api.sample_rows), sent over HTTP to the local API in front of the
    real handler: each API sample must reach its own route and answer as documented. Posting every sample to
    ``/messages`` once made POST /campaigns' sample a 400 in CI, a failure only Docker could show until this test."""
    import runtime

    for name, value in runner.stack.function_env().items():
        monkeypatch.setenv(name, value)
    runtime.reset()
    server = ApiServer(Invoker(timeout=30), api_key="any").start()
    try:
        rows = sample_rows(server.url)
    finally:
        server.stop()
        runtime.reset()
    assert {r.request for r in rows} == {n for n, spec in MANIFEST.items() if spec["trigger"] == "api"}
    assert [(r.request, r.outcome, r.problems) for r in rows if not r.ok] == []
