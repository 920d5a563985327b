"""The function's settings: read through the core's reader, every problem named in one message."""

from __future__ import annotations

import pytest

from nxcloud_wa.exceptions import ConfigurationError
from settings import (
    DEFAULT_CAMPAIGN_RATE_SHARE,
    DEFAULT_IDEMPOTENCY_EXPIRY,
    DEFAULT_MAX_SEND_CONCURRENCY,
    SenderSettings,
)

ENV = {
    "NXCLOUD_SECRET_ID": "arn:secret",
    "DLQ_URL": "https://sqs/dlq",
    "SEND_QUEUE_URL": "https://sqs/send",
    "IDEMPOTENCY_TABLE": "table",
}


def test_the_required_values_and_the_defaults() -> None:
    settings = SenderSettings.from_env(ENV)
    assert (settings.dlq_url, settings.send_queue_url, settings.idempotency_table) == (
        "https://sqs/dlq",
        "https://sqs/send",
        "table",
    )
    assert (settings.idempotency_expiry, settings.max_send_concurrency) == (
        DEFAULT_IDEMPOTENCY_EXPIRY,
        DEFAULT_MAX_SEND_CONCURRENCY,
    )
    assert settings.core.secret_id == "arn:secret"


def test_every_missing_or_malformed_value_is_named_in_one_message() -> None:
    env = {"NXCLOUD_READ_TIMEOUT": "soon", "MAX_SEND_CONCURRENCY": "²", "IDEMPOTENCY_EXPIRY_SECONDS": "-1"}
    with pytest.raises(ConfigurationError) as caught:
        SenderSettings.from_env(env)
    message = str(caught.value)
    for name in (*ENV, "NXCLOUD_READ_TIMEOUT", "MAX_SEND_CONCURRENCY", "IDEMPOTENCY_EXPIRY_SECONDS"):
        assert name in message
    assert "soon" not in message  # names, never values


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "²", "١٠", "ten"])
def test_a_count_must_be_a_positive_ascii_integer(value: str) -> None:
    with pytest.raises(ConfigurationError, match="MAX_SEND_CONCURRENCY must be a positive integer"):
        SenderSettings.from_env({**ENV, "MAX_SEND_CONCURRENCY": value})


def test_the_rate_settings_and_their_defaults() -> None:
    settings = SenderSettings.from_env(ENV)
    assert (settings.rate_table, settings.messages_per_second, settings.rate_wait_seconds) == ("", 80, 2.0)
    assert settings.max_receive_count == 5  # the template's MaxReceiveCount default

    tuned = SenderSettings.from_env(
        {
            **ENV,
            "RATE_LIMIT_TABLE": "rate",
            "MESSAGES_PER_SECOND": "1000",
            "RATE_WAIT_SECONDS": "0.5",
            "MAX_RECEIVE_COUNT": "8",
        }
    )
    assert (tuned.rate_table, tuned.messages_per_second, tuned.rate_wait_seconds) == ("rate", 1000, 0.5)
    assert tuned.max_receive_count == 8


@pytest.mark.parametrize(
    ("name", "value"), [("MESSAGES_PER_SECOND", "0"), ("RATE_WAIT_SECONDS", "-1"), ("MAX_RECEIVE_COUNT", "five")]
)
def test_a_rate_setting_that_cannot_be_right_is_named(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        SenderSettings.from_env({**ENV, name: value})


@pytest.mark.parametrize(
    ("audience", "check", "cap", "screened"),
    [
        ({"SUPPRESSIONS_TABLE": "list"}, True, None, True),
        ({"SUPPRESSIONS_TABLE": "list", "MARKETING_CAP_PER_RECIPIENT": "1/24h"}, True, "1/24h", True),
        (
            {"SUPPRESSIONS_TABLE": "list", "SUPPRESSION_CHECK": "off", "MARKETING_CAP_PER_RECIPIENT": "3/7d"},
            False,
            "3/7d",
            True,
        ),
        (
            {"SUPPRESSIONS_TABLE": "list", "SUPPRESSION_CHECK": "off", "MARKETING_CAP_PER_RECIPIENT": "off"},
            False,
            None,
            False,
        ),
        ({"MARKETING_CAP_PER_RECIPIENT": "1/24h"}, False, None, False),  # no table to count in: no cap
    ],
)
def test_the_screen_runs_for_the_suppression_check_the_frequency_cap_or_both(
    audience: dict[str, str], check: bool, cap: str | None, screened: bool
) -> None:
    settings = SenderSettings.from_env(ENV | audience)

    assert settings.suppression_check is check
    assert (str(settings.frequency_cap) if settings.frequency_cap else None) == cap
    assert settings.screened is screened


def test_the_campaign_settings_and_their_defaults() -> None:
    settings = SenderSettings.from_env(ENV)
    assert (settings.campaigns_table, settings.campaign_bucket, settings.campaign_tick_queue_url) == ("", "", "")
    assert settings.campaign_rate_share == DEFAULT_CAMPAIGN_RATE_SHARE == 0.8
    given = SenderSettings.from_env({**ENV, "CAMPAIGNS_TABLE": "c", "CAMPAIGN_RATE_SHARE": "1"})
    assert (given.campaigns_table, given.campaign_rate_share) == ("c", 1.0)


@pytest.mark.parametrize(("value", "problem"), [("1.5", "at most 1"), ("0", "positive"), ("half", "positive")])
def test_the_campaign_rate_share_is_a_share(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"CAMPAIGN_RATE_SHARE must be (a )?{problem}"):
        SenderSettings.from_env({**ENV, "CAMPAIGN_RATE_SHARE": value})
