"""The sample messages of ``events/`` and what each is documented to end as (``events/expected.json``).

The runner sends the samples the way a user's service would (an SQS sample's records with ``SendMessage``, an API
sample as an HTTP request), so the event files serve ``sam local invoke`` and the local run alike, and
``expected.json`` is the one place their outcomes are written down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

EVENTS: Final = Path(__file__).resolve().parents[2] / "events"
HOP_BY_HOP: Final = frozenset({"host", "content-length", "connection", "x-api-key"})
"""Headers the runner does not replay from an event file: HTTP sets them, and the key is the running API's own."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One message to push: ``path`` is ``sqs`` or ``api``; ``expected`` is the documented end, as a table cell."""

    name: str
    path: str
    body: str
    headers: dict[str, str]
    attributes: dict[str, str]
    expected: str
    repeat: int = 1
    expected_delivery: str = ""
    """Where NXCloud's callbacks leave it once sent (``read``, ``failed 131026``, ...); empty when never sent."""
    route: str = "/messages"
    """An API sample's path (``/campaigns`` for campaign-create.json)."""


def load_samples(folder: Path = EVENTS) -> list[Sample]:
    """Every record of every SQS sample and every API sample, in the manifest's order.

    The webhook and stream samples are not messages to send: the run produces real callbacks and stream batches."""
    manifest = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    samples: list[Sample] = []
    for file_name, spec in manifest["events"].items():
        event = json.loads((folder / file_name).read_text(encoding="utf-8"))
        if spec["trigger"] == "sqs":
            samples += _sqs_samples(file_name, event, spec)
        elif spec["trigger"] == "api":
            samples.append(_api_sample(file_name, event, spec))
    return samples


def _sqs_samples(file_name: str, event: dict[str, Any], spec: dict[str, Any]) -> list[Sample]:
    samples = []
    for record in event["Records"]:
        documented = spec["records"][record["messageId"]]
        attributes = {
            name: value["stringValue"]
            for name, value in record.get("messageAttributes", {}).items()
            if value.get("stringValue")
        }
        samples.append(
            Sample(
                name=f"{file_name} · {documented['label']}",
                path="sqs",
                body=record["body"],
                headers={},
                attributes=attributes,
                expected=expected_queue_outcome(documented["final"]),
                expected_delivery=documented["final"].get("delivery", ""),
            )
        )
    return samples


def expected_queue_outcome(final: dict[str, Any]) -> str:
    """The table cell for a queued message's documented end (see :func:`describe_trail`)."""
    receives = int(final.get("receives", 1))
    if final["outcome"] == "sent":
        return describe_trail(receives - 1, "sent")
    if final["outcome"] == "skipped":
        return describe_trail(receives - 1, "skipped", final["reason"])
    if final.get("by") == "redrive_policy":
        return describe_trail(receives, "dead_lettered", "retries exhausted (redrive policy)")
    return describe_trail(receives - 1, "dead_lettered", f"{final['reason']} {final['error_code']}")


def describe_trail(retries: int, final: str, reason: str | None = None) -> str:
    """``sent``, ``retried 1 then sent``, ``skipped: suppressed``, ``dead_lettered: nxcloud_code 22093``, ... One
    format for both sides."""
    text = f"retried {retries} then {final}" if retries else final
    return f"{text}: {reason}" if reason else text


def _api_sample(file_name: str, event: dict[str, Any], spec: dict[str, Any]) -> Sample:
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() not in HOP_BY_HOP}
    repeat = int(spec.get("repeat", {}).get("invocations", 1))
    return Sample(
        name=file_name,
        path="api",
        body=event.get("body") or "",
        headers=headers,
        attributes={},
        expected=expected_api_outcome(spec, repeat),
        repeat=repeat,
        expected_delivery=spec.get("delivery", ""),
        route=api_route(event),
    )


def api_route(event: dict[str, Any]) -> str:
    """The path an API sample is sent to: its own ``path`` (``/campaigns``), or ``/messages`` when it names none."""
    return event.get("path") or "/messages"


def expected_api_outcome(spec: dict[str, Any], repeat: int) -> str:
    """``http 200``, ``http 202, then sent``, ``http 200 x2, same answer``."""
    text = f"http {spec['response']['statusCode']}"
    if repeat > 1:
        text += f" x{repeat}, same answer" if spec["repeat"].get("same_body") else f" x{repeat}"
    if "final" in spec:
        text += f", then {expected_queue_outcome(spec['final'])}"
    return text
