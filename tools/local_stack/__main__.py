"""``make run`` = ``python -m local_stack``: run the whole stack locally and push the samples through it.

python -m local_stack            # push events/ through both paths, print the outcomes, exit 0 if all as documented
python -m local_stack --serve    # keep it running; print the API URL, key and queue URL to use by hand
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from typing import Any, TextIO

from local_stack.runner import Row, Runner, print_table
from local_stack.samples import Sample, load_samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help="keep running after the samples (Ctrl-C stops)")
    parser.add_argument("--no-samples", action="store_true", help="with --serve: start empty")
    parser.add_argument("--port", type=int, default=0, help="the local API's port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every message to settle")
    args = parser.parse_args(argv)

    started = time.monotonic()
    # The function writes JSON logs (Powertools' Logger binds sys.stdout when created) and EMF metrics (print) to
    # stdout, as Lambda wants; here stdout is for the table. Point it at stderr before the function is imported.
    out, sys.stdout = sys.stdout, sys.stderr
    try:
        with Runner(api_port=args.port) as runner:
            status = 0
            if not args.no_samples:
                rows = run_samples(runner, load_samples(), args.timeout)
                print_table(rows, out)
                bad = [r for r in rows if not r.ok]
                print(
                    f"\n{len(rows) - len(bad)} of {len(rows)} outcomes as documented in events/expected.json; "
                    f"{time.monotonic() - started:.1f} s end to end",
                    file=out,
                )
                status = 1 if bad else 0
            if args.serve:
                serve(runner, out)
    finally:
        sys.stdout = out
    return status


def run_samples(runner: Runner, samples: list[Sample], timeout: float) -> list[Row]:
    """Push every sample, wait until all are settled, and describe each one's end."""
    queued: dict[int, str] = {}
    answers: dict[int, str] = {}
    for index, sample in enumerate(samples):
        if sample.path == "sqs":
            queued[index] = runner.enqueue(sample.body, sample.attributes)
        else:
            answers[index], queue_id = _call_api(runner, sample)
            if queue_id:
                queued[index] = queue_id
    no_key_status, _ = runner.post(samples[0].body if samples else "{}", with_key=False)
    runner.wait_until_settled(list(queued.values()), timeout=timeout)
    dead = runner.dead_letters()
    rows = []
    for index, sample in enumerate(samples):
        outcome, detail = "", ""
        if index in queued:
            final, detail = runner.final_outcome(queued[index], dead)
            outcome = final
        if index in answers:
            outcome = f"{answers[index]}, then {outcome}" if outcome else answers[index]
        rows.append(Row(sample.name, sample.path, outcome, detail, sample.expected))
    rows.append(Row("(any request without x-api-key)", "api", f"http {no_key_status}", "Forbidden", "http 403"))
    return rows


def _call_api(runner: Runner, sample: Sample) -> tuple[str, str | None]:
    answers = [runner.post(sample.body, sample.headers) for _ in range(sample.repeat)]
    status, body = answers[0]
    text = f"http {status}"
    if sample.repeat > 1:
        same = all(a == answers[0] for a in answers)
        text += f" x{sample.repeat}, same answer" if same else f" x{sample.repeat}, DIFFERENT answers"
    queue_id = body.get("queue_message_id") if isinstance(body, dict) else None
    return text, queue_id


def serve(runner: Runner, out: TextIO) -> None:
    """Print how to reach the running stack, write .local-stack.json for ``nxwa --local`` and .sam-local-env.json
    for ``sam local --env-vars``, wait for Ctrl-C."""
    from waops.targets import LOCAL_STATE

    assert runner.api is not None
    res = runner.stack.res
    state: dict[str, Any] = {
        "region": res.region,
        "endpoint_url": res.endpoint_url,
        "api_url": f"{runner.api.url}/messages",
        "api_key": runner.api.api_key,
        "queue_url": res.send_queue_url,
        "dlq_url": res.dlq_url,
        "nxcloud_simulator_url": runner.stack.simulator.url,
    }
    LOCAL_STATE.write_text(json.dumps(state, indent=2), encoding="utf-8")
    sam_env_vars = LOCAL_STATE.with_name(".sam-local-env.json")
    sam_env_vars.write_text(json.dumps(runner.stack.sam_env_vars(), indent=2), encoding="utf-8")
    print(
        f"""
The stack is running on 127.0.0.1 (Ctrl-C stops it). Endpoints are also in {LOCAL_STATE.name} for `nxwa --local`.

  API:        curl -X POST {state["api_url"]} -H 'x-api-key: {state["api_key"]}' \\
                -H 'Content-Type: application/json' \\
                -d '{{"to": "+8613800000000", "template": {{"name": "order_update", "language": {{"code": "en_US"}}}}}}'
  send queue: {res.send_queue_url}
  DLQ:        {res.dlq_url}
  AWS CLI:    AWS_ENDPOINT_URL={res.endpoint_url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\
              AWS_DEFAULT_REGION={res.region} aws sqs send-message --queue-url {res.send_queue_url} --message-body '...'
  simulator:  {state["nxcloud_simulator_url"]}  (faults: POST /__sim/faults, records: GET /__sim/requests)
  sam local:  --env-vars {sam_env_vars.name} points the built function at this stack (docs/sam-local.md)
""",
        file=out,
        flush=True,
    )
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        LOCAL_STATE.unlink(missing_ok=True)
        sam_env_vars.unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
