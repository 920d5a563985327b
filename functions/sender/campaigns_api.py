"""The campaign routes of the REST API (docs/campaigns.md, "The API"): a Powertools ``Router`` that :mod:`api`
includes, so they share its resolver, its validation, its API key and its error answers.

* ``POST /audiences``: a presigned POST for a new audience file under ``audiences/``. A POST, not a PUT, because only
  a POST policy can bound the size (``content-length-range``): S3 itself refuses a bigger upload. Creation checks the
  size again (``HeadObject``), so a file put there by other means is refused too.
* ``POST /campaigns``: every check before anything is stored or sent (the file, its header, its columns against the
  template in the account's catalogue, the times, the quiet hours, the rate), then the campaign, then its first tick.
  ``dry_run`` runs the same checks and reads the whole file (as a stream) to count its valid, invalid and duplicate
  rows, storing and sending nothing. An ``Idempotency-Key`` makes the create safe to retry (the id derives from it).
* ``GET /campaigns`` (newest first, paged), ``GET /campaigns/{id}``, ``POST /campaigns/{id}/pause|resume|cancel|retry``.
* ``GET /campaigns/{id}/report``: a presigned GET of ``reports/{id}.csv`` when the stored report is current
  (``nxcloud_wa.campaign_report.is_current``); otherwise a report request on the tick queue (the planner builds it:
  minutes for a million rows, past API Gateway's 29 s) and a 202 to ask again.

The rules (statuses, moves, counts, the tick's body) are :mod:`nxcloud_wa.campaigns`'; the table's requests
:mod:`nxcloud_wa.campaigns_table`'; the file's reading :mod:`nxcloud_wa.audience_file` and
:mod:`nxcloud_wa.audience_rows`'. What is here is what HTTP adds: the checks' order, the answers, the presigning.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

import runtime
from answers import ErrorResponse, FieldError, GatewayError, doc, json_answer
from nxcloud_wa.audience_file import AudienceFileError, AudienceFormat, Record, audience_format, read_audience
from nxcloud_wa.audience_rows import Layout, SeenNumbers, plan_columns, plan_row
from nxcloud_wa.campaign_report import BUILDING_SECONDS, ReportStamp, is_current, report_key, stored_stamp
from nxcloud_wa.campaigns import (
    COUNTS,
    REPORT_KIND,
    Action,
    Status,
    TransitionError,
    is_campaign_id,
    tick,
    unfinished,
)
from nxcloud_wa.campaigns_table import MAX_PAGE, Campaign, CampaignNotFoundError, CampaignStore
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.dynamo import CONDITION_FAILED, error_code
from nxcloud_wa.error_codes import KEY_REUSED
from nxcloud_wa.exceptions import ConfigurationError, InvalidMessageError, TemplateApiError
from nxcloud_wa.models import MAX_IDEMPOTENCY_KEY, MAX_NAME, Language, Phone, Template, TenantId, Token
from nxcloud_wa.quiet_hours import QuietHours
from nxcloud_wa.s3 import object_missing
from nxcloud_wa.templates import TemplateSpec, check
from observability import logger

router = Router()

AUDIENCES_PATH: Final = "/audiences"
CAMPAIGNS_PATH: Final = "/campaigns"
AUDIENCE_PREFIX: Final = "audiences/"
MAX_AUDIENCE_BYTES: Final = 200 * 1024 * 1024
"""The largest audience file (200 MiB): a million rows of a number, three parameters and a reference are ~150 MB."""
UPLOAD_SECONDS: Final = 3600
"""How long a presigned upload is valid: an hour, time enough for 200 MiB on a slow line."""
HEADER_BYTES: Final = 64 * 1024
"""The ranged GET that reads a file's header (or a JSON Lines file's first object) at creation."""
DRY_RUN_INVALID_ROWS: Final = 20
DRY_RUN_CHECK_ROWS: Final = 1000
"""How many rows a dry run reads between looks at the clock."""
DRY_RUN_RESERVE: Final = 4.0
"""Seconds a dry run keeps back to answer (its last rows, the JSON, the way back through API Gateway)."""
API_GATEWAY_SECONDS: Final = 29.0
"""API Gateway's integration timeout: a REST API answers 504 after it, whatever the function does."""
clock: Callable[[], float] = time.monotonic
"""The dry run's clock (a test passes a controlled one)."""
MAX_TICK_DELAY: Final = 900
"""SQS's longest delay: a campaign starting later is ticked again by the planner until ``start_at``."""
NO_FIRST_TICK: Final = "its first planner pass could not be queued"
MAX_CURSOR: Final = 1024
REPORT_URL_SECONDS: Final = 3600
"""How long a report's presigned GET is valid (the object itself expires after 30 days: the bucket's lifecycle)."""
REPORT_RETRY_SECONDS: Final = 10
"""The 202's Retry-After: a report of 100,000 rows is built in well under it; a million take minutes."""
wall_clock: Callable[[], float] = time.time
"""The report's clock: how old a stored report is (a test passes a controlled one)."""


# --- the models the document shows ----------------------------------------------------------------------------------


class AudienceRequest(BaseModel):
    """``POST /audiences``'s body (it may be left out: a CSV file)."""

    model_config = ConfigDict(extra="forbid")

    format: AudienceFormat = AudienceFormat.CSV


class AudienceUpload(BaseModel):
    """Where to upload the file: a ``multipart/form-data`` POST to ``upload_url`` with every one of ``fields`` and
    then the file as the field ``file`` (S3's browser-based upload). Then create the campaign with ``key``."""

    key: str
    upload_url: str
    method: Literal["POST"]
    fields: dict[str, str]
    expires_at: str
    """When the upload is no longer accepted (ISO 8601, UTC)."""
    max_bytes: int
    """The largest file S3 accepts (the policy's content-length-range), and the largest a campaign takes."""


class CampaignTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME, pattern=r"^\S+$")]
    language: Language


class AudienceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    """The file's key, as ``POST /audiences`` gave it (``audiences/...csv`` or ``.jsonl``)."""


class CampaignRequest(BaseModel):
    """``POST /campaigns``'s body."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    template: CampaignTemplate
    audience: AudienceRef
    business_phone: Phone | None = None
    """The business number; default: the deployment's (environment over secret), as a message's."""
    tenant_id: TenantId | None = None
    appkey: Token | None = None
    start_at: AwareDatetime | None = None
    """When to start (ISO 8601 with an offset); default: now."""
    quiet_hours: dict[str, Any] | None = None
    """``{"start": "21:00", "end": "09:00"}``: no row is sent while its recipient's local time is inside."""
    expires_at: AwareDatetime | None = None
    """Rows not sent by then end ``expired``; after ``start_at`` and in the future."""
    rate: Annotated[float, Field(gt=0)] | None = None
    """Messages per second; default and maximum: ``CampaignRateShare`` of the business number's rate."""
    dry_run: bool = False
    """Check everything and count the file's rows, storing and sending nothing."""


class CampaignCreated(BaseModel):
    campaign_id: str
    status: Status
    """``scheduled``; a replayed answer (the same ``Idempotency-Key``) says the campaign's status now."""


class InvalidRow(BaseModel):
    line: int
    """The row's first line in the file (the header is line 1 of a CSV file)."""
    reason: str
    ref: str | None = None


class DryRun(BaseModel):
    """What the campaign would do, sending nothing: every check passed, and the file's rows counted."""

    dry_run: Literal[True]
    rows: int
    valid: int
    invalid: int
    duplicate: int
    invalid_rows: list[InvalidRow]
    """The first 20 invalid rows, in file order."""
    rate: float
    complete: bool
    """False when the file was too long to read within one request (about 29 s: API Gateway's limit): the counts are
    then those of its first ``rows`` rows."""


class TemplateView(BaseModel):
    name: str
    language: str


class Counts(BaseModel):
    """Each count of :data:`nxcloud_wa.campaigns.COUNTS` (tests/unit/test_campaigns_api.py keeps them equal)."""

    rows: int
    queued: int
    invalid: int
    duplicate: int
    sent: int
    dead_lettered: int
    skipped: int
    expired: int
    cancelled: int
    retried: int
    """Rows a retry queued again: each had ended ``dead_lettered`` and ends again in a final state of its own."""
    delivered: int
    read: int
    failed: int


class CampaignView(BaseModel):
    """A campaign and its progress. The counts never go backwards; ``rows`` is the file's rows read so far."""

    campaign_id: str
    name: str
    status: Status
    status_reason: str | None
    """Why the engine paused it (a deleted audience file...); null after a person's action."""
    template: TemplateView
    business_phone: str | None
    audience_key: str
    created_at: str
    start_at: str
    started_at: str | None
    finished_at: str | None
    expires_at: str | None
    quiet_hours: dict[str, str] | None
    rate: float
    eta_seconds: int | None
    """While running: the rows read and not yet final, at ``rate`` (a lower bound until the whole file is read)."""
    counts: Counts

    @classmethod
    def of(cls, campaign: Campaign) -> CampaignView:
        return cls(
            campaign_id=campaign.campaign_id,
            name=campaign.name,
            status=campaign.status,
            status_reason=campaign.status_reason,
            template=TemplateView(name=campaign.template_name, language=campaign.language),
            business_phone=campaign.business_phone,
            audience_key=campaign.audience_key,
            created_at=campaign.created_at,
            start_at=campaign.start_at,
            started_at=campaign.started_at,
            finished_at=campaign.finished_at,
            expires_at=campaign.expires_at,
            quiet_hours=dict(campaign.quiet_hours) if campaign.quiet_hours else None,
            rate=campaign.rate,
            eta_seconds=eta_seconds(campaign),
            counts=Counts.model_validate({name: campaign.counts.get(name, 0) for name in COUNTS}),
        )


class ReportLink(BaseModel):
    """Where to download the report: a presigned GET of ``reports/{id}.csv`` (one line per row of the file)."""

    url: str
    expires_at: str
    """When ``url`` stops working (ISO 8601, UTC); ask again for a new one."""
    rows: int
    """The report's lines (the file's rows read so far), its header not counted."""
    built_at: str
    """When the report was built; it reflects the campaign at that moment."""
    status: Status
    """The campaign's status when the report was built."""


class ReportBuilding(BaseModel):
    """The report is being built: ask again after ``retry_after`` seconds (also the ``Retry-After`` header)."""

    status: Literal["building"]
    retry_after: int


class CampaignPage(BaseModel):
    """One page of campaigns, newest first: ask again with ``next_cursor`` until it is null."""

    items: list[CampaignView]
    next_cursor: str | None


def eta_seconds(campaign: Campaign) -> int | None:
    """Seconds left at the campaign's rate for the rows read and not final yet; None unless it is running."""
    if campaign.status is not Status.RUNNING:
        return None
    return math.ceil(max(0, unfinished(campaign.counts)) / campaign.rate)


# --- refusals ------------------------------------------------------------------------------------------------------


class CampaignRefusedError(Exception):
    """A request this module answers with an error of its own: the status, ``error`` and the field errors, each
    naming the field (``loc``) and what is wrong with it."""

    def __init__(self, status: int, error: str, errors: list[FieldError], message: str | None = None) -> None:
        self.status, self.error, self.errors = status, error, errors
        self.message = message or "; ".join(f"{'.'.join(map(str, e.loc[1:]))}: {e.msg}" for e in errors)
        super().__init__(self.message)


def _refuse(loc: tuple[str, ...], *problems: str, status: int = 422, error: str = "invalid_campaign") -> Exception:
    errors = [FieldError(loc=["body", *loc], msg=problem, type="value_error") for problem in problems]
    return CampaignRefusedError(status, error, errors)


@router.exception_handler(CampaignRefusedError)
def _refused(exc: CampaignRefusedError) -> Response[Any]:
    logger.info("campaign request refused", extra={"status": exc.status, "error": exc.error})
    return json_answer(exc.status, ErrorResponse(error=exc.error, message=exc.message, errors=exc.errors))


@router.exception_handler(TransitionError)
def _conflict(exc: TransitionError) -> Response[Any]:
    """An action the campaign's status refuses: a 409 naming the status (``code``) in words and as a value (or, a
    retry of an expired campaign, ``expired`` and the time)."""
    return json_answer(409, ErrorResponse(error="conflict", message=str(exc), code=exc.code))


@router.exception_handler(CampaignNotFoundError)
def _no_campaign(exc: CampaignNotFoundError) -> Response[Any]:
    return json_answer(404, ErrorResponse(error="not_found", message="no campaign with this id"))


COMMON: Final = {
    403: doc("Missing or wrong x-api-key: API Gateway refuses the request (the function is not called)", GatewayError),
    429: doc("Throttled by the API key's usage plan (API Gateway): retry later", GatewayError),
    500: doc("The deployment is misconfigured (no campaigns table or bucket, or the NXCloud secret)", ErrorResponse),
    503: doc("An AWS dependency or the account's template catalogue could not be reached: retry", ErrorResponse),
}


# --- POST /audiences -----------------------------------------------------------------------------------------------


@router.post(
    AUDIENCES_PATH,
    summary="Get a presigned upload for a new audience file",
    description="A presigned S3 POST under audiences/, valid for an hour; S3 refuses a file over max_bytes.",
    responses={
        201: doc("Where and how to upload the file", AudienceUpload),
        400: doc("The body is invalid: the field errors name it", ErrorResponse),
        **{status: answer for status, answer in COMMON.items() if status != 503},  # presigning calls no service
    },
    tags=["campaigns"],
)
def post_audience(body: Annotated[AudienceRequest | None, Body()] = None) -> Response[Any]:
    _object_body()
    rt = runtime.get()
    bucket = _bucket(rt)
    fmt = (body or AudienceRequest()).format
    key = f"{AUDIENCE_PREFIX}{uuid.uuid4().hex}.{fmt.value}"
    now = datetime.now(UTC)
    post = _s3(rt).generate_presigned_post(
        Bucket=bucket,
        Key=key,
        Conditions=[["content-length-range", 1, MAX_AUDIENCE_BYTES]],
        ExpiresIn=UPLOAD_SECONDS,
    )
    expires = (now + timedelta(seconds=UPLOAD_SECONDS)).isoformat(timespec="seconds")
    answer = AudienceUpload(
        key=key,
        upload_url=post["url"],
        method="POST",
        fields=post["fields"],
        expires_at=expires,
        max_bytes=MAX_AUDIENCE_BYTES,
    )
    logger.info("audience upload presigned", extra={"key": key})
    return json_answer(201, answer)


# --- POST /campaigns -----------------------------------------------------------------------------------------------


@router.post(
    CAMPAIGNS_PATH,
    summary="Create a campaign: one template to every row of an audience file",
    description="Checked before anything is stored: the file exists and its header is valid, its columns fit the "
    "template in the account's catalogue, start_at < expires_at, the quiet hours and the rate. dry_run: the same "
    "checks plus the counts of valid, invalid and duplicate rows; nothing stored or sent.",
    responses={
        200: doc("dry_run: the checks passed; the file's rows counted; nothing stored or sent", DryRun),
        201: doc("Created: its first pass is queued for start_at", CampaignCreated),
        400: doc("The body is invalid (its shape, a type): the field errors name it", ErrorResponse),
        404: doc("No audience file under this key: upload it first (POST /audiences)", ErrorResponse),
        422: doc(
            "A check failed (error invalid_campaign): the file, its columns against the template, the times, the "
            "quiet hours or the rate; each field error names the field and what is wrong. Or the Idempotency-Key was "
            "used for another campaign (error idempotency_key_reused)",
            ErrorResponse,
        ),
        **COMMON,
    },
    tags=["campaigns"],
)
def post_campaign(
    body: Annotated[CampaignRequest, Body()],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=MAX_IDEMPOTENCY_KEY,
            description="Creating again with the same key answers the first campaign instead of a second one",
        ),
    ] = None,
) -> Response[Any]:
    _object_body()
    rt = runtime.get()
    store = _store(rt)
    campaign_id = _campaign_id(idempotency_key)
    replayed = _replay(rt, store, campaign_id, body) if idempotency_key is not None and not body.dry_run else None
    if replayed is not None:
        return replayed
    plan = _plan(rt, body, rt.sender.credentials())
    if body.dry_run:
        return json_answer(200, _dry_run(rt, plan))
    return _create(rt, store, plan.campaign(body, campaign_id), body, keyed=idempotency_key is not None)


def _create(
    rt: runtime.Runtime, store: CampaignStore, campaign: Campaign, body: CampaignRequest, *, keyed: bool
) -> Response[Any]:
    """Store the campaign, then queue its first tick (delayed to ``start_at``)."""
    try:
        store.create(campaign)
    except ClientError as exc:  # the same key, created meanwhile by a concurrent request
        replayed = _replay(rt, store, campaign.campaign_id, body) if error_code(exc) == CONDITION_FAILED else None
        if replayed is None:
            raise
        return replayed
    try:
        _first_tick(rt, campaign)
    except Exception:
        # Without its first tick the campaign would wait forever. With an Idempotency-Key the caller's retry finds it
        # still scheduled with this reason and queues the tick again (_replay); without one, the retry creates another
        # campaign, so this one is cancelled (nothing was sent) and the list shows why it never started.
        if keyed:
            store.set_reason(campaign, NO_FIRST_TICK + ": create it again with the same Idempotency-Key")
        else:
            store.apply(campaign, Action.CANCEL, _iso(datetime.now(UTC)), reason=NO_FIRST_TICK)
        raise
    logger.info("campaign created", extra={"campaign_id": campaign.campaign_id, "start_at": campaign.start_at})
    return json_answer(201, CampaignCreated(campaign_id=campaign.campaign_id, status=Status.SCHEDULED))


def _campaign_id(idempotency_key: str | None) -> str:
    """A new campaign's id: random, or derived from the caller's idempotency key, so a create retried after a lost
    answer finds the first campaign instead of making a second, which would message every recipient again."""
    if idempotency_key is None:
        return f"c-{uuid.uuid4().hex}"
    return f"c-{hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]}"


def _first_tick(rt: runtime.Runtime, campaign: Campaign) -> None:
    """The campaign's first planner pass, delayed to ``start_at``."""
    _tick(rt, campaign.campaign_id, (datetime.fromisoformat(campaign.start_at) - datetime.now(UTC)).total_seconds())


def _replay(rt: runtime.Runtime, store: CampaignStore, campaign_id: str, body: CampaignRequest) -> Response[Any] | None:
    """The first answer for a key already used (the campaign as it is now, ``Idempotent-Replayed: true``); a 422 when
    it was used for another campaign; None when it was not used. A campaign whose first tick could not be queued
    (:func:`_create`) gets it now."""
    try:
        first = store.get(campaign_id)
    except CampaignNotFoundError:
        return None
    asked = (body.name, body.template.name, body.template.language.code, body.audience.key)
    if (first.name, first.template_name, first.language, first.audience_key) != asked:
        used = "this idempotency key was already used for a different campaign"
        error = FieldError(loc=["header", "Idempotency-Key"], msg=used, type="value_error")
        raise CampaignRefusedError(422, KEY_REUSED.reason, [error], used)
    if first.status is Status.SCHEDULED and (first.status_reason or "").startswith(NO_FIRST_TICK):
        _first_tick(rt, first)
        store.set_reason(first, None)
    answer = CampaignCreated(campaign_id=first.campaign_id, status=first.status)
    return json_answer(201, answer, headers={"Idempotent-Replayed": "true"})


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the checks established: the file (its key, ETag, format) and layout, the account, the times, the rate."""

    key: str
    etag: str | None
    layout: Layout
    business_phone: str
    appkey: str
    start_at: datetime
    quiet_hours: QuietHours | None
    rate: float

    def campaign(self, body: CampaignRequest, campaign_id: str) -> Campaign:
        return Campaign(
            campaign_id=campaign_id,
            name=body.name,
            template_name=body.template.name,
            language=body.template.language.code,
            audience_key=self.key,
            created_at=_iso(datetime.now(UTC)),
            start_at=_iso(self.start_at),
            rate=self.rate,
            business_phone=self.business_phone,
            tenant_id=str(body.tenant_id) if body.tenant_id is not None else None,
            appkey=body.appkey,
            expires_at=_iso(body.expires_at) if body.expires_at else None,
            quiet_hours=dict(body.quiet_hours) if body.quiet_hours else None,
            audience_etag=self.etag,
        )


def _plan(rt: runtime.Runtime, body: CampaignRequest, credentials: Credentials) -> _Plan:
    """Every check, cheapest first; the first that fails refuses the request."""
    defaults = rt.sender.defaults_for(credentials)
    business_phone = body.business_phone or defaults.business_phone
    if not business_phone:
        raise _refuse(("business_phone",), "required: the deployment has no default business number")
    appkey = body.appkey or defaults.appkey
    if not appkey:
        raise _refuse(("appkey",), "required: the deployment has no default appkey")
    start_at = _start_and_expiry(body)
    quiet = _quiet_hours(body.quiet_hours)
    rate = _rate(rt, body.rate, business_phone, credentials)
    key, etag, columns = _audience_header(rt, body.audience.key)
    spec = _template_spec(rt, body.template, appkey, business_phone, credentials)
    try:
        layout = plan_columns(columns, spec)
    except AudienceFileError as exc:
        given = f"the file's columns: {', '.join(columns) or '(none)'}"
        raise _refuse(("audience", "key"), *exc.problems, given) from None
    return _Plan(key, etag, layout, business_phone, appkey, start_at, quiet, rate)


def _start_and_expiry(body: CampaignRequest) -> datetime:
    now = datetime.now(UTC)
    start_at = body.start_at or now
    if body.expires_at is not None:
        if body.expires_at <= start_at:
            raise _refuse(("expires_at",), "must be after start_at (rows not sent by then end expired)")
        if body.expires_at <= now:
            raise _refuse(("expires_at",), "must be in the future")
    return start_at


def _quiet_hours(given: Mapping[str, Any] | None) -> QuietHours | None:
    if given is None:
        return None
    try:
        return QuietHours.parse(given)
    except ValueError as exc:
        raise _refuse(("quiet_hours",), str(exc)) from None


def _rate(rt: runtime.Runtime, asked: float | None, business_phone: str, credentials: Credentials) -> float:
    """The campaign's rate: ``CampaignRateShare`` of the number's rate at most (and by default), so transactional
    messages on the same number keep the rest."""
    number_rate = credentials.rates.get(business_phone, rt.settings.messages_per_second)
    maximum = rt.settings.campaign_rate_share * number_rate
    if asked is not None and asked > maximum:
        raise _refuse(
            ("rate",),
            f"at most {maximum:g} messages per second: {rt.settings.campaign_rate_share:g} of the business number's "
            f"{number_rate} (CampaignRateShare)",
        )
    return asked if asked is not None else maximum


def _audience_header(rt: runtime.Runtime, key: str) -> tuple[str, str | None, tuple[str, ...]]:
    """The file's key, ETag and columns: a HeadObject (it exists, its size) and a ranged GET of its first bytes."""
    if not key.startswith(AUDIENCE_PREFIX):
        raise _refuse(("audience", "key"), f"an audience file is under {AUDIENCE_PREFIX} (POST /audiences gives one)")
    try:
        audience_format(key)
    except AudienceFileError as exc:
        raise _refuse(("audience", "key"), *exc.problems) from None
    s3, bucket = _s3(rt), _bucket(rt)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if object_missing(exc):
            raise _refuse(
                ("audience", "key"), f"no file at {key}: upload it first", status=404, error="not_found"
            ) from None
        raise
    size, etag = int(head.get("ContentLength", 0)), head.get("ETag")
    if size > MAX_AUDIENCE_BYTES:
        raise _refuse(("audience", "key"), f"the file is {size} bytes; at most {MAX_AUDIENCE_BYTES} are taken")
    first = b""
    if size:  # S3 refuses any range of an empty object
        ranged = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{HEADER_BYTES - 1}", **_same_object(etag))
        first = ranged["Body"].read()
    if size > len(first):
        if b"\n" not in first:
            raise _refuse(("audience", "key"), f"the first line is longer than {HEADER_BYTES} bytes")
        first = first[: first.rindex(b"\n") + 1]  # whole lines only: a cut line is not the file's
    try:
        return key, etag, read_audience(io.BytesIO(first), key).columns
    except AudienceFileError as exc:
        raise _refuse(("audience", "key"), *exc.problems) from None


def _template_spec(
    rt: runtime.Runtime, template: CampaignTemplate, appkey: str, business_phone: str, credentials: Credentials
) -> TemplateSpec:
    """The template in the account's catalogue; a campaign is never created unchecked (503 when it cannot be read)."""
    catalogue = rt.campaign_catalogue
    if catalogue is None:
        raise ConfigurationError("CAMPAIGNS_TABLE is not set")
    name, language = template.name, template.language.code
    try:
        templates = catalogue.templates(appkey, business_phone, credentials, want=(name, language))
    except TemplateApiError as exc:
        raise CampaignRefusedError(
            503,
            "templates_unavailable",
            [],
            f"the account's templates could not be read ({exc.reason}): retry",
        ) from None
    spec = templates.find(name, language)
    if spec is None:
        probe = Template.model_construct(name=name, language=template.language, components=[])
        raise _refuse(("template",), *(p.text for p in check(probe, templates)))
    return spec


def _dry_run(rt: runtime.Runtime, plan: _Plan) -> DryRun:
    """Read the file as a stream, as the planner will, and count what its rows come to; stop at the request's time
    budget (:func:`_dry_run_deadline`), so a long file answers its first rows' counts instead of a gateway timeout."""
    counts = dict.fromkeys(("valid", "invalid", "duplicate"), 0)
    invalid: list[InvalidRow] = []
    seen = SeenNumbers()
    fields = {"business_phone": plan.business_phone, "appkey": plan.appkey}
    deadline, complete = _dry_run_deadline(), True
    for n, record in enumerate(_records(rt, plan), 1):
        outcome = plan_row(record, plan.layout, seen, fields)
        counts[outcome.state] += 1
        if outcome.state == "invalid" and len(invalid) < DRY_RUN_INVALID_ROWS:
            invalid.append(InvalidRow(line=outcome.line, reason=outcome.reason or "", ref=outcome.ref))
        if n % DRY_RUN_CHECK_ROWS == 0 and clock() >= deadline:
            complete = False
            break
    rows = sum(counts.values())
    return DryRun(dry_run=True, rows=rows, invalid_rows=invalid, rate=plan.rate, complete=complete, **counts)


def _dry_run_deadline() -> float:
    """When a dry run stops reading (on :func:`clock`): :data:`DRY_RUN_RESERVE` seconds before the invocation's end or
    API Gateway's, whichever comes first."""
    remaining = router.lambda_context.get_remaining_time_in_millis() / 1000
    return clock() + max(0.0, min(remaining, API_GATEWAY_SECONDS) - DRY_RUN_RESERVE)


def _records(rt: runtime.Runtime, plan: _Plan) -> Iterator[Record]:
    """The file's records, streamed: the object read is the one checked (``If-Match`` its ETag)."""
    answer = _s3(rt).get_object(Bucket=_bucket(rt), Key=plan.key, **_same_object(plan.etag))
    yield from read_audience(answer["Body"], plan.key)


def _same_object(etag: str | None) -> dict[str, str]:
    return {"IfMatch": etag} if etag else {}


# --- GET /campaigns, GET /campaigns/{id}, and the actions ------------------------------------------------------

CampaignId = Annotated[str, Path(description="The campaign's id (c-...)")]


@router.get(
    CAMPAIGNS_PATH,
    summary="The campaigns, newest first, paged",
    responses={
        200: doc("One page of campaigns, and the cursor of the next", CampaignPage),
        400: doc("The limit or the cursor is invalid", ErrorResponse),
        **COMMON,
    },
    tags=["campaigns"],
)
def list_campaigns(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Most campaigns in the page")] = 20,
    cursor: Annotated[
        str | None, Query(min_length=1, max_length=MAX_CURSOR, description="The previous page's next_cursor")
    ] = None,
) -> Response[Any]:
    campaigns, after = _store(runtime.get()).newest(limit, decode_cursor(cursor) if cursor else None)
    page = CampaignPage(items=[CampaignView.of(c) for c in campaigns], next_cursor=encode_cursor(after))
    return json_answer(200, page)


@router.get(
    CAMPAIGNS_PATH + "/<campaign_id>",
    summary="A campaign: its status, times, rate, counts and ETA",
    responses={
        200: doc("The campaign and its progress", CampaignView),
        404: doc("No campaign with this id", ErrorResponse),
        **COMMON,
    },
    tags=["campaigns"],
)
def get_campaign(campaign_id: CampaignId) -> Response[Any]:
    return json_answer(200, CampaignView.of(_campaign(_store(runtime.get()), campaign_id)))


@router.get(
    CAMPAIGNS_PATH + "/<campaign_id>/report",
    summary="A campaign's report: a link to its CSV, one line per row of the audience file",
    description="200 with a presigned GET of the report when the stored one is current; otherwise 202: the report "
    "is being built (by the campaign engine), ask again after Retry-After seconds.",
    responses={
        200: doc("The report is ready: a link to download it", ReportLink),
        202: doc("The report is being built: ask again after retry_after seconds", ReportBuilding),
        404: doc("No campaign with this id", ErrorResponse),
        **COMMON,
    },
    tags=["campaigns"],
)
def get_report(campaign_id: CampaignId) -> Response[Any]:
    rt = runtime.get()
    campaign = _campaign(_store(rt), campaign_id)
    stamp = stored_stamp(_s3(rt), _bucket(rt), campaign_id)
    now = wall_clock()
    if is_current(stamp, campaign, now) and stamp is not None:
        return json_answer(200, _report_link(rt, campaign_id, stamp, now))
    if _store(rt).request_report(campaign_id, now, BUILDING_SECONDS):  # one build at a time, however often polled
        _tick(rt, campaign_id, 0, kind=REPORT_KIND)
        logger.info("campaign report requested", extra={"campaign_id": campaign_id})
    building = ReportBuilding(status="building", retry_after=REPORT_RETRY_SECONDS)
    return json_answer(202, building, headers={"Retry-After": str(REPORT_RETRY_SECONDS)})


def _report_link(rt: runtime.Runtime, campaign_id: str, stamp: ReportStamp, now: float) -> ReportLink:
    url = _s3(rt).generate_presigned_url(
        "get_object",
        Params={"Bucket": _bucket(rt), "Key": report_key(campaign_id)},
        ExpiresIn=REPORT_URL_SECONDS,
    )
    return ReportLink(
        url=url,
        expires_at=_iso(datetime.fromtimestamp(now + REPORT_URL_SECONDS, UTC)),
        rows=stamp.rows,
        built_at=_iso(datetime.fromtimestamp(stamp.built_at, UTC)),
        status=Status(stamp.status),
    )


ACTION_RESPONSES: Final = {
    200: doc("Done: the campaign in its new status", CampaignView),
    404: doc("No campaign with this id", ErrorResponse),
    409: doc("The campaign's status does not allow it (error conflict; code: the current status)", ErrorResponse),
    **COMMON,
}


@router.post(
    CAMPAIGNS_PATH + "/<campaign_id>/pause",
    summary="Pause a scheduled or running campaign: no new send of it starts (queued ones are put back)",
    responses=ACTION_RESPONSES,
    tags=["campaigns"],
)
def pause_campaign(campaign_id: CampaignId) -> Response[Any]:
    return _act(campaign_id, Action.PAUSE)


@router.post(
    CAMPAIGNS_PATH + "/<campaign_id>/resume",
    summary="Resume a paused campaign from where it stopped",
    responses=ACTION_RESPONSES,
    tags=["campaigns"],
)
def resume_campaign(campaign_id: CampaignId) -> Response[Any]:
    return _act(campaign_id, Action.RESUME)


@router.post(
    CAMPAIGNS_PATH + "/<campaign_id>/cancel",
    summary="Cancel a campaign: every row not sent yet ends cancelled",
    responses=ACTION_RESPONSES,
    tags=["campaigns"],
)
def cancel_campaign(campaign_id: CampaignId) -> Response[Any]:
    return _act(campaign_id, Action.CANCEL)


@router.post(
    CAMPAIGNS_PATH + "/<campaign_id>/retry",
    summary="Re-send a completed campaign's rows dead-lettered for a reason that may pass now (never a sent row)",
    responses=ACTION_RESPONSES,
    tags=["campaigns"],
)
def retry_campaign(campaign_id: CampaignId) -> Response[Any]:
    return _act(campaign_id, Action.RETRY)


def _act(campaign_id: str, action: Action) -> Response[Any]:
    """One conditional status move (:meth:`CampaignStore.apply`); a resumed campaign's engine is ticked at once, to
    continue from its checkpoint, and so is a cancelled one's, to end the rows it has not read yet ``cancelled``,
    and a retried one's, to scan for the rows to re-send."""
    rt = runtime.get()
    store = _store(rt)
    moved = store.apply(_campaign(store, campaign_id), action, _iso(datetime.now(UTC)))
    if action in (Action.RESUME, Action.CANCEL, Action.RETRY):
        _tick(rt, campaign_id, 0)
    logger.info("campaign moved", extra={"campaign_id": campaign_id, "action": action.value, "status": moved.status})
    return json_answer(200, CampaignView.of(moved))


# --- helpers -------------------------------------------------------------------------------------------------------


def _object_body() -> None:
    """A body must be a JSON object (or none): Powertools would read ``[x, ...]`` as ``x``."""
    if not isinstance(router.current_event.json_body, dict | None):
        error = {"loc": ["body"], "msg": "must be a JSON object", "type": "model_attributes_type"}
        raise InvalidMessageError([error])


def _tick(rt: runtime.Runtime, campaign_id: str, delay: float, kind: str | None = None) -> None:
    """One planner pass for the campaign (or, ``kind`` report, its report), due in ``delay`` seconds (SQS delays at
    most 15 minutes)."""
    if not rt.settings.campaign_tick_queue_url:
        raise ConfigurationError("CAMPAIGN_TICK_QUEUE_URL is not set")
    rt.sqs.send_message(
        QueueUrl=rt.settings.campaign_tick_queue_url,
        MessageBody=tick(campaign_id, kind=kind),
        DelaySeconds=int(min(max(delay, 0), MAX_TICK_DELAY)),
    )


def _campaign(store: CampaignStore, campaign_id: str) -> Campaign:
    """The campaign; an id no campaign can have (any text fits the path) is unknown without a request."""
    if not is_campaign_id(campaign_id):
        raise CampaignNotFoundError(campaign_id)
    return store.get(campaign_id)


def _store(rt: runtime.Runtime) -> CampaignStore:
    if rt.campaigns is None:
        raise ConfigurationError("CAMPAIGNS_TABLE is not set")
    return rt.campaigns


def _s3(rt: runtime.Runtime) -> Any:
    if rt.s3 is None:
        raise ConfigurationError("CAMPAIGNS_TABLE is not set")
    return rt.s3


def _bucket(rt: runtime.Runtime) -> str:
    if not rt.settings.campaign_bucket:
        raise ConfigurationError("CAMPAIGN_BUCKET is not set")
    return rt.settings.campaign_bucket


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


_CURSOR_KEYS: Final = frozenset({"campaign_id", "sk", "listed", "created"})


def encode_cursor(key: Mapping[str, Any] | None) -> str | None:
    """The index's LastEvaluatedKey as an opaque, URL-safe text (None: there is no next page)."""
    if not key:
        return None
    plain = {name: value["S"] for name, value in key.items()}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> dict[str, Any]:
    """The key :func:`encode_cursor` made; a 400 naming ``cursor`` for any other text."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError):
        plain = None
    if not isinstance(plain, dict) or set(plain) != _CURSOR_KEYS or not all(isinstance(v, str) for v in plain.values()):
        error = {"loc": ["query", "cursor"], "msg": "not a cursor this API gave", "type": "value_error"}
        raise InvalidMessageError([error])
    return {name: {"S": value} for name, value in plain.items()}
