"""The audience rules (nxcloud_wa.audience), pure: the settings and their errors, what each callback implies, which
entry stops which category, and what happens when the list cannot be read."""

from __future__ import annotations

import itertools

import pytest

from nxcloud_wa.audience import (
    DAY,
    HOUR,
    AddEntry,
    AudienceSettings,
    CapTally,
    FrequencyCap,
    RemoveEntry,
    RetryLater,
    SuppressionCheckMode,
    WhenUnreadable,
    click_action,
    is_marketing,
    normalize_text,
    parse_list,
    status_action,
    suppresses,
    suppression_for,
    text_action,
    when_unreadable,
)
from nxcloud_wa.exceptions import ConfigurationError
from nxcloud_wa.suppressions import OPT_IN_REMOVES, Reason, Scope, Suppression

BUSINESS = "8618512348399"
RECIPIENT = "8613800138000"
KEY = (BUSINESS, RECIPIENT)
NOW = 1_800_000_000.0
DEFAULTS = AudienceSettings()


# --- settings ---------------------------------------------------------------------------------------------------------


def test_the_defaults() -> None:
    settings = AudienceSettings.from_env({})

    assert settings == DEFAULTS
    assert settings.suppressions_table == ""
    assert settings.suppression_check is SuppressionCheckMode.ENFORCE
    assert settings.enforced
    assert settings.opt_out_payloads == {"stop promotions"}
    assert settings.opt_in_payloads == frozenset()
    assert settings.opt_out_keywords == {"stop", "unsubscribe", "退订"}
    assert settings.opt_in_keywords == {"start"}
    assert settings.undeliverable_days == 30
    assert settings.marketing_cap is None
    assert settings.marketing_limit_retry_hours == 24
    assert settings.marketing_limit_retries == 1


def test_every_setting_is_read() -> None:
    settings = AudienceSettings.from_env(
        {
            "SUPPRESSIONS_TABLE": " stack-suppressions ",
            "SUPPRESSION_CHECK": "off",
            "OPT_OUT_PAYLOADS": "Stop promotions, UNSUB_BTN",
            "OPT_IN_PAYLOADS": "Resume",
            "OPT_OUT_KEYWORDS": "stop,arrêt",
            "OPT_IN_KEYWORDS": "start, subscribe",
            "UNDELIVERABLE_SUPPRESSION_DAYS": "7",
            "MARKETING_CAP_PER_RECIPIENT": "2/7d",
            "MARKETING_LIMIT_RETRY_HOURS": "0",
            "MARKETING_LIMIT_RETRIES": "3",
        }
    )

    assert settings == AudienceSettings(
        suppressions_table="stack-suppressions",
        suppression_check=SuppressionCheckMode.OFF,
        opt_out_payloads=frozenset({"stop promotions", "unsub_btn"}),
        opt_in_payloads=frozenset({"resume"}),
        opt_out_keywords=frozenset({"stop", "arrêt"}),
        opt_in_keywords=frozenset({"start", "subscribe"}),
        undeliverable_days=7,
        marketing_cap=FrequencyCap(2, 7 * DAY),
        marketing_limit_retry_hours=0,
        marketing_limit_retries=3,
    )
    assert not settings.enforced


def test_every_malformed_setting_is_named_in_one_error_without_its_value() -> None:
    with pytest.raises(ConfigurationError) as caught:
        AudienceSettings.from_env(
            {
                "SUPPRESSION_CHECK": "warn",
                "UNDELIVERABLE_SUPPRESSION_DAYS": "0",
                "MARKETING_CAP_PER_RECIPIENT": "once a day",
                "MARKETING_LIMIT_RETRY_HOURS": "-1",
                "MARKETING_LIMIT_RETRIES": "0",
            }
        )

    message = str(caught.value)
    assert "SUPPRESSION_CHECK must be one of enforce, off" in message
    assert "UNDELIVERABLE_SUPPRESSION_DAYS must be a positive integer" in message
    assert "MARKETING_CAP_PER_RECIPIENT must be N/<hours>h or N/<days>d, e.g. 1/24h, or off" in message
    assert "MARKETING_LIMIT_RETRY_HOURS must be an integer from 0" in message
    assert "MARKETING_LIMIT_RETRIES must be a positive integer" in message
    assert "once a day" not in message and "warn" not in message


def test_opt_outs_cannot_be_cleared_but_opt_ins_can() -> None:
    """An empty opt-out list would silently ignore every opt-out: it means the default. An empty opt-in list is a
    choice (no keyword re-subscribes anyone): it means none."""
    settings = AudienceSettings.from_env(
        {"OPT_OUT_PAYLOADS": "", "OPT_OUT_KEYWORDS": " ", "OPT_IN_PAYLOADS": "", "OPT_IN_KEYWORDS": ""}
    )

    assert settings.opt_out_payloads == DEFAULTS.opt_out_payloads
    assert settings.opt_out_keywords == DEFAULTS.opt_out_keywords
    assert settings.opt_in_payloads == settings.opt_in_keywords == frozenset()
    assert text_action(settings, "START") is None
    assert AudienceSettings.from_env({}).opt_in_keywords == {"start"}  # unset: the default


@pytest.mark.parametrize(
    ("raw", "cap"),
    [
        ("", None),
        ("off", None),
        (" OFF ", None),
        ("1/24h", FrequencyCap(1, 24 * HOUR)),
        ("3/7d", FrequencyCap(3, 7 * DAY)),
        ("10/1H", FrequencyCap(10, HOUR)),
        (" 2/2d ", FrequencyCap(2, 2 * DAY)),
    ],
)
def test_the_frequency_cap_is_n_per_hours_or_days(raw: str, cap: FrequencyCap | None) -> None:
    assert FrequencyCap.parse(raw) == cap


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("1/24", "must be N/<hours>h or N/<days>d"),
        ("24h", "must be N/<hours>h or N/<days>d"),
        ("1/24m", "must be N/<hours>h or N/<days>d"),
        ("1.5/24h", "must be N/<hours>h or N/<days>d"),
        ("-1/24h", "must be N/<hours>h or N/<days>d"),
        ("1 / 24h", "must be N/<hours>h or N/<days>d"),
        ("１/24h", "must be N/<hours>h or N/<days>d"),  # full-width digit: int() would take it, the pattern does not
        ("on", "must be N/<hours>h or N/<days>d"),
        ("0/24h", "at least 1"),
        ("1/0h", "at least 1"),
    ],
)
def test_a_malformed_frequency_cap_says_what_is_expected(raw: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        FrequencyCap.parse(raw)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("  Stop promotions  ", "stop promotions"),
        ("STOP\tPROMOTIONS", "stop promotions"),
        ("Stop\u00a0 promotions", "stop promotions"),  # a no-break space is whitespace after NFKC
        ("ＳＴＯＰ", "stop"),  # full-width letters
        ("Straße", "strasse"),  # case folding, not only lower()
        ("退订", "退订"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_texts_are_compared_normalised(text: str, normal: str) -> None:
    assert normalize_text(text) == normal


def test_a_list_setting_drops_empty_items() -> None:
    assert parse_list(" STOP, ,unsubscribe,,退订 ,") == {"stop", "unsubscribe", "退订"}
    assert parse_list("") == frozenset()
    assert parse_list(" , ") == frozenset()


# --- what a button click implies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        ("Stop promotions", "Stop promotions"),  # Meta's opt-out button: the label is the payload
        ("stop promotions", ""),
        (" STOP PROMOTIONS ", ""),
        ("STOP", "Stop promotions"),  # NXCloud's page: payload STOP, text Stop promotions
        ("", "Stop promotions"),
    ],
)
def test_an_opt_out_click_adds_a_marketing_opt_out(payload: str, text: str) -> None:
    action = click_action(DEFAULTS, payload, text)

    assert action == AddEntry(Scope.MARKETING, Reason.OPTED_OUT, payload or text)
    assert isinstance(action, AddEntry)
    assert action.entry(KEY, NOW) == Suppression(
        BUSINESS, RECIPIENT, Scope.MARKETING, Reason.OPTED_OUT, payload or text, "2027-01-15T08:00:00.000+00:00"
    )


@pytest.mark.parametrize(("payload", "text"), [("confirm", "Confirm"), ("", ""), ("Stop", "Stop"), ("promotions", "")])
def test_other_clicks_imply_nothing(payload: str, text: str) -> None:
    assert click_action(DEFAULTS, payload, text) is None


def test_an_opt_in_click_removes_an_opt_out_only() -> None:
    settings = AudienceSettings(opt_in_payloads=parse_list("Resume promotions"))

    action = click_action(settings, "resume promotions", "Resume promotions")

    assert action == RemoveEntry("resume promotions", OPT_IN_REMOVES)
    assert click_action(DEFAULTS, "Resume promotions") is None  # no opt-in payload by default


def test_a_payload_in_both_lists_opts_out() -> None:
    settings = AudienceSettings(opt_in_payloads=parse_list("Stop promotions"))

    assert isinstance(click_action(settings, "Stop promotions"), AddEntry)


def test_the_payloads_are_the_settings() -> None:
    settings = AudienceSettings(opt_out_payloads=parse_list("UNSUB_BTN"))

    assert click_action(settings, "Stop promotions", "Stop promotions") is None
    assert click_action(settings, "unsub_btn", "No more offers") == AddEntry(
        Scope.MARKETING, Reason.OPTED_OUT, "unsub_btn"
    )


# --- what an inbound text implies -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "keyword"),
    [
        ("STOP", "stop"),
        ("stop", "stop"),
        ("  Stop \n", "stop"),
        ("ＳＴＯＰ", "stop"),
        ("Unsubscribe", "unsubscribe"),
        ("退订", "退订"),
    ],
)
def test_an_opt_out_keyword_adds_a_marketing_opt_out(body: str, keyword: str) -> None:
    assert text_action(DEFAULTS, body) == AddEntry(Scope.MARKETING, Reason.OPTED_OUT, f"keyword:{keyword}")


@pytest.mark.parametrize(
    "body",
    ["don't stop", "STOP!", "stop please", "please unsubscribe me", "请退订", "", "   ", "STOPSTOP", "start now"],
)
def test_a_keyword_must_be_the_whole_text(body: str) -> None:
    assert text_action(DEFAULTS, body) is None


@pytest.mark.parametrize("body", ["START", "start", " Start "])
def test_an_opt_in_keyword_removes_an_opt_out_only(body: str) -> None:
    assert text_action(DEFAULTS, body) == RemoveEntry("keyword:start", OPT_IN_REMOVES)


def test_a_keyword_in_both_lists_opts_out() -> None:
    settings = AudienceSettings(opt_in_keywords=parse_list("stop,start"))

    assert isinstance(text_action(settings, "STOP"), AddEntry)


def test_keywords_are_the_settings() -> None:
    settings = AudienceSettings(opt_out_keywords=parse_list("arrêt"), opt_in_keywords=frozenset())

    assert text_action(settings, "STOP") is None
    assert text_action(settings, "ARRÊT") == AddEntry(Scope.MARKETING, Reason.OPTED_OUT, "keyword:arrêt")
    assert text_action(settings, "START") is None


# --- what a failed status implies -------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [131050, "131050", " 131050 "])
def test_131050_adds_a_permanent_marketing_entry(code: int | str) -> None:
    action = status_action(DEFAULTS, code)

    assert action == AddEntry(Scope.MARKETING, Reason.MARKETING_STOPPED, "131050")
    assert isinstance(action, AddEntry)
    assert action.entry(KEY, NOW).permanent


def test_131026_adds_an_all_entry_that_expires_after_the_days_set() -> None:
    action = status_action(AudienceSettings(undeliverable_days=7), 131026)

    assert action == AddEntry(Scope.ALL, Reason.UNDELIVERABLE, "131026", 7 * DAY)
    assert isinstance(action, AddEntry)
    stored = action.entry(KEY, NOW)
    assert stored.expiration == int(NOW) + 7 * DAY
    assert not stored.expired(NOW + 7 * DAY - 1)
    assert stored.expired(NOW + 7 * DAY)


def test_131026_lasts_30_days_by_default() -> None:
    action = status_action(DEFAULTS, 131026)
    assert isinstance(action, AddEntry)
    assert action.expires_after == 30 * DAY


def test_131049_is_a_retry_not_a_suppression() -> None:
    assert status_action(DEFAULTS, 131049) == RetryLater(24 * HOUR, 1)
    assert status_action(AudienceSettings(marketing_limit_retry_hours=6, marketing_limit_retries=2), "131049") == (
        RetryLater(6 * HOUR, 2)
    )


def test_131049_is_final_when_its_retry_is_off() -> None:
    assert status_action(AudienceSettings(marketing_limit_retry_hours=0), 131049) is None


@pytest.mark.parametrize("code", [None, 470, 131047, 131056, 130429, "", "abc", "１３１０５０", True, "131050.0"])
def test_other_codes_imply_nothing(code: int | str | None) -> None:
    assert status_action(DEFAULTS, code) is None


# --- what suppresses what ---------------------------------------------------------------------------------------------

CATEGORIES = ["MARKETING", "UTILITY", "AUTHENTICATION", None, "", "marketing", "utility", " Authentication ", "OTHER"]
MARKETING_LIKE = {"MARKETING", None, "", "marketing", "OTHER"}


@pytest.mark.parametrize("category", CATEGORIES)
def test_only_utility_and_authentication_are_not_marketing(category: str | None) -> None:
    """An unknown category (None: the catalogue could not say) is marketing: an opt-out is never ignored because
    the category could not be learnt."""
    assert is_marketing(category) is (category in MARKETING_LIKE)


def suppression(scope: Scope) -> Suppression:
    return Suppression(BUSINESS, RECIPIENT, scope, Reason.MANUAL, "api", "2027-01-15T08:00:00.000+00:00")


@pytest.mark.parametrize(("scope", "category"), list(itertools.product(Scope, CATEGORIES)))
def test_marketing_entries_stop_marketing_only_and_all_entries_stop_everything(
    scope: Scope, category: str | None
) -> None:
    expected = scope is Scope.ALL or category in MARKETING_LIKE

    assert suppresses(suppression(scope), category) is expected
    found = {KEY: suppression(scope)}
    assert suppression_for(found, KEY, category) == (suppression(scope) if expected else None)


def test_a_recipient_without_an_entry_is_not_suppressed() -> None:
    found = {KEY: suppression(Scope.ALL)}

    assert suppression_for(found, (BUSINESS, "8613800138001"), "MARKETING") is None
    assert suppression_for(found, ("8618512348400", RECIPIENT), "MARKETING") is None  # another business number
    assert suppression_for({}, KEY, None) is None


# --- when the list cannot be read -------------------------------------------------------------------------------------


@pytest.mark.parametrize("category", CATEGORIES)
def test_fail_open_for_utility_and_authentication_retry_later_for_marketing(category: str | None) -> None:
    expected = WhenUnreadable.RETRY_LATER if category in MARKETING_LIKE else WhenUnreadable.SEND

    assert when_unreadable(category) is expected


# --- the marketing frequency cap --------------------------------------------------------------------------------------

CAP = FrequencyCap(2, DAY, "2/24h")


def test_a_cap_quotes_itself_as_configured() -> None:
    assert str(FrequencyCap.parse("1/24h")) == "1/24h"
    assert str(FrequencyCap.parse(" 3/7D ")) == "3/7d"
    assert str(FrequencyCap(1, DAY)) == "1/24h"  # built without its text: in hours


def test_the_window_is_rolling_and_a_send_one_window_old_has_left_it() -> None:
    now = int(NOW)
    sends = {"a": now - DAY, "b": now - DAY + 1, "c": now - 60}

    assert CAP.recent(sends, NOW) == {"b": now - DAY + 1, "c": now - 60}
    assert CAP.recent(sends, NOW + 1) == {"c": now - 60}
    assert CAP.recent({}, NOW) == {}


def test_only_the_newest_count_sends_are_kept_they_alone_decide_the_cap() -> None:
    now = int(NOW)
    sends = {"a": now - 300, "b": now - 200, "c": now - 100}  # three: two batches raced past a cap of two

    assert CAP.recent(sends, NOW) == {"b": now - 200, "c": now - 100}


def test_what_is_written_is_the_trimmed_count_plus_the_batch_s_sends_and_expires_with_its_newest() -> None:
    now = int(NOW)
    kept = CAP.kept({"a": now - DAY, "b": now - 100}, ["c"], now)  # a has left the window since the read

    assert kept == {"b": now - 100, "c": now}
    assert CAP.expiration(kept) == now + DAY
    assert CAP.kept({"b": now - 100}, ["b"], now) == {"b": now}  # one message sent again: counted once
    assert len(CAP.kept({}, ["x", "y", "z"], now)) == 2  # three of one batch (a race): two are kept


def test_a_batch_admits_up_to_the_cap_counting_its_own_messages_per_pair() -> None:
    other = (BUSINESS, "8613800138001")
    tally = CapTally(CAP, {KEY: {"old": int(NOW) - 100}, other: {"gone": int(NOW) - 2 * DAY}}, NOW)

    assert tally.recent(KEY) == {"old": int(NOW) - 100} and tally.recent(other) == {}
    assert [tally.admit(KEY, tag) for tag in "abc"] == [True, False, False]  # one sent already: one more
    assert [tally.admit(other, tag) for tag in "abc"] == [True, True, False]  # its send has left the window
    assert tally.admit((BUSINESS, "8613800138002"), "a")  # never sent to


def test_a_message_the_count_holds_already_goes_on_and_is_not_counted_again() -> None:
    tally = CapTally(CAP, {KEY: {"a": int(NOW) - 100, "b": int(NOW) - 50}}, NOW)  # at the cap

    assert tally.admit(KEY, "a")  # a redelivery, or an API call repeated with its key: its claim answers it
    assert not tally.admit(KEY, "c")
    fresh = CapTally(CAP, {}, NOW)
    assert [fresh.admit(KEY, tag) for tag in ["x", "x", "x", "y", "z"]] == [True, True, True, True, False]
