"""``nxwa``: the operator's command line for a deployed stack (``--stack NAME``) or the local one (``--local``).

nxwa --local send --to +8613800000000 --template order_update --language en_US --param David
nxwa --stack wa-sender send --file message.json --via queue
nxwa --stack wa-sender dlq list
nxwa --stack wa-sender dlq redrive --dry-run
nxwa --stack wa-sender status order-42             # what happened to a message (message id or idempotency key)
nxwa --stack wa-sender webhooks list               # callbacks kept for replay, and why
nxwa --stack wa-sender webhooks replay             # post them to the webhook again
nxwa --stack wa-sender templates list              # the account's templates, as the pre-flight check sees them
nxwa --stack wa-sender templates show order_update # what a message for it must carry, in each language
nxwa --local send --check --to +8613800000000 --template order_update --param A-1001   # check it, send nothing
nxwa --stack wa-sender suppressions add +8613800000000 --scope all   # never message this number (API key only)
nxwa --stack wa-sender suppressions import optouts.csv             # number[,scope,reason,expires_at]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tqdm import tqdm

from nxcloud_wa.exceptions import TemplateApiError
from waops import campaigns, dlq, suppressions, templates
from waops.rest import answered as _answered
from waops.rest import print_json as _print
from waops.rest import table as _table
from waops.targets import Targets, from_stack, from_state_file


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    targets = _targets(args)
    return int(args.run(args, targets))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nxwa", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    where = parser.add_argument_group("where the stack is (flags override what --stack/--local find)")
    source = where.add_mutually_exclusive_group()
    source.add_argument("--stack", help="CloudFormation stack name of a deployed stack")
    source.add_argument("--local", action="store_true", help="the local stack started by `make run ARGS=--serve`")
    where.add_argument("--region", help="AWS region (default: your AWS configuration)")
    for flag, text in (
        ("--api-url", "the POST /messages URL"),
        ("--api-key", "the API key's value"),
        ("--queue-url", "the send queue's URL"),
        ("--dlq-url", "the dead-letter queue's URL"),
        ("--kept-callbacks-queue-url", "the queue of callbacks kept for replay"),
        ("--webhook-url", "the webhook's URL, without the token"),
        ("--webhook-token", "the webhook token (the NXCloud secret's webhook_token)"),
        ("--secret-id", "the NXCloud secret's id or ARN (templates, send --check)"),
        ("--template-base-url", "getTemplate's base URL (default https://api2.nxcloud.com)"),
        ("--endpoint-url", "an AWS endpoint other than AWS's (moto)"),
    ):
        where.add_argument(flag, help=text)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    send = commands.add_parser("send", help="send one message through the API or the queue, and show the result")
    send.add_argument("--file", type=Path, help="a JSON message (NXCloud's send body); or use the flags below")
    send.add_argument("--to", help="recipient, with country code")
    send.add_argument("--template", help="template name")
    send.add_argument("--language", default="en_US", help="template language code (default en_US)")
    send.add_argument("--param", action="append", default=[], help="a body variable, in order (repeatable)")
    send.add_argument("--via", choices=("api", "queue"), default="api", help="the path to send it by (default api)")
    send.add_argument("--async", dest="respond_async", action="store_true", help="API only: Prefer respond-async")
    send.add_argument("--idempotency-key", help="sending again with the same key does not send twice")
    send.add_argument(
        "--check", action="store_true", help="check the message against its template in the catalogue; send nothing"
    )
    send.set_defaults(run=_send)

    dead = commands.add_parser("dlq", help="the dead-letter queue").add_subparsers(dest="dlq", required=True)
    listing = dead.add_parser("list", help="show dead-lettered messages and why, without consuming them")
    listing.add_argument("--max", type=int, help="show at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON object per message")
    listing.set_defaults(run=_dlq_list)
    redrive = dead.add_parser("redrive", help="move dead-lettered messages back to the send queue")
    redrive.add_argument("--dry-run", action="store_true", help="say what would move; move nothing")
    redrive.add_argument("--max", type=int, help="move at most this many (moves by hand)")
    redrive.add_argument("--reason", help="move only messages dead-lettered for this reason (moves by hand)")
    redrive.add_argument("--by-hand", action="store_true", help="do not use SQS's message-move task")
    redrive.set_defaults(run=_dlq_redrive)

    status = commands.add_parser("status", help="a message's status, timeline, errors and clicks (GET /messages/{id})")
    status.add_argument("id", help="NXCloud's message_id or the message's idempotency key")
    status.set_defaults(run=_status)

    hooks = commands.add_parser("webhooks", help="callbacks kept for replay").add_subparsers(
        dest="hooks", required=True
    )
    kept = hooks.add_parser("list", help="show kept callbacks and why, without consuming them")
    kept.add_argument("--max", type=int, help="show at most this many")
    kept.set_defaults(run=_webhooks_list)
    replay = hooks.add_parser("replay", help="post kept callbacks to the webhook again; delete each one it accepts")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed; post nothing")
    replay.add_argument("--max", type=int, help="replay at most this many")
    replay.set_defaults(run=_webhooks_replay)

    _add_templates(commands)
    _add_suppressions(commands)
    campaigns.add_commands(commands)
    return parser


def _add_templates(commands: Any) -> None:
    """``nxwa templates list`` and ``nxwa templates show NAME``."""
    catalogue = commands.add_parser("templates", help="the account's templates (NXCloud's getTemplate)")
    catalogue_commands = catalogue.add_subparsers(dest="templates", required=True)
    listing = catalogue_commands.add_parser("list", help="every template: language, status, what it takes")
    show = catalogue_commands.add_parser("show", help="one template, in each language: what a message must carry")
    show.add_argument("name", help="the template's name")
    for command in (listing, show):
        command.add_argument("--appkey", help="the account's appkey (default: the stack's, else the secret's)")
        command.add_argument("--business-phone", help="the account's business number (default: as --appkey)")
        command.add_argument("--json", action="store_true", help="NXCloud's template objects, one JSON line each")
    listing.set_defaults(run=_templates_list)
    show.set_defaults(run=_templates_show)


def _add_suppressions(commands: Any) -> None:
    """``nxwa suppressions add|remove|check|list|import|export``: the suppression list, through the REST API."""
    group = commands.add_parser("suppressions", help="the suppression list (who is not messaged), through the API")
    actions = group.add_subparsers(dest="suppressions", required=True)
    add = actions.add_parser("add", help="suppress a number (PUT /suppressions/{number})")
    add.add_argument("number", help="the recipient, with country code")
    add.add_argument("--scope", choices=("marketing", "all"), help="what it stops (default marketing)")
    add.add_argument("--reason", help="manual (default; only a person lifts it) or opted_out (an opt-in lifts it)")
    add.add_argument("--expires-at", help="ISO 8601 with an offset (2027-01-31T00:00:00+08:00); default: permanent")
    add.set_defaults(run=_suppressions_add)
    remove = actions.add_parser("remove", help="remove a number's entry, whatever its reason")
    remove.add_argument("number", help="the recipient, with country code")
    remove.set_defaults(run=_suppressions_remove)
    check = actions.add_parser("check", help="a number's entry in force; exit status 1 when there is none")
    check.add_argument("number", help="the recipient, with country code")
    check.set_defaults(run=_suppressions_check)
    listing = actions.add_parser("list", help="the entries in force, by recipient (follows the pages)")
    listing.add_argument("--limit", type=int, help="show at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON object per entry")
    listing.set_defaults(run=_suppressions_list)
    load = actions.add_parser("import", help="add the rows of a CSV file: number[,scope,reason,expires_at]")
    load.add_argument("file", type=Path, help="the CSV file (its first line is the header)")
    load.add_argument("--concurrency", type=int, default=4, help="requests at a time (default 4)")
    load.set_defaults(run=_suppressions_import)
    dump = actions.add_parser("export", help="write the entries in force as CSV (what import reads)")
    dump.add_argument("--output", type=Path, help="the CSV file to write (default: standard output)")
    dump.set_defaults(run=_suppressions_export)
    for command in (add, remove, check, listing, load, dump):
        command.add_argument("--business-phone", help="the business number (default: the stack's default)")


def _targets(args: argparse.Namespace) -> Targets:
    if args.local:
        base = from_state_file()
    elif args.stack:
        base = from_stack(args.stack, args.region)
    else:
        base = Targets(region=args.region)
    return base.overridden(
        api_url=args.api_url,
        api_key=args.api_key,
        queue_url=args.queue_url,
        dlq_url=args.dlq_url,
        endpoint_url=args.endpoint_url,
        kept_callbacks_queue_url=args.kept_callbacks_queue_url,
        webhook_url=args.webhook_url,
        webhook_token=args.webhook_token,
        secret_id=args.secret_id,
        template_base_url=args.template_base_url,
    )


def build_message(args: argparse.Namespace) -> dict[str, Any]:
    """The message from --file, or from --to/--template/--language/--param."""
    if args.file:
        data = json.loads(args.file.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise SystemExit("nxwa: the file must hold one JSON object")
        return data
    if not args.to or not args.template:
        raise SystemExit("nxwa send: give --file, or --to and --template")
    template: dict[str, Any] = {"name": args.template, "language": {"code": args.language}}
    if args.param:
        template["components"] = [{"type": "body", "parameters": [{"type": "text", "text": p} for p in args.param]}]
    return {"to": args.to, "template": template}


def _send(args: argparse.Namespace, targets: Targets) -> int:
    message = build_message(args)
    if args.check:
        status, answer = templates.check_message(targets, message)
        _print(answer)
        return status
    if args.via == "queue":
        targets.require("queue_url")
        attributes = (
            {"idempotency_key": {"DataType": "String", "StringValue": args.idempotency_key}}
            if args.idempotency_key
            else {}
        )
        sent = targets.client("sqs").send_message(
            QueueUrl=targets.queue_url,
            MessageBody=json.dumps(message, ensure_ascii=False),
            MessageAttributes=attributes,
        )
        _print({"status": "queued", "queue_message_id": sent["MessageId"]})
        return 0
    targets.require("api_url", "api_key")
    status, body = post_message(targets, message, args.idempotency_key, args.respond_async)
    _print({"http_status": status, **(body if isinstance(body, dict) else {"body": body})})
    return 0 if status < 400 else 1


def post_message(
    targets: Targets, message: dict[str, Any], idempotency_key: str | None = None, respond_async: bool = False
) -> tuple[int, Any]:
    """POST the message to the API with the key; return the status and the decoded answer."""
    headers = {"Content-Type": "application/json", "x-api-key": targets.api_key or ""}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    if respond_async:
        headers["Prefer"] = "respond-async"
    return _http(targets.api_url or "", json.dumps(message, ensure_ascii=False).encode("utf-8"), headers)


def _dlq_list(args: argparse.Namespace, targets: Targets) -> int:
    targets.require("dlq_url")
    sqs = targets.client("sqs")
    total = dlq.queue_size(sqs, targets.dlq_url or "")
    letters = []
    with tqdm(total=min(total, args.max or total), desc="reading", unit="msg", file=sys.stderr, leave=False) as bar:
        for letter in dlq.peek(sqs, targets.dlq_url or "", args.max):
            letters.append(letter)
            bar.update()
    if args.json:
        for letter in letters:
            _print({"message_id": letter.message_id, "receive_count": letter.receive_count, **letter.attributes})
        return 0
    rows = [
        (
            letter.message_id,
            letter.reason,
            letter.attributes.get("error_code", ""),
            letter.attributes.get("failed_at", ""),
            letter.attributes.get("error_message", "")[:60],
        )
        for letter in letters
    ]
    _table(("message id", "reason", "code", "failed at", "message"), rows)
    print(f"{len(letters)} of about {total} dead-lettered message(s) shown; none consumed")
    return 0


def _dlq_redrive(args: argparse.Namespace, targets: Targets) -> int:
    targets.require("dlq_url", "queue_url")
    sqs = targets.client("sqs")
    dlq_url, queue_url = targets.dlq_url or "", targets.queue_url or ""
    if args.dry_run:
        letters = list(dlq.peek(sqs, dlq_url, args.max))
        chosen = [x for x in letters if not args.reason or x.reason == args.reason]
        for letter in chosen:
            print(f"would move {letter.message_id} ({letter.reason})")
        print(f"dry run: {len(chosen)} message(s) would move to {queue_url}")
        return 0
    if not (args.by_hand or args.max or args.reason):
        handle = dlq.start_move_task(sqs, dlq_url, queue_url)
        if handle is not None:
            print(f"SQS message-move task started: {handle}")
            return 0
        print("this endpoint has no message-move task: moving by hand", file=sys.stderr)
    # Only what is there now: messages that fail again while we move come back as new dead letters, and moving those
    # too would loop. Each message is received once (it stays hidden while we go on); skipped ones (newer, or of
    # other reasons) are made visible again at the end.
    started_ms = int(time.time() * 1000)
    total = dlq.queue_size(sqs, dlq_url)
    moved, skipped = 0, []
    with tqdm(total=min(total, args.max or total), desc="redriving", unit="msg", file=sys.stderr) as bar:
        for letter in dlq.take(sqs, dlq_url):
            if letter.sent_timestamp_ms > started_ms or (args.reason and letter.reason != args.reason):
                skipped.append(letter)
                continue
            dlq.move(sqs, letter, dlq_url, queue_url)
            moved += 1
            bar.update()
            if args.max and moved >= args.max:
                break
    for letter in skipped:
        dlq.release(sqs, dlq_url, letter.receipt_handle)
    print(f"moved {moved} message(s) to {queue_url}")
    return 0


def _status(args: argparse.Namespace, targets: Targets) -> int:
    targets.require("api_url", "api_key")
    url = f"{targets.api_url}/{urllib.parse.quote(args.id, safe='')}"
    status, body = _http(url, None, {"x-api-key": targets.api_key or ""}, method="GET")
    _print({"http_status": status, **(body if isinstance(body, dict) else {"body": body})})
    return 0 if status == 200 else 1


def _webhooks_list(args: argparse.Namespace, targets: Targets) -> int:
    targets.require("kept_callbacks_queue_url")
    sqs, url = targets.client("sqs"), targets.kept_callbacks_queue_url or ""
    kept = list(dlq.peek(sqs, url, args.max))
    rows = [
        (
            k.message_id,
            k.attributes.get("reason", ""),
            k.attributes.get("received_at", ""),
            k.attributes.get("error_message", "")[:60],
        )
        for k in kept
    ]
    _table(("message id", "reason", "received at", "problem"), rows)
    print(f"{len(kept)} of about {dlq.queue_size(sqs, url)} kept callback(s) shown; none consumed")
    return 0


def _webhooks_replay(args: argparse.Namespace, targets: Targets) -> int:
    """Post each kept callback to the webhook, as NXCloud would; delete it once the webhook answers 200.

    A callback the webhook still refuses (400: not NXCloud's shape; 413) stays kept, and so does one it cannot take
    now (5xx) or that got no answer (a refused or dropped connection, a timeout): the count of each is printed, and
    the exit status is 1 when any is left.
    """
    targets.require("kept_callbacks_queue_url", "webhook_url", "webhook_token")
    sqs, url = targets.client("sqs"), targets.kept_callbacks_queue_url or ""
    endpoint = (targets.webhook_url or "").rstrip("/") + "/" + urllib.parse.quote(targets.webhook_token or "", safe="")
    answers: dict[int, int] = {}
    left = []
    for n, kept in enumerate(dlq.take(sqs, url)):
        if args.max and n >= args.max:
            left.append(kept)
            break
        if args.dry_run or kept.attributes.get("encoding") == "base64":
            left.append(kept)
            print(f"would replay {kept.message_id} ({kept.attributes.get('reason', '')})")
            continue
        try:
            status, _ = _http(endpoint, kept.body.encode("utf-8"), {"Content-Type": "application/json"})
        except OSError:  # no answer (refused, dropped, timed out): it stays kept, and the rest are still tried
            status = 0
        answers[status] = answers.get(status, 0) + 1
        if status == 200:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=kept.receipt_handle)
        else:
            left.append(kept)
    for kept in left:
        dlq.release(sqs, url, kept.receipt_handle)
    summary = ", ".join(f"{_answer(status)}: {count}" for status, count in sorted(answers.items())) or "nothing posted"
    print(f"replayed: {summary}; {len(left)} left on the queue")
    return 0 if args.dry_run or not left else 1


def _answer(status: int) -> str:
    return f"HTTP {status}" if status else "no answer"


def _templates_list(args: argparse.Namespace, targets: Targets) -> int:
    where = templates.account(targets, args.appkey, args.business_phone)
    if args.json:
        return _templates_json(targets, where)
    found = templates.fetch(targets, where)
    _table(templates.ROW_HEADER, templates.rows(found))
    print(f"{len(found)} template(s) of appkey {where.appkey}; +param: a message must give that button's parameter")
    return 0


def _templates_show(args: argparse.Namespace, targets: Targets) -> int:
    where = templates.account(targets, args.appkey, args.business_phone)
    if args.json:
        return _templates_json(targets, where, args.name)
    found = templates.fetch(targets, where, args.name)
    if not found:
        print(f"nxwa: no template {args.name} for appkey {where.appkey}", file=sys.stderr)
        return 1
    for spec in found:
        print("\n".join(templates.describe(spec)))
    return 0


def _templates_json(targets: Targets, where: templates.Account, name: str | None = None) -> int:
    try:
        for item in templates.client(targets).raw(where.appkey, where.business_phone, where.credentials, name=name):
            _print(item)
    except TemplateApiError as exc:
        raise SystemExit(f"nxwa: the template catalogue is unavailable: {exc}") from None
    return 0


def _suppressions_add(args: argparse.Namespace, targets: Targets) -> int:
    body = suppressions.request_body(args.scope, args.reason, args.expires_at, args.business_phone)
    return _answered(suppressions.Api(targets).put(args.number, body))


def _suppressions_remove(args: argparse.Namespace, targets: Targets) -> int:
    return _answered(suppressions.Api(targets).remove(args.number, args.business_phone))


def _suppressions_check(args: argparse.Namespace, targets: Targets) -> int:
    return _answered(suppressions.Api(targets).get(args.number, args.business_phone))


def _suppressions_list(args: argparse.Namespace, targets: Targets) -> int:
    entries = list(suppressions.Api(targets).entries(args.business_phone, args.limit))
    if args.json:
        for entry in entries:
            _print(entry)
        return 0
    columns = ("number", "scope", "reason", "source", "at", "expires_at")
    _table(columns, [tuple(str(entry.get(c) or "") for c in columns) for entry in entries])
    print(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'} in force")
    return 0


def _suppressions_import(args: argparse.Namespace, targets: Targets) -> int:
    if args.concurrency < 1:
        raise SystemExit("nxwa: --concurrency must be at least 1")
    result = suppressions.import_file(suppressions.Api(targets), args.file, args.business_phone, args.concurrency)
    for line, problem in result.problems:
        print(f"line {line}: {problem}")
    print(result.summary())
    return 0 if result.ok else 1


def _suppressions_export(args: argparse.Namespace, targets: Targets) -> int:
    api = suppressions.Api(targets)
    if args.output is None:
        suppressions.export(api, args.business_phone, sys.stdout)
        return 0
    with args.output.open("w", newline="", encoding="utf-8") as out:
        written = suppressions.export(api, args.business_phone, out)
    print(f"{written} entr{'y' if written == 1 else 'ies'} written to {args.output}", file=sys.stderr)
    return 0


def _http(url: str, data: bytes | None, headers: dict[str, str], method: str = "POST") -> tuple[int, Any]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - the operator's own URL
            return response.status, _decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, _decode(error.read())


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
