"""A campaign's report file, built on the planner's tick queue (``GET /campaigns/{id}/report`` queues the request):
``reports/{id}.csv`` in the campaign bucket, with the stamp the API judges it by (``nxcloud_wa.campaign_report``).

Built here and not in the API's function because a million rows take minutes and API Gateway gives a request 29
seconds. Memory stays flat: the row logs are read one line at a time in name order (pass order: file order), the
rows' outcomes one Query page at a time, the two merged as ordered streams (:func:`report_lines`), and the CSV is
written to a temporary file, then uploaded (in parts when it is big), so a million rows never sit in memory.

The ``delivery`` column is the message's current status as NXCloud's callbacks left it in the messages table (its
``status#<message_id>`` item, the webhook's one home for it): one ``BatchGetItem`` per 100 sent rows of a page, so
the report shows what the campaign's delivery counts count. Without delivery tracking (no ``MESSAGES_TABLE``) the
column is empty.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from nxcloud_wa.campaign_report import (
    ReportStamp,
    built_from,
    is_current,
    latest_outcomes,
    report_key,
    report_lines,
    stored_stamp,
    write_csv,
)
from nxcloud_wa.campaign_state import iter_row_log, rows_prefix
from nxcloud_wa.campaigns import RowState
from nxcloud_wa.campaigns_table import Campaign, CampaignStore, RowOutcome
from nxcloud_wa.dynamo import batch_get, plain
from nxcloud_wa.messages_table import STATUS_PREFIX, StatusItem

LINE_CHUNK: Final = 64 * 1024
"""Bytes read at a time from a row log."""


@dataclass(frozen=True, slots=True)
class Built:
    """What a report request did: ``built`` False when the stored report was current already; the lines by state."""

    built: bool
    states: Mapping[str, int]


class ReportFile:
    """Builds and stores campaigns' reports."""

    def __init__(self, s3: Any, store: CampaignStore, bucket: str, messages: tuple[Any, str] | None = None) -> None:
        """``messages``: the DynamoDB client and the messages table the delivery statuses are read from."""
        self.s3, self.store, self.bucket, self.messages = s3, store, bucket, messages

    def request(self, campaign_id: str, now: float) -> Built:
        """Build the report unless the stored one is current at ``now`` (a request queued twice builds once)."""
        campaign = self.store.get(campaign_id)
        try:
            if is_current(stored_stamp(self.s3, self.bucket, campaign_id), campaign, now):
                return Built(False, {})
            return Built(True, self.build(campaign, now))
        finally:
            self.store.report_done(campaign_id)

    def build(self, campaign: Campaign, started: float) -> Counter[str]:
        """Write the report of ``campaign`` as read (its stamp is what the API compares to the campaign later)."""
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "report.csv"
            with path.open("w", encoding="utf-8", newline="") as out:
                states = write_csv(report_lines(self._logged(campaign.campaign_id), self._outcomes(campaign)), out)
            stamp = ReportStamp(built_from(campaign), campaign.status.value, started, sum(states.values()))
            extra = {"ContentType": "text/csv; charset=utf-8", "Metadata": stamp.metadata()}
            self.s3.upload_file(str(path), self.bucket, report_key(campaign.campaign_id), ExtraArgs=extra)
        return states

    def _logged(self, campaign_id: str) -> Iterator[Mapping[str, Any]]:
        """Every row log line, in name order (pass order), each object read as a stream."""
        for key in self._row_logs(campaign_id):
            body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                yield from iter_row_log(body.iter_lines(chunk_size=LINE_CHUNK))
            finally:
                body.close()

    def _row_logs(self, campaign_id: str) -> Iterator[str]:
        """The row logs' keys; S3 lists them in name order, which is pass order (``rows-{pass:08d}``)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=rows_prefix(campaign_id))
        for page in pages:
            for item in page.get("Contents", []):
                yield str(item["Key"])

    def _outcomes(self, campaign: Campaign) -> Iterator[RowOutcome]:
        """The rows' outcomes in row order, each row's of its last retry round (:func:`latest_outcomes`)."""
        rounds = [self._round(campaign.campaign_id, r) for r in range(campaign.retry.round + 1)]
        return latest_outcomes(rounds)

    def _round(self, campaign_id: str, round_: int) -> Iterator[RowOutcome]:
        """One round's outcomes in row order, one Query page at a time."""
        cursor: Mapping[str, Any] | None = None
        while True:
            page, cursor = self.store.rows(campaign_id, cursor, round_=round_)
            yield from self._with_delivery(page)
            if not cursor:
                return

    def _with_delivery(self, page: list[RowOutcome]) -> list[RowOutcome]:
        """The page's sent rows with their message's current status (eventually consistent reads: a report is a
        moment's picture; a status item not read after the retries leaves the column empty, never fails the report)."""
        sent = [o.message_id for o in page if o.state is RowState.SENT and o.message_id]
        if self.messages is None or not sent:
            return page
        client, table = self.messages
        keys = [{"id": {"S": STATUS_PREFIX + message_id}} for message_id in dict.fromkeys(sent)]
        read = batch_get(client, table, keys)
        statuses = {item.message_id: item.shown_status for item in map(StatusItem.from_image, map(plain, read.items))}
        return [replace(o, delivery=statuses.get(o.message_id or "") or o.delivery) for o in page]
