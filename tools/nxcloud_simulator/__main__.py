"""Serve the simulator from a terminal until Ctrl-C.

    python -m nxcloud_simulator --port 8080 --access-key AK --access-secret SK

Then point the client (``NXCLOUD_BASE_URL``) at the printed URL, and inject faults with curl, for example::

    curl -X POST localhost:8080/__sim/faults -d '{"kind": "http_status", "status": 503, "times": 2}'
    curl -X POST localhost:8080/__sim/faults -d '{"kind": "read_timeout_after_accept", "to": "8613800138000"}'
    curl -X POST localhost:8080/__sim/faults -d '{"kind": "code", "code": 22125}'
    curl localhost:8080/__sim/faults          # the rules, with how often each was applied
    curl -X DELETE localhost:8080/__sim/faults
    curl localhost:8080/__sim/requests        # what the simulator received and answered
    curl -X POST localhost:8080/__sim/reset   # forget records and rules
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from .server import NXCloudSimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m nxcloud_simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: local only)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind; 0 picks a free one (default 8080)")
    parser.add_argument("--access-key", default="AK", help="the accepted accessKey (default AK)")
    parser.add_argument("--access-secret", default="SK", help="its accessSecret (default SK)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the RNG for probabilistic faults (default 0)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log one line per request to stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    simulator = NXCloudSimulator(
        {args.access_key: args.access_secret}, args.host, args.port, seed=args.seed, verbose=args.verbose
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with simulator:
        print(simulator.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
