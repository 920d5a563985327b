"""A message's delivery statuses and which one is current: the one place the rule is written.

NXCloud reports ``sent``, ``delivered``, ``read``, ``failed`` and ``deleted`` (``docs/nxcloud.md``, "Webhook");
``accepted`` is ours: NXCloud answered the send with a ``message_id``. Callbacks arrive late, twice and out of
order, so the current status is a function of the *set* of statuses seen, never of their order:

* it only moves forward in ``accepted < sent < delivered < read``;
* ``failed`` and ``deleted`` take precedence over ``accepted``, ``sent`` and ``delivered``, ``deleted`` over
  ``failed``; neither takes precedence over ``read``: the recipient has read the message, so a later failure must not
  tell a subscriber to reach them another way (an SMS fallback would text someone who already read it). Such a
  failure is still kept, with its time and errors, in the message's timeline.

That is a total order, ``accepted < sent < delivered < failed < deleted < read``, so "the status with the highest
rank seen so far" is the current one, and storing a callback is a conditional write: "set this status if the stored
one is among those it outranks" (:func:`outranked_by`).
"""

from collections.abc import Iterable
from typing import Final

ACCEPTED: Final = "accepted"
STATUS_RANK: Final = {"accepted": 0, "sent": 1, "delivered": 2, "failed": 3, "deleted": 4, "read": 5}
"""Every status with its rank: a higher rank replaces a lower one as the current status."""
CALLBACK_STATUSES: Final = frozenset(STATUS_RANK) - {ACCEPTED}
"""The statuses NXCloud's callbacks carry."""


def rank(status: str) -> int:
    """The status's rank; ``KeyError`` for a status that is not one of :data:`STATUS_RANK`."""
    return STATUS_RANK[status]


def current_status(seen: Iterable[str]) -> str | None:
    """The current status given every status seen, in any order and with repeats; None when none was seen."""
    return max(seen, key=rank, default=None)


def outranked_by(status: str) -> tuple[str, ...]:
    """The statuses ``status`` replaces as the current one (never empty: every callback status outranks
    ``accepted``). The stored item's condition names them rather than comparing numbers, so items written under an
    earlier ranking are judged by this one."""
    return tuple(s for s in STATUS_RANK if rank(s) < rank(status))
