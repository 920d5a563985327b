"""Templates as getTemplate lists them, shaped like NXCloud's pages: the getTemplate page's ``order_update`` example
and the templates the send page's three request examples (tests/data/page_examples) must have. Shared by the check's
unit tests, the simulator's and the client's tests and the end-to-end tests, so each one means the same template.

An account is an (appkey, business number) pair; :data:`PAGE_ACCOUNTS` holds these templates under the accounts the
page examples name.
"""

from __future__ import annotations

from typing import Any


def template(name: str, language: str, *components: dict[str, Any], status: str = "APPROVED") -> dict[str, Any]:
    """One of getTemplate's template objects."""
    return {
        "id": "1",
        "name": name,
        "language": language,
        "category": "UTILITY",
        "status": status,
        "rejected_reason": "NONE",
        "quality_score": {"score": "GREEN"},
        "components": list(components),
    }


def buttons(*items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "BUTTONS", "buttons": list(items)}


IMAGE_HEADER = {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://x.example/h.jpg"]}}
URL_BUTTON = {"type": "URL", "text": "Track", "url": "https://shop.example/track/{{1}}", "example": ["https://x/1"]}

# The getTemplate page's example: an IMAGE header, three body variables, one URL button whose url ends in {{1}}.
ORDER_UPDATE = template(
    "order_update",
    "en_US",
    IMAGE_HEADER,
    {"type": "BODY", "text": "Hi {{1}}, order {{2}} ships {{3}}.", "example": {"body_text": [["Ann", "42", "today"]]}},
    {"type": "FOOTER", "text": "Thanks"},
    buttons(URL_BUTTON),
)
# What the send page's examples need: example 1 (an image and four texts, a repeated variable given twice) ...
TEXT_TEMPLATE = template(
    "text_template",
    "en_US",
    IMAGE_HEADER,
    {"type": "BODY", "text": "Hello {{1}}, your parcel from {{2}} has left {{2}}. Questions? Call {{3}}."},
)
# ... example 2 (two URL buttons with a variable each, pt_BR) ...
TEST_00045 = template(
    "test_00045",
    "pt_BR",
    {"type": "BODY", "text": "Olá! Veja o seu pedido."},
    buttons(
        {"type": "URL", "text": "Pedido", "url": "https://loja.example/p/{{1}}"},
        {"type": "URL", "text": "Rastreio", "url": "https://loja.example/r/{{1}}"},
    ),
)
# ... and example 3 (a coupon code for the button at index 3).
TEN_BTN4 = template(
    "ten_btn4",
    "en_US",
    {"type": "BODY", "text": "Your coupon is ready."},
    buttons(
        {"type": "QUICK_REPLY", "text": "Thanks"},
        {"type": "QUICK_REPLY", "text": "Stop"},
        {"type": "URL", "text": "Shop", "url": "https://shop.example/"},
        {"type": "COPY_CODE", "text": "Copy code", "example": "123123"},
    ),
)
ALL = (ORDER_UPDATE, TEXT_TEMPLATE, TEST_00045, TEN_BTN4)
PAGE_ACCOUNTS = {
    ("f543ertg", "8618512348399"): [TEXT_TEMPLATE, TEST_00045],
    ("8exxxxyos", "85291234867"): [TEN_BTN4],
}
"""Each page example's account, with the template it names."""
