"""Hypothesis strategies for hostile and valid input: any JSON, any Unicode, valid messages and their mutations.

Valid messages are built field by field from NXCloud's page rules (not from the model's code), so that a valid
message the model rejects is a finding, and mutations (drop, replace, retype one value at any path) walk the model
through every field's failure paths.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Final

import phonenumbers
from hypothesis import strategies as st

from nxcloud_wa.languages import TEMPLATE_LANGUAGES
from nxcloud_wa.models import (
    MAX_APPKEY,
    MAX_BODY_PARAMETERS,
    MAX_BUTTON_INDEX,
    MAX_COUPON_CODE,
    MAX_IDEMPOTENCY_KEY,
    MAX_TEXT_PARAMETER,
    MAX_URL_TEXT_PARAMETER,
)

# Characters fuzzers rarely draw by chance but that break real systems: NUL and C0/C1 controls, the byte order mark,
# the noncharacters SQS refuses (U+FFFE, U+FFFF), bidi overrides (RTL), zero-width joiners, combining marks, line
# and paragraph separators, astral characters (emoji, flags, a family), full-width and other scripts' digits.
INTERESTING_CHARS: Final = (
    "\x00",
    "\x01",
    "\x1f",
    "\x7f",
    "\x85",
    "\xa0",
    "\u0301",
    "\u034f",
    "\u05d0",
    "\u0627",
    "\u0663",
    "\u180e",
    "\u200b",
    "\u200d",
    "\u200e",
    "\u200f",
    "\u2028",
    "\u2029",
    "\u202e",
    "\u2066",
    "\u3000",
    "\ufeff",
    "\ufffd",
    "\ufffe",
    "\uffff",
    "\uff18",
    "\U0001d7ce",
    "\U0001f600",
    "\U0010ffff",
)
INTERESTING_SEQUENCES: Final = (
    "\U0001f1e8\U0001f1f3",  # a flag: two regional indicators
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # a family: emoji joined by ZWJ
    "e\u0301",  # e + combining acute (not NFC)
    "\u202eabc\u202c",  # right-to-left override
    "\u0645\u0631\u062d\u0628\u0627",  # Arabic
    "\u05e9\u05dc\u05d5\u05dd",  # Hebrew
    "\r\n",
)
SURROGATES: Final = ("\ud800", "\udbff", "\udc00", "\udfff")

# Any Unicode scalar value (no surrogates: they cannot be encoded as UTF-8), with the interesting ones mixed in.
unicode_char = st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from(INTERESTING_CHARS))
# Anything a Python str can hold, lone surrogates included (what json.loads makes of "\ud800").
any_char = st.one_of(unicode_char, st.sampled_from(SURROGATES), st.characters(categories=["Cs"]))


def texts(
    alphabet: st.SearchStrategy[str] = unicode_char, *, min_size: int = 0, max_size: int = 40
) -> st.SearchStrategy[str]:
    """Text of ``min_size`` or more pieces (one character, or one of the multi-character sequences above), cut to at
    most ``max_size`` characters."""
    pieces = st.one_of(alphabet, st.sampled_from(INTERESTING_SEQUENCES))
    return st.lists(pieces, min_size=min_size, max_size=max_size).map(lambda parts: "".join(parts)[:max_size])


def long_text(alphabet: st.SearchStrategy[str], max_chars: int) -> st.SearchStrategy[str]:
    """Text up to ``max_chars`` characters, cheaply: a short random head and one character repeated to a drawn size."""
    return st.builds(
        lambda head, ch, n: (head + ch * n)[:max_chars],
        texts(alphabet, max_size=8),
        alphabet,
        st.integers(0, max_chars),
    )


# ---------------------------------------------------------------------------------------------------------------------
# Any JSON


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    texts(any_char),
)


def any_json(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    """Any JSON value: dicts, lists, strings (surrogates too), ints (beyond 64 bits too), floats, bools, null."""
    return st.recursive(
        json_scalars,
        lambda children: st.one_of(
            st.lists(children, max_size=6), st.dictionaries(texts(any_char, max_size=12), children, max_size=6)
        ),
        max_leaves=max_leaves,
    )


def dumps(value: Any, *, ascii_only: bool = False) -> str:
    """JSON text as a client would write it: non-ASCII as is, or ``\\u``-escaped (astral ones as surrogate pairs)."""
    return json.dumps(value, ensure_ascii=ascii_only)


# ---------------------------------------------------------------------------------------------------------------------
# Valid messages, from the page's rules


def _example_numbers() -> list[str]:
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is not None:
            numbers.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:])
    return numbers


EXAMPLE_NUMBERS: Final = _example_numbers()


@st.composite
def phone_spellings(draw: st.DrawFn) -> str:
    """A valid number (every region's example mobile), written the ways people write it."""
    digits = EXAMPLE_NUMBERS[draw(st.integers(0, len(EXAMPLE_NUMBERS) - 1))]  # sampled_from's repr would be huge
    parsed = phonenumbers.parse("+" + digits)
    style = draw(st.sampled_from(["digits", "plus", "00", "international", "spaced"]))
    if style == "plus":
        return "+" + digits
    if style == "00":
        return "00" + digits
    if style == "international":
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if style == "spaced":
        return " ".join(digits[i : i + 3] for i in range(0, len(digits), 3))
    return digits


def _not_blank(text: str) -> bool:
    return bool(text.strip())


# A "token" (appkey, template name): no whitespace by Python's definition, which covers the regex engine's \s.
token_char = unicode_char.filter(lambda c: not c.isspace())


def non_blank_text(max_size: int) -> st.SearchStrategy[str]:
    return st.one_of(
        texts(unicode_char, min_size=1, max_size=min(max_size, 40)),
        long_text(unicode_char, max_size).filter(lambda s: len(s) >= 1),
    ).filter(_not_blank)


http_links = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["example.com", "cdn.example.org:8443", "127.0.0.1", "xn--fsq.example"]),
    texts(st.characters(codec="ascii", exclude_categories=["Cc", "Zs"]), max_size=60).map(
        lambda s: s.replace("#", "").replace("?", "").replace("[", "").replace("]", "")
    ),
)


def text_parameter(max_size: int) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": st.just("text"), "text": non_blank_text(max_size)})


@st.composite
def components(draw: st.DrawFn, *, big: bool = False) -> list[dict[str, Any]]:
    """A consistent component list: at most one header and one body, buttons with distinct indexes, any order."""
    chosen: list[dict[str, Any]] = []
    if draw(st.booleans()):
        link = draw(http_links)
        chosen.append({"type": "header", "parameters": [{"type": "image", "image": {"link": link}}]})
    if draw(st.booleans()) or big:
        count = draw(st.integers(1, MAX_BODY_PARAMETERS if big else 5))
        params = draw(st.lists(text_parameter(MAX_TEXT_PARAMETER), min_size=count, max_size=count))
        chosen.append({"type": "body", "parameters": params})
    indexes = draw(st.lists(st.integers(0, MAX_BUTTON_INDEX), unique=True, max_size=3))
    for index in indexes:
        if draw(st.booleans()):
            sub_type = draw(st.sampled_from(["URL", "url", "Url"]))
            param = draw(text_parameter(MAX_URL_TEXT_PARAMETER))
        else:
            sub_type = draw(st.sampled_from(["COPY_CODE", "copy_code"]))
            param = {"type": "coupon_code", "coupon_code": draw(non_blank_text(MAX_COUPON_CODE))}
        chosen.append({"type": "button", "sub_type": sub_type, "index": index, "parameters": [param]})
    return draw(st.permutations(chosen))


@st.composite
def valid_messages(draw: st.DrawFn, *, big: bool = False) -> dict[str, Any]:
    """A message the page allows; optional fields present or not (the deployment's defaults fill them in)."""
    template: dict[str, Any] = {
        "name": draw(st.text(token_char, min_size=1, max_size=30)),
        "language": {"code": draw(st.sampled_from(sorted(TEMPLATE_LANGUAGES)))},
    }
    if draw(st.booleans()):
        template["language"]["policy"] = "deterministic"
    comps = draw(components(big=big))
    if comps or draw(st.booleans()):
        template["components"] = comps
    optional: dict[str, st.SearchStrategy[Any]] = {
        "tenant_id": st.integers(1, 2**63 - 1),
        "appkey": st.text(token_char, min_size=1, max_size=MAX_APPKEY),
        "business_phone": phone_spellings(),
        "messaging_product": st.just("whatsapp"),
        "recipient_type": st.just("individual"),
        "type": st.just("template"),
        "idempotency_key": texts(unicode_char, min_size=1, max_size=MAX_IDEMPOTENCY_KEY),
    }
    message: dict[str, Any] = {"to": draw(phone_spellings()), "template": template}
    for name, strategy in optional.items():
        if draw(st.booleans()):
            message[name] = draw(strategy)
    # Field order is the caller's business: shuffle it.
    keys = draw(st.permutations(list(message)))
    return {k: message[k] for k in keys}


def utf8_size(message: dict[str, Any]) -> int:
    return len(dumps(message).encode("utf-8", "surrogatepass"))


big_valid_messages = valid_messages(big=True)


# ---------------------------------------------------------------------------------------------------------------------
# Mutations: one change at one path of a valid message


Path = tuple[str | int, ...]


def paths(value: Any, prefix: Path = ()) -> list[Path]:
    """Every path into a JSON value (the root excluded), depth first."""
    found: list[Path] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((*prefix, key))
            found.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((*prefix, index))
            found.extend(paths(child, (*prefix, index)))
    return found


def _retyped(value: Any) -> list[Any]:
    """The same value under other JSON types, the way a careless client gets types wrong."""
    variants: list[Any] = [None, [value], {"value": value}, str(value), 0, -1, 1.5, True, ""]
    if isinstance(value, str):
        as_number = int(value) if value.isascii() and value.isdigit() else len(value)
        variants += [value.encode("utf-8", "surrogatepass").hex(), as_number]
    if isinstance(value, int) and not isinstance(value, bool):
        variants += [str(value), float(value), value + 2**64, -value]
    return [v for v in variants if v != value or type(v) is not type(value)]


@st.composite
def mutations(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]] | None = None) -> tuple[dict[str, Any], Path]:
    """A valid message with exactly one change at one path; returns it with the path changed."""
    message = copy.deepcopy(draw(base if base is not None else valid_messages()))
    path = draw(st.sampled_from([(), *paths(message)]))
    action = draw(st.sampled_from(["drop", "replace", "retype", "add_key", "duplicate"]))
    if not path:
        if action == "drop":
            return {}, ()
        message[draw(texts(any_char, min_size=1, max_size=12))] = draw(any_json(8))
        return message, ()
    parent: Any = message
    for step in path[:-1]:
        parent = parent[step]
    last = path[-1]
    current = parent[last]
    if action == "drop":
        del parent[last]
    elif action == "replace":
        parent[last] = draw(any_json(8))
    elif action == "retype":
        parent[last] = draw(st.sampled_from(_retyped(current)))
    elif action == "add_key" and isinstance(current, dict):
        current[draw(texts(any_char, min_size=1, max_size=12))] = draw(any_json(4))
    elif action == "duplicate" and isinstance(parent, list):
        parent.insert(last, copy.deepcopy(current))
    else:
        parent[last] = draw(any_json(8))
    return message, path


# ---------------------------------------------------------------------------------------------------------------------
# Raw bodies as they arrive: JSON of any shape, near-JSON, text and bytes of any kind


def json_bodies() -> st.SearchStrategy[str]:
    """Text a client might POST or enqueue: valid messages, mutated ones, any JSON, garbage, all in both encodings."""
    structured = st.one_of(
        valid_messages(),
        mutations().map(lambda m: m[0]),
        any_json(),
    )
    return st.one_of(
        st.builds(dumps, structured, ascii_only=st.booleans()),
        texts(any_char, max_size=200),
        st.sampled_from(["", " ", "{", "}", "[]", "null", "NaN", "1e999", '{"to":', "\ufeff{}", '{"a":1}{']),
    )


SQS_ALLOWED_RANGES: Final = ((0x9, 0x9), (0xA, 0xA), (0xD, 0xD), (0x20, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF))


def sqs_can_carry(text: str) -> bool:
    """SQS's rule for message bodies and string attribute values (#x9 | #xA | #xD | #x20-#xD7FF | ...)."""
    return all(any(lo <= ord(c) <= hi for lo, hi in SQS_ALLOWED_RANGES) for c in text)


def sqs_bodies() -> st.SearchStrategy[str]:
    """Bodies SQS itself would accept from a producer (it refuses the rest, and empty bodies, at SendMessage)."""
    return json_bodies().filter(lambda body: bool(body) and sqs_can_carry(body))
