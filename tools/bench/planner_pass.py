"""The campaign engine's planning cost: rows per second and CPU per row of the planner's passes.

Measured on the planner itself (``functions/planner``: ``Planner.run``, one tick = one pass) against moto's server over
HTTP and the simulator's catalogue, in this process: an audience file of :data:`ROWS` valid rows (distinct numbers)
is uploaded, a campaign created with a rate whose window holds a whole pass, and passes run until the file is read.
CPU with ``time.process_time`` (the planner's Python: reading, parsing and checking each row, building its envelope,
and botocore's requests), wall time with ``time.perf_counter`` (moto's answers included: S3 ranged reads, one
SendMessageBatch per 10 rows, the state objects, the checkpoint). Per pass the planner also writes its seen numbers
and row log and advances its checkpoint once: they are in the figures. The sends themselves are the sender's
(sections 2-10); the rows stay on the send queue.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

ROWS: Final = 2_000
"""Enough for the per-row figures to drown the pass's fixed costs (the catalogue, the state objects, the checkpoint).
Not a full pass (``MAX_PASS_ROWS``, 20,000): moto's SQS slows as its queue grows (2,000 rows take about 35 s here,
20,000 did not finish in 10 minutes), so the wall figure is moto's, and the CPU figure is the one to read."""
LAMBDA_VCPU_AT_512_MB: Final = 512 / 1769
"""Lambda gives one vCPU at 1,769 MB, in proportion below: the planner runs at 512 MB."""


@dataclass(frozen=True, slots=True)
class PlannerCost:
    rows: int
    passes: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_us_per_row(self) -> float:
        return self.cpu_s * 1e6 / self.rows

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "passes": self.passes,
            "cpu_us_per_row": self.cpu_us_per_row,
            "rows_per_second_wall": self.rows_per_s,
        }


def audience(rows: int) -> bytes:
    lines = ["to,body.1,ref"] + [f"86137{n:08d},A-{n},r{n}" for n in range(rows)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def measure(rows: int = ROWS) -> PlannerCost:
    """Plan a file of ``rows`` rows through the planner's passes (this process's environment is the functions')."""
    import planner
    from nxcloud_wa.campaigns import tick
    from nxcloud_wa.campaigns_table import Campaign

    planner.reset()
    engine = planner.planner()
    key = f"audiences/bench-{uuid.uuid4().hex[:8]}.csv"
    etag = engine.s3.put_object(Bucket=engine.settings.bucket, Key=key, Body=audience(rows))["ETag"]
    now = datetime.now(UTC)
    campaign = Campaign(
        campaign_id=f"c-{uuid.uuid4().hex}",
        name="bench",
        template_name="order_update",
        language="en_US",
        audience_key=key,
        created_at=now.isoformat(),
        start_at=(now - timedelta(seconds=1)).isoformat(),
        rate=float(rows),  # a pass's window (60 s at the rate) holds every row: the read limit ends each pass
        audience_etag=etag,
    )
    engine.store.create(campaign)
    passes, cpu, wall = 0, 0.0, 0.0
    while not engine.store.get(campaign.campaign_id).checkpoint.planned and passes < 100:
        body = tick(campaign.campaign_id)
        started_cpu, started = time.process_time(), time.perf_counter()
        engine.run(body)
        cpu += time.process_time() - started_cpu
        wall += time.perf_counter() - started
        passes += 1
    counts = engine.store.get(campaign.campaign_id).counts
    if counts["queued"] != rows:
        raise RuntimeError(f"the planner queued {counts['queued']} of {rows} rows: {dict(counts)}")
    planner.reset()
    return PlannerCost(rows, passes, cpu, wall)


def rows(cost: PlannerCost) -> list[tuple[str, str, str]]:
    ceiling = LAMBDA_VCPU_AT_512_MB * 1e6 / cost.cpu_us_per_row
    return [
        ("11. Campaign planner: a pass over an audience file (functions/planner, moto over HTTP)", "", ""),
        (
            "  planner CPU per row",
            f"{cost.cpu_us_per_row:.0f} us",
            "read, parse, check, envelope, and its share of SendMessageBatch (botocore)",
        ),
        (
            "  rows one planner can feed at 512 MB",
            f"{ceiling:,.0f} /s",
            "CPU-bound ceiling (0.29 vCPU); the default number's rate is 80/s, a campaign's 64/s",
        ),
        (
            "  rows planned per second (wall, moto)",
            f"{cost.rows_per_s:,.0f}",
            f"{cost.rows:,} rows in {cost.passes} pass(es); moto's SQS sets this pace, not the planner",
        ),
    ]
