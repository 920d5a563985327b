"""Phone numbers: human spellings normalised to country code + digits, non-numbers rejected, masking for logs."""

from __future__ import annotations

import random
import re

import phonenumbers
import pytest

from nxcloud_wa.phone import E164_MAX_DIGITS, E164_MIN_DIGITS, mask_phone, normalize_phone


def is_valid(digits: str) -> bool:
    return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits))


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        pytest.param("+86 138-0000-0000", "8613800000000", id="plus-spaces-hyphens"),
        pytest.param("0086 13800000000", "8613800000000", id="double-zero-prefix"),
        pytest.param("(+44) 7911 123456", "447911123456", id="parenthesised-country-code"),
        pytest.param("+1 (415) 555-0123", "14155550123", id="us-area-code-in-parentheses"),
        pytest.param("8613800000000", "8613800000000", id="already-normal"),
        pytest.param("86 138 0000 0000", "8613800000000", id="no-plus"),
        pytest.param("+852 9123.4867", "85291234867", id="dots"),
        pytest.param("+49 30/12345678", "493012345678", id="slash"),
        pytest.param("+7 912 345-67-89", "79123456789", id="russia"),
        pytest.param(" +971 50 123 4567 ", "971501234567", id="surrounding-spaces"),
        pytest.param("+39 06 1234 5678", "390612345678", id="italian-leading-zero-kept"),
        # A trunk prefix written after the country code is not part of the international number.
        pytest.param("+44 (0)7911 123456", "447911123456", id="trunk-zero-in-parentheses"),
        pytest.param("+44 07911 123456", "447911123456", id="trunk-zero"),
        # Full-width digits, as a Chinese input method types them, become ASCII digits.
        pytest.param("+８６ １３８ ００００ ００００", "8613800000000", id="full-width-digits"),
        pytest.param("+86\u3000138\u30000000\u30000000", "8613800000000", id="ideographic-spaces"),
    ],
)
def test_human_spellings_are_normalised_to_digits_with_country_code(spelling: str, expected: str) -> None:
    result = normalize_phone(spelling)
    assert result == expected
    assert re.fullmatch(r"[0-9]{7,15}", result)
    assert is_valid(result)


@pytest.mark.parametrize(
    ("spelling", "fragment"),
    [
        pytest.param("+86 138O0000000", "digits", id="letter-o-for-zero"),
        pytest.param("86138abcd0000", "digits", id="letters"),
        pytest.param("+86 138 0000 0000 ext 12", "digits", id="extension"),
        pytest.param("", "digits", id="empty"),
        pytest.param("+", "digits", id="plus-only"),
        pytest.param("++8613800000000", "digits", id="double-plus"),
        pytest.param("+86_13800000000", "digits", id="underscore"),
        pytest.param("86-138-0000-0000#", "digits", id="hash"),
        pytest.param("123456", "7 to 15 digits", id="6-digits"),
        pytest.param("+1 234 56", "7 to 15 digits", id="6-digits-spelled"),
        pytest.param("1234567890123456", "got 16", id="16-digits"),
        pytest.param("+86 138 0000 0000 0000", "got 17", id="17-digits"),
        pytest.param("+999 1234 5678", "country code", id="unassigned-country-code"),
        pytest.param("0 13800000000", "country code", id="leading-zero-no-country-code"),
        pytest.param("+86 100 0000 0000", "not a valid number", id="invalid-for-china"),
        pytest.param("+86 12345", "not a valid number", id="too-short-for-china"),
        pytest.param("+1 555 0000", "not a valid number", id="too-short-for-nanp"),
        pytest.param("+852 1234 5678", "not a valid number", id="invalid-for-hong-kong"),
        pytest.param("13800000000", "not a valid number", id="national-number-without-country-code"),
    ],
)
def test_what_cannot_be_a_number_is_rejected(spelling: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        normalize_phone(spelling)


def test_length_bounds_are_e164s() -> None:
    assert (E164_MIN_DIGITS, E164_MAX_DIGITS) == (7, 15)


def test_rejection_message_does_not_repeat_the_number() -> None:
    for spelling in ("+86 100 4567 8912", "+999 4567 8912", "4567891", "86 4567 8912 3456 789"):
        with pytest.raises(ValueError) as excinfo:
            normalize_phone(spelling)
        assert "4567" not in str(excinfo.value)


def test_normalising_is_idempotent() -> None:
    for spelling in ("+86 138-0000-0000", "(+44) 7911 123456", "+44 (0)7911 123456", "+1 (415) 555-0123"):
        once = normalize_phone(spelling)
        assert normalize_phone(once) == once
        assert normalize_phone("+" + once) == once


# --------------------------------------------------------------------------------------------------------------------
# mask_phone
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        pytest.param("8613800001234", "+86*******1234", id="china"),
        pytest.param("+86 138-0000-1234", "+86*******1234", id="china-spelled"),
        pytest.param("14155550123", "+1******0123", id="nanp"),
        pytest.param("85291234867", "+852****4867", id="hong-kong"),
        pytest.param("447911123456", "+44******3456", id="uk"),
    ],
)
def test_mask_keeps_country_code_and_last_four_digits(number: str, expected: str) -> None:
    assert mask_phone(number) == expected


def assert_masked(digits: str, masked: str) -> None:
    """Only the country code (at the front) and the last four digits may be visible, never the digits between."""
    shown = re.sub(r"\D", "", masked)
    country = str(phonenumbers.parse("+" + digits).country_code) if masked.startswith("+") else ""
    assert shown == country + digits[-4:], (digits, masked)
    assert digits.startswith(country)
    middle = digits[len(country) : -4]
    hidden = masked[1 + len(country) : -4] if country else masked[:-4]
    assert hidden == "*" * len(middle), (digits, masked)
    assert middle == "" or digits not in masked


def test_mask_hides_the_middle_digits_of_every_regions_example_numbers() -> None:
    checked = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            digits = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)[1:]
            assert_masked(digits, mask_phone(digits))
            assert_masked(digits, mask_phone("+" + digits))
            checked += 1
    assert checked > 400


def test_mask_hides_the_middle_digits_of_random_numbers() -> None:
    rng = random.Random(20250310)
    for _ in range(3000):
        digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(6, 14)))
        masked = mask_phone(digits)
        shown = re.sub(r"\D", "", masked)
        assert shown.endswith(digits[-4:])
        assert len(shown) <= len(digits) - 1 or len(digits) <= 4
        assert digits.startswith(shown[:-4])  # whatever is shown in front is the country code, a prefix
        assert len(shown) - 4 <= 3  # country codes have at most 3 digits
        assert masked.count("*") == len(digits) - len(shown)


@pytest.mark.parametrize("short", ["", "1", "12345", "123456", "+86 12"])
def test_mask_of_six_digits_or_fewer_shows_nothing(short: str) -> None:
    masked = mask_phone(short)
    assert not re.search(r"\d", masked)
    assert len(masked) == len(re.sub(r"\D", "", short))


@pytest.mark.parametrize(
    "garbage",
    [
        "abc",
        "+",
        "😀😀😀",
        "   ",
        "++--()",
        "1" * 300,
        "9" * 5000,
        "+86 abc 1234 5678 9",
        "0000000000",
        "\x00\x01\x02",
        "８６１３８００００１２３４",
        "tel:+86-138-0000-1234;ext=99",
    ],
)
def test_mask_of_garbage_does_not_raise_and_shows_at_most_four_trailing_digits(garbage: str) -> None:
    masked = mask_phone(garbage)
    assert isinstance(masked, str)
    digits = re.sub(r"\D", "", garbage)
    shown = re.sub(r"\D", "", masked)
    if len(digits) <= 6:
        assert shown == ""
    else:
        assert shown.endswith(digits[-4:])
        assert len(shown) <= 4 + 3


def test_a_validated_number_is_masked_as_mask_phone_masks_it() -> None:
    """``mask_valid_phone`` skips the parse for numbers ``normalize_phone`` returned: same text, for every region's
    example numbers of every type, and for anything else it is handed."""
    from nxcloud_wa.phone import mask_valid_phone

    numbers = set()
    for region in phonenumbers.SUPPORTED_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.add(normalize_phone(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)))
    odd = ["", "123", "8613800000000x", "+86 138 0000 0000", "999123456789", "0" * 20, "１２３４５６７８"]

    assert len(numbers) > 300
    assert [mask_valid_phone(n) for n in sorted(numbers)] == [mask_phone(n) for n in sorted(numbers)]
    assert [mask_valid_phone(n) for n in odd] == [mask_phone(n) for n in odd]
