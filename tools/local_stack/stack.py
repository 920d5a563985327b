"""The whole stack on 127.0.0.1: moto's server, the NXCloud simulator, and the resources of ``template.yaml``.

Used by ``make run`` (the runner), ``make invoke`` when no AWS endpoint is given, the end-to-end tests and the
benchmarks. Settings come from the template (``maxReceiveCount``, batch size, batching window, visibility timeout).
Only retries are quicker: the emulated event source makes a failed record visible again after ``retry_visibility``
seconds instead of leaving it hidden for the whole visibility timeout, so a retried message comes back in seconds.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from local_stack.aws import MotoServer, Resources, provision
from local_stack.template import function_properties, resolve, resource_properties, serverless_functions
from nxcloud_simulator.callbacks import STOP_PROMOTIONS
from nxcloud_simulator.server import NXCloudSimulator
from nxcloud_simulator.templates import read_catalogue

LOCAL_SECRET: Final = {
    "accessKey": "local-access-key",
    "accessSecret": "local-access-secret",
    "tenant_id": 1,
    "appkey": "localapp",
    "business_phone": "8618512348399",
    "webhook_token": "local-webhook-token-0123456789abcdef",
}
"""The secret the local stack stores and the simulator accepts (never a real credential)."""

DEMO_FAULTS: Final = (
    {"kind": "code", "code": 22093, "template": "demo_missing_template"},
    {"kind": "http_status", "status": 500, "template": "demo_flaky", "times": 1},
    {"kind": "http_status", "status": 500, "template": "demo_outage"},
)
"""How the simulator treats the sample messages' special template names (see events/README.md):
``demo_missing_template`` is rejected permanently (22093), ``demo_flaky`` fails once then succeeds,
``demo_outage`` fails every time until the queue's redrive policy dead-letters it."""

MARKETING_LIMITED: Final = "8613612340049"
"""A recipient Meta's per-user marketing limit stops once: ``make run``'s 131049 retry row."""
CAPPED_RECIPIENT: Final = "8613612340051"
"""The recipient of ``make run``'s frequency cap row (its marketing templates meet the run's cap; nothing else is sent
to it)."""
DEMO_OUTCOMES: Final = (
    {"to": "8613612345759", "final": "failed", "code": 131026, "title": "Message undeliverable", "after_sent": True},
    {"to": MARKETING_LIMITED, "final": "failed", "code": 131049, "times": 1},
)
"""What the simulator's callbacks report for the samples' special recipients (see events/README.md): messages to
8613612345759 are sent, then fail with WhatsApp's 131026 (the webhook stores an ``undeliverable`` entry); the first
message to :data:`MARKETING_LIMITED` fails with 131049 (the webhook schedules its retry), the next is read. Every
other accepted message is sent, delivered, read."""
DEMO_BUTTONS: Final = (
    {"to": "8613800138000", "template": "order_update", "buttons": [{"payload": "confirm", "text": "Confirm"}]},
    {"to": "8613612349759", "template": "test_00045", "buttons": [dict(STOP_PROMOTIONS)], "click": "Stop promotions"},
)
"""Recipients who click a quick-reply button once the message is read: 8613800138000 confirms; 8613612349759 taps
Meta's ``Stop promotions`` on the marketing template of page example 2, so the webhook stores an opt-out."""
DEMO_TEMPLATES_FILE: Final = Path(__file__).resolve().parents[2] / "events" / "templates.json"
"""The samples' template catalogue, by account (see events/README.md): the simulator serves getTemplate from it and
refuses sends of templates it lacks (22093), so the function's template check and NXCloud agree.
``demo_missing_template`` is not in it."""


DEMO_SUPPRESSIONS_FILE: Final = DEMO_TEMPLATES_FILE.with_name("suppressions.json")
"""The samples' suppression list (see events/README.md): entries stored in the local stack's table at start, so a
sample to such a recipient is skipped."""


def demo_templates() -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The samples' catalogue, read from :data:`DEMO_TEMPLATES_FILE`."""
    return read_catalogue(DEMO_TEMPLATES_FILE)


def seed_suppressions(resources: Resources, path: Path = DEMO_SUPPRESSIONS_FILE) -> int:
    """Store the entries of ``path`` (a JSON list of ``business_phone``, ``recipient``, ``scope``, ``reason``,
    ``source``) in the resources' suppression list, as of now; return how many."""
    import json

    from nxcloud_wa.suppressions import Reason, Scope, Suppression, SuppressionStore, key_of, now_iso

    store = SuppressionStore(resources.client("dynamodb"), resources.suppressions_table)
    entries = json.loads(path.read_text(encoding="utf-8"))
    for entry in entries:
        business, recipient = key_of(entry["business_phone"], entry["recipient"])
        scope, reason = Scope(entry["scope"]), Reason(entry["reason"])
        store.put(Suppression(business, recipient, scope, reason, entry["source"], now_iso(store.clock())))
    return len(entries)


DEMO_AUDIENCE_FILE: Final = DEMO_TEMPLATES_FILE.with_name("audience-sample.csv")
DEMO_AUDIENCE_KEY: Final = "audiences/sample.csv"
"""Where the local stack puts the samples' audience file (events/README.md), so events/campaign-create.json names a
file that exists: five rows for ``order_update`` (en_US), one a duplicate in another spelling, one invalid."""


def seed_audience(resources: Resources, path: Path = DEMO_AUDIENCE_FILE) -> str:
    """Put ``path`` in the resources' campaign bucket under :data:`DEMO_AUDIENCE_KEY`, as an upload through
    ``POST /audiences`` would; return the key."""
    s3 = resources.client("s3")
    s3.put_object(Bucket=resources.campaign_bucket, Key=DEMO_AUDIENCE_KEY, Body=path.read_bytes())
    return DEMO_AUDIENCE_KEY


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """The SQS trigger's settings, as template.yaml declares them."""

    batch_size: int
    batching_window: int
    max_receive_count: int
    visibility_timeout: int

    @classmethod
    def from_template(cls) -> QueueSettings:
        function = resource_properties("SenderFunction")
        event = next(e["Properties"] for e in function["Events"].values() if e["Type"] == "SQS")
        queue = resource_properties("SendQueue")
        return cls(
            batch_size=int(resolve(event["BatchSize"])),
            batching_window=int(resolve(event.get("MaximumBatchingWindowInSeconds", 0))),
            max_receive_count=int(resolve(queue["RedrivePolicy"]["maxReceiveCount"])),
            visibility_timeout=int(resolve(queue["VisibilityTimeout"])),
        )


class LocalStack:
    """Start with :meth:`start`, point the function at it with :meth:`function_env`, stop with :meth:`stop`."""

    def __init__(self, *, retry_visibility: int = 1, demo_faults: bool = True, prefix: str | None = None) -> None:
        """``demo_faults``: the samples' demo templates, faults, outcomes and buttons (events/README.md)."""
        self.queue = QueueSettings.from_template()
        self.retry_visibility = retry_visibility
        self.demo_faults = demo_faults
        self.prefix = prefix or f"local-{uuid.uuid4().hex[:8]}"
        self.moto = MotoServer()
        self.simulator = NXCloudSimulator(accounts={LOCAL_SECRET["accessKey"]: LOCAL_SECRET["accessSecret"]})
        self.resources: Resources | None = None

    def start(self) -> LocalStack:
        self.moto.start()
        self.simulator.start()
        self.resources = provision(
            self.moto.url,
            prefix=self.prefix,
            secret=LOCAL_SECRET,
            max_receive_count=self.queue.max_receive_count,
            visibility_timeout=self.queue.visibility_timeout,
        )
        if self.demo_faults:
            for fault in DEMO_FAULTS:
                self.simulator.add_fault(**fault)
            for outcome in DEMO_OUTCOMES:
                self.simulator.add_outcome(**outcome)
            for button in DEMO_BUTTONS:
                self.simulator.add_button(**button)
            for (appkey, business_phone), templates in demo_templates().items():
                self.simulator.set_templates(appkey, business_phone, templates)
            seed_suppressions(self.resources)
            seed_audience(self.resources)
        return self

    def stop(self) -> None:
        self.simulator.stop()
        self.moto.stop()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def res(self) -> Resources:
        if self.resources is None:
            raise RuntimeError("the local stack is not started")
        return self.resources

    def schedules(self, clock: Any = None) -> Any:
        """The due-schedules runner of this stack's retry group (``local_stack.schedules``); ``clock``: epoch
        seconds (default: the real time)."""
        import time

        from local_stack.schedules import DueSchedules

        res = self.res
        return DueSchedules(res.client("scheduler"), res.client("sqs"), res.retry_group, clock or time.time)

    def function_env(self) -> dict[str, str]:
        """The environment the function needs to run against this stack (fake AWS credentials included)."""
        return {
            **self.res.function_env(),
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "NXCLOUD_BASE_URL": self.simulator.url,
            "NXCLOUD_TEMPLATE_BASE_URL": self.simulator.url,
            "POWERTOOLS_SERVICE_NAME": "nxcloud-wa-sender",
            "POWERTOOLS_METRICS_NAMESPACE": "NXCloudWhatsApp",
        }

    def sam_env_vars(self, resources: Resources | None = None) -> dict[str, dict[str, str]]:
        """An ``--env-vars`` document for ``sam local``: every AWS call to moto, NXCloud to the simulator.

        One section per function of template.yaml, each its environment for this stack limited to the variables the
        template declares for that function: the only ones ``sam local`` lets the file set (AWS_ENDPOINT_URL is
        declared for this; a deployed function never gets it). ``resources``: other resources on the same moto server
        than the stack's own.
        """
        simulator = {"NXCLOUD_BASE_URL": self.simulator.url, "NXCLOUD_TEMPLATE_BASE_URL": self.simulator.url}
        wanted = {**(resources or self.res).function_env(), **simulator}
        document = {}
        for function in serverless_functions():
            declared = function_properties(function).get("Environment", {}).get("Variables", {})
            document[function] = {name: value for name, value in wanted.items() if name in declared}
        return document

    def apply_env(self, environ: Any = os.environ) -> None:
        """Point this process's function code at the stack (and drop any cached runtime)."""
        environ.update(self.function_env())
        try:
            from aws_lambda_powertools.utilities import parameters

            import runtime
        except ImportError:  # pragma: no cover - the function folder is always on sys.path here
            return
        runtime.reset()
        parameters.clear_caches()
