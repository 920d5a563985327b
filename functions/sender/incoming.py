"""What a trigger hands the delivery: one :class:`Incoming` per message (a queue record, or the API's request)."""

from __future__ import annotations

from dataclasses import dataclass

from nxcloud_wa.models import SendRequest


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message as a trigger received it."""

    body: str
    """The body exactly as received (SQS-safe): what a dead letter carries, so it can be redriven unchanged."""
    source: str
    """``sqs`` or ``api``: the dead letter's ``source`` attribute."""
    source_id: str
    """The SQS message id or the API request id: the dead letter's ``source_message_id``, and the key of last resort."""
    key: str | None = None
    """The key the trigger carries beside the body (message attribute or ``Idempotency-Key`` header)."""
    request: SendRequest | None = None
    """The message already validated (the API's resolver does it); parsed from ``body`` when None."""
    receive_count: int | None = None
    earlier_failures: int = 0
    """Receives spent failing by the copies this one was put back from (:mod:`requeue`); 0 for an original."""
    times_put_back: int = 0
    """How many times the message was put back for a throttle before this receive."""

    @property
    def queued(self) -> bool:
        """It came from the send queue (not the API): its failures can be retried, put back and dead-lettered."""
        return self.source == "sqs"
