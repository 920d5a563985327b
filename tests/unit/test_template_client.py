"""The getTemplate client against the simulator: paging, the shared signing, and every failure as one classified
error (from the one table)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from nxcloud_simulator import NXCloudSimulator
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.error_codes import ErrorClass
from nxcloud_wa.exceptions import TemplateApiError
from nxcloud_wa.template_client import TEMPLATE_ACTION, TEMPLATE_PATH, TemplateClient
from nxcloud_wa.templates import TemplateSpec
from tests.page_templates import ORDER_UPDATE, TEN_BTN4, template
from tests.upstream import independent_sign

APPKEY, PHONE = "app1", "8618512348399"
CREDENTIALS = Credentials("AK", "SK")
MANY = [template(f"t{i:02d}", "en_US", {"type": "BODY", "text": "{{1}}"}) for i in range(7)]


@pytest.fixture
def catalogued(make_simulator: Callable[..., NXCloudSimulator]) -> NXCloudSimulator:
    return make_simulator(templates={(APPKEY, PHONE): [ORDER_UPDATE, TEN_BTN4, *MANY]})


def fetch_error(client: TemplateClient, **kwargs: str) -> TemplateApiError:
    with pytest.raises(TemplateApiError) as caught:
        client.fetch(kwargs.get("appkey", APPKEY), kwargs.get("business_phone", PHONE), CREDENTIALS)
    return caught.value


def test_every_page_is_read_and_each_request_is_signed_for_get_template(catalogued: NXCloudSimulator) -> None:
    templates = TemplateClient(catalogued.url, page_size=4).fetch(APPKEY, PHONE, CREDENTIALS)

    assert [t.name for t in templates] == sorted(["order_update", "ten_btn4", *(f"t{i:02d}" for i in range(7))])
    assert templates.find("order_update", "en_US") == TemplateSpec.from_api(ORDER_UPDATE)
    records = catalogued.template_requests
    assert [r.templates for r in records] == [4, 4, 1]
    assert [r.code for r in records] == [0, 0, 0]
    first, second, _ = (r.body for r in records)
    assert first == {"appkey": APPKEY, "business_phone": PHONE, "messaging_product": "whatsapp", "limit": 4}
    assert second is not None and second["after"] and set(second) == {*first, "after"}
    for record in records:
        headers = record.headers
        assert (headers["action"], headers["bizType"], record.http_status) == (TEMPLATE_ACTION, "2", 200)
        body_text = json.dumps(record.body, ensure_ascii=False, separators=(",", ":"))
        assert headers["sign"] == independent_sign(headers, body_text, "SK")


def test_one_templates_languages_by_name(catalogued: NXCloudSimulator) -> None:
    templates = TemplateClient(catalogued.url).fetch(APPKEY, PHONE, CREDENTIALS, name="ten_btn4")

    assert [t.label for t in templates] == ["template ten_btn4 (en_US)"]
    assert catalogued.template_requests[0].body == {
        "appkey": APPKEY,
        "business_phone": PHONE,
        "messaging_product": "whatsapp",
        "limit": 50,
        "name": "ten_btn4",
    }


def test_a_template_object_no_message_can_name_is_left_out(catalogued: NXCloudSimulator) -> None:
    catalogued.template_book._accounts[(APPKEY, PHONE)].append({"name": "", "language": "en_US"})

    assert len(TemplateClient(catalogued.url).fetch(APPKEY, PHONE, CREDENTIALS)) == 9


@pytest.mark.parametrize(
    ("account", "code", "error_class"),
    [
        ({"appkey": ""}, 9000, ErrorClass.PERMANENT),
        ({"business_phone": "+8618512348399"}, 9002, ErrorClass.PERMANENT),
        ({"business_phone": "8613800000000"}, 9006, ErrorClass.PERMANENT),
    ],
)
def test_the_pages_codes_are_classified_by_the_one_table(
    catalogued: NXCloudSimulator, account: dict[str, str], code: int, error_class: ErrorClass
) -> None:
    error = fetch_error(TemplateClient(catalogued.url), **account)

    assert (error.code, error.reason, error.classification.error_class) == (code, str(code), error_class)
    assert error.classification.reason == "nxcloud_code"
    assert str(code) in error.message and "getTemplate" in error.message


def test_a_wrong_secret_is_an_auth_error(catalogued: NXCloudSimulator) -> None:
    catalogued.set_account("AK", "rotated")
    error = fetch_error(TemplateClient(catalogued.url))

    assert (error.code, error.classification.reason) == (1003, "nxcloud_auth")
    assert "rotated" not in str(error) and "SK" not in str(error)


def test_system_error_9001_is_retryable(catalogued: NXCloudSimulator) -> None:
    catalogued.add_fault(kind="code", code=9001, endpoint="getTemplate")
    error = fetch_error(TemplateClient(catalogued.url))

    assert (error.code, error.classification.error_class) == (9001, ErrorClass.RETRYABLE)


def test_unavailable_is_resent_once_then_an_error(catalogued: NXCloudSimulator) -> None:
    catalogued.add_fault(kind="http_status", status=503, endpoint="getTemplate")
    error = fetch_error(TemplateClient(catalogued.url))

    assert error.reason == "http_503"
    assert len(catalogued.template_requests) == 2


def test_a_server_error_is_not_resent(catalogued: NXCloudSimulator) -> None:
    catalogued.add_fault(kind="http_status", status=500, endpoint="getTemplate")

    assert fetch_error(TemplateClient(catalogued.url)).reason == "http_500"
    assert len(catalogued.template_requests) == 1


@pytest.mark.parametrize(("kind", "reason"), [("garbage", "malformed_response"), ("drop", "connection_dropped")])
def test_an_answer_that_is_not_its_json(catalogued: NXCloudSimulator, kind: str, reason: str) -> None:
    catalogued.add_fault(kind=kind, endpoint="getTemplate")

    assert fetch_error(TemplateClient(catalogued.url)).classification.reason == reason


def test_a_slow_answer_is_a_read_timeout(catalogued: NXCloudSimulator) -> None:
    catalogued.add_fault(kind="latency", seconds=1.0, endpoint="getTemplate")

    assert fetch_error(TemplateClient(catalogued.url, read_timeout=0.2)).classification.reason == "read_timeout"


def test_nobody_listening_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        error = fetch_error(TemplateClient(f"http://127.0.0.1:{port}", connect_timeout=0.5))

    assert error.classification.reason == "connect_error"


# --- answers the simulator never gives: an upstream that pages for ever, or says "next" without a cursor


class _Stuck(BaseHTTPRequestHandler):
    document: ClassVar[dict[str, object]] = {}

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(self.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def stuck() -> Iterator[Callable[[dict[str, object]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(document: dict[str, object]) -> str:
        handler = type("Handler", (_Stuck,), {"document": document})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def page(paging: dict[str, object]) -> dict[str, object]:
    return {"code": 0, "message": "", "data": {"data": [ORDER_UPDATE], "paging": paging}, "traceId": "0" * 32}


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (page({"cursors": {"after": "same"}, "next": f"{TEMPLATE_PATH}?after=same"}), "already read"),
        (page({"next": "more"}), "no after cursor"),
        ({"code": 0, "message": "", "data": {"paging": {}}}, "without data.data"),
        ({"code": "0"}, "without its JSON"),
    ],
)
def test_an_answer_that_cannot_be_paged_is_an_error(
    stuck: Callable[[dict[str, object]], str], document: dict[str, object], says: str
) -> None:
    error = fetch_error(TemplateClient(stuck(document)))

    assert says in error.message
    assert error.classification.reason == "malformed_response"
