"""``sam local invoke`` without Docker: run a function's handler in-process on one event file, as Lambda would.

    make invoke EVENT=events/api-send-sync.json
    make invoke EVENT=events/webhook-callback.json            # WebhookFunction: the event is an HTTP API request
    python -m local_stack.invoke events/sqs-mixed-batch.json --times 2 --env-vars env.json

Which function: the one template.yaml wires to the event's source (:func:`function_for_event`: an SQS or DynamoDB
stream record goes to the function with that kind of event source, an API Gateway request to the function whose
``Api``/``HttpApi`` event has its route), or ``--function LogicalId`` (``make invoke FUNCTION=...``).

What it reproduces from Lambda and ``sam local invoke``, reading ``template.yaml``:

* ``sys.path``: the function's folder (``CodeUri``) first, then each layer's ``python/`` folder; the ``Handler``;
* a context object with the function's name, memory size and a deadline of its ``Timeout``. An invocation still
  running at the deadline is reported the way Lambda reports it ("Task timed out") and the command exits 1;
* the environment, lowest priority first: the template's literal values and parameter defaults, the shell's
  environment, ``--env-vars`` (SAM's file format), plus the ``AWS_LAMBDA_*`` variables ``sam local`` sets;
* output: the handler's return value as JSON on stdout (a JSON list with ``--times``), logs and metrics on stderr.
  An exception becomes Lambda's error document (``errorMessage``, ``errorType``, ``stackTrace``) and exit status 1.

When none of the function's resource variables is set (:data:`RESOURCE_VARIABLES`; the sender's are
``NXCLOUD_SECRET_ID``, ``DLQ_URL``, ``SEND_QUEUE_URL``, ``IDEMPOTENCY_TABLE``), it starts an ephemeral local stack
for the duration of the command (moto and the NXCloud simulator with the demo faults, on 127.0.0.1; see
events/README.md) and points the function at it.

Exit status: 0 when every invocation returned, 1 when one raised or timed out, 2 for a bad command line, event file
or ``--env-vars`` file, or a partial configuration.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import os
import sys
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final, TextIO

from local_stack.output import LineWriter
from local_stack.template import (
    TEMPLATE,
    function_environment,
    function_properties,
    load_template,
    resolve,
    resource_properties,
    serverless_functions,
)

FUNCTION: Final = "SenderFunction"
SEND_QUEUE: Final = "SendQueue"
ROOT: Final = TEMPLATE.parent
RESOURCE_VARIABLES: Final = {
    "SenderFunction": ("NXCLOUD_SECRET_ID", "DLQ_URL", "SEND_QUEUE_URL", "IDEMPOTENCY_TABLE"),
    "WebhookFunction": ("NXCLOUD_SECRET_ID", "MESSAGES_TABLE", "KEPT_CALLBACKS_QUEUE_URL"),
    "PublisherFunction": ("MESSAGES_TABLE",),
    "PlannerFunction": ("NXCLOUD_SECRET_ID", "CAMPAIGNS_TABLE", "CAMPAIGN_BUCKET", "CAMPAIGN_TICK_QUEUE_URL"),
}
"""Per function, what it cannot run without; when all are unset an ephemeral local stack provides them."""
RECORD_SOURCES: Final = {"aws:sqs": "SQS", "aws:dynamodb": "DynamoDB"}
"""A record's ``eventSource`` and the SAM event type that delivers such records."""
AWS_ONLY_VARIABLES: Final = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)
"""Dropped when the ephemeral stack runs, so nothing can pick a real account or endpoint instead of the local one."""


class UsageError(Exception):
    """A bad command line, event file or env-vars file: reported in one line, exit status 2."""


# ---------------------------------------------------------------------------------------------------------------------
# The function as template.yaml declares it


class FunctionSpec:
    """The parts of the function's definition that Lambda uses to run it, as :mod:`local_stack.template` reads them
    (``Globals`` merged, SAM's defaults for what neither sets, parameter defaults resolved)."""

    def __init__(self, template: Mapping[str, Any] | None = None, logical_id: str = FUNCTION) -> None:
        self.template = load_template() if template is None else template
        self.logical_id = logical_id
        self.properties = function_properties(logical_id, self.template)
        self.handler = str(self.properties["Handler"])
        self.timeout = float(resolve(self.properties["Timeout"], self.template))
        self.memory = int(resolve(self.properties["MemorySize"], self.template))
        self.environment: dict[str, Any] = dict(self.properties.get("Environment", {}).get("Variables", {}))

    def code_paths(self) -> list[Path]:
        """What Lambda puts first on ``sys.path``: the function's code, then every layer's ``python/`` folder."""
        paths = [ROOT / str(self.properties["CodeUri"])]
        resources = self.template.get("Resources", {})
        for layer in self.properties.get("Layers", []):
            if isinstance(layer, dict) and "Ref" in layer and layer["Ref"] in resources:
                content = resource_properties(layer["Ref"], self.template).get("ContentUri")
                folder = ROOT / str(content) / "python" if content else None
                if folder is not None and folder.is_dir():  # third-party layers are built; .venv has them here
                    paths.append(folder)
        return [p.resolve() for p in paths]

    def default_environment(self) -> dict[str, str]:
        """The template's values that need no deployment: literals, parameter defaults and mappings, as strings."""
        return {name: _stringify(value) for name, value in function_environment(self.logical_id, self.template).items()}


def function_for_event(event: Mapping[str, Any], template: Mapping[str, Any] | None = None) -> str:
    """The function template.yaml wires to this event's source: what ``make invoke`` runs without ``--function``.

    Records (``Records[0].eventSource``) go to the function with that kind of event source (``SQS``, ``DynamoDB``); an
    API Gateway request to the function whose event has its route: ``routeKey`` (HTTP API, payload 2.0) against
    ``HttpApi`` events, ``httpMethod`` and ``resource`` (REST API, payload 1.0) against ``Api`` events. The template
    is the one place that says which function handles what: a new function's events need no change here (only its
    :data:`RESOURCE_VARIABLES`).
    """
    template = load_template() if template is None else template
    kind, route = _event_source(event)
    sources = [
        (logical_id, source)
        for logical_id, properties in _serverless_functions(template)
        for source in (properties.get("Events") or {}).values()
        if source.get("Type") == kind and (route is None or _route(source) == route)
    ]
    queues = {_queue(source) for _, source in sources} - {""}
    matches = sorted(logical_id for logical_id, source in sources if _from_queue(_queue(source), queues, event))
    if len(set(matches)) != 1:
        found = f"{', '.join(sorted(set(matches)))} match" if matches else "no function in template.yaml has"
        where = f" {route}" if route else ""
        raise UsageError(f"{found} a {kind} event{where}: name the function with --function (FUNCTION=)")
    return matches[0]


def _event_source(event: Mapping[str, Any]) -> tuple[str, str | None]:
    """The SAM event type an event comes from, and its route (``POST /path``) for an API request."""
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource") or records[0].get("EventSource")
        if source in RECORD_SOURCES:
            return RECORD_SOURCES[source], None
        raise UsageError(f"records from {source!r}: no function for them here; name one with --function (FUNCTION=)")
    if event.get("version") == "2.0" and isinstance(event.get("routeKey"), str):
        return "HttpApi", str(event["routeKey"])
    if isinstance(event.get("httpMethod"), str) and isinstance(event.get("resource"), str):
        return "Api", f"{event['httpMethod'].upper()} {event['resource']}"
    raise UsageError(
        "the event is neither records (SQS, DynamoDB stream) nor an API Gateway request: name the function with "
        "--function (FUNCTION=)"
    )


def _queue(source: Mapping[str, Any]) -> str:
    """The logical id of an SQS event source's queue (``!GetAtt SendQueue.Arn``); empty for any other source."""
    queue = (source.get("Properties") or {}).get("Queue")
    return str(queue["Fn::GetAtt"][0]) if source.get("Type") == "SQS" and isinstance(queue, dict) else ""


def _from_queue(queue: str, queues: set[str], event: Mapping[str, Any]) -> bool:
    """Whether the records come from ``queue``: the queue CloudFormation named after its logical id
    (``stack-CampaignTickQueue-1A2B``); records whose ARN names none of the template's queues (a local queue's) come
    from the send queue, as they always did (another function's records name their queue, or ``--function``)."""
    if not queue:
        return True
    named = set(str(event["Records"][0].get("eventSourceARN", "")).rsplit(":", 1)[-1].split("-"))
    return queue in named if named & queues else queue == SEND_QUEUE


def _route(source: Mapping[str, Any]) -> str:
    properties = source.get("Properties") or {}
    return f"{str(properties.get('Method', '')).upper()} {properties.get('Path', '')}"


def _serverless_functions(template: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(logical_id, function_properties(logical_id, template)) for logical_id in serverless_functions(template)]


def _stringify(value: Any) -> str:
    """A variable's value as SAM passes it: booleans lower-case, objects and null blank."""
    if isinstance(value, dict | list | tuple) or value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def lambda_variables(spec: FunctionSpec) -> dict[str, str]:
    """The ``AWS_LAMBDA_*`` variables ``sam local invoke`` sets (credentials and region are left to the user)."""
    return {
        "AWS_SAM_LOCAL": "true",
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(int(spec.timeout)),
        "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "$LATEST",
    }


# ---------------------------------------------------------------------------------------------------------------------
# Input files


def load_event(path: str) -> dict[str, Any]:
    """The event as a JSON object, from a file or ``-`` (stdin); :class:`UsageError` saying what is wrong."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"event file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read event file {path}: {exc}") from None
    try:
        event = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"event file {path} is not valid JSON: {exc}") from None
    if not isinstance(event, dict):
        raise UsageError(f"event file {path} must hold a JSON object (an SQS or API Gateway event)")
    return event


def load_env_vars(path: Path, spec: FunctionSpec) -> dict[str, str]:
    """SAM's ``--env-vars`` file: ``{"Parameters": {...}}`` for every function, ``{"<LogicalId>": {...}}`` for one."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"env-vars file not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"env-vars file {path} is not readable JSON: {exc}") from None
    if not isinstance(document, dict):
        raise UsageError(f'env-vars file {path} must be a JSON object like {{"{spec.logical_id}": {{"VAR": "value"}}}}')
    variables: dict[str, str] = {}
    for section in ("Parameters", spec.logical_id):
        values = document.get(section, {})
        if not isinstance(values, dict):
            raise UsageError(f"env-vars file {path}: {section} must be an object of variable names to values")
        variables.update({str(name): _stringify(value) for name, value in values.items()})
    return variables


# ---------------------------------------------------------------------------------------------------------------------
# Running


class Output:
    """Results go to the real stdout, one JSON document per invocation or one list; everything else to stderr."""

    def __init__(self, stream: TextIO, as_list: bool) -> None:
        self.stream = stream
        self.as_list = as_list
        self.results: list[Any] = []
        self.lock = threading.Lock()

    def add(self, result: Any) -> None:
        self.results.append(result)
        if not self.as_list:
            self._write(result)

    def finish(self) -> None:
        if self.as_list:
            self._write(self.results)

    def _write(self, document: Any) -> None:
        self.stream.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
        self.stream.flush()


def note(text: str) -> None:
    print(f"invoke: {text}", file=sys.stderr, flush=True)


def invoke_once(handler: Any, event: dict[str, Any], spec: FunctionSpec, output: Output) -> bool:
    """One invocation with a fresh context and a watchdog at its deadline; False when it raised."""
    from local_stack.lambda_events import LambdaContext

    context = LambdaContext(
        function_name=spec.logical_id, memory_limit_in_mb=str(spec.memory), timeout_seconds=spec.timeout
    )
    finished = False

    def timed_out() -> None:
        with output.lock:
            if finished:
                return
            message = f"RequestId: {context.aws_request_id} Error: Task timed out after {spec.timeout:.2f} seconds"
            note(message)
            output.add({"errorType": "Sandbox.Timedout", "errorMessage": message})
            output.finish()
            sys.stderr.flush()
            os._exit(1)  # Lambda stops the sandbox; a running handler thread cannot be stopped otherwise

    watchdog = threading.Timer(spec.timeout, timed_out)
    watchdog.daemon = True
    watchdog.start()
    try:
        result: Any = handler(copy.deepcopy(event), context)
        ok = True
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        result = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": context.aws_request_id,
            "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:]),  # from the handler on
        }
        ok = False
    with output.lock:
        finished = True
        watchdog.cancel()
        output.add(result)
    return ok


def configure_environment(spec: FunctionSpec, env_vars: Mapping[str, str]) -> None:
    """Template defaults under the shell's environment, ``--env-vars`` over both, and Lambda's own variables."""
    for name, value in {**spec.default_environment(), **lambda_variables(spec)}.items():
        os.environ.setdefault(name, value)
    undeclared = sorted(name for name in env_vars if name not in spec.environment)
    if undeclared:
        note(
            f"{', '.join(undeclared)} not declared in template.yaml's {spec.logical_id} Environment: honoured here, "
            "but the real `sam local invoke --env-vars` ignores undeclared variables"
        )
    os.environ.update(env_vars)


def needs_local_stack(spec: FunctionSpec) -> bool:
    """True when none of the function's resource variables is set, False when all are; :class:`UsageError` when only
    some are."""
    required = RESOURCE_VARIABLES[spec.logical_id]
    missing = [name for name in required if not os.environ.get(name, "").strip()]
    if missing and len(missing) < len(required):
        raise UsageError(
            f"{', '.join(missing)} not set: set all of {', '.join(required)} (a deployed or running stack), "
            "or none of them for an ephemeral local stack"
        )
    return bool(missing)


def start_local_stack(spec: FunctionSpec, user_env: Mapping[str, str]) -> Any:
    """An ephemeral local stack, the function's environment pointed at it.

    ``user_env`` is what the user set (shell and ``--env-vars``): the stack's values replacing any of it are named.
    """
    from local_stack.stack import LocalStack

    for name in [*AWS_ONLY_VARIABLES, *(n for n in os.environ if n.startswith("AWS_ENDPOINT_URL_"))]:
        os.environ.pop(name, None)
    stack = LocalStack().start()
    replaced = sorted(n for n, v in stack.function_env().items() if user_env.get(n) not in (None, "", v))
    stack.apply_env()
    note(
        f"{', '.join(RESOURCE_VARIABLES[spec.logical_id])} not set: started an ephemeral local stack "
        f"(moto at {stack.moto.url}, NXCloud simulator at {stack.simulator.url} with the demo faults); "
        "it stops when this command ends"
    )
    if replaced:
        note(f"the local stack's values replace {', '.join(replaced)}")
    return stack


def load_handler(spec: FunctionSpec) -> Any:
    """Import the handler the way Lambda does: its module from the function's folder, layers after it."""
    for path in reversed(spec.code_paths()):
        text = str(path)
        while text in sys.path:
            sys.path.remove(text)
        sys.path.insert(0, text)
    module_name, _, function_name = spec.handler.rpartition(".")
    return getattr(importlib.import_module(module_name), function_name)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack.invoke",
        description="Run a function's handler in-process on one event, like `sam local invoke -e` without Docker: "
        "the function template.yaml wires to the event's source (an SQS or DynamoDB stream record, an API or HTTP "
        "API route), or --function. The handler's return value is printed as JSON on stdout; logs go to stderr. "
        "With none of the function's resource variables set (the sender's: "
        f"{', '.join(RESOURCE_VARIABLES[FUNCTION])}), an ephemeral local stack (moto + NXCloud simulator) is started.",
        epilog="Environment overrides honoured: AWS_ENDPOINT_URL, NXCLOUD_BASE_URL, NXCLOUD_SECRET_ID, DLQ_URL, "
        "SEND_QUEUE_URL, IDEMPOTENCY_TABLE, MESSAGES_TABLE, UNKNOWN_OUTCOME_POLICY and every other variable the "
        "function reads. Sample events and their expected outcomes: events/README.md.",
    )
    parser.add_argument("event", help="the event JSON file (e.g. events/api-send-sync.json), or - for stdin")
    parser.add_argument(
        "--function",
        metavar="LOGICAL_ID",
        help="the function to invoke, as template.yaml names it (default: the one wired to the event's source)",
    )
    parser.add_argument(
        "--times",
        type=int,
        metavar="N",
        help="invoke N times with the same event (e.g. to show idempotency); prints a JSON list of the N results",
    )
    parser.add_argument(
        "--env-vars",
        type=Path,
        metavar="FILE",
        help='environment overrides in SAM\'s format: {"<LogicalId>": {"VAR": "value"}} or {"Parameters": {...}}',
    )
    args = parser.parse_args(argv)
    if args.times is not None and args.times < 1:
        parser.error("--times must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Powertools' Logger binds sys.stdout when the function's modules create it, and Metrics print to sys.stdout:
    # point both at stderr before anything imports them, so stdout carries only the results.
    real_stdout, real_stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = LineWriter(real_stderr)
    try:
        return run(args, Output(real_stdout, as_list=args.times is not None))
    finally:
        sys.stderr.flush()
        sys.stdout, sys.stderr = real_stdout, real_stderr


def function_spec(name: str | None, event: Mapping[str, Any]) -> FunctionSpec:
    """The function to run: the one named, else the one wired to the event's source (said on stderr)."""
    template = load_template()
    if name is None:
        name = function_for_event(event, template)
        note(f"{name}: the function template.yaml wires to this event's source (--function to choose another)")
    functions = serverless_functions(template)
    if name not in functions or name not in RESOURCE_VARIABLES:
        raise UsageError(f"no function {name!r} to run here; template.yaml's: {', '.join(functions)}")
    return FunctionSpec(template, name)


def run(args: argparse.Namespace, output: Output) -> int:
    user_env = dict(os.environ)
    try:
        event = load_event(args.event)
        spec = function_spec(args.function, event)
        env_vars = load_env_vars(args.env_vars, spec) if args.env_vars else {}
        configure_environment(spec, env_vars)
        ephemeral = needs_local_stack(spec)
    except UsageError as exc:
        print(f"invoke: error: {exc}", file=sys.stderr)
        return 2
    handler = load_handler(spec)
    stack = start_local_stack(spec, {**user_env, **env_vars}) if ephemeral else None
    try:
        results = [invoke_once(handler, event, spec, output) for _ in range(args.times or 1)]
        output.finish()
        return 0 if all(results) else 1
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
