"""The soak's messages: N bodies, each carrying a unique token in its body parameter, drawn from a seeded RNG.

The token (``sk<run>-<index>``) travels wherever the message goes: in the body NXCloud receives (so the simulator's
records say how many times it was accepted), in the record the function gets, in the dead-letter queue's copy. It is
how one message is followed across retries, redeliveries and paths.

:func:`catalogue` is the account's templates as the simulator lists them through getTemplate: the function checks
every message against it before sending (``TEMPLATE_CHECK`` at its default, ``enforce``), so it holds every template
and language the messages name, each taking the one body parameter they carry.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Final

from soak.mix import (
    BAD_RECIPIENTS,
    MISSING_TEMPLATE,
    OPT_OUT_GROUPS,
    OUTAGE_TEMPLATE,
    PROMO_TEMPLATE,
    MessageShares,
    opt_out_recipient,
)

QUEUE: Final = "queue"
API_SYNC: Final = "api"
API_ASYNC: Final = "api_async"
TEMPLATE: Final = "soak_notice"
LANGUAGES: Final = ("en_US", "pt_BR", "zh_CN", "es", "id", "ar")
MESSAGES_PER_OPT_OUT: Final = 4
"""About how many messages each opt-out recipient gets in a run (:func:`opt_out_recipients`)."""
CATEGORIES: Final = {PROMO_TEMPLATE: "MARKETING"}
"""Each template's category in :func:`catalogue`; every other template is ``UTILITY``."""


@dataclass(frozen=True, slots=True)
class Message:
    token: str
    path: str
    body: str
    kind: str
    """What the soak expects of it: ``ok``, ``invalid``, ``bad_recipient``, ``missing_template``, ``outage``,
    ``opt_out`` (to a recipient that opts out partway through: sent, or skipped once its entry is stored)."""
    idempotency_key: str | None = None
    key_where: str | None = None
    """Where the key travels: ``body``, ``header`` (API), ``attribute`` (queue); None: the SQS message id."""
    attributes: dict[str, str] = field(default_factory=dict)
    resend: bool = False
    """Enqueued twice (same body, same key): a producer retrying SendMessage."""
    to: str = ""
    """The recipient as digits (the suppression list's form)."""
    template: str = TEMPLATE

    @property
    def category(self) -> str:
        return CATEGORIES.get(self.template, "UTILITY")


def catalogue() -> list[dict[str, object]]:
    """The soak account's templates, as NXCloud's template objects.

    ``MISSING_TEMPLATE`` is listed too: it plays a template deleted after the function fetched its catalogue, which
    NXCloud refuses with 22093 (the mix's rule), so those messages still meet NXCloud's own permanent refusal and the
    ledger's expectations for them stay as they were.
    """
    body = {"type": "BODY", "text": "Your order {{1}} is on its way."}
    return [
        {"id": f"{n}{i}", "name": name, "language": language, "status": "APPROVED",
         "category": CATEGORIES.get(name, "UTILITY"), "components": [body]}
        for n, name in enumerate((TEMPLATE, MISSING_TEMPLATE, OUTAGE_TEMPLATE, PROMO_TEMPLATE))
        for i, language in enumerate(LANGUAGES)
    ]  # fmt: skip


def opt_out_recipients(count: int, shares: MessageShares) -> dict[str, int]:
    """How many recipients of each opt-out group (:data:`~soak.mix.OPT_OUT_GROUPS`) ``count`` messages go to: none
    when the share is 0, else at least one per group, about :data:`MESSAGES_PER_OPT_OUT` messages each."""
    if shares.opt_out <= 0:
        return {}
    each = max(1, round(count * shares.opt_out / len(OPT_OUT_GROUPS) / MESSAGES_PER_OPT_OUT))
    return dict.fromkeys(OPT_OUT_GROUPS, each)


def generate(
    count: int, *, seed: int, run: str, shares: MessageShares, business_phones: tuple[str, ...] = ()
) -> list[Message]:
    """``count`` messages for run ``run`` (6 hex digits), reproducible from ``seed``; ``business_phones`` spreads them
    over those business numbers in turn (none: the secret's default number)."""
    rng = random.Random(f"messages-{seed}")
    opt_outs = _OptOuts(random.Random(f"opt-outs-{seed}"), opt_out_recipients(count, shares), shares.opt_out)
    phones = business_phones or (None,)
    messages = [
        _one(
            rng,
            index,
            f"sk{run}-{index:06d}",
            shares,
            business_phone=phones[index % len(phones)],
            opt_out=opt_outs.draw(),
        )
        for index in range(count)
    ]
    return _follow_ups_last(messages)


def _follow_ups_last(messages: list[Message]) -> list[Message]:
    """The same messages, each opt-out recipient's first one where it was and its others moved to the end (in their
    order): a follow-up then reaches the function after the first one's callbacks could store the entry (the run
    also waits for one such entry before it sends them: ``soak.run``), so a run shows skips however fast it drains
    its queue, not only when the draw happened to space them out."""
    later = follow_ups(messages)
    return [m for i, m in enumerate(messages) if i not in later] + [messages[i] for i in sorted(later)]


def follow_ups(messages: list[Message]) -> set[int]:
    """The indexes of the opt-out recipients' follow-up messages: each such recipient's messages after its first."""
    seen: set[str] = set()
    found: set[int] = set()
    for index, message in enumerate(messages):
        if message.kind == "opt_out" and message.to in seen:
            found.add(index)
        seen.add(message.to)
    return found


class _OptOuts:
    """Which messages go to an opt-out recipient, and with which template (two in three marketing), from an RNG of
    their own, so the other messages stay what the seed made them before opt-outs existed."""

    def __init__(self, rng: random.Random, recipients: dict[str, int], share: float) -> None:
        self.rng, self.share = rng, share
        self.pool = [opt_out_recipient(group, n) for group, each in recipients.items() for n in range(each)]

    def draw(self) -> tuple[str, str] | None:
        if not self.pool or self.rng.random() >= self.share:
            return None
        return self.rng.choice(self.pool), PROMO_TEMPLATE if self.rng.random() < 2 / 3 else TEMPLATE


def _kind(draw: float, shares: MessageShares) -> str:
    """The message's kind for a uniform ``draw``: one of the shares' faulty kinds, or ``ok``."""
    for share, what in (
        (shares.invalid_json, "invalid_json"),
        (shares.invalid_field, "invalid_field"),
        (shares.bad_recipient, "bad_recipient"),
        (shares.missing_template, "missing_template"),
        (shares.outage, "outage"),
    ):
        if draw < share:
            return what
        draw -= share
    return "ok"


def _one(
    rng: random.Random,
    index: int,
    token: str,
    shares: MessageShares,
    *,
    business_phone: str | None = None,
    opt_out: tuple[str, str] | None = None,
) -> Message:
    path = QUEUE
    if rng.random() < shares.api:
        path = API_ASYNC if rng.random() < shares.api_async else API_SYNC
    to = f"86138{rng.randrange(10**8):08d}"
    template, kind = TEMPLATE, _kind(rng.random(), shares)
    if kind == "outage" and path == API_SYNC:
        path = QUEUE  # a caller of the sync API would be told 502 until it gives up: nothing to follow
    if kind == "bad_recipient":
        to = rng.choice(sorted(BAD_RECIPIENTS))
    elif kind == "missing_template":
        template = MISSING_TEMPLATE
    elif kind == "outage":
        template = OUTAGE_TEMPLATE
    elif opt_out is not None:  # only an otherwise ordinary message goes to an opt-out recipient
        (to, template), kind = opt_out, "opt_out"
    language = "xx" if kind == "invalid_field" else rng.choice(LANGUAGES)
    body: dict[str, object] = {
        **({"business_phone": business_phone} if business_phone else {}),
        "to": f"+{to}" if index % 3 == 0 else to,
        "template": {
            "name": template,
            "language": {"code": language},
            "components": [{"type": "body", "parameters": [{"type": "text", "text": f"order {token}"}]}],
        },
    }
    key, where, attributes = None, None, {}
    draw = rng.random()
    if draw < shares.key_in_body:
        key, where = f"key-{token}", "body"
        body["idempotency_key"] = key
    elif path != QUEUE:
        key, where = f"key-{token}", "header"  # API callers that retry need a key; without one each try is new
    elif draw < shares.key_in_body + shares.key_attribute:
        key, where = f"key-{token}", "attribute"
        attributes = {"idempotency_key": key}
    text = json.dumps(body, ensure_ascii=False)
    if kind == "invalid_json":
        text = text[:-1] + ", oops"  # not JSON any more; the token still inside
        kind = "invalid"
    elif kind == "invalid_field":
        kind = "invalid"
    resend = path == QUEUE and key is not None and rng.random() < shares.resend
    return Message(token, path, text, kind, key, where, attributes, resend, to, template)
