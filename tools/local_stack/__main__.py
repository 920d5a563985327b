"""``make run`` = ``python -m local_stack``: run the whole stack locally and push the samples through it.

python -m local_stack            # push events/ through both paths, print the outcomes, exit 0 if all as documented
python -m local_stack --serve    # keep it running; print the API URL, key and queue URL to use by hand
python -m local_stack --verbose  # the same, with the function's JSON logs and metrics shown live on stderr

Output: short progress lines on stderr, then the table (:mod:`local_stack.table`: as wide as the terminal, 120
columns when not one) and a one-line verdict on stdout. The function's own output
(Powertools' JSON logs, EMF metrics, warnings) goes to a log file, ``.local-stack/run-<time>.log`` unless
``--log-file`` says otherwise, whose path is printed; ``--verbose`` shows it on stderr instead.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from local_stack import suppression_entries
from local_stack.campaign_row import CampaignRow
from local_stack.output import LineWriter
from local_stack.runner import MAKE_RUN_CAP, FrequencyCapRow, MarketingLimitRetry, Row, Runner, no_key_row
from local_stack.samples import Sample, load_samples
from local_stack.stack import LOCAL_SECRET
from local_stack.table import print_table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_stack", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", action="store_true", help="keep running after the samples (Ctrl-C stops)")
    parser.add_argument("--no-samples", action="store_true", help="with --serve: start empty")
    parser.add_argument("--port", type=int, default=0, help="the local API's port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for every message to settle")
    parser.add_argument("--verbose", action="store_true", help="show the function's logs live on stderr, no log file")
    parser.add_argument(
        "--log-file", type=Path, help="where the function's logs go (default: .local-stack/run-<time>.log)"
    )
    args = parser.parse_args(argv)

    started = time.monotonic()
    out, err = sys.stdout, sys.stderr
    log_path = None if args.verbose else (args.log_file or default_log_path())

    def progress(text: str) -> None:
        print(text, file=err, flush=True)

    if log_path is not None:
        progress(f"make run: the function's logs go to {shown(log_path)} (--verbose shows them here instead)")
    # The function writes JSON logs (Powertools' Logger binds sys.stdout when created) and EMF metrics (print) to
    # stdout, as Lambda wants; here stdout is for the table. Point it (and, when quiet, stderr: warnings, tracebacks
    # of threads) at the log file or stderr before the function is imported.
    with function_output(log_path, err) as function_stream:
        sys.stdout = function_stream
        if log_path is not None:
            sys.stderr = function_stream
        try:
            progress("starting moto (AWS), the NXCloud simulator, the pollers, the API and the webhook on 127.0.0.1...")
            with Runner(api_port=args.port, cap="" if args.no_samples else MAKE_RUN_CAP) as runner:
                assert runner.api is not None
                progress(
                    f"  moto {runner.stack.moto.url}, simulator {runner.stack.simulator.url}, API {runner.api.url}"
                )
                status = 0
                if not args.no_samples:
                    before = suppression_entries.snapshot(runner.stack.res)
                    rows = run_samples(runner, load_samples(), args.timeout, progress)
                    print_table(rows, out)
                    suppression_entries.print_created(runner.stack.res, before, out)
                    bad = [r for r in rows if not r.ok]
                    verdict = "OK" if not bad else f"FAILED ({len(bad)} MISMATCH)"
                    print(
                        f"\n{verdict}: {len(rows) - len(bad)} of {len(rows)} outcomes as documented in "
                        f"events/expected.json and local_stack/runner.py; "
                        f"{time.monotonic() - started:.1f} s end to end",
                        file=out,
                        flush=True,
                    )
                    status = 1 if bad else 0
                if args.serve:
                    serve(runner, out)
        finally:
            sys.stdout, sys.stderr = out, err
    if log_path is not None:
        progress(f"the function's logs: {shown(log_path)}")
    return status


LOG_FOLDER = Path(__file__).resolve().parents[2] / ".local-stack"
"""Where ``make run`` keeps the function's logs by default (git-ignored)."""


def default_log_path(now: float | None = None) -> Path:
    """``.local-stack/run-<local time>.log`` in the repository: one file per run, sorted by time."""
    return LOG_FOLDER / time.strftime("run-%Y%m%d-%H%M%S.log", time.localtime(now))


def shown(path: Path) -> str:
    """A path as the user can type it: relative to the current folder when it is inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@contextmanager
def function_output(log_path: Path | None, err: TextIO) -> Iterator[LineWriter]:
    """Whole lines to ``log_path`` (created with its folder), or to ``err`` when there is no log file."""
    if log_path is None:
        yield LineWriter(err)
        return
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as handle:
        writer = LineWriter(handle)
        try:
            yield writer
        finally:
            writer.flush()


def run_samples(
    runner: Runner, samples: list[Sample], timeout: float, progress: Callable[[str], None] | None = None
) -> list[Row]:
    """Push every sample, wait until all are settled, and describe each one's end."""
    say = progress or (lambda _: None)
    queued: dict[int, str] = {}
    answers: dict[int, str] = {}
    sent_now: dict[int, str] = {}
    on_queue = sum(1 for sample in samples if sample.path == "sqs")
    say(f"pushing {len(samples)} samples: {on_queue} to the send queue, {len(samples) - on_queue} to the API...")
    for index, sample in enumerate(samples):
        if sample.path == "sqs":
            queued[index] = runner.enqueue(sample.body, sample.attributes)
        else:
            answers[index], queue_id, message_id = _call_api(runner, sample)
            if queue_id:
                queued[index] = queue_id
            if message_id:
                sent_now[index] = message_id
    no_key = no_key_row(runner, samples[0].body if samples else "{}")
    retry = MarketingLimitRetry(runner)
    retry.send()
    say(f"waiting for the {len(queued)} queued messages to settle (sent, skipped or dead-lettered, with retries)...")
    waited = time.monotonic()
    settled = runner.wait_until_settled([*queued.values(), retry.queue_id], timeout=timeout)
    say(f"  settled in {time.monotonic() - waited:.1f} s" if settled else f"  NOT all settled after {timeout:.0f} s")
    say("waiting for NXCloud's callbacks (the simulator's) to be stored and published...")
    waited = time.monotonic()
    called_back = runner.wait_for_callbacks(timeout=timeout)
    say(f"  done in {time.monotonic() - waited:.1f} s" if called_back else f"  NOT all posted after {timeout:.0f} s")
    say(
        f"frequency cap {MAKE_RUN_CAP}: marketing templates to one recipient until capped; 131049: firing the due "
        "retry schedules as if the retry delay had passed, and following the retry; a campaign of 30 rows, paused "
        "and resumed..."
    )
    capped = FrequencyCapRow(runner)
    capped.run(timeout)
    runner.wait_for_callbacks(timeout=timeout)
    retry.fire_and_follow(timeout)
    campaign = CampaignRow(runner)
    campaign.run(timeout)
    dead = runner.dead_letters()
    events = runner.status_events()
    rows = []
    for index, sample in enumerate(samples):
        outcome, detail = "", sent_now.get(index, "")
        if index in queued:
            final, detail = runner.final_outcome(queued[index], dead)
            outcome = final
        if index in answers:
            outcome = f"{answers[index]}, then {outcome}" if outcome else answers[index]
        delivery = runner.delivery(detail) if detail else ""
        shown_events = " ".join(events.get(detail, [])) if detail else ""
        rows.append(
            Row(
                sample.name,
                sample.path,
                outcome,
                detail,
                sample.expected,
                delivery,
                sample.expected_delivery,
                shown_events,
            )
        )
    rows += [retry.row(events), capped.row(events), campaign.row(runner.campaign_moves), no_key]
    return rows


def _call_api(runner: Runner, sample: Sample) -> tuple[str, str | None, str | None]:
    """The answer as a table cell, and the queue message id (202) or NXCloud's message_id (200) it carries."""
    answers = [runner.post(sample.body, sample.headers, route=sample.route) for _ in range(sample.repeat)]
    status, body = answers[0]
    text = f"http {status}"
    if sample.repeat > 1:
        same = all(a == answers[0] for a in answers)
        text += f" x{sample.repeat}, same answer" if same else f" x{sample.repeat}, DIFFERENT answers"
    answer = body if isinstance(body, dict) else {}
    return text, answer.get("queue_message_id"), answer.get("message_id")


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
        "kept_callbacks_queue_url": res.kept_callbacks_queue_url,
        "webhook_url": runner.api.webhook_url,
        "webhook_token": str(LOCAL_SECRET["webhook_token"]),
        "nxcloud_simulator_url": runner.stack.simulator.url,
        "secret_id": res.secret_id,
        "template_base_url": runner.stack.simulator.url,
    }
    LOCAL_STATE.write_text(json.dumps(state, indent=2), encoding="utf-8")
    sam_env_vars = LOCAL_STATE.with_name(".sam-local-env.json")
    sam_env_vars.write_text(json.dumps(runner.stack.sam_env_vars(), indent=2), encoding="utf-8")
    print(
        f"""
The stack is running on 127.0.0.1 (Ctrl-C stops it). Endpoints are also in {LOCAL_STATE.name} for `nxwa --local`.

  API:        curl -X POST {state["api_url"]} -H 'x-api-key: {state["api_key"]}' \\
                -H 'Content-Type: application/json' \\
                -d '{{"to": "+8613800000000", "template": {{"name": "order_update", "language": {{"code": "en_US"}},
                      "components": [{{"type": "body", "parameters": [{{"type": "text", "text": "A-1001"}}]}}]}}}}'
  send queue: {res.send_queue_url}
  DLQ:        {res.dlq_url}
  AWS CLI:    AWS_ENDPOINT_URL={res.endpoint_url} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local \\
              AWS_DEFAULT_REGION={res.region} aws sqs send-message --queue-url {res.send_queue_url} --message-body '...'
  simulator:  {state["nxcloud_simulator_url"]}  (faults: POST /__sim/faults, records: GET /__sim/requests)
  marketing frequency cap: {runner.cap or "off"} (MARKETING_CAP_PER_RECIPIENT; --no-samples starts without it)
  templates:  events/templates.json (nxwa --local templates list; checked before every send: docs/templates.md)
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
