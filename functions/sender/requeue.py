"""Throttles delay, they do not burn receives: a throttled queue message goes back as a delayed copy.

SQS counts every receive of a message toward the redrive policy's ``maxReceiveCount``, whatever the function made
of it. Left in the queue with a longer visibility, a message throttled five times would be dead-lettered as
``retries_exhausted`` although nothing was wrong with it: in a campaign of a million messages at a number's rate,
that is every message that waits its turn more than four times. So a throttled message is sent again to the send
queue, body unchanged, with ``DelaySeconds`` (when its number has capacity, with jitter), and the record it came
from is reported done: the copy starts with a receive count of 1.

What the copy carries, as message attributes:

* ``idempotency_key``: the key the delivery used, which may have been the ORIGINAL's SQS message id (a message with
  no key of its own). The copy has another id; carrying the key keeps it the same message for the idempotency table.
* ``failed_receives``: the receives the message has spent failing, over all its copies (the copy's own receives
  before this one, all failures or cut-off invocations, plus what its original carried). The message's own failures
  (5xx, timeouts, a dependency down) keep their budget: when a copy fails and the total reaches
  ``MAX_RECEIVE_COUNT``, the function dead-letters it itself (``retries_exhausted``), as the redrive policy would have
  the original.
* ``throttled``: how many times it was put back, which lengthens the next delay (capped), so a number saturated for a
  long time is not polled in a tight loop.

Nothing here can dead-letter a message for being throttled, however long the campaign.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any, Final

from nxcloud_wa.sqs import string_attributes
from outbox import PutBackCopy

KEY_ATTRIBUTE: Final = "idempotency_key"
FAILED_RECEIVES: Final = "failed_receives"
THROTTLED: Final = "throttled"
MAX_DELAY_SECONDS: Final = 900
"""SQS's largest ``DelaySeconds``."""
MAX_DOUBLINGS: Final = 5
"""The delay doubles with each put-back up to 32 times its base: a number saturated for a long time is polled about
every half minute per message, not every second."""

_jitter = random.Random()


def copy_of(body: str, *, key: str, failed_receives: int, throttled: int, delay_seconds: int) -> PutBackCopy:
    """The delayed copy of a throttled message (``throttled``: how many times it was put back, this one included)."""
    values = {KEY_ATTRIBUTE: key, FAILED_RECEIVES: str(failed_receives), THROTTLED: str(throttled)}
    return PutBackCopy(body, string_attributes(values), delay_seconds)


def delay_seconds(base: float, times_put_back: int, rng: random.Random = _jitter) -> int:
    """Whole seconds until the copy is visible: ``base`` (when the number has capacity, at least a second), doubled
    for each earlier put-back (capped), times a jitter of 1 to 1.5 so copies put back together do not return together.
    """
    backoff = max(1.0, base) * (1 << min(times_put_back, MAX_DOUBLINGS))
    return min(MAX_DELAY_SECONDS, math.ceil(backoff * rng.uniform(1.0, 1.5)))


def carried(attributes: Mapping[str, Any], name: str) -> int:
    """A counter a copy carries (a record's ``messageAttributes``), 0 when absent or not a whole number."""
    attribute = attributes.get(name)
    value = attribute.get("stringValue") if isinstance(attribute, dict) else None
    return int(value) if isinstance(value, str) and value.isascii() and value.isdecimal() else 0
