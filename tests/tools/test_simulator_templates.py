"""The simulator's getTemplate and its template catalogue, driven by hand-built, independently signed requests (as in
test_simulator.py): checks and codes, paging, the send's 22093 from the same catalogue, faults per endpoint, the
control API and the command line's catalogue file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nxcloud_simulator import NXCloudSimulator
from nxcloud_simulator.templates import MAX_LIMIT, decode_cursor, encode_cursor, read_catalogue
from nxcloud_wa.error_codes import TEMPLATE_CODES
from tests.page_templates import ORDER_UPDATE, TEN_BTN4, TEST_00045, template
from tests.tools.test_simulator import FIXED_NOW, TRACE_ID, compact, request, send, signed_headers
from tests.upstream import upstream_body

APPKEY, PHONE = "pem28kje", "8613800138000"
"""The account of tests.upstream's send body."""
PATH = "/api/wa/getTemplate"


def listing(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"appkey": APPKEY, "business_phone": PHONE, "messaging_product": "whatsapp"}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def get_templates(sim: NXCloudSimulator, body: Any = None, *, text: str | None = None, **sign_args: Any) -> Any:
    signed_text = compact(listing() if body is None else body)
    sign_args.setdefault("action", "getTemplate")
    answer = request(
        sim, "POST", PATH, signed_text if text is None else text, headers=signed_headers(signed_text, **sign_args)
    )
    return answer


NUMBERED = [template(f"t{i:02d}", "en_US", {"type": "BODY", "text": "Hi {{1}}"}) for i in range(45)]


@pytest.fixture
def catalogued(make_simulator: Callable[..., NXCloudSimulator]) -> NXCloudSimulator:
    return make_simulator(templates={(APPKEY, PHONE): [ORDER_UPDATE, TEN_BTN4, *NUMBERED]})


# --- served only with a catalogue


def test_without_a_catalogue_get_template_is_not_served(simulator: NXCloudSimulator) -> None:
    assert get_templates(simulator).status == 404
    assert simulator.template_requests == []


def test_a_listing_is_the_accounts_templates_as_given_in_the_pages_shape(catalogued: NXCloudSimulator) -> None:
    answer = get_templates(catalogued, listing(limit=2))
    document = answer.document

    assert (answer.status, set(document)) == (200, {"code", "message", "data", "traceId"})
    assert (document["code"], document["message"]) == (0, "")
    assert TRACE_ID.match(document["traceId"])
    assert document["data"]["data"] == [ORDER_UPDATE, TEN_BTN4]
    paging = document["data"]["paging"]
    assert paging["cursors"] == {"before": encode_cursor(0), "after": encode_cursor(2)}
    assert paging["next"] and "previous" not in paging


def test_paging_follows_after_until_no_next(catalogued: NXCloudSimulator) -> None:
    names, after, pages = [], None, 0
    while True:
        body = listing(limit=20, **({"after": after} if after else {}))
        data = get_templates(catalogued, body).document["data"]
        names += [t["name"] for t in data["data"]]
        pages += 1
        if not data["paging"].get("next"):
            break
        assert ("previous" in data["paging"]) == (after is not None)
        after = data["paging"]["cursors"]["after"]

    assert pages == 3  # 47 templates, 20 a page
    assert names == ["order_update", "ten_btn4", *(f"t{i:02d}" for i in range(45))]
    assert [r.templates for r in catalogued.template_requests] == [20, 20, 7]


def test_the_default_page_is_twenty_and_the_largest_is_capped(catalogued: NXCloudSimulator) -> None:
    assert len(get_templates(catalogued).document["data"]["data"]) == 20
    assert len(get_templates(catalogued, listing(limit=10_000)).document["data"]["data"]) == min(47, MAX_LIMIT)


def test_name_filters_every_language_of_one_template(catalogued: NXCloudSimulator) -> None:
    catalogued.set_templates(APPKEY, PHONE, [ORDER_UPDATE, {**ORDER_UPDATE, "language": "zh_CN"}, TEN_BTN4])
    data = get_templates(catalogued, listing(name="order_update")).document["data"]

    assert [(t["name"], t["language"]) for t in data["data"]] == [("order_update", "en_US"), ("order_update", "zh_CN")]
    assert "next" not in data["paging"]


def test_cursors_are_opaque_and_only_the_simulators_are_read() -> None:
    assert decode_cursor(encode_cursor(40)) == 40
    for bad in ("", "not base64!", encode_cursor(3)[:-2], 5, None):
        assert decode_cursor(bad) is None


# --- its checks and codes


@pytest.mark.parametrize(
    ("sign_args", "code"),
    [
        ({"action": "mt"}, 1002),  # signed for a send
        ({"secret": "wrong"}, 1003),
        ({"now": FIXED_NOW}, 1004),  # long ago
        ({"access_key": "nobody"}, 1005),
    ],
)
def test_get_template_is_signed_like_the_send(
    catalogued: NXCloudSimulator, sign_args: dict[str, Any], code: int
) -> None:
    assert get_templates(catalogued, **sign_args).code == code


def test_a_body_signed_differently_from_the_one_sent_is_1003(catalogued: NXCloudSimulator) -> None:
    assert get_templates(catalogued, text=compact(listing(limit=3))).code == 1003


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (["not", "an", "object"], 1002),
        (listing(appkey=...), 9000),
        (listing(business_phone=""), 9000),
        (listing(messaging_product="sms"), 9000),
        (listing(limit=0), 9000),
        (listing(limit="20"), 9000),
        (listing(after="not a cursor"), 9000),
        (listing(business_phone="+86 138"), 9002),
        (listing(business_phone="8613800000999"), 9006),
        (listing(appkey="another"), 9006),
    ],
)
def test_the_pages_codes(catalogued: NXCloudSimulator, body: Any, code: int) -> None:
    document = get_templates(catalogued, body).document

    assert (document["code"], document["data"]) == (code, None)
    expected = TEMPLATE_CODES[code].message if code in TEMPLATE_CODES else "鉴权问题"
    assert document["message"] == expected
    assert catalogued.template_requests[-1].code == code


# --- the send answers from the same catalogue


def order_update_send(**template_changes: Any) -> dict[str, Any]:
    body = upstream_body()
    body["template"] = {**body["template"], "name": "order_update", **template_changes}
    return body


def test_a_send_of_a_template_the_account_has_is_accepted(catalogued: NXCloudSimulator) -> None:
    assert send(catalogued, order_update_send()).code == 0


@pytest.mark.parametrize(
    "body",
    [
        upstream_body(),  # order_ready: not in the catalogue
        order_update_send(language={"code": "pt_BR", "policy": "deterministic"}),  # not in that language
        upstream_body(appkey="another") | {"template": order_update_send()["template"]},  # another account's
    ],
    ids=["unknown template", "other language", "other account"],
)
def test_a_send_of_a_template_the_account_lacks_is_22093(catalogued: NXCloudSimulator, body: dict[str, Any]) -> None:
    assert send(catalogued, body).code == 22093
    assert catalogued.accepted == []


def test_a_send_of_a_template_not_approved_is_22093(catalogued: NXCloudSimulator) -> None:
    catalogued.set_templates(APPKEY, PHONE, [{**ORDER_UPDATE, "status": "PENDING"}])

    assert send(catalogued, order_update_send()).code == 22093


def test_without_a_catalogue_any_template_is_accepted_as_before(simulator: NXCloudSimulator) -> None:
    assert send(simulator, upstream_body()).code == 0


# --- faults, per endpoint


def test_fault_rules_apply_to_their_endpoint_only(catalogued: NXCloudSimulator) -> None:
    catalogued.add_fault(kind="http_status", status=503, endpoint="getTemplate", times=1)
    catalogued.add_fault(kind="code", code=9001, endpoint="getTemplate", template="ten_btn4")

    assert send(catalogued, order_update_send()).code == 0  # the send is untouched
    assert get_templates(catalogued).status == 503
    assert get_templates(catalogued).code == 0  # times=1 used up
    assert get_templates(catalogued, listing(name="ten_btn4")).code == 9001
    records = catalogued.template_requests
    assert [(r.http_status, r.code, r.fault) for r in records] == [
        (503, None, "http_status"),
        (200, 0, None),
        (200, 9001, "code"),
    ]


@pytest.mark.parametrize("kind", ["drop", "garbage"])
def test_get_template_can_be_dropped_or_garbled(catalogued: NXCloudSimulator, kind: str) -> None:
    catalogued.add_fault(kind=kind, endpoint="getTemplate")
    if kind == "drop":
        with pytest.raises(ConnectionError):
            get_templates(catalogued)
    else:
        answer = get_templates(catalogued)
        assert answer.status == 200 and not answer.raw.startswith(b"{")


def test_a_fault_names_a_known_endpoint(catalogued: NXCloudSimulator) -> None:
    with pytest.raises(ValueError, match="endpoint must be one of send, getTemplate"):
        catalogued.add_fault(kind="drop", endpoint="templates")


# --- control API, reset, command line


def test_control_api_sets_shows_and_clears_catalogues(simulator: NXCloudSimulator) -> None:
    account = {"appkey": APPKEY, "business_phone": PHONE, "templates": [TEST_00045]}

    assert request(simulator, "POST", "/__sim/templates", json.dumps(account)).status == 201
    assert json.loads(request(simulator, "GET", "/__sim/templates").raw) == {"accounts": [account]}
    assert get_templates(simulator).document["data"]["data"] == [TEST_00045]
    logged = json.loads(request(simulator, "GET", "/__sim/template-requests").raw)["requests"]
    assert [(r["code"], r["templates"], r["body"]["appkey"]) for r in logged] == [(0, 1, APPKEY)]
    assert json.loads(request(simulator, "DELETE", "/__sim/templates").raw) == {"cleared": 1}
    assert get_templates(simulator).status == 404


@pytest.mark.parametrize(
    "payload",
    [
        {"appkey": APPKEY, "business_phone": PHONE},
        {"appkey": APPKEY, "business_phone": PHONE, "templates": "x"},
        {"appkey": APPKEY, "business_phone": PHONE, "templates": [{"name": "no language"}]},
        {"appkey": "", "business_phone": PHONE, "templates": []},
    ],
)
def test_control_api_refuses_a_catalogue_it_cannot_use(simulator: NXCloudSimulator, payload: dict[str, Any]) -> None:
    answer = request(simulator, "POST", "/__sim/templates", json.dumps(payload))

    assert answer.status == 400 and json.loads(answer.raw)["error"]
    assert not simulator.template_book.configured


def test_reset_forgets_the_requests_and_keeps_the_catalogue(catalogued: NXCloudSimulator) -> None:
    get_templates(catalogued)
    catalogued.reset()

    assert catalogued.template_requests == []
    assert get_templates(catalogued).code == 0


def test_the_catalogue_file_of_the_command_line(tmp_path: Path) -> None:
    good = tmp_path / "catalogue.json"
    good.write_text(json.dumps([{"appkey": APPKEY, "business_phone": PHONE, "templates": [ORDER_UPDATE]}]))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"appkey": APPKEY}))

    assert read_catalogue(good) == {(APPKEY, PHONE): [ORDER_UPDATE]}
    with pytest.raises(ValueError, match="expected a list"):
        read_catalogue(bad)
