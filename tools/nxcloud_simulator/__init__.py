"""A local NXCloud ``POST /saas/wa/send`` for tests, the local whole-stack runner and benchmarks.

``NXCloudSimulator`` checks requests the way NXCloud's pages say NXCloud does (headers, timestamp, signature over the
exact body text, body fields), answers in NXCloud's response shape, records what it received and injects faults
(latency, HTTP errors, dropped connections, answers lost after acceptance, NXCloud error codes, garbled answers).
Given a webhook URL it also posts NXCloud's status and button-click callbacks after each accepted send, imperfectly
on demand (delays, duplicates, reordering, batching, uncorrelated ids, retries), and keeps the truth to check a
receiver against. Given a template catalogue it serves getTemplate from it (paged, signed like the send) and refuses
sends of templates an account lacks (22093). Given a rate, it refuses a business number's requests beyond it, as
WhatsApp does. docs/simulator.md describes it all.
Run ``python -m nxcloud_simulator --help`` to serve it from a terminal.
"""

from .callbacks import (
    FAILURE_TITLES,
    STOP_PROMOTIONS,
    ButtonRule,
    CallbackConfig,
    CallbackRecord,
    MessageTruth,
    OutcomeRule,
)
from .faults import Fault, FaultKind
from .rates import RateLimit
from .server import NXCloudSimulator, RequestRecord
from .templates import TemplateBook, TemplateRequestRecord

__all__ = [
    "FAILURE_TITLES",
    "STOP_PROMOTIONS",
    "ButtonRule",
    "CallbackConfig",
    "CallbackRecord",
    "Fault",
    "FaultKind",
    "MessageTruth",
    "NXCloudSimulator",
    "OutcomeRule",
    "RateLimit",
    "RequestRecord",
    "TemplateBook",
    "TemplateRequestRecord",
]
