"""Phone numbers as NXCloud wants them: digits only, country code first (``8613800000000``).

Callers write numbers the way people do (``+86 138-0000-0000``, ``0086 138 0000 0000``); this module turns them into
digits and rejects what cannot be a number. A number that has the right shape but is not valid for its country
(per Google's libphonenumber metadata, the ``phonenumbers`` package) is rejected too: NXCloud would charge a round
trip and answer 22090 ("非法的号码").
"""

import re
from typing import Final

import phonenumbers

E164_MIN_DIGITS: Final = 7
E164_MAX_DIGITS: Final = 15
_SEPARATORS = re.compile(r"[\s\-.()/]")
_DIGITS = re.compile(r"\d+")


def normalize_phone(raw: str) -> str:
    """Return the number as country code plus national digits, or raise ``ValueError`` saying what is wrong.

    Accepted spellings: optional leading ``+`` or ``00``, and spaces, hyphens, dots, slashes or parentheses between
    digits. A number without a country code cannot be told apart from one with it, so the country code is required.
    """
    compact = _SEPARATORS.sub("", raw)
    if compact.startswith("+"):
        compact = compact[1:]
    elif compact.startswith("00"):
        compact = compact[2:]
    if not _DIGITS.fullmatch(compact):
        raise ValueError("must be a phone number with country code: digits, optionally with +, spaces or hyphens")
    if not E164_MIN_DIGITS <= len(compact) <= E164_MAX_DIGITS:
        raise ValueError(
            f"must have {E164_MIN_DIGITS} to {E164_MAX_DIGITS} digits including the country code, got {len(compact)}"
        )
    try:
        parsed = phonenumbers.parse("+" + compact)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("does not start with a known country code") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("is not a valid number for its country code (check the country code and the digits)")
    # The number the library validated, in ASCII digits: ``+44 (0)7911 ...`` keeps a trunk ``0`` in ``compact`` that
    # the library drops, and ``\d`` also matched non-ASCII digits (full-width ``８６...``) that NXCloud cannot read.
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def mask_phone(number: str) -> str:
    """Mask a number for logs: country code and the last 4 digits stay, the rest become ``*``.

    Works on anything (a raw, unvalidated number included) and never returns more than those digits.
    """
    digits = re.sub(r"\D", "", number)
    if len(digits) <= 6:
        return "*" * len(digits)
    try:
        country = str(phonenumbers.parse("+" + digits).country_code)
    except phonenumbers.NumberParseException:
        country = ""
    return _masked(digits, country)


def mask_valid_phone(number: str) -> str:
    """:func:`mask_phone` of a number :func:`normalize_phone` returned, the same text without parsing it again.

    Such a number is a valid one's country code and national digits, and its country code is what phonenumbers
    itself takes from the front: the first 1, 2 or 3 digits that are a known code. (Parsing it again was a sixth of
    the CPU of each message's log line.) Anything else goes through :func:`mask_phone`.
    """
    if len(number) <= 6 or not number.isascii() or not number.isdecimal():
        return mask_phone(number)
    for length in range(1, 4):
        if int(number[:length]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return _masked(number, number[:length])
    return mask_phone(number)


def _masked(digits: str, country: str) -> str:
    hidden = len(digits) - len(country) - 4
    return f"+{country}{'*' * hidden}{digits[-4:]}" if hidden > 0 else "*" * (len(digits) - 4) + digits[-4:]


_NUMBER_IN_TEXT = re.compile(r"\+\d[\d\s\-]{5,}\d|\d{7,}")


def redact_numbers(text: str) -> str:
    """Mask phone-number-like runs (7+ digits, or ``+`` and digits with separators) in free text for logs.

    NXCloud's error messages can quote a number (22049: ``business_phone={0}``); logs must not carry it whole.
    """
    return _NUMBER_IN_TEXT.sub(lambda match: mask_phone(match.group()), text)
