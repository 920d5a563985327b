"""``nxwa campaign create|list|status|pause|resume|cancel|retry|report``: campaigns through the stack's REST API.

``create`` uploads the audience file the way a holder of only the API key can (``POST /audiences`` gives a presigned
upload; no S3 credentials needed), then creates the campaign (``POST /campaigns``; ``--dry-run`` checks the file and
counts its rows, sending nothing). ``status --watch`` follows a campaign with a progress bar until it is completed or
cancelled. docs/campaigns.md is the contract.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Final

import urllib3
from tqdm import tqdm

from nxcloud_wa.campaigns import Status, final_totals, unfinished
from waops.rest import Answer, RestApi, answered, table
from waops.targets import Targets

ENDED: Final = frozenset({Status.COMPLETED.value, Status.CANCELLED.value})
FAILED: Final = ("dead_lettered", "failed")
"""What the progress line calls failed: rows dead-lettered at the send, and sends WhatsApp could not deliver."""


class Api(RestApi):
    """The REST API's /audiences and /campaigns routes, with the key."""

    def audience(self, fmt: str) -> Answer:
        return self._call("POST", "/audiences", {}, json.dumps({"format": fmt}).encode())

    def create(self, body: Mapping[str, Any]) -> Answer:
        return self._call("POST", "/campaigns", {}, json.dumps(body).encode())

    def get(self, campaign_id: str) -> Answer:
        return self._call("GET", _path(campaign_id), {})

    def report(self, campaign_id: str) -> Answer:
        return self._call("GET", f"{_path(campaign_id)}/report", {})

    def act(self, campaign_id: str, action: str) -> Answer:
        return self._call("POST", f"{_path(campaign_id)}/{action}", {}, b"{}")

    def campaigns(self, limit: int | None = None) -> Iterator[dict[str, Any]]:
        """Campaigns newest first, following the cursors (at most ``limit``); ``SystemExit`` if a page is refused."""
        cursor, given = None, 0
        while limit is None or given < limit:
            answer = self._call(
                "GET", "/campaigns", {"limit": str(min(100, limit - given) if limit else 100), "cursor": cursor}
            )
            if answer.status != 200:
                raise SystemExit(f"nxwa: listing campaigns failed: HTTP {answer.status}: {answer.error}")
            for item in answer.body["items"][: None if limit is None else limit - given]:
                given += 1
                yield item
            cursor = answer.body.get("next_cursor")
            if cursor is None:
                return


def _path(campaign_id: str) -> str:
    return "/campaigns/" + urllib.parse.quote(campaign_id, safe="")


def audience_format(path: Path) -> str:
    """``csv`` or ``jsonl``, from the file's name, as the stack reads it."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in ("csv", "jsonl"):
        raise SystemExit(f"nxwa campaign: an audience file's name ends in .csv or .jsonl, got {path.name!r}")
    return suffix


def upload(grant: Mapping[str, Any], path: Path) -> None:
    """Send the file where ``POST /audiences`` said: a presigned POST (``fields`` given: S3 enforces the size limit
    from its policy) or a presigned PUT."""
    size = path.stat().st_size
    limit = grant.get("max_bytes")
    if isinstance(limit, int) and size > limit:
        raise SystemExit(f"nxwa campaign: {path.name} is {size} bytes; the stack takes at most {limit}")
    with path.open("rb") as file:
        if grant.get("fields"):
            body, content_type = urllib3.encode_multipart_formdata(
                [*grant["fields"].items(), ("file", (path.name, file.read()))]
            )
            request = urllib.request.Request(grant["upload_url"], body, {"Content-Type": content_type}, method="POST")  # noqa: S310
        else:
            request = urllib.request.Request(grant["upload_url"], file, {"Content-Length": str(size)}, method="PUT")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=300):  # noqa: S310 - the stack's own presigned URL
                return
        except urllib.error.HTTPError as error:
            raise SystemExit(
                f"nxwa campaign: the upload was refused: HTTP {error.code}: {error.read()[:300]!r}"
            ) from None


def create_body(
    name: str,
    template: str,
    language: str,
    key: str,
    *,
    start_at: str | None = None,
    quiet_hours: str | None = None,
    expires_at: str | None = None,
    rate: float | None = None,
    business_phone: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """``POST /campaigns``'s body from the command's options (``--quiet-hours 21:00-09:00``)."""
    body: dict[str, Any] = {
        "name": name,
        "template": {"name": template, "language": {"code": language}},
        "audience": {"key": key},
    }
    if quiet_hours:
        start, sep, end = quiet_hours.partition("-")
        if not sep:
            raise SystemExit(
                "nxwa campaign: --quiet-hours is START-END in the recipient's local time, e.g. 21:00-09:00"
            )
        body["quiet_hours"] = {"start": start.strip(), "end": end.strip()}
    optional = {"start_at": start_at, "expires_at": expires_at, "rate": rate, "business_phone": business_phone}
    body.update({k: v for k, v in optional.items() if v is not None})
    if dry_run:
        body["dry_run"] = True
    return body


def ended(counts: Mapping[str, int]) -> int:
    """Rows with a final state (a row a retry re-sent counts once)."""
    return counts.get("rows", 0) - unfinished(counts)


def progress_line(campaign: Mapping[str, Any]) -> str:
    """One line of a campaign's progress: status, sent / failed / remaining, rate, ETA."""
    counts = campaign.get("counts") or {}
    eta = campaign.get("eta_seconds")
    parts = [
        f"{campaign.get('status')}",
        f"sent {counts.get('sent', 0)}",
        f"failed {sum({**counts, **final_totals(counts)}.get(name, 0) for name in FAILED)}",
        f"remaining {max(counts.get('rows', 0) - ended(counts), 0)}",
        f"{campaign.get('rate')}/s",
        f"ETA {_duration(eta) if isinstance(eta, int | float) else '-'}",
    ]
    return " · ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def watch(
    api: Api,
    campaign_id: str,
    out: IO[str],
    *,
    interval: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Follow a campaign until it is completed or cancelled, with a bar of its ended rows over its rows (the total
    grows while the file is still being read); the campaign as it ended."""
    with tqdm(total=None, desc=campaign_id, unit="row", file=out, dynamic_ncols=True) as bar:
        while True:
            answer = api.get(campaign_id)
            if answer.status != 200:
                raise SystemExit(f"nxwa campaign: {campaign_id}: HTTP {answer.status}: {answer.error}")
            campaign: dict[str, Any] = answer.body
            counts = campaign.get("counts") or {}
            bar.total = counts.get("rows") or None
            bar.n = ended(counts)
            bar.set_postfix_str(progress_line(campaign), refresh=False)
            bar.refresh()
            if campaign.get("status") in ENDED:
                return campaign
            sleep(interval)


def add_commands(commands: Any) -> None:
    """``nxwa campaign create|list|status|pause|resume|cancel|retry|report``."""
    group = commands.add_parser("campaign", help="campaigns: one template to an audience file, through the API")
    actions = group.add_subparsers(dest="campaign", required=True)
    create = actions.add_parser("create", help="upload an audience file (.csv or .jsonl) and create a campaign")
    create.add_argument("name", help="the campaign's name")
    create.add_argument("--template", required=True, help="the template's name")
    create.add_argument("--language", required=True, help="the template's language code (en_US)")
    create.add_argument("--audience", required=True, type=Path, help="the audience file")
    create.add_argument("--start-at", help="ISO 8601 with an offset (default: now)")
    create.add_argument("--expires-at", help="rows not sent by then end expired (ISO 8601 with an offset)")
    create.add_argument("--quiet-hours", help="START-END in each recipient's local time, e.g. 21:00-09:00")
    create.add_argument("--rate", type=float, help="messages per second (default and maximum: the stack's share)")
    create.add_argument("--business-phone", help="the business number (default: the stack's default)")
    create.add_argument("--dry-run", action="store_true", help="check the file and count its rows; send nothing")
    create.set_defaults(run=_create)
    listing = actions.add_parser("list", help="campaigns, newest first")
    listing.add_argument("--limit", type=int, default=20, help="show at most this many (default 20)")
    listing.add_argument("--json", action="store_true", help="one JSON object per campaign")
    listing.set_defaults(run=_list)
    status = actions.add_parser("status", help="a campaign's status and counts")
    status.add_argument("campaign_id")
    status.add_argument("--watch", action="store_true", help="follow it with a progress bar until it ends")
    status.add_argument("--interval", type=float, default=2.0, help="seconds between reads with --watch")
    status.set_defaults(run=_status)
    report = actions.add_parser("report", help="the campaign's report: one CSV line per row (waits while it is built)")
    report.add_argument("campaign_id")
    report.add_argument("--output", type=Path, help="the CSV file to write (default: standard output)")
    report.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for it to be built (600)")
    report.set_defaults(run=_report)
    helps = {"retry": "re-send a completed campaign's rows dead-lettered for a reason that may pass now"}
    for action in ("pause", "resume", "cancel", "retry"):
        command = actions.add_parser(
            action, help=f"{helps.get(action, f'{action} a campaign')} (answers its new status)"
        )
        command.add_argument("campaign_id")
        command.set_defaults(run=_act, action=action)


def _create(args: argparse.Namespace, targets: Targets) -> int:
    api = Api(targets)
    grant = api.audience(audience_format(args.audience))
    if grant.status != 201:
        raise SystemExit(f"nxwa campaign: POST /audiences failed: HTTP {grant.status}: {grant.error}")
    upload(grant.body, args.audience)
    body = create_body(
        args.name,
        args.template,
        args.language,
        grant.body["key"],
        start_at=args.start_at,
        quiet_hours=args.quiet_hours,
        expires_at=args.expires_at,
        rate=args.rate,
        business_phone=args.business_phone,
        dry_run=args.dry_run,
    )
    return answered(api.create(body))


def _list(args: argparse.Namespace, targets: Targets) -> int:
    found = list(Api(targets).campaigns(args.limit))
    if args.json:
        for campaign in found:
            print(json.dumps(campaign, ensure_ascii=False))
        return 0
    columns = ("campaign_id", "name", "status", "created_at", "progress")
    table(columns, [(*(str(c.get(n) or "") for n in columns[:-1]), progress_line(c)) for c in found])
    return 0


def _status(args: argparse.Namespace, targets: Targets) -> int:
    api = Api(targets)
    if args.watch:
        campaign = watch(api, args.campaign_id, sys.stderr, interval=args.interval)
        print(json.dumps(campaign, ensure_ascii=False))
        return 0
    return answered(api.get(args.campaign_id))


def _act(args: argparse.Namespace, targets: Targets) -> int:
    return answered(Api(targets).act(args.campaign_id, args.action))


def fetch_report(api: Api, campaign_id: str, *, timeout: float, sleep: Callable[[float], None] = time.sleep) -> bytes:
    """The report's CSV: asked for until the API has it built (``202``: ask again after ``retry_after``), then read
    through its presigned link."""
    deadline = time.monotonic() + timeout
    while True:
        answer = api.report(campaign_id)
        if answer.status == 200:
            with urllib.request.urlopen(answer.body["url"], timeout=300) as response:  # noqa: S310 - the stack's link
                return bytes(response.read())
        if answer.status != 202:
            raise SystemExit(f"nxwa campaign report: HTTP {answer.status}: {answer.error}")
        wait = float(answer.body.get("retry_after") or 5)
        if time.monotonic() + wait > deadline:
            raise SystemExit(f"nxwa campaign report: still being built after {timeout:.0f} s; ask again later")
        sleep(wait)


def _report(args: argparse.Namespace, targets: Targets) -> int:
    data = fetch_report(Api(targets), args.campaign_id, timeout=args.timeout)
    if args.output:
        args.output.write_bytes(data)
        lines = data.count(b"\n")
        print(f"{args.output}: {max(lines - 1, 0)} rows")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0
