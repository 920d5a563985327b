"""The REST API's campaign routes (docs/campaigns.md, "The API"), through the real handler against moto's server and
the simulator's catalogue: the presigned upload (through real HTTP to moto), every check ``POST /campaigns`` makes
before it stores anything, the dry run's counts, the campaign as stored and its first tick, paging, and the actions'
answers (409 naming the status, 404, resume ticking the engine).
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from campaigns_api import MAX_AUDIENCE_BYTES
from local_stack.lambda_events import api_event
from nxcloud_wa.campaigns import COUNTS, Action, Status, tick_campaign
from nxcloud_wa.campaigns_table import CampaignStore
from tests.page_templates import template

from .conftest import SECRET, Stack
from .test_api_answers import validate

ACCOUNT = (str(SECRET["appkey"]), str(SECRET["business_phone"]))
PROMO = template("promo", "en_US", {"type": "BODY", "text": "Hi {{1}}, {{2}} ends {{3}}."})
"""A template taking three body parameters, nothing else."""
COUPON = template(
    "coupon",
    "en_US",
    {"type": "BODY", "text": "Hi {{1}}, your code:"},
    {"type": "BUTTONS", "buttons": [{"type": "COPY_CODE", "text": "Copy", "example": "X1"}]},
)
GOOD_CSV = "to,body.1,body.2,body.3,ref\n8613800000001,Ann,Sale,today,r1\n8613800000002,Bob,Sale,today,r2\n"


@pytest.fixture
def campaigns(stack: Stack) -> Stack:
    """The stack with the account's catalogue on its simulator (the template check itself stays off: a campaign's
    columns are checked whatever TEMPLATE_CHECK says)."""
    stack.simulator.set_templates(*ACCOUNT, [PROMO, COUPON])
    return stack


def request(
    stack: Stack, method: str, path: str, body: Any = None, *, route: str | None = None, **options: Any
) -> dict[str, Any]:
    """One request, its answer first validated against what openapi.json documents for the route and the status;
    ``options``: ``headers`` (a dict), else query parameters."""
    text = json.dumps(body) if body is not None else None
    headers = {**({"Content-Type": "application/json"} if text is not None else {}), **options.pop("headers", {})}
    query = {k: [v] for k, v in options.items()}
    event = api_event(text, method=method, path=path, headers=headers, query=query, resource=route)
    answer: dict[str, Any] = stack.invoke(event)
    validate((method.lower(), route or path), answer)
    return answer


def call(stack: Stack, method: str, path: str, body: Any = None, route: str | None = None, **options: Any) -> Any:
    """One request (see :func:`request`); the status and the decoded body."""
    answer = request(stack, method, path, body, route=route, **options)
    return int(answer["statusCode"]), json.loads(answer["body"]) if answer.get("body") else None


def act(stack: Stack, campaign_id: str, action: str) -> Any:
    route = "/campaigns/{campaign_id}" + (f"/{action}" if action != "get" else "")
    path = f"/campaigns/{campaign_id}" + (f"/{action}" if action != "get" else "")
    return call(stack, "GET" if action == "get" else "POST", path, route=route)


def upload(stack: Stack, content: str | bytes, suffix: str = "csv") -> str:
    """Put an audience file in the bucket directly (the presigned upload has tests of its own); its key."""
    key = f"audiences/test-{datetime.now(UTC).timestamp()}.{suffix}"
    data = content.encode() if isinstance(content, str) else content
    stack.resources.client("s3").put_object(Bucket=stack.resources.campaign_bucket, Key=key, Body=data)
    return key


def create(stack: Stack, key: str, **fields: Any) -> Any:
    body = {"name": "spring", "template": {"name": "promo", "language": {"code": "en_US"}}, "audience": {"key": key}}
    return call(stack, "POST", "/campaigns", {**body, **fields})


def ticks(stack: Stack) -> list[str]:
    """The campaign ids of every tick on the engine's queue (consumed), delayed ones included."""
    sqs = stack.sqs
    found: list[str] = []
    while batch := sqs.receive_message(
        QueueUrl=stack.resources.campaign_tick_queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
    ).get("Messages", []):
        for received in batch:
            found.append(tick_campaign(received["Body"]))
            sqs.delete_message(
                QueueUrl=stack.resources.campaign_tick_queue_url, ReceiptHandle=received["ReceiptHandle"]
            )
    return found


def store(stack: Stack) -> CampaignStore:
    return CampaignStore(stack.resources.client("dynamodb"), stack.resources.campaigns_table)


def delayed(stack: Stack) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=stack.resources.campaign_tick_queue_url, AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessagesDelayed"])


def nothing_stored(stack: Stack) -> bool:
    return store(stack).newest()[0] == [] and ticks(stack) == [] and delayed(stack) == 0


# --- POST /audiences --------------------------------------------------------------------------------------------------


def test_the_presigned_upload_takes_a_file_over_http_under_audiences(campaigns: Stack) -> None:
    status, answer = call(campaigns, "POST", "/audiences")

    assert status == 201
    assert answer["key"].startswith("audiences/") and answer["key"].endswith(".csv")
    assert (answer["method"], answer["max_bytes"]) == ("POST", MAX_AUDIENCE_BYTES)
    assert datetime.fromisoformat(answer["expires_at"]) > datetime.now(UTC) + timedelta(minutes=59)
    sent = requests.post(answer["upload_url"], data=answer["fields"], files={"file": GOOD_CSV.encode()}, timeout=10)
    assert sent.status_code in (200, 201, 204), sent.text
    stored = campaigns.resources.client("s3").get_object(Bucket=campaigns.resources.campaign_bucket, Key=answer["key"])
    assert stored["Body"].read().decode() == GOOD_CSV
    # The uploaded file is one a campaign takes.
    assert create(campaigns, answer["key"])[0] == 201


def test_the_presigned_policy_bounds_the_size_and_the_key(campaigns: Stack) -> None:
    """S3 refuses a POST whose policy conditions fail (moto does not check them: the policy is read here)."""
    _, answer = call(campaigns, "POST", "/audiences", {"format": "jsonl"})

    policy = json.loads(base64.b64decode(answer["fields"]["policy"]))
    assert ["content-length-range", 1, MAX_AUDIENCE_BYTES] in policy["conditions"]
    assert {"key": answer["key"]} in policy["conditions"]
    assert {"bucket": campaigns.resources.campaign_bucket} in policy["conditions"]
    assert answer["key"].endswith(".jsonl")
    expiration = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert abs(expiration - datetime.fromisoformat(answer["expires_at"])) <= timedelta(seconds=2)


def test_an_audience_body_with_an_unknown_format_is_a_400(campaigns: Stack) -> None:
    status, answer = call(campaigns, "POST", "/audiences", {"format": "xlsx"})

    assert status == 400
    assert answer["errors"][0]["loc"][:2] == ["body", "format"]


def test_a_file_over_the_limit_is_refused_at_creation(campaigns: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import campaigns_api

    monkeypatch.setattr(campaigns_api, "MAX_AUDIENCE_BYTES", 64)
    key = upload(campaigns, GOOD_CSV)  # 109 bytes

    status, answer = create(campaigns, key)

    assert status == 422
    assert answer["errors"] == [
        {
            "loc": ["body", "audience", "key"],
            "msg": f"the file is {len(GOOD_CSV)} bytes; at most 64 are taken",
            "type": "value_error",
        }
    ]
    assert nothing_stored(campaigns)


# --- POST /campaigns: created -----------------------------------------------------------------------------------------


def test_a_campaign_is_stored_scheduled_and_its_first_tick_queued_at_once(campaigns: Stack) -> None:
    key = upload(campaigns, GOOD_CSV)

    status, answer = create(campaigns, key, quiet_hours={"start": "21:00", "end": "09:00"}, tenant_id=7)

    assert status == 201
    assert answer == {"campaign_id": answer["campaign_id"], "status": "scheduled"}
    assert answer["campaign_id"].startswith("c-")
    stored = store(campaigns).get(answer["campaign_id"])
    head = campaigns.resources.client("s3").head_object(Bucket=campaigns.resources.campaign_bucket, Key=key)
    assert (stored.template_name, stored.language, stored.audience_key) == ("promo", "en_US", key)
    assert (stored.business_phone, stored.appkey, stored.tenant_id) == (ACCOUNT[1], None, "7")
    assert stored.rate == 64  # 0.8 of MessagesPerSecond (80)
    assert stored.audience_etag == head["ETag"]
    assert stored.quiet_hours == {"start": "21:00", "end": "09:00"}
    assert stored.status is Status.SCHEDULED and stored.version == 0
    assert abs(datetime.fromisoformat(stored.start_at) - datetime.now(UTC)) < timedelta(minutes=1)
    assert ticks(campaigns) == [answer["campaign_id"]]


def test_a_later_start_delays_the_first_tick(campaigns: Stack) -> None:
    later = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0)

    status, answer = create(campaigns, upload(campaigns, GOOD_CSV), start_at=later.isoformat(), rate=10)

    assert status == 201
    stored = store(campaigns).get(answer["campaign_id"])
    assert (datetime.fromisoformat(stored.start_at), stored.rate) == (later, 10)
    assert ticks(campaigns) == [] and delayed(campaigns) == 1  # due in 15 minutes: the planner re-ticks until then


def test_a_json_lines_file_is_read_by_its_first_objects_keys(campaigns: Stack) -> None:
    rows = [{"to": "8613800000001", "body.1": "Ann", "button.0": "CODE1"}, {"to": "8613800000002"}]
    key = upload(campaigns, "".join(json.dumps(r) + "\n" for r in rows), "jsonl")

    status, _ = call(
        campaigns,
        "POST",
        "/campaigns",
        {"name": "codes", "template": {"name": "coupon", "language": {"code": "en_US"}}, "audience": {"key": key}},
    )

    assert status == 201


# --- POST /campaigns: refused -----------------------------------------------------------------------------------------


def test_columns_that_do_not_fit_the_template_are_a_422_naming_both(campaigns: Stack) -> None:
    key = upload(campaigns, "to,body.1,body.2\n8613800000001,Ann,Sale\n")

    status, answer = create(campaigns, key)

    assert status == 422
    assert answer["error"] == "invalid_campaign"
    messages = [e["msg"] for e in answer["errors"]]
    assert "the columns do not fit: template promo (en_US) takes 3 body parameters, got 2 (body.N columns)" in messages
    assert "the file's columns: to, body.1, body.2" in messages
    assert {tuple(e["loc"]) for e in answer["errors"]} == {("body", "audience", "key")}
    assert nothing_stored(campaigns)


def test_an_unknown_column_is_a_422_naming_it(campaigns: Stack) -> None:
    key = upload(campaigns, "to,body.1,body.2,body3\n8613800000001,Ann,Sale,x\n")

    status, answer = create(campaigns, key)

    assert status == 422
    assert "unknown column 'body3'" in [e["msg"] for e in answer["errors"]]
    assert nothing_stored(campaigns)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "the file is empty: it needs a header row (CSV) or a first object (JSON Lines)"),
        ('to,"body.1\n', "the file's header cannot be read (line 1)"),
    ],
)
def test_a_file_without_a_readable_header_is_a_422(campaigns: Stack, content: str, problem: str) -> None:
    status, answer = create(campaigns, upload(campaigns, content))

    assert status == 422
    assert answer["errors"][0]["msg"].startswith(problem)


def test_a_template_the_account_lacks_is_a_422_naming_it(campaigns: Stack) -> None:
    body = {"name": "x", "template": {"name": "promo", "language": {"code": "pt_BR"}}}
    status, answer = call(campaigns, "POST", "/campaigns", {**body, "audience": {"key": upload(campaigns, GOOD_CSV)}})

    assert status == 422
    assert answer["errors"] == [
        {
            "loc": ["body", "template"],
            "msg": "template promo has no pt_BR version (it exists in en_US)",
            "type": "value_error",
        }
    ]


def test_a_template_not_approved_is_a_422_naming_its_status(campaigns: Stack) -> None:
    pending = template("promo", "en_US", {"type": "BODY", "text": "Hi {{1}}, {{2}} ends {{3}}."}, status="PENDING")
    campaigns.simulator.set_templates(*ACCOUNT, [pending])

    status, answer = create(campaigns, upload(campaigns, GOOD_CSV))

    assert status == 422
    assert "the columns do not fit: template promo (en_US) is PENDING, not APPROVED" in [
        e["msg"] for e in answer["errors"]
    ]
    assert nothing_stored(campaigns)


def test_a_missing_file_is_a_404(campaigns: Stack) -> None:
    status, answer = create(campaigns, "audiences/never-uploaded.csv")

    assert status == 404
    assert answer["error"] == "not_found"
    assert answer["errors"][0]["loc"] == ["body", "audience", "key"]
    assert nothing_stored(campaigns)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("reports/c-1.csv", "an audience file is under audiences/ (POST /audiences gives one)"),
        ("audiences/list.xlsx", "an audience file's name ends in .csv or .jsonl, got 'list.xlsx'"),
    ],
)
def test_a_key_that_cannot_be_an_audience_file_is_a_422(campaigns: Stack, key: str, problem: str) -> None:
    status, answer = create(campaigns, key)

    assert (status, answer["errors"][0]["msg"]) == (422, problem)


@pytest.mark.parametrize(
    ("quiet", "problem"),
    [
        ({"start": "25:00", "end": "09:00"}, "quiet_hours.start is a time of day as HH:MM (00:00 to 23:59)"),
        ({"start": "21:00"}, 'quiet_hours is {"start": "HH:MM", "end": "HH:MM"}'),
        ({"start": "09:00", "end": "09:00"}, "quiet_hours: start and end must differ"),
    ],
)
def test_bad_quiet_hours_are_a_422_naming_them(campaigns: Stack, quiet: dict[str, str], problem: str) -> None:
    status, answer = create(campaigns, upload(campaigns, GOOD_CSV), quiet_hours=quiet)

    assert status == 422
    assert answer["errors"] == [{"loc": ["body", "quiet_hours"], "msg": problem, "type": "value_error"}]
    assert nothing_stored(campaigns)


def test_expires_at_must_follow_start_at_and_be_in_the_future(campaigns: Stack) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    key = upload(campaigns, GOOD_CSV)
    later = (now + timedelta(hours=2)).isoformat()

    same = create(campaigns, key, start_at=later, expires_at=later)
    past = create(
        campaigns,
        key,
        start_at=(now - timedelta(hours=2)).isoformat(),
        expires_at=(now - timedelta(hours=1)).isoformat(),
    )

    assert same[0] == past[0] == 422
    assert same[1]["errors"][0]["loc"] == past[1]["errors"][0]["loc"] == ["body", "expires_at"]
    assert same[1]["errors"][0]["msg"] == "must be after start_at (rows not sent by then end expired)"
    assert past[1]["errors"][0]["msg"] == "must be in the future"
    assert nothing_stored(campaigns)


def test_a_start_without_an_offset_is_a_400(campaigns: Stack) -> None:
    status, answer = create(campaigns, upload(campaigns, GOOD_CSV), start_at="2030-01-01T09:00:00")

    assert status == 400
    assert answer["errors"][0]["loc"] == ["body", "start_at"]


def test_a_rate_over_the_share_of_the_numbers_rate_is_a_422(campaigns: Stack) -> None:
    key = upload(campaigns, GOOD_CSV)

    over = create(campaigns, key, rate=64.5)
    at = create(campaigns, key, rate=64)

    assert over[0] == 422
    assert over[1]["errors"] == [
        {
            "loc": ["body", "rate"],
            "msg": "at most 64 messages per second: 0.8 of the business number's 80 (CampaignRateShare)",
            "type": "value_error",
        }
    ]
    assert at[0] == 201


def test_the_share_and_the_numbers_rate_come_from_the_settings(
    campaigns: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    monkeypatch.setenv("CAMPAIGN_RATE_SHARE", "0.5")
    monkeypatch.setenv("MESSAGES_PER_SECOND", "10")
    runtime.reset()

    status, answer = create(campaigns, upload(campaigns, GOOD_CSV))

    assert status == 201
    assert store(campaigns).get(answer["campaign_id"]).rate == 5


def test_an_unavailable_catalogue_is_a_503_never_an_unchecked_campaign(campaigns: Stack) -> None:
    campaigns.simulator.add_fault(endpoint="getTemplate", kind="http_status", status=503)

    status, answer = create(campaigns, upload(campaigns, GOOD_CSV))

    assert status == 503
    assert answer["error"] == "templates_unavailable"
    assert answer["message"].endswith(": retry")
    assert nothing_stored(campaigns)


def test_a_campaign_whose_first_tick_cannot_be_queued_is_cancelled_and_the_caller_told_to_retry(
    campaigns: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    import runtime

    monkeypatch.setenv("CAMPAIGN_TICK_QUEUE_URL", campaigns.resources.campaign_tick_queue_url + "-gone")
    runtime.reset()

    status, _ = create(campaigns, upload(campaigns, GOOD_CSV))

    assert status == 503
    [stored] = store(campaigns).newest()[0]
    assert (stored.status, stored.status_reason) == (Status.CANCELLED, "its first planner pass could not be queued")


def test_with_an_idempotency_key_a_campaign_whose_first_tick_failed_is_ticked_by_the_retry(
    campaigns: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry with the same key must not answer a campaign that can never start: it queues the missing tick."""
    import runtime

    key = upload(campaigns, GOOD_CSV)
    body = {"name": "keyed", "template": {"name": "promo", "language": {"code": "en_US"}}, "audience": {"key": key}}
    headers = {"Idempotency-Key": "tick-lost"}
    monkeypatch.setenv("CAMPAIGN_TICK_QUEUE_URL", campaigns.resources.campaign_tick_queue_url + "-gone")
    runtime.reset()
    failed = request(campaigns, "POST", "/campaigns", body, headers=headers)
    [stored] = store(campaigns).newest()[0]
    monkeypatch.setenv("CAMPAIGN_TICK_QUEUE_URL", campaigns.resources.campaign_tick_queue_url)
    runtime.reset()

    again = request(campaigns, "POST", "/campaigns", body, headers=headers)

    assert failed["statusCode"] == 503
    assert stored.status is Status.SCHEDULED and (stored.status_reason or "").startswith("its first planner pass")
    assert again["statusCode"] == 201 and again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert ticks(campaigns) == [stored.campaign_id]
    assert store(campaigns).get(stored.campaign_id).status_reason is None


# --- dry run ----------------------------------------------------------------------------------------------------------

BROKEN_CSV = (
    "to,body.1,body.2,body.3,ref\n"
    "8613800000001,Ann,Sale,today,r1\n"  # line 2: valid
    "+86 138 0000 0001,Ann,Sale,today,r2\n"  # 3: the same number as line 2
    "008613800000001,A,B,C,r3\n"  # 4: again
    "12,Ann,Sale,today,r4\n"  # 5: not a number
    "8613800000005,Ann,,today,r5\n"  # 6: an empty parameter
    "8613800000007,Ann,Sale\n"  # 7: too few fields
    '8613800000008,Bob,"Sale,today,r8\n'  # 8: an unterminated quote (to the end of the file)
    "8613800000009,Bob,Sale,today,r9\n"  # 9: valid (read again after line 8)
)


def test_a_dry_run_counts_every_row_and_names_the_invalid_ones_storing_nothing(campaigns: Stack) -> None:
    status, answer = create(campaigns, upload(campaigns, BROKEN_CSV), dry_run=True)

    assert status == 200
    assert {k: answer[k] for k in ("dry_run", "complete", "rows", "valid", "invalid", "duplicate", "rate")} == {
        "dry_run": True,
        "complete": True,
        "rows": 8,
        "valid": 2,
        "invalid": 4,
        "duplicate": 2,
        "rate": 64,
    }
    lines = [(row["line"], row.get("ref")) for row in answer["invalid_rows"]]
    assert lines == [(5, "r4"), (6, "r5"), (7, None), (8, None)]
    reasons = [row["reason"] for row in answer["invalid_rows"]]
    assert reasons[1] == "body.2: empty"
    assert reasons[2] == "has 3 fields, the header has 5 columns"
    assert "unterminated quote" in reasons[3]
    assert nothing_stored(campaigns)


def test_a_dry_run_lists_the_first_20_invalid_rows_only(campaigns: Stack) -> None:
    content = "to,body.1,body.2,body.3\n" + "".join(f"1{i},a,b,c\n" for i in range(30))

    status, answer = create(campaigns, upload(campaigns, content), dry_run=True)

    assert (status, answer["invalid"], len(answer["invalid_rows"])) == (200, 30, 20)
    assert [row["line"] for row in answer["invalid_rows"]] == list(range(2, 22))


def test_a_dry_run_stops_at_its_time_budget_and_says_its_counts_are_the_first_rows(
    campaigns: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget is 29 s (API Gateway) less 4: a clock moving 10 s per look, looking every 2 rows, stops it at the
    third look, after 6 of the file's 8 rows."""
    import itertools

    import campaigns_api

    ticking = itertools.count(0, 10)
    monkeypatch.setattr(campaigns_api, "clock", lambda: float(next(ticking)))
    monkeypatch.setattr(campaigns_api, "DRY_RUN_CHECK_ROWS", 2)

    status, answer = create(campaigns, upload(campaigns, BROKEN_CSV), dry_run=True)

    assert status == 200
    assert (answer["complete"], answer["rows"]) == (False, 6)
    assert (answer["valid"], answer["duplicate"], answer["invalid"]) == (1, 2, 3)


def test_a_dry_run_makes_the_same_checks(campaigns: Stack) -> None:
    key = upload(campaigns, "to,body.1\n8613800000001,Ann\n")

    assert create(campaigns, key, dry_run=True)[0] == 422


# --- reading, paging, actions -----------------------------------------------------------------------------------------


def test_a_campaign_reads_back_with_its_counts(campaigns: Stack) -> None:
    _, created = create(campaigns, upload(campaigns, GOOD_CSV))

    status, view = act(campaigns, created["campaign_id"], "get")

    assert status == 200
    assert view["status"] == "scheduled" and view["eta_seconds"] is None
    assert view["template"] == {"name": "promo", "language": "en_US"}
    assert view["counts"] == dict.fromkeys(COUNTS, 0) and len(COUNTS) == 13  # retried is the 13th
    assert act(campaigns, "c-unknown", "get") == (404, {"error": "not_found", "message": "no campaign with this id"})


def test_the_list_is_newest_first_and_paged(campaigns: Stack) -> None:
    key = upload(campaigns, GOOD_CSV)
    ids = [create(campaigns, key, name=f"n{i}")[1]["campaign_id"] for i in range(3)]

    first = call(campaigns, "GET", "/campaigns", limit="2")
    second = call(campaigns, "GET", "/campaigns", limit="2", cursor=first[1]["next_cursor"])

    assert [c["campaign_id"] for c in first[1]["items"]] == ids[::-1][:2]
    assert [c["campaign_id"] for c in second[1]["items"]] == ids[:1]
    assert second[1]["next_cursor"] is None
    bad = call(campaigns, "GET", "/campaigns", cursor="bm90LW91cnM")
    assert bad[0] == 400 and bad[1]["errors"][0]["loc"] == ["query", "cursor"]


def test_pause_resume_and_cancel_answer_the_new_state_and_resume_and_cancel_tick_the_engine(campaigns: Stack) -> None:
    _, created = create(campaigns, upload(campaigns, GOOD_CSV))
    campaign_id = created["campaign_id"]
    ticks(campaigns)

    paused = act(campaigns, campaign_id, "pause")
    assert (paused[0], paused[1]["status"]) == (200, "paused")
    assert ticks(campaigns) == []
    resumed = act(campaigns, campaign_id, "resume")
    assert (resumed[0], resumed[1]["status"]) == (200, "running")
    assert resumed[1]["started_at"] is not None and resumed[1]["eta_seconds"] == 0
    assert ticks(campaigns) == [campaign_id]
    cancelled = act(campaigns, campaign_id, "cancel")
    assert (cancelled[0], cancelled[1]["status"]) == (200, "cancelled")
    assert cancelled[1]["finished_at"] is not None
    assert ticks(campaigns) == [campaign_id]  # the engine ends the rows it has not read yet cancelled
    assert store(campaigns).get(campaign_id).version == 3


@pytest.mark.parametrize(
    ("moves", "action", "message"),
    [
        ((), "resume", "cannot resume a campaign that is scheduled; a scheduled campaign can cancel, pause, start"),
        ((Action.CANCEL,), "pause", "cannot pause a campaign that is cancelled"),
        ((Action.CANCEL,), "resume", "cannot resume a campaign that is cancelled"),
        ((Action.PAUSE,), "pause", "cannot pause a campaign that is paused; a paused campaign can cancel, resume"),
    ],
)
def test_an_impossible_move_is_a_409_naming_the_status(
    campaigns: Stack, moves: tuple[Action, ...], action: str, message: str
) -> None:
    _, created = create(campaigns, upload(campaigns, GOOD_CSV))
    campaign_id = created["campaign_id"]
    for move in moves:
        store(campaigns).apply(store(campaigns).get(campaign_id), move, "2026-01-01T00:00:00.000+00:00")
    ticks(campaigns)

    status, answer = act(campaigns, campaign_id, action)

    assert status == 409
    assert answer == {"error": "conflict", "message": message, "code": store(campaigns).get(campaign_id).status.value}
    assert ticks(campaigns) == []


def test_an_action_on_an_unknown_campaign_is_a_404(campaigns: Stack) -> None:
    assert act(campaigns, "c-none", "pause")[0] == 404


def test_a_stack_without_a_campaigns_table_answers_500(campaigns: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    import runtime

    monkeypatch.setenv("CAMPAIGNS_TABLE", "")
    runtime.reset()

    status, answer = call(campaigns, "GET", "/campaigns")

    assert status == 500
    assert "CAMPAIGNS_TABLE" not in answer["message"]  # the details are the log's


def test_the_routes_answer_with_the_body_the_document_names(campaigns: Stack) -> None:
    """``call`` validated every answer above; this one drives the dry run's and the list's with every field set."""
    key = upload(campaigns, BROKEN_CSV)
    create(campaigns, key)
    create(campaigns, key)

    assert call(campaigns, "GET", "/campaigns", limit="1")[1]["next_cursor"]


def test_an_id_no_campaign_can_have_is_a_404_and_a_body_that_is_not_an_object_a_400(campaigns: Stack) -> None:
    key = upload(campaigns, GOOD_CSV)
    body = {"name": "x", "template": {"name": "promo", "language": {"code": "en_US"}}, "audience": {"key": key}}

    assert act(campaigns, "c-" + "0" * 100, "get")[0] == 404
    assert act(campaigns, "c-x y", "resume")[0] == 404
    listed = call(campaigns, "POST", "/campaigns", [body])
    assert (listed[0], listed[1]["errors"][0]["loc"]) == (400, ["body"])
    assert call(campaigns, "POST", "/audiences", [{"format": "csv"}])[0] == 400
    assert nothing_stored(campaigns)


def test_a_create_repeated_with_its_idempotency_key_answers_the_first_campaign_and_makes_no_second(
    campaigns: Stack,
) -> None:
    key = upload(campaigns, GOOD_CSV)
    body = {"name": "once", "template": {"name": "promo", "language": {"code": "en_US"}}, "audience": {"key": key}}
    headers = {"Idempotency-Key": "spring-2026"}

    first = call(campaigns, "POST", "/campaigns", body, headers=headers)
    campaigns.resources.client("s3").delete_object(Bucket=campaigns.resources.campaign_bucket, Key=key)
    again = request(campaigns, "POST", "/campaigns", body, headers=headers)

    assert (first[0], again["statusCode"]) == (201, 201)
    assert json.loads(again["body"]) == first[1]  # the first campaign, though its file is gone now: no check again
    assert again["multiValueHeaders"]["Idempotent-Replayed"] == ["true"]
    assert [c.campaign_id for c in store(campaigns).newest()[0]] == [first[1]["campaign_id"]]
    assert ticks(campaigns) == [first[1]["campaign_id"]]
    other = call(campaigns, "POST", "/campaigns", {**body, "name": "twice"}, headers=headers)
    assert other[0] == 422
    assert other[1]["error"] == "idempotency_key_reused"
    assert other[1]["errors"][0]["loc"] == ["header", "Idempotency-Key"]
