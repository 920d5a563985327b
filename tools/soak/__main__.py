"""``make soak`` = ``python -m soak``: drive the local stack with N messages under injected faults; print the ledger.

    python -m soak --messages 10000 --seed 1 --mix default --policy both
    python -m soak --mode campaign --messages 10000 --rate 50 --numbers 1   # docs/throughput.md
    python -m soak --mode campaign-file --messages 10000 --rate 10   # one campaign of a file's rows: docs/soak.md

Exit status 0 only when, for every policy run: nothing was lost, no duplicate was avoidable (and, under
``dead_letter``, there was no duplicate at all), nothing reported sent was unknown to NXCloud, every message ended as
its kind allows, everything settled within the time limit, and the delivery lifecycle held: every callback the webhook
acknowledged is in the messages table, every stored status is the simulator's truth, and every change of a current
status has its event (docs/soak.md); in campaign mode also: nothing was dead-lettered for being throttled, and NXCloud
refused at most a small share of its requests for the numbers' rate (the drain time's goal is printed, not enforced:
a loaded machine stretches it). campaign-file mode has its own ledger (soak.campaign_file): ``--messages`` is the
audience file's rows, ``--rate`` the campaign's rate, and only ``--seed``, ``--expires-in`` and ``--json`` apply
besides.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from nxcloud_wa.audience import FrequencyCap
from soak import campaign_file
from soak.campaign import BUSINESS_NUMBERS
from soak.ledger import render, to_json
from soak.mix import MIXES
from soak.run import SoakSettings, run_soak

POLICIES = ("dead_letter", "retry")
MODES = ("standard", "campaign", "campaign-file")
CAMPAIGN_FUNCTION_TIMEOUT = 5.0
"""Campaign mode's function timeout: the wait for a number's slot (RATE_WAIT_SECONDS, 2 s) plus one send's worst case
(connect 1 s, read 0.3 s) and a second to settle must fit in it, as they fit in the template's 30 s."""


def main(argv: list[str] | None = None) -> int:
    defaults = SoakSettings()
    parser = argparse.ArgumentParser(
        prog="python -m soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", "-n", type=int, default=defaults.messages, help="messages per policy run")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--mix", choices=sorted(MIXES), default=defaults.mix, help="fault mix (soak/mix.py)")
    parser.add_argument("--policy", choices=[*POLICIES, "both"], default="both", help="UNKNOWN_OUTCOME_POLICY")
    parser.add_argument("--mode", choices=MODES, default=defaults.mode, help="campaign: all at once, at a rate")
    parser.add_argument("--rate", type=int, default=defaults.rate, help="campaign: messages per second per number")
    parser.add_argument(
        "--expires-in",
        type=float,
        default=0.0,
        help="campaign-file: the campaign's expires_at, seconds after its creation (rows not sent by then: expired)",
    )
    parser.add_argument(
        "--numbers", type=int, default=defaults.numbers, help=f"campaign: business numbers (1-{len(BUSINESS_NUMBERS)})"
    )
    parser.add_argument(
        "--cap",
        default=defaults.cap,
        type=_cap,
        help="MARKETING_CAP_PER_RECIPIENT for the run (1/24h, 3/7d; default off): adds the cap's ledger rows",
    )
    parser.add_argument("--queue-concurrency", type=int, default=defaults.queue_concurrency)
    parser.add_argument("--api-concurrency", type=int, default=defaults.api_concurrency)
    parser.add_argument(
        "--function-timeout",
        type=float,
        help=f"seconds (default {defaults.function_timeout:g}; campaign {CAMPAIGN_FUNCTION_TIMEOUT:g})",
    )
    parser.add_argument("--retry-delay", type=int, default=defaults.retry_delay, help="seconds before a retry")
    parser.add_argument("--read-timeout", type=float, default=defaults.read_timeout, help="NXCLOUD_READ_TIMEOUT")
    parser.add_argument("--max-backlog", type=int, default=defaults.max_backlog, help="messages queued at most")
    parser.add_argument("--time-limit", type=float, default=defaults.time_limit, help="seconds per policy run")
    parser.add_argument(
        "--stretch",
        type=float,
        default=None,
        help="factor on the timeouts and time limits (default: the load average per CPU at the start, 1 to 4)",
    )
    parser.add_argument("--parallel", action="store_true", help="with --policy both: run the two side by side")
    parser.add_argument("--json", action="store_true", help="print the ledgers as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.mode == "campaign-file":
        return campaign_file.main(
            args.messages, args.seed, float(args.rate), expires_in=args.expires_in, as_json=args.json
        )
    if args.function_timeout is None:
        campaign = args.mode == "campaign"
        args.function_timeout = CAMPAIGN_FUNCTION_TIMEOUT if campaign else defaults.function_timeout
    if not 1 <= args.messages <= 1_000_000:
        parser.error("--messages must be within 1..1000000")
    if min(args.queue_concurrency, args.api_concurrency) < 1 or args.retry_delay < 0:
        parser.error("concurrency must be at least 1 and --retry-delay at least 0")
    if min(args.function_timeout, args.read_timeout, args.time_limit) <= 0 or args.max_backlog < 10:
        parser.error("timeouts and --time-limit must be positive, --max-backlog at least 10")
    if args.stretch is not None and args.stretch < 1:
        parser.error("--stretch must be at least 1")

    if args.rate < 1 or not 1 <= args.numbers <= len(BUSINESS_NUMBERS):
        parser.error(f"--rate must be at least 1 and --numbers within 1..{len(BUSINESS_NUMBERS)}")

    policies = POLICIES if args.policy == "both" else (args.policy,)
    started = time.monotonic()
    runs = [
        SoakSettings(
            messages=args.messages,
            seed=args.seed,
            mix=args.mix,
            policy=policy,
            queue_concurrency=args.queue_concurrency,
            api_concurrency=args.api_concurrency,
            function_timeout=args.function_timeout,
            retry_delay=args.retry_delay,
            read_timeout=args.read_timeout,
            time_limit=args.time_limit,
            max_backlog=args.max_backlog,
            mode=args.mode,
            rate=args.rate,
            numbers=args.numbers,
            cap=args.cap,
            stretch=args.stretch,
        )
        for policy in policies
    ]
    if args.parallel:
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            ledgers = list(pool.map(run_soak, runs))
    else:
        ledgers = [run_soak(settings) for settings in runs]
    if args.json:
        print(json.dumps([to_json(lg) for lg in ledgers], indent=2))
    else:
        campaign = f"campaign at {args.numbers} x {args.rate}/s, " if args.mode == "campaign" else ""
        print(
            f"soak: {campaign}{args.messages} messages per run, mix {args.mix}, seed {args.seed}, "
            f"{args.queue_concurrency}+{args.api_concurrency} concurrent executions (queue+API), "
            f"function timeout {args.function_timeout:g} s, retry after {args.retry_delay} s "
            f"(both stretched for the machine's load: see the ledger), "
            f"NXCLOUD_READ_TIMEOUT {args.read_timeout:g} s, at most {args.max_backlog} queued, "
            f"marketing cap {args.cap or 'off'}; "
            f"{time.monotonic() - started:.0f} s in all"
        )
        print(render(ledgers))
    return 1 if any(lg.failures() for lg in ledgers) else 0


def _cap(text: str) -> str:
    """``--cap``'s value, refused as the function would refuse it (``MarketingCapPerRecipient``'s format)."""
    try:
        FrequencyCap.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


if __name__ == "__main__":
    raise SystemExit(main())
