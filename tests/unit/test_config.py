"""Deployment settings from the environment, the defaults' precedence, and Sender.body_for."""

from __future__ import annotations

import pytest

from nxcloud_wa.config import (
    DEFAULT_BASE_URL,
    DEFAULT_TEMPLATE_BASE_URL,
    NXCloudSettings,
    TemplateCheckMode,
    UnknownOutcomePolicy,
    merge_defaults,
)
from nxcloud_wa.credentials import Credentials
from nxcloud_wa.exceptions import ConfigurationError
from nxcloud_wa.models import Defaults, InvalidMessageError, parse_message
from nxcloud_wa.sender import Sender

FULL_ENV = {
    "NXCLOUD_SECRET_ID": "prod/nxcloud",
    "NXCLOUD_BASE_URL": "https://sim.example.com/",
    "DEFAULT_TENANT_ID": "42",
    "DEFAULT_APPKEY": "pem28kje",
    "DEFAULT_BUSINESS_PHONE": "+86 185-1234-8399",
    "NXCLOUD_CONNECT_TIMEOUT": "1.5",
    "NXCLOUD_READ_TIMEOUT": "7",
    "NXCLOUD_MAX_ATTEMPTS": "5",
    "SECRET_CACHE_SECONDS": "60",
    "UNKNOWN_OUTCOME_POLICY": "retry",
    "NXCLOUD_TEMPLATE_BASE_URL": "https://templates.example.com/",
    "TEMPLATE_CHECK": "warn",
    "TEMPLATE_CACHE_SECONDS": "120",
}


def config_error(env: dict[str, str]) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        NXCloudSettings.from_env(env)
    return str(excinfo.value)


def test_full_environment() -> None:
    settings = NXCloudSettings.from_env(FULL_ENV)

    assert settings.secret_id == "prod/nxcloud"
    assert settings.base_url == "https://sim.example.com"
    assert settings.defaults == Defaults(tenant_id=42, appkey="pem28kje", business_phone="8618512348399")
    assert settings.defaults.tenant_id == 42
    assert settings.defaults.business_phone == "8618512348399"
    assert settings.connect_timeout == 1.5
    assert settings.read_timeout == 7.0
    assert settings.max_attempts == 5
    assert isinstance(settings.max_attempts, int)
    assert settings.secret_max_age == 60
    assert isinstance(settings.secret_max_age, int)
    assert settings.unknown_outcome_policy is UnknownOutcomePolicy.RETRY
    assert settings.template_base_url == "https://templates.example.com"
    assert settings.template_check is TemplateCheckMode.WARN
    assert settings.template_cache_seconds == 120


def test_only_the_secret_id_gives_the_documented_defaults() -> None:
    settings = NXCloudSettings.from_env({"NXCLOUD_SECRET_ID": "nxcloud"})

    assert settings.base_url == DEFAULT_BASE_URL == "https://api.nxcloud.com"
    assert settings.defaults == Defaults()
    assert (settings.connect_timeout, settings.read_timeout, settings.max_attempts) == (3.0, 10.0, 3)
    assert settings.secret_max_age == 300
    assert settings.unknown_outcome_policy is UnknownOutcomePolicy.DEAD_LETTER
    assert settings.template_base_url == DEFAULT_TEMPLATE_BASE_URL == "https://api2.nxcloud.com"
    assert settings.template_check is TemplateCheckMode.ENFORCE
    assert settings.template_cache_seconds == 600  # 10 minutes


def test_blank_values_count_as_unset() -> None:
    env = dict.fromkeys(FULL_ENV, "  ")
    env["NXCLOUD_SECRET_ID"] = " nxcloud "
    settings = NXCloudSettings.from_env(env)
    assert settings.secret_id == "nxcloud"
    assert settings == NXCloudSettings.from_env({"NXCLOUD_SECRET_ID": "nxcloud"})


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FULL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NXCLOUD_SECRET_ID", "from-os-environ")
    monkeypatch.setenv("DEFAULT_TENANT_ID", "7")
    settings = NXCloudSettings.from_env()
    assert (settings.secret_id, settings.defaults.tenant_id) == ("from-os-environ", 7)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_secret_id_is_named(value: str | None) -> None:
    env = {k: v for k, v in FULL_ENV.items() if k != "NXCLOUD_SECRET_ID"}
    if value is not None:
        env["NXCLOUD_SECRET_ID"] = value
    assert "NXCLOUD_SECRET_ID" in config_error(env)


def test_every_problem_is_named_in_one_message() -> None:
    env = {
        "NXCLOUD_BASE_URL": "api.nxcloud.com",
        "NXCLOUD_CONNECT_TIMEOUT": "soon",
        "NXCLOUD_READ_TIMEOUT": "-1",
        "NXCLOUD_MAX_ATTEMPTS": "2.5",
        "SECRET_CACHE_SECONDS": "0",
        "UNKNOWN_OUTCOME_POLICY": "maybe",
        "DEFAULT_TENANT_ID": "tenant-7",
        "DEFAULT_APPKEY": "pem 28kje",
        "DEFAULT_BUSINESS_PHONE": "86185123",
        "NXCLOUD_TEMPLATE_BASE_URL": "api2.nxcloud.com",
        "TEMPLATE_CHECK": "strict",
        "TEMPLATE_CACHE_SECONDS": "10m",
    }
    message = config_error(env)
    for name in ("NXCLOUD_SECRET_ID", *env):
        assert name in message, name
    for value in ("api.nxcloud.com", "soon", "maybe", "tenant-7", "pem 28kje", "86185123", "strict", "10m"):
        assert value not in message, value


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NXCLOUD_CONNECT_TIMEOUT", "abc"),
        ("NXCLOUD_CONNECT_TIMEOUT", "0"),
        ("NXCLOUD_CONNECT_TIMEOUT", "-3"),
        ("NXCLOUD_CONNECT_TIMEOUT", "nan"),
        ("NXCLOUD_READ_TIMEOUT", "inf"),
        ("NXCLOUD_READ_TIMEOUT", "-inf"),
        ("NXCLOUD_READ_TIMEOUT", "10s"),
        ("NXCLOUD_MAX_ATTEMPTS", "2.5"),
        ("NXCLOUD_MAX_ATTEMPTS", "0"),
        ("NXCLOUD_MAX_ATTEMPTS", "three"),
        ("SECRET_CACHE_SECONDS", "-300"),
        ("SECRET_CACHE_SECONDS", "5m"),
    ],
)
def test_bad_numbers_are_named(name: str, value: str) -> None:
    message = config_error({**FULL_ENV, name: value})
    assert name in message
    assert "positive" in message


@pytest.mark.parametrize("value", ["maybe", "dead-letter", "at_least_once", "0"])
def test_bad_unknown_outcome_policy_is_named(value: str) -> None:
    message = config_error({**FULL_ENV, "UNKNOWN_OUTCOME_POLICY": value})
    assert "UNKNOWN_OUTCOME_POLICY" in message
    assert "dead_letter, retry" in message


@pytest.mark.parametrize("value", ["Enforce", "strict", "on", "false"])
def test_bad_template_check_is_named_with_its_choices(value: str) -> None:
    message = config_error({**FULL_ENV, "TEMPLATE_CHECK": value})
    assert "TEMPLATE_CHECK must be one of enforce, warn, off" in message


@pytest.mark.parametrize("value", ["enforce", "warn", "off"])
def test_every_template_check_mode_is_accepted(value: str) -> None:
    assert NXCloudSettings.from_env({**FULL_ENV, "TEMPLATE_CHECK": value}).template_check == value


@pytest.mark.parametrize("value", ["0", "-1", "ten", "1.5"])
def test_template_cache_seconds_must_be_a_positive_integer(value: str) -> None:
    assert "TEMPLATE_CACHE_SECONDS must be a positive integer" in config_error(
        {**FULL_ENV, "TEMPLATE_CACHE_SECONDS": value}
    )


@pytest.mark.parametrize("value", ["dead_letter", "retry"])
def test_both_policies_are_accepted(value: str) -> None:
    assert NXCloudSettings.from_env({**FULL_ENV, "UNKNOWN_OUTCOME_POLICY": value}).unknown_outcome_policy == value


@pytest.mark.parametrize("value", ["abc", "-5", "0", "1.5", "1e3", "²", "0x10"])
def test_default_tenant_id_must_be_a_positive_integer(value: str) -> None:
    message = config_error({**FULL_ENV, "DEFAULT_TENANT_ID": value})
    assert "DEFAULT_TENANT_ID" in message


@pytest.mark.parametrize("value", ["12345", "+86 100 0000 0000", "call me"])
def test_default_business_phone_must_be_a_number(value: str) -> None:
    message = config_error({**FULL_ENV, "DEFAULT_BUSINESS_PHONE": value})
    assert "DEFAULT_BUSINESS_PHONE" in message
    assert value not in message


def test_default_appkey_with_whitespace_is_named() -> None:
    assert "DEFAULT_APPKEY" in config_error({**FULL_ENV, "DEFAULT_APPKEY": "pem 28kje"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://api.nxcloud.com/", "https://api.nxcloud.com"),
        ("https://api.nxcloud.com///", "https://api.nxcloud.com"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://proxy.example.com/nxcloud/", "https://proxy.example.com/nxcloud"),
        (" https://api.nxcloud.com ", "https://api.nxcloud.com"),
    ],
)
def test_base_url_trailing_slash_is_stripped(value: str, expected: str) -> None:
    assert NXCloudSettings.from_env({**FULL_ENV, "NXCLOUD_BASE_URL": value}).base_url == expected


@pytest.mark.parametrize("value", ["api.nxcloud.com", "ftp://api.nxcloud.com", "https:/api.nxcloud.com"])
def test_base_url_must_be_http_or_https(value: str) -> None:
    assert "NXCLOUD_BASE_URL" in config_error({**FULL_ENV, "NXCLOUD_BASE_URL": value})


# --------------------------------------------------------------------------------------------------------------------
# Precedence: message > environment > secret
# --------------------------------------------------------------------------------------------------------------------

ENV_DEFAULTS = Defaults(tenant_id=1, appkey="env_key", business_phone="8618512348399")
SECRET_DEFAULTS = Defaults(tenant_id=2, appkey="secret_key", business_phone="85291234867")


def test_merge_defaults_prefers_the_environment() -> None:
    assert merge_defaults(ENV_DEFAULTS, SECRET_DEFAULTS) == ENV_DEFAULTS
    assert merge_defaults(SECRET_DEFAULTS, ENV_DEFAULTS) == SECRET_DEFAULTS


@pytest.mark.parametrize("field", ["tenant_id", "appkey", "business_phone"])
def test_merge_defaults_falls_back_per_field(field: str) -> None:
    primary = ENV_DEFAULTS.model_copy(update={field: None})
    merged = merge_defaults(primary, SECRET_DEFAULTS)
    for name in ("tenant_id", "appkey", "business_phone"):
        source = SECRET_DEFAULTS if name == field else ENV_DEFAULTS
        assert getattr(merged, name) == getattr(source, name), name


def test_merge_defaults_of_nothing_is_nothing() -> None:
    assert merge_defaults(Defaults(), Defaults()) == Defaults()
    assert merge_defaults(Defaults(), SECRET_DEFAULTS) == SECRET_DEFAULTS


def message(**account: object) -> dict[str, object]:
    return {
        **account,
        "to": "8613612349759",
        "template": {"name": "order_update", "language": {"code": "zh_CN"}},
    }


def sender_with(env_defaults: Defaults) -> Sender:
    return Sender(NXCloudSettings(secret_id="nxcloud", defaults=env_defaults))


def test_body_for_message_over_environment_over_secret() -> None:
    credentials = Credentials("AK", "SK", SECRET_DEFAULTS)
    env_only_appkey = Defaults(appkey="env_key")

    body = sender_with(env_only_appkey).body_for(parse_message(message(tenant_id=9)), credentials)

    assert body["tenant_id"] == 9  # the message's
    assert body["appkey"] == "env_key"  # the environment's, over the secret's
    assert body["business_phone"] == "85291234867"  # only the secret has one
    assert list(body)[:3] == ["tenant_id", "appkey", "business_phone"]


def test_body_for_with_every_source_setting_every_field() -> None:
    credentials = Credentials("AK", "SK", SECRET_DEFAULTS)
    sender = sender_with(ENV_DEFAULTS)
    request = parse_message(message(tenant_id=9, appkey="msg_key", business_phone="+44 7911 123456"))

    body = sender.body_for(request, credentials)
    assert (body["tenant_id"], body["appkey"], body["business_phone"]) == (9, "msg_key", "447911123456")

    body = sender.body_for(parse_message(message()), credentials)
    assert (body["tenant_id"], body["appkey"], body["business_phone"]) == (1, "env_key", "8618512348399")

    body = sender_with(Defaults()).body_for(parse_message(message()), credentials)
    assert (body["tenant_id"], body["appkey"], body["business_phone"]) == (2, "secret_key", "85291234867")


def test_body_for_without_any_source_names_the_missing_fields() -> None:
    with pytest.raises(InvalidMessageError) as excinfo:
        sender_with(Defaults(appkey="env_key")).body_for(parse_message(message()), Credentials("AK", "SK"))
    assert sorted(e["loc"][0] for e in excinfo.value.errors) == ["business_phone", "tenant_id"]


def test_body_for_never_puts_credentials_in_the_body() -> None:
    credentials = Credentials("AK-visible", "SK-hidden", SECRET_DEFAULTS)
    body = sender_with(ENV_DEFAULTS).body_for(parse_message(message()), credentials)
    assert "AK-visible" not in str(body)
    assert "SK-hidden" not in str(body)
