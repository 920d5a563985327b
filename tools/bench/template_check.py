"""The template check's cost: per message once the catalogue is cached, and the getTemplate fetch behind it.

Measured on the code the delivery calls (``template_gate.TemplateGate.refusals`` over a catalogue fetched from the
simulator), in batches of ten bench messages, with ``time.process_time``: the CPU the check adds to each message,
to read next to section 2's handler CPU per message. The fetch (one getTemplate page from the simulator, wall time)
happens once per container and account every ``TEMPLATE_CACHE_SECONDS``, not per message.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.events import message_body
from bench.stats import Spread, ratio, spread_ms
from bench.warm import Throughput

BATCH = 10


@dataclass(frozen=True, slots=True)
class CheckCost:
    messages: int
    cpu_s: float
    fetch_walls: Spread

    @property
    def cpu_us_per_message(self) -> float:
        return self.cpu_s * 1e6 / self.messages

    def as_dict(self, warm: Throughput | None = None) -> dict[str, Any]:
        document: dict[str, Any] = {
            "messages": self.messages,
            "cpu_us_per_message": self.cpu_us_per_message,
            "catalogue_fetch_wall_s": self.fetch_walls.as_dict(),
        }
        if warm is not None:
            document["share_of_handler_cpu_per_message"] = self.share_of(warm)
        return document

    def share_of(self, warm: Throughput) -> float:
        return ratio(self.cpu_s / self.messages, warm.cpu_s / warm.messages)


def measure(simulator_url: str, *, messages: int = 20_000, fetches: int = 7) -> CheckCost:
    """The check in enforce mode over ``messages`` bench messages (all fitting), after ``fetches`` cold fetches."""
    from local_stack.stack import LOCAL_SECRET
    from nxcloud_wa.catalogue import TemplateCatalogue
    from nxcloud_wa.config import TemplateCheckMode
    from nxcloud_wa.credentials import Credentials
    from nxcloud_wa.models import Defaults, parse_message
    from nxcloud_wa.template_client import TemplateClient
    from template_gate import TemplateGate

    credentials = Credentials.from_secret(LOCAL_SECRET)
    defaults: Defaults = credentials.defaults
    walls = []
    for _ in range(fetches):
        catalogue = TemplateCatalogue(TemplateClient(simulator_url), ttl=600)
        started = time.perf_counter()
        catalogue.templates(str(defaults.appkey), str(defaults.business_phone), credentials)
        walls.append(time.perf_counter() - started)
    gate = TemplateGate(catalogue, TemplateCheckMode.ENFORCE)
    batch = [(parse_message(message_body(i)), None) for i in range(BATCH)]
    if any(gate.refusals(batch, defaults, credentials)):
        raise RuntimeError("a bench message does not fit the bench catalogue: the figure would be a refusal's")
    rounds = max(1, messages // BATCH)
    cpu_before = time.process_time()
    for _ in range(rounds):
        gate.refusals(batch, defaults, credentials)
    return CheckCost(rounds * BATCH, time.process_time() - cpu_before, Spread.of(walls))


def rows(cost: CheckCost, warm: Throughput) -> list[tuple[str, str, str]]:
    handler_us = warm.cpu_s * 1e6 / warm.messages
    return [
        ("7. Template check (TEMPLATE_CHECK=enforce, catalogue cached, the delivery's own call)", "", ""),
        (
            "  check CPU per message",
            f"{cost.cpu_us_per_message:.1f} us",
            f"{cost.share_of(warm):.1%} of the handler's {handler_us / 1000:.2f} ms (section 2, which includes it)",
        ),
        (
            "  getTemplate fetch, one page (simulator)",
            spread_ms(cost.fetch_walls),
            "once per container and account per TEMPLATE_CACHE_SECONDS (600 s), not per message",
        ),
    ]
