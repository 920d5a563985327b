"""``make run``: the whole stack on 127.0.0.1, the sample messages pushed through both paths, a table of outcomes.

Start order: moto's server and the simulator (:class:`LocalStack`), the SQS poller, the stream poller and the API
(:mod:`local_stack.emulators`), all invoking the real handlers in-process, and the simulator pointed at the local
webhook, so it posts NXCloud's callbacks after each accepted send. Then every sample of ``events/`` is sent the way a
user's service would send it: SQS samples with ``SendMessage`` to the send queue, API samples as HTTP requests with
the API key. The run waits until every message is settled (sent, or on the dead-letter queue) and every callback
is stored and published, prints one row per message (its outcome, where its delivery ended, the status events seen)
and exits 0 only when each is what ``events/expected.json`` documents, and the rows that are not one sample (the
131049 retry, the frequency cap, the request without an API key) are what their classes here document.

The run has a marketing frequency cap, :data:`MAKE_RUN_CAP`, for its cap row.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Final

from local_stack.aws import queue_depth, send_message
from local_stack.emulators import ApiServer, Invoker, QueuePoller, StreamPoller, json_body
from local_stack.outcomes_log import OutcomeLog
from local_stack.samples import describe_trail
from local_stack.stack import CAPPED_RECIPIENT, LOCAL_SECRET, MARKETING_LIMITED, LocalStack
from local_stack.streams import CAMPAIGNS, StreamReader
from local_stack.template import function_setting, resource_properties

MAKE_RUN_CAP: Final = "2/24h"
"""``make run``'s ``MARKETING_CAP_PER_RECIPIENT`` (the template's default is off). Two, not one: the 131049 row's
message and its retry are two marketing sends to one recipient, and the run fires the retry "a day later" by moving
the scheduler's clock only, so a ``1/24h`` cap would skip the retry, which a real day later it would not. No other
sample sends a recipient more than one marketing template, so every other row is as without a cap."""
CAP_VARIABLE: Final = "MARKETING_CAP_PER_RECIPIENT"


@dataclass
class Row:
    """One message's journey, as the table shows it."""

    sample: str
    path: str
    outcome: str
    detail: str
    expected: str
    delivery: str = ""
    expected_delivery: str = ""
    events: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome == self.expected and self.delivery == self.expected_delivery


class Runner:
    """The running stack plus what it takes to push samples and tell when they are settled."""

    def __init__(self, *, retry_delay: int = 1, api_port: int = 0, cap: str = MAKE_RUN_CAP) -> None:
        """``cap``: the marketing frequency cap the functions run with (empty: off)."""
        self.api_port = api_port
        self.cap = cap
        self._cap_before: str | None = None
        self.stack = LocalStack(retry_visibility=retry_delay)
        self.retry_delay = retry_delay
        self.log = OutcomeLog()
        self.poller: QueuePoller | None = None
        self.streams: StreamPoller | None = None
        self.campaign_stream: StreamPoller | None = None
        """The campaigns table's stream to the publisher (Campaign Status Changed events)."""
        self.campaign_moves: dict[str, list[str]] = {}
        """The campaign status events :meth:`status_events` read off the bus, by campaign id."""
        self.ticks: QueuePoller | None = None
        """The campaign tick queue's event source: the planner's passes (functions/planner)."""
        self.api: ApiServer | None = None

    def start(self) -> Runner:
        self.stack.start()
        self._cap_before = os.environ.get(CAP_VARIABLE)
        if self.cap:
            os.environ[CAP_VARIABLE] = self.cap
        self.stack.apply_env()
        self.log.attach()
        timeout = float(function_setting("SenderFunction", "Timeout"))
        invoker = Invoker(timeout=timeout)
        self.poller = QueuePoller(
            self.stack.res.client("sqs"),
            self.stack.res.send_queue_url,
            invoker,
            batch_size=self.stack.queue.batch_size,
            retry_delay=self.retry_delay,
        ).start()
        self.api = ApiServer(invoker, port=self.api_port, webhook=_invoker("WebhookFunction")).start()
        self.streams = StreamPoller(StreamReader(self.stack.res), _invoker("PublisherFunction")).start()
        self.campaign_stream = StreamPoller(
            StreamReader(self.stack.res, CAMPAIGNS), _invoker("PublisherFunction")
        ).start()
        self.ticks = QueuePoller(
            self.stack.res.client("sqs"),
            self.stack.res.campaign_tick_queue_url,
            _invoker("PlannerFunction"),
            batch_size=_tick_batch_size(),
            retry_delay=self.retry_delay,
        ).start()
        self.stack.simulator.set_webhook_url(self.webhook_url)
        return self

    @property
    def webhook_url(self) -> str:
        """Where NXCloud (the simulator) posts its callbacks: the webhook's URL and the secret's token."""
        assert self.api is not None
        return self.api.webhook_url + str(LOCAL_SECRET["webhook_token"])

    def stop(self) -> None:
        for poller in (self.streams, self.campaign_stream):
            if poller is not None:
                poller.stop()
        if self.poller is not None:
            self.poller.stop()
        if self.ticks is not None:
            self.ticks.stop()
        if self.api is not None:
            self.api.stop()
        self.log.detach()
        self.stack.stop()
        self._restore_cap()

    def _restore_cap(self) -> None:
        """The process's cap variable as it was before :meth:`start` (tests run other stacks in this process)."""
        if self._cap_before is None:
            os.environ.pop(CAP_VARIABLE, None)
        else:
            os.environ[CAP_VARIABLE] = self._cap_before

    def __enter__(self) -> Runner:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # --- pushing messages the way a user's service would

    def enqueue(self, body: str, attributes: dict[str, str] | None = None) -> str:
        return send_message(self.stack.res.client("sqs"), self.stack.res.send_queue_url, body, attributes)

    def post(
        self, body: str, headers: dict[str, str] | None = None, *, with_key: bool = True, route: str = "/messages"
    ) -> tuple[int, Any]:
        """POST to the local API's ``route`` over real HTTP; return the status and the decoded body."""
        import urllib.error
        import urllib.request

        assert self.api is not None
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if with_key:
            all_headers["x-api-key"] = self.api.api_key
        request = urllib.request.Request(  # noqa: S310 - 127.0.0.1 only
            f"{self.api.url}{route}", data=body.encode("utf-8"), headers=all_headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, json_body(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json_body(error.read())

    def get(self, message_id: str) -> tuple[int, Any]:
        """GET /v1/messages/{id} over HTTP, with the key."""
        import urllib.error
        import urllib.parse
        import urllib.request

        assert self.api is not None
        url = f"{self.api.url}/messages/{urllib.parse.quote(message_id, safe='')}"
        request = urllib.request.Request(url, headers={"x-api-key": self.api.api_key})  # noqa: S310 - 127.0.0.1
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                return response.status, json_body(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json_body(error.read())

    # --- the lifecycle

    def wait_for_callbacks(self, timeout: float = 60.0) -> bool:
        """Wait until the simulator has posted every callback and the publisher has read the stream to its end."""
        deadline = time.monotonic() + timeout
        drained = self.stack.simulator.drain(timeout)
        assert self.streams is not None
        while time.monotonic() < deadline:
            if self.streams.poll_once() == 0:
                return drained
        return False

    def delivery(self, message_id: str) -> str:
        """Where a sent message's delivery ended, as the query API says: ``read``, ``failed 131026``, ``, 1 click``."""
        status, body = self.get(message_id)
        if status != 200 or not isinstance(body, dict):
            return f"http {status}"
        text = str(body["status"])
        if body.get("errors"):
            text += " " + " ".join(str(e["code"]) for e in body["errors"])
        if body.get("buttons"):
            text += f", {len(body['buttons'])} click" + ("s" if len(body["buttons"]) > 1 else "")
        return text

    def status_events(self) -> dict[str, list[str]]:
        """The status events put on the bus, by message id (read from the capture queue once: consumed); campaign
        status events go to :attr:`campaign_moves`."""
        from publisher import CAMPAIGN_STATUS_CHANGED, STATUS_CHANGED  # here: the function binds stdout (__main__)

        sqs, url = self.stack.res.client("sqs"), self.stack.res.events_queue_url
        found: dict[str, list[str]] = {}
        while batch := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            for message in batch:
                event = json.loads(message["Body"])
                detail = event.get("detail") or {}
                if event.get("detail-type") == STATUS_CHANGED:
                    found.setdefault(str(detail["message_id"]), []).append(str(detail["status"]))
                elif event.get("detail-type") == CAMPAIGN_STATUS_CHANGED:
                    self.campaign_moves.setdefault(str(detail["campaign_id"]), []).append(str(detail["status"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return found

    # --- settling

    def wait_until_settled(self, message_ids: list[str], timeout: float = 120.0) -> bool:
        """Wait until the send queue is empty and every id has a final outcome (sent, skipped or dead-lettered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue_depth() == 0:
                dead = self.dead_letters()
                if all(self.final_outcome(m, dead)[0] != "pending" for m in message_ids):
                    return True
            time.sleep(0.2)
        return False

    def queue_depth(self) -> int:
        return queue_depth(self.stack.res.client("sqs"), self.stack.res.send_queue_url)

    def dead_letters(self) -> dict[str, dict[str, str]]:
        """The DLQ's messages by id (moto keeps a message's id when its redrive policy moves it), not consumed."""
        from waops.dlq import peek

        return {d.message_id: d.attributes for d in peek(self.stack.res.client("sqs"), self.stack.res.dlq_url)}

    def final_outcome(self, message_id: str, dead: dict[str, dict[str, str]] | None = None) -> tuple[str, str]:
        """(outcome, detail) of a queued message: ``sent``, ``skipped``, ``dead_lettered``, ``retried N then ...``,
        ``pending``."""
        trail = self.log.trail(message_id)
        if trail.final == "sent":
            return describe_trail(trail.retries, "sent"), str(trail.detail.get("message_id"))
        if trail.final == "skipped":  # no NXCloud message_id: GET /messages/{key} says why
            return describe_trail(trail.retries, "skipped", str(trail.detail.get("reason"))), ""
        if trail.final == "dead_lettered":
            reason = f"{trail.detail.get('reason')} {trail.detail.get('error_code')}"
            return describe_trail(trail.retries, "dead_lettered", reason), ""
        dead = self.dead_letters() if dead is None else dead
        if message_id in dead:  # moved by the queue's redrive policy: the function never wrote a reason
            return describe_trail(trail.retries, "dead_lettered", "retries exhausted (redrive policy)"), ""
        return "pending", ""


class MarketingLimitRetry:
    """``make run``'s 131049 row: a marketing template to :data:`~local_stack.stack.MARKETING_LIMITED`, whom the
    simulator's callbacks fail once with Meta's per-user marketing limit. The webhook schedules its retry (an
    EventBridge Scheduler one-time schedule, stored by moto); :meth:`fire_and_follow` fires the due schedules with the
    clock moved past the retry delay (``local_stack.schedules``: moto never fires them itself), and the retry is sent,
    delivered and read as the same message."""

    SAMPLE = "131049 retry: weekend_offer (MARKETING) to a limited recipient"
    EXPECTED = "sent, retry_scheduled, 1 schedule fired, sent"

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.queue_id = ""
        self.first = ""
        self.scheduled = ""
        self.fired: list[str] = []
        self.retried = ""

    def send(self) -> None:
        body = {
            "to": MARKETING_LIMITED,
            "template": {
                "name": "weekend_offer",
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": "20%"}]}],
            },
            "idempotency_key": "make-run-131049",
        }
        self.queue_id = self.runner.enqueue(json.dumps(body))

    def fire_and_follow(self, timeout: float) -> None:
        """Once the first attempt's callbacks are in: note its status, fire what is due a day later, follow it."""
        from nxcloud_wa.audience import DEFAULT_MARKETING_LIMIT_RETRY_HOURS, HOUR

        outcome, self.first = self.runner.final_outcome(self.queue_id)
        if outcome != "sent":
            return
        _, found = self.runner.get(self.first)
        self.scheduled = str(found.get("status")) if isinstance(found, dict) else ""
        hours = int(os.environ.get("MARKETING_LIMIT_RETRY_HOURS") or DEFAULT_MARKETING_LIMIT_RETRY_HOURS)
        fired = self.runner.stack.schedules().fire_due(now=time.time() + hours * HOUR + 60)
        self.fired = [f.message_id for f in fired]
        if self.runner.wait_until_settled(self.fired, timeout=timeout):
            self.runner.wait_for_callbacks(timeout=timeout)
            self.retried = ", ".join(self.runner.final_outcome(m)[0] for m in self.fired)

    def row(self, events: dict[str, list[str]]) -> Row:
        outcome = f"sent, {self.scheduled}, {len(self.fired)} schedule fired, {self.retried}" if self.first else ""
        _, found = self.runner.get(self.first) if self.first else (0, {})
        attempts = found.get("attempts", []) if isinstance(found, dict) else []
        shown = " | ".join(" ".join(events.get(str(a["message_id"]), [])) for a in attempts)
        return Row(
            self.SAMPLE,
            "sqs",
            outcome,
            self.first,
            self.EXPECTED,
            self.runner.delivery(self.first) if self.first else "",
            "read",
            shown,
        )


class FrequencyCapRow:
    """``make run``'s frequency cap row: to :data:`~local_stack.stack.CAPPED_RECIPIENT`, one after another (each
    settled before the next is queued: the cap holds for batches that follow one another, docs/audience.md), as many
    marketing templates as :data:`MAKE_RUN_CAP` allows, one more, which is skipped (``frequency_cap``; ``GET
    /messages/{key}`` says so and quotes the cap), then a utility template, which the cap never stops."""

    SAMPLE = f"frequency cap {MAKE_RUN_CAP}: weekend_offer (MARKETING) until capped, then order_update (UTILITY)"
    LIMIT = int(MAKE_RUN_CAP.split("/")[0])
    EXPECTED = ", ".join(
        ["sent"] * LIMIT + [f"skipped: frequency_cap (GET: skipped, frequency_cap {MAKE_RUN_CAP})", "UTILITY sent"]
    )

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.outcomes: list[str] = []
        self.first = ""

    def run(self, timeout: float) -> None:
        """Queue each message once the one before has settled; note how each ended."""
        messages = [(f"make-run-cap-{n}", "weekend_offer", f"{10 + n}%") for n in range(1, self.LIMIT + 2)]
        messages.append(("make-run-cap-utility", "order_update", "A-2001"))
        for key, template, parameter in messages:
            queue_id = self.runner.enqueue(json.dumps(self._body(key, template, parameter)))
            if not self.runner.wait_until_settled([queue_id], timeout=timeout):
                self.outcomes.append("pending")
                return
            outcome, message_id = self.runner.final_outcome(queue_id)
            self.first = self.first or message_id
            self.outcomes.append(self._shown(key, template, outcome))

    @staticmethod
    def _body(key: str, template: str, parameter: str) -> dict[str, Any]:
        return {
            "to": CAPPED_RECIPIENT,
            "template": {
                "name": template,
                "language": {"code": "en_US"},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": parameter}]}],
            },
            "idempotency_key": key,
        }

    def _shown(self, key: str, template: str, outcome: str) -> str:
        """The outcome as the row shows it: a skip with what ``GET /messages/{key}`` says of it."""
        if template == "order_update":
            return f"UTILITY {outcome}"
        if not outcome.startswith("skipped"):
            return outcome
        _, found = self.runner.get(key)
        view = found if isinstance(found, dict) else {}
        skipped = view.get("skipped") if isinstance(view.get("skipped"), dict) else {}
        return f"{outcome} (GET: {view.get('status')}, {skipped.get('reason')} {skipped.get('cap')})"

    def row(self, events: dict[str, list[str]]) -> Row:
        return Row(
            self.SAMPLE,
            "sqs",
            ", ".join(self.outcomes),
            self.first,
            self.EXPECTED,
            self.runner.delivery(self.first) if self.first else "",
            "read",
            " ".join(events.get(self.first, [])),
        )


def no_key_row(runner: Runner, body: str) -> Row:
    """A request without ``x-api-key``: API Gateway's 403 before any function runs."""
    status, _ = runner.post(body, with_key=False)
    return Row("(any request without x-api-key)", "api", f"http {status}", "Forbidden", "http 403")


def _invoker(function: str) -> Invoker:
    """An invoker of one of the template's functions, with its timeout."""
    import planner
    import publisher
    import webhook

    handlers = {
        "WebhookFunction": webhook.lambda_handler,
        "PublisherFunction": publisher.lambda_handler,
        "PlannerFunction": planner.lambda_handler,
    }
    return Invoker(handlers[function], timeout=float(function_setting(function, "Timeout")))


def _tick_batch_size() -> int:
    """The planner's tick event source's ``BatchSize``, as template.yaml declares it."""
    [source] = resource_properties("PlannerFunction")["Events"].values()
    return int(source["Properties"]["BatchSize"])
