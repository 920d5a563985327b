"""Fault mixes: what goes wrong, how often, and what kinds of messages are sent. ``MIX=<name>`` picks one.

Upstream faults are simulator rules (``nxcloud_simulator.faults``) drawn per request with the soak's seed; the
message-specific ones (a recipient NXCloud rejects, a template that does not exist, a template whose sends always
fail) are rules by ``to``/template and come first, so such a message meets the same answer on every attempt, as it
would at NXCloud. AWS faults are :class:`~soak.aws_faults.AwsFault` rules. ``kill_probability`` is the share of
invocations given a random tiny deadline and killed there, on top of any invocation that overruns the function's
timeout.

The delivery lifecycle is on in every mix: the simulator posts NXCloud's callbacks (:data:`CALLBACKS`: delays,
duplicates, reordering, batching; :data:`OUTCOMES` and :data:`BUTTONS`: which messages fail, stop short, are deleted
or get a button click) to the webhook, and the publisher reads the messages table's stream. A mix's lifecycle faults
are AWS rules on the messages table, EventBridge and the kept-callbacks queue (:data:`AWS_LIFECYCLE`) and kills of
webhook and publisher invocations (``webhook_kill_probability``, ``publisher_kill_probability``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from soak.aws_faults import AwsFault

BAD_RECIPIENTS: Final = {"8613900000090": 22090, "8613900000091": 22091}
"""Recipients NXCloud rejects permanently: invalid number, not a WhatsApp user."""
MISSING_TEMPLATE: Final = "soak_missing_template"  # 22093: template does not exist
OUTAGE_TEMPLATE: Final = "soak_outage"  # HTTP 500 on every attempt: retried until the redrive policy moves it
MESSAGE_RULES: Final = (
    *({"kind": "code", "code": code, "to": to} for to, code in BAD_RECIPIENTS.items()),
    {"kind": "code", "code": 22093, "template": MISSING_TEMPLATE},
    {"kind": "http_status", "status": 500, "template": OUTAGE_TEMPLATE},
)
PROMO_TEMPLATE: Final = "soak_promo"
"""The soak's one ``MARKETING`` template (the catalogue's others are ``UTILITY``); it has Meta's ``Stop promotions``
button, and every recipient who reads it taps it (:data:`OPT_OUT_BUTTON`)."""
OPT_OUT_GROUPS: Final[dict[str, dict[str, Any]]] = {
    "stop_click": {"base": 8613900000200},
    "stopped_131050": {"base": 8613900000400, "code": 131050, "template": PROMO_TEMPLATE},
    "undeliverable_131026": {"base": 8613900000600, "code": 131026},
}
"""Recipients that opt out partway through a run, by how (:func:`opt_out_rules`), each group's numbers counted up from
``base``: ``stop_click`` reads a marketing message and taps ``Stop promotions`` (``marketing``, ``opted_out``);
``stopped_131050`` fails a marketing message with 131050 (``marketing``, ``marketing_stopped``; its utility ones are
read); ``undeliverable_131026`` fails any message with 131026 (``all``, ``undeliverable``). Each gets several messages
spread over the run."""
OPT_OUT_BUTTON: Final = {
    "template": PROMO_TEMPLATE,
    "buttons": [{"payload": "Stop promotions", "text": "Stop promotions"}],
    "click": "Stop promotions",
}


@dataclass(frozen=True, slots=True)
class MessageShares:
    """Shares of the N messages (the rest are ordinary valid queue messages)."""

    api: float = 0.05
    api_async: float = 1 / 3  # of the API messages: Prefer: respond-async
    invalid_json: float = 0.004
    invalid_field: float = 0.003
    bad_recipient: float = 0.008
    missing_template: float = 0.004
    outage: float = 0.002
    key_in_body: float = 0.1
    key_attribute: float = 0.1  # queue messages only
    resend: float = 0.2
    """Of the queue messages that carry an idempotency key: enqueued a second time right after the first, as a
    producer does when it retries a SendMessage that timed out. Must still be sent once."""
    opt_out: float = 0.06
    """Messages to the recipients that opt out partway through (:data:`OPT_OUT_GROUPS`), about four per recipient:
    sent, then skipped once the entry is stored (or sent, when claimed before it was: the documented race)."""


CALLBACKS: Final = {"delay": (0.05, 0.3), "duplicate": 0.05, "reorder": 0.2, "batch": 0.15, "timeout": 30.0}
"""How the simulator's callbacks travel (``configure_callbacks``): not faults but NXCloud's habits, the same in every
mix. No retries: NXCloud documents none, so a callback the webhook answers non-2xx is lost on NXCloud's side. The
POST waits up to 30 s (API Gateway's longest integration timeout), so a busy machine does not turn a slow answer
into a refusal."""
OUTCOMES: Final = (
    {"final": "failed", "code": 131026, "title": "Message undeliverable", "after_sent": True, "probability": 0.04},
    {"final": "failed", "code": 131047, "title": "Re-engagement message", "probability": 0.02},
    {"final": "deleted", "probability": 0.02},
    {"final": "delivered", "probability": 0.05},
    {"final": "sent", "probability": 0.02},
)
"""Where messages end other than ``read`` (``add_outcome``; the first that fires wins, the rest are read)."""
BUTTONS: Final = (
    {"buttons": [{"payload": "yes", "text": "Yes"}, {"payload": "stop", "text": "Stop"}], "probability": 0.1},
)
"""A click on a quick-reply button for a tenth of the messages that were read (``add_button``; the template is the
soak's)."""


@dataclass(frozen=True, slots=True)
class Mix:
    name: str
    upstream: tuple[dict[str, Any], ...]
    aws: tuple[AwsFault, ...]
    kill_probability: float
    shares: MessageShares = field(default_factory=MessageShares)
    webhook_kill_probability: float = 0.0
    publisher_kill_probability: float = 0.0

    def simulator_rules(self) -> list[dict[str, Any]]:
        return [dict(rule) for rule in (*MESSAGE_RULES, *self.upstream)]

    def scaled(self, factor: float) -> Mix:
        """The same mix with every random probability multiplied by ``factor`` (capped at 1)."""
        return replace(
            self,
            upstream=tuple({**r, "probability": min(1.0, r.get("probability", 1.0) * factor)} for r in self.upstream),
            aws=tuple(replace(f, probability=min(1.0, f.probability * factor)) for f in self.aws),
            kill_probability=min(1.0, self.kill_probability * factor),
            webhook_kill_probability=min(1.0, self.webhook_kill_probability * factor),
            publisher_kill_probability=min(1.0, self.publisher_kill_probability * factor),
        )


UPSTREAM_DEFAULT: Final = (
    # latency adds up and combines with the answer below; 0.6 s is past the function's read timeout in the soak
    {"kind": "latency", "seconds": 0.12, "probability": 0.03},
    {"kind": "latency", "seconds": 0.6, "probability": 0.003},
    {"kind": "http_status", "status": 500, "probability": 0.02},
    {"kind": "http_status", "status": 502, "probability": 0.005},
    {"kind": "http_status", "status": 429, "retry_after": "1", "probability": 0.02},
    {"kind": "http_status", "status": 503, "probability": 0.01},
    {"kind": "drop", "probability": 0.01},
    {"kind": "code", "code": -1, "probability": 0.01},
    {"kind": "code", "code": 22041, "probability": 0.01},
    {"kind": "code", "code": 22125, "probability": 0.005},
    {"kind": "code", "code": 1003, "probability": 0.005},
    {"kind": "read_timeout_after_accept", "hang": 0.5, "probability": 0.01},
    {"kind": "read_timeout_after_accept", "hang": 0.0, "probability": 0.005},  # accepted, then the socket closes
    {"kind": "garbage", "probability": 0.01},
)

AWS_DEFAULT: Final = (
    # Idempotency claims: one BatchExecuteStatement of INSERTs per batch (some statements failing alone: partial),
    # a conditional put for a lone message (the API's) or a stale key.
    AwsFault("DynamoDB.BatchExecuteStatement", "error", 0.03),
    AwsFault("DynamoDB.BatchExecuteStatement", "throttle", 0.03),
    AwsFault("DynamoDB.BatchExecuteStatement", "error", 0.01, sticky=True),
    AwsFault("DynamoDB.BatchExecuteStatement", "lost_response", 0.01),
    AwsFault("DynamoDB.BatchExecuteStatement", "partial", 0.02),
    # The keys an INSERT found taken are read (one BatchGetItem): a failed read leaves them unclaimed.
    AwsFault("DynamoDB.BatchGetItem", "error", 0.03, sticky=True, table="-idempotency"),
    AwsFault("DynamoDB.PutItem", "error", 0.01),
    AwsFault("DynamoDB.PutItem", "throttle", 0.01),
    AwsFault("DynamoDB.PutItem", "error", 0.004, sticky=True),
    AwsFault("DynamoDB.PutItem", "lost_response", 0.002),
    # Settlements: one BatchWriteItem per batch stores outcomes and releases claims.
    AwsFault("DynamoDB.BatchWriteItem", "error", 0.03),
    AwsFault("DynamoDB.BatchWriteItem", "error", 0.01, sticky=True),
    AwsFault("DynamoDB.BatchWriteItem", "lost_response", 0.01),
    AwsFault("SecretsManager.GetSecretValue", "error", 0.05),
    AwsFault("SecretsManager.GetSecretValue", "throttle", 0.05, sticky=True),
    AwsFault("SQS.SendMessageBatch", "error", 0.02, queue="-dlq"),
    AwsFault("SQS.SendMessageBatch", "error", 0.03, sticky=True, queue="-dlq"),
    AwsFault("SQS.SendMessageBatch", "lost_response", 0.01, queue="-dlq"),
    AwsFault("SQS.SendMessage", "error", 0.03, sticky=True, queue="-send"),
    *(
        # The business numbers' rate: one conditional UpdateItem per number and batch. botocore's retries absorb
        # most of these; a sticky one makes the limiter fail open (the batch goes unpaced, NXCloud's refusals delay).
        AwsFault("DynamoDB.UpdateItem", "error", 0.02, table="-rate"),
        AwsFault("DynamoDB.UpdateItem", "throttle", 0.02, table="-rate"),
        AwsFault("DynamoDB.UpdateItem", "error", 0.005, sticky=True, table="-rate"),
        # Throttled messages go back on the send queue as delayed copies (SendMessageBatch to the send queue).
        AwsFault("SQS.SendMessageBatch", "error", 0.02, sticky=True, queue="-send"),
    ),
)

AWS_LIFECYCLE: Final = (
    # The webhook: one conditional UpdateItem per status or click. A sticky fault fails the store, so the webhook
    # keeps the raw body on the kept-callbacks queue; when that fails too (sticky SendMessage) it answers 503.
    AwsFault("DynamoDB.UpdateItem", "error", 0.02, table="-messages"),
    AwsFault("DynamoDB.UpdateItem", "throttle", 0.02, table="-messages"),
    AwsFault("DynamoDB.UpdateItem", "error", 0.005, sticky=True, table="-messages"),
    AwsFault("DynamoDB.UpdateItem", "lost_response", 0.01, table="-messages"),
    AwsFault("SQS.SendMessage", "error", 0.1, sticky=True, queue="-kept"),
    # The publisher: one BatchGetItem of the send records per batch (a failure fails the invocation: the stream
    # hands the batch over again), PutEvents ten entries at a time (failed entries are retried, then reported).
    # It makes about one call of each a second, so these are frequent enough for the CI soak to meet each.
    AwsFault("DynamoDB.BatchGetItem", "error", 0.02, table="-messages"),
    AwsFault("DynamoDB.BatchGetItem", "throttle", 0.02, table="-messages"),
    AwsFault("DynamoDB.BatchGetItem", "error", 0.03, sticky=True, table="-messages"),
    AwsFault("EventBridge.PutEvents", "partial", 0.05),
    AwsFault("EventBridge.PutEvents", "error", 0.02),
    AwsFault("EventBridge.PutEvents", "throttle", 0.02),
    AwsFault("EventBridge.PutEvents", "error", 0.01, sticky=True),
    AwsFault("EventBridge.PutEvents", "lost_response", 0.02),
)
WEBHOOK_KILLS: Final = 0.003
PUBLISHER_KILLS: Final = 0.05

MIXES: Final = {
    "default": Mix(
        "default",
        UPSTREAM_DEFAULT,
        AWS_DEFAULT + AWS_LIFECYCLE,
        kill_probability=0.01,
        webhook_kill_probability=WEBHOOK_KILLS,
        publisher_kill_probability=PUBLISHER_KILLS,
    ),
    "calm": Mix("calm", (), (), kill_probability=0.0),
    "upstream": Mix("upstream", UPSTREAM_DEFAULT, (), kill_probability=0.0),
    "aws": Mix("aws", (), AWS_DEFAULT + AWS_LIFECYCLE, kill_probability=0.0),
    "kills": Mix(
        "kills",
        (),
        (),
        kill_probability=0.05,
        webhook_kill_probability=WEBHOOK_KILLS * 5,
        publisher_kill_probability=PUBLISHER_KILLS * 5,
    ),
}
MIXES["heavy"] = replace(MIXES["default"].scaled(3), name="heavy")


def opt_out_recipient(group: str, number: int) -> str:
    """The ``number``-th recipient of an opt-out group, as digits."""
    return str(OPT_OUT_GROUPS[group]["base"] + number)


def opt_out_rules(recipients: dict[str, int]) -> list[dict[str, Any]]:
    """The simulator's outcome rules that make ``recipients[group]`` numbers of each failing group fail (ahead of the
    random :data:`OUTCOMES`, so they win)."""
    return [
        {"to": opt_out_recipient(group, n), "final": "failed", "code": spec["code"], "after_sent": True}
        | ({"template": spec["template"]} if "template" in spec else {})
        for group, spec in OPT_OUT_GROUPS.items()
        if "code" in spec
        for n in range(recipients.get(group, 0))
    ]


def get_mix(name: str) -> Mix:
    try:
        return MIXES[name]
    except KeyError:
        raise ValueError(f"unknown mix {name!r}: one of {', '.join(MIXES)}") from None
