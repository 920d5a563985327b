"""``python -m bench``: run every measurement once, side by side, and print the table (or ``--json``).

Order matters: the cold-start children run first, while this process is still idle, then the warm handler is
imported here for the throughput, latency and memory figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench import coldstart, report, warm
from bench.services import Services


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--repeats", type=int, default=7, help="fresh interpreters per cold-start probe (default 7)")
    parser.add_argument("--batches", type=int, default=30, help="warm batches of 10 for the CPU figure (default 30)")
    parser.add_argument("--latency", type=float, default=0.2, help="simulator latency in seconds (default 0.2)")
    parser.add_argument("--latency-batches", type=int, default=5, help="batches under latency (default 5)")
    args = parser.parse_args(argv)
    if min(args.repeats, args.batches, args.latency_batches) < 1 or args.latency <= 0:
        parser.error("counts must be >= 1 and the latency > 0")
    return args


def progress(text: str) -> None:
    """Where the run is, on stderr, so stdout holds only the report (or the JSON)."""
    print(f"bench: {text}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    with Services() as services:
        env = services.function_env()
        progress(f"cold start: {args.repeats} rounds of {len(coldstart.PROBES)} fresh interpreters")
        cold = coldstart.measure(env, args.repeats)
        with warm.quiet_stdout():
            handler = warm.load_handler(env)
            progress(f"handler overhead: {args.batches} batches of 10")
            overhead = warm.throughput(handler, services, batches=args.batches)
            progress(f"latency: {args.latency_batches} batches of 10 with {args.latency * 1000:.0f} ms added")
            latency = warm.under_latency(handler, services, latency_s=args.latency, batches=args.latency_batches)
            batch_peak = warm.batch_allocation_peak_mb(handler)
    memory = warm.Memory(warm.memory_size_mb(), cold.maxrss_mb, warm.maxrss_mb(), batch_peak)
    progress(f"done in {time.perf_counter() - started:.0f} s")
    host = report.machine(report.command_line(sys.argv[1:] if argv is None else argv))
    if args.json:
        print(json.dumps(report.document(host, cold, overhead, latency, memory), indent=2))
    else:
        print(report.render(host, cold, overhead, latency, memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
