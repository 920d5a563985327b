"""Due EventBridge Scheduler schedules, fired locally: moto stores the webhook's one-time schedules and never runs them.

:class:`DueSchedules` does, on demand, what Scheduler does when a one-time schedule's time comes (for the 131049
retries of ``nxcloud_wa.retries``): reads each schedule of the group, and for each whose ``at(...)`` time (UTC) is at
or before the clock, sends its ``Input`` to its SQS target and deletes it (``ActionAfterCompletion`` ``DELETE``).
Nothing else: no flexible window, no retry policy, no other target kind, no role is assumed. The clock is the
caller's (``now``), so a test or ``make run`` can say "24 hours later" without waiting; the deployed path is the
schedule itself.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_AT = re.compile(r"at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)")


@dataclass(frozen=True, slots=True)
class Fired:
    """One schedule run: its name, the SQS message id its input became."""

    name: str
    message_id: str


def due_at(expression: str) -> float | None:
    """A one-time schedule's time (epoch seconds, the expression read as UTC); None for any other expression."""
    match = _AT.fullmatch(expression.strip())
    if match is None:
        return None
    return datetime.fromisoformat(match[1]).replace(tzinfo=UTC).timestamp()


class DueSchedules:
    """The group's one-time schedules, fired when due."""

    def __init__(self, scheduler: Any, sqs: Any, group: str, clock: Callable[[], float] = time.time) -> None:
        self.scheduler = scheduler
        self.sqs = sqs
        self.group = group
        self.clock = clock
        self.fired: list[Fired] = []

    def pending(self) -> list[dict[str, Any]]:
        """Every schedule of the group, as ``GetSchedule`` answers it."""
        names = [
            s["Name"]
            for page in self.scheduler.get_paginator("list_schedules").paginate(GroupName=self.group)
            for s in page.get("Schedules", [])
        ]
        return [self.scheduler.get_schedule(GroupName=self.group, Name=name) for name in names]

    def fire_due(self, now: float | None = None) -> list[Fired]:
        """Fire every schedule due at ``now`` (default: the clock): its input to its queue, then delete it."""
        at = self.clock() if now is None else now
        fired: list[Fired] = []
        for schedule in self.pending():
            due = due_at(str(schedule.get("ScheduleExpression", "")))
            if due is None or due > at:
                continue
            target = schedule["Target"]
            queue_url = self.sqs.get_queue_url(QueueName=str(target["Arn"]).rsplit(":", 1)[-1])["QueueUrl"]
            sent = self.sqs.send_message(QueueUrl=queue_url, MessageBody=target["Input"])
            if schedule.get("ActionAfterCompletion") == "DELETE":
                self.scheduler.delete_schedule(GroupName=self.group, Name=schedule["Name"])
            fired.append(Fired(str(schedule["Name"]), str(sent["MessageId"])))
        self.fired += fired
        return fired
