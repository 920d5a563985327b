"""The webhook's token and the recipients' numbers, searched for wherever the lifecycle functions write.

The token is the only thing that keeps strangers from writing to the messages table (NXCloud signs nothing), so it
must appear in no log line (the functions' own at DEBUG, every other logger through the root logger at DEBUG,
Powertools' internals), no answer, no kept callback's attributes, nothing printed (EMF metrics included), no table
item. Recipient numbers are masked in logs; the table and the events keep them (the customer's own stores), the kept
queue keeps the raw body (to be replayed unchanged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from tests.stack import WEBHOOK_TOKEN, Stack, message

RECIPIENT = "8613800000000"


class _Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.getMessage()} {record.__dict__}")
        if record.exc_info:
            self.lines.append(logging.Formatter().formatException(record.exc_info))


@pytest.fixture
def everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Everything]:
    """Every record of the lifecycle functions' loggers and of every other logger, at DEBUG."""
    import publisher
    import webhook

    handler = _Everything()
    loggers = [webhook.logger, publisher.logger, logging.getLogger(), logging.getLogger("aws_lambda_powertools")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
    try:
        yield handler
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def status_body(message_id: str, status: str = "delivered") -> dict[str, Any]:
    return {
        "statuses": [{"id": message_id, "status": status, "timestamp": "1900000000", "recipient_id": RECIPIENT}],
        "messaging_product": "whatsapp",
    }


def test_the_token_appears_nowhere_and_numbers_only_masked_in_logs(
    stack: Stack, everything: _Everything, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import webhook

    stack.enqueue(message(to=RECIPIENT))
    stack.run_batch()
    sent = [
        item["id"]["S"]
        for item in stack.resources.client("dynamodb").scan(TableName=stack.resources.messages_table)["Items"]
    ]
    answers = [
        stack.call_webhook(status_body(sent[0])),  # stored
        stack.call_webhook(status_body("wamid.unmatched", "read")),  # stored, unmatched
        stack.call_webhook(status_body(sent[0]), token=WEBHOOK_TOKEN[:-1] + "x"),  # 404
        stack.call_webhook("{not json"),  # 400, kept
    ]
    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table + "-missing")
    webhook.reset()
    answers.append(stack.call_webhook(status_body(sent[0], "read")))  # the table fails: kept, with a traceback
    monkeypatch.setenv("MESSAGES_TABLE", stack.resources.messages_table)
    webhook.reset()
    stack.publish()

    assert [a["statusCode"] for a in answers] == [200, 200, 404, 400, 200]
    printed = "".join(capfd.readouterr())
    kept = stack.peek(stack.resources.kept_callbacks_queue_url)
    table = stack.resources.client("dynamodb").scan(TableName=stack.resources.messages_table)["Items"]
    logs = "\n".join(everything.lines)
    assert "callback stored" in logs and "callback kept for replay" in logs  # the webhook's own lines are searched
    assert "Traceback" in logs  # and the store failure's exception
    places = {
        "logs": logs,
        "printed": printed,
        "answers": json.dumps(answers),
        "kept attributes": json.dumps([k.get("MessageAttributes") for k in kept]),
        "table": json.dumps(table),
        "events": json.dumps(stack.events()),
    }
    for name, text in places.items():
        assert WEBHOOK_TOKEN not in text, f"the webhook token leaks into {name}"
    for name in ("logs", "printed", "answers", "kept attributes"):
        assert RECIPIENT not in places[name], f"a full number in {name}"
    assert RECIPIENT in places["table"] and RECIPIENT in places["events"]  # by design: the customer's own stores
