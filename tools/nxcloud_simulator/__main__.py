"""Serve the simulator from a terminal until Ctrl-C.

    python -m nxcloud_simulator --port 8080 --access-key AK --access-secret SK \
        --webhook-url http://127.0.0.1:3000/webhooks/nxcloud/TOKEN

Then point the client (``NXCLOUD_BASE_URL``) at the printed URL, and inject faults with curl, for example::

    curl -X POST localhost:8080/__sim/faults -d '{"kind": "http_status", "status": 503, "times": 2}'
    curl -X POST localhost:8080/__sim/faults -d '{"kind": "read_timeout_after_accept", "to": "8613800138000"}'
    curl -X POST localhost:8080/__sim/faults -d '{"kind": "code", "code": 22125}'
    curl localhost:8080/__sim/faults          # the rules, with how often each was applied
    curl -X DELETE localhost:8080/__sim/faults
    curl localhost:8080/__sim/requests        # what the simulator received and answered
    curl -X POST localhost:8080/__sim/rate -d '{"per_second": 50, "burst": 50}'   # each business number's rate
    curl localhost:8080/__sim/rate            # the rate, and what it let through and refused per number
    curl -X POST localhost:8080/__sim/reset   # forget records, rules, the callback ledger and the truth

With ``--webhook-url`` (loopback only) every accepted send is followed by NXCloud's status callbacks (sent,
delivered, read) posted to that URL. Steer them the same way::

    curl -X POST localhost:8080/__sim/callbacks/config -d '{"delay": [0.1, 0.5], "duplicate": 0.2, "ids": "wamid"}'
    curl -X POST localhost:8080/__sim/outcomes -d '{"to": "8613800138000", "final": "failed", "code": 131026}'
    curl -X POST localhost:8080/__sim/buttons -d '{"template": "promo", "buttons": [{"payload": "y", "text": "Yes"}]}'
    curl localhost:8080/__sim/callbacks       # every callback posted, with the receiver's answer, and counts
    curl localhost:8080/__sim/truth           # per message: the true statuses and the final one
    curl -X POST localhost:8080/__sim/drain -d '{"timeout": 30}'

With ``--templates FILE`` (a JSON list of ``{"appkey", "business_phone", "templates": [...]}``, NXCloud's template
objects) it also serves getTemplate and refuses sends of templates an account lacks (22093). Change it with curl::

    curl -X POST localhost:8080/__sim/templates \\
        -d '{"appkey": "app", "business_phone": "8613800000000", "templates": [...]}'
    curl localhost:8080/__sim/template-requests
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from pathlib import Path

from .rates import ANSWERS, RateLimit
from .server import NXCloudSimulator
from .templates import read_catalogue


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nxcloud_simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: local only)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    parser.add_argument("--access-key", default="AK", help="the accepted accessKey (default AK)")
    parser.add_argument("--access-secret", default="SK", help="its accessSecret (default SK)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RNGs of faults and callbacks (default 0)")
    parser.add_argument(
        "--webhook-url",
        help="post NXCloud's status and button callbacks after each accepted send to this http://127.0.0.1 URL",
    )
    parser.add_argument(
        "--templates",
        type=Path,
        help='serve getTemplate from this JSON file: [{"appkey", "business_phone", "templates": [...]}, ...]',
    )
    parser.add_argument(
        "--rate", type=float, help="each business number's messages per second; beyond it, answered HTTP 429"
    )
    parser.add_argument("--burst", type=float, help="the rate's bucket, in messages (default: a second's worth)")
    parser.add_argument(
        "--rate-answer",
        choices=ANSWERS,
        default="http_429",
        help="how a request over the rate is refused: HTTP 429, or NXCloud code 22141 quoting Meta's 130429",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="log one line per request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        templates = read_catalogue(args.templates) if args.templates else None
        simulator = NXCloudSimulator(
            {args.access_key: args.access_secret},
            args.host,
            args.port,
            seed=args.seed,
            verbose=args.verbose,
            webhook_url=args.webhook_url,
            templates=templates,
            rate_limit=RateLimit(args.rate, args.burst, args.rate_answer) if args.rate is not None else None,
        )
    except (ValueError, OSError) as exc:
        print(f"nxcloud_simulator: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with simulator:
        print(simulator.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
