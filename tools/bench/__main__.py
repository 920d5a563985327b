"""``python -m bench``: run every measurement once, side by side, and print the table (or ``--json``).

Order matters: the cold-start children run first, while this process is still idle, then the warm handler is
imported here for the throughput, latency and memory figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench import (
    coldstart,
    planner_pass,
    rate_limit,
    rate_share,
    receiver,
    report,
    shares,
    suppression_check,
    template_check,
    warm,
    wire,
)
from bench.batch_cost import moto_dynamodb
from bench.services import Services
from local_stack.stack import LOCAL_SECRET


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON instead of the table")
    parser.add_argument("--repeats", type=int, default=7, help="fresh interpreters per cold-start probe (default 7)")
    parser.add_argument("--batches", type=int, default=30, help="warm batches of 10 for the CPU figure (default 30)")
    parser.add_argument("--latency", type=float, default=0.2, help="simulator latency in seconds (default 0.2)")
    parser.add_argument("--latency-batches", type=int, default=5, help="batches under latency (default 5)")
    parser.add_argument("--wire-batches", type=int, default=5, help="batches whose AWS requests are counted (5)")
    parser.add_argument(
        "--memory-sizes",
        default=",".join(map(str, shares.DEFAULT_SIZES)),
        help="Lambda memory sizes (MB) whose CPU share to run under, comma-separated; empty for none "
        "(default %(default)s; needs root and the cgroup cpu controller)",
    )
    parser.add_argument("--callbacks", type=int, default=300, help="status callbacks posted to the webhook (300)")
    parser.add_argument("--share-repeats", type=int, default=3, help="cold starts per memory size (default 3)")
    parser.add_argument("--share-batches", type=int, default=10, help="instant batches per memory size (default 10)")
    args = parser.parse_args(argv)
    counts = (args.repeats, args.batches, args.latency_batches, args.wire_batches)
    if min(*counts, args.share_repeats, args.share_batches) < 1 or args.latency <= 0:
        parser.error("counts must be >= 1 and the latency > 0")
    try:
        args.memory_sizes = shares.parse_sizes(args.memory_sizes)
    except ValueError as exc:
        parser.error(f"--memory-sizes: {exc}")
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
            progress(f"requests on the wire: {args.wire_batches} batches of 10")
            counted = wire.measure(
                lambda event: warm.invoke(handler, event),
                services.moto_url,
                services.recording_path,
                batches=args.wire_batches,
            )
            progress(f"webhook receiver: {args.callbacks} status callbacks")
            callbacks = receiver.measure(str(LOCAL_SECRET["webhook_token"]), messages=max(1, args.callbacks // 3))
            progress("template check: per message with the catalogue cached, and the getTemplate fetch")
            check = template_check.measure(services.simulator_url)
            progress("rate limiter: one request per batch of 10, far from the rate")
            assert services.resources is not None
            limiter = rate_limit.measure(services.moto_url, services.resources.rate_table)
            progress("suppression check: one BatchGetItem per batch of 10, no recipient on the list")
            suppression = suppression_check.measure(services.moto_url, services.resources.suppressions_table)
            progress("suppression check with MarketingCapPerRecipient=1/24h: the same read, two keys a message")
            capped = suppression_check.measure(services.moto_url, services.resources.suppressions_table, cap="1/24h")
            progress(f"campaign planner: {planner_pass.ROWS:,} rows through its passes")
            planned = planner_pass.measure()
            progress("the number shared: API messages' slot wait beside a campaign, on a simulated clock")
            shared = rate_share.measure(moto_dynamodb(services.moto_url), services.resources.rate_table)
        memory = warm.Memory(warm.memory_size_mb(), cold.maxrss_mb, warm.maxrss_mb(), batch_peak)
        runs, skipped = [], None
        if args.memory_sizes:
            try:
                runs = shares.measure(
                    env,
                    services.remote(),
                    args.memory_sizes,
                    repeats=args.share_repeats,
                    batches=args.share_batches,
                    latency_batches=args.latency_batches,
                    latency_s=args.latency,
                    progress=progress,
                )
            except RuntimeError as exc:  # no cgroup cpu controller, or not root: say so in the report
                skipped = str(exc)
        else:
            skipped = "--memory-sizes is empty"
    progress(f"done in {time.perf_counter() - started:.0f} s")
    host = report.machine(report.command_line(sys.argv[1:] if argv is None else argv))
    if args.json:
        document = report.document(
            host,
            cold,
            overhead,
            latency,
            memory,
            wire=counted,
            shares=runs,
            limiter=limiter,
            template_check=check,
            receiver=callbacks,
            suppression=suppression,
            capped=capped,
            planner=planned,
            shared=shared,
        )
        print(json.dumps(document, indent=2))
    else:
        print(
            report.render(
                host,
                cold,
                overhead,
                latency,
                memory,
                wire=counted,
                shares=runs,
                shares_skipped=skipped,
                template_check=check,
                receiver=callbacks,
                limiter=limiter,
                suppression=suppression,
                capped=capped,
                planner=planned,
                shared=shared,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
