"""Credentials from the secret: parsing, keeping the secret out of repr, and loading through the Parameters cache.

Secrets Manager is moto's in-process mock: nothing leaves the process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.client
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from nxcloud_wa.credentials import Credentials, load_credentials
from nxcloud_wa.exceptions import ConfigurationError
from nxcloud_wa.models import Defaults

SECRET_ID = "test/nxcloud"
ACCESS_SECRET = "Sk-9f8e7d6c5b4a"


def config_error(payload: Any) -> str:
    with pytest.raises(ConfigurationError) as excinfo:
        Credentials.from_secret(payload)
    return str(excinfo.value)


# --------------------------------------------------------------------------------------------------------------------
# Credentials.from_secret
# --------------------------------------------------------------------------------------------------------------------


def test_from_secret_with_only_the_keys() -> None:
    credentials = Credentials.from_secret({"accessKey": "fme2na3kdi3ki", "accessSecret": ACCESS_SECRET})
    assert credentials.access_key == "fme2na3kdi3ki"
    assert credentials.access_secret == ACCESS_SECRET
    assert credentials.defaults == Defaults()


def test_from_secret_with_defaults() -> None:
    credentials = Credentials.from_secret(
        {
            "accessKey": "AK",
            "accessSecret": ACCESS_SECRET,
            "tenant_id": 123,
            "appkey": "8exxxxyos",
            "business_phone": "+852 9123 4867",
            "note": "rotated 2025-03",  # other keys are the secret owner's business
        }
    )
    assert credentials.defaults == Defaults(tenant_id=123, appkey="8exxxxyos", business_phone="85291234867")


def test_tenant_id_written_as_text_is_accepted() -> None:
    """The console's key/value editor stores every value as a string."""
    payload = {"accessKey": "AK", "accessSecret": ACCESS_SECRET, "tenant_id": "123"}
    assert Credentials.from_secret(payload).defaults.tenant_id == 123


@pytest.mark.parametrize(
    ("payload", "named", "not_named"),
    [
        ({}, ["accessKey", "accessSecret"], []),
        ({"accessKey": "AK"}, ["accessSecret"], ["accessKey"]),
        ({"accessSecret": ACCESS_SECRET}, ["accessKey"], ["accessSecret"]),
        ({"accessKey": "", "accessSecret": ACCESS_SECRET}, ["accessKey"], ["accessSecret"]),
        ({"accessKey": 12345, "accessSecret": ACCESS_SECRET}, ["accessKey"], ["accessSecret"]),
        ({"accessKey": "AK", "accessSecret": None}, ["accessSecret"], ["accessKey"]),
        ({"access_key": "AK", "access_secret": ACCESS_SECRET}, ["accessKey", "accessSecret"], []),
    ],
)
def test_missing_keys_are_named(payload: dict[str, Any], named: list[str], not_named: list[str]) -> None:
    message = config_error(payload)
    for name in named:
        assert name in message
    for name in not_named:
        assert name not in message
    assert ACCESS_SECRET not in message


@pytest.mark.parametrize("payload", [None, [], ["AK", ACCESS_SECRET], "AK:" + ACCESS_SECRET, 42, True])
def test_secret_that_is_not_an_object(payload: Any) -> None:
    message = config_error(payload)
    assert "JSON object" in message
    assert ACCESS_SECRET not in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenant_id", 0),
        ("tenant_id", -1),
        ("tenant_id", "tenant-1"),
        ("tenant_id", 1.5),
        ("appkey", "has space"),
        ("appkey", ""),
        ("business_phone", "8612345"),
        ("business_phone", "not a number"),
    ],
)
def test_invalid_default_is_named_not_shown(field: str, value: Any) -> None:
    message = config_error({"accessKey": "AK", "accessSecret": ACCESS_SECRET, field: value})
    assert field in message
    assert "invalid default" in message
    assert ACCESS_SECRET not in message
    if isinstance(value, str) and value:
        assert value not in message


def test_repr_and_str_do_not_contain_the_secret() -> None:
    credentials = Credentials.from_secret({"accessKey": "AK-visible", "accessSecret": ACCESS_SECRET, "tenant_id": 5})
    for rendered in (repr(credentials), str(credentials), f"{credentials}", f"{credentials!r}", repr([credentials])):
        assert ACCESS_SECRET not in rendered
        assert "AK-visible" in rendered  # repr is still useful


def test_credentials_are_immutable() -> None:
    credentials = Credentials("AK", ACCESS_SECRET)
    with pytest.raises(AttributeError):
        credentials.access_secret = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------------------------
# load_credentials against moto
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def secretsmanager(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto's Secrets Manager, with Powertools' cache (and its boto3 client) dropped before and after."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    parameters.clear_caches()


@pytest.fixture
def get_secret_value_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The SecretId of every GetSecretValue call any boto3 client makes (Powertools' own client included)."""
    calls: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def spy(self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
        if operation_name == "GetSecretValue":
            calls.append(api_params["SecretId"])
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", spy)
    return calls


def put_secret(client: Any, payload: str) -> None:
    try:
        client.put_secret_value(SecretId=SECRET_ID, SecretString=payload)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=SECRET_ID, SecretString=payload)


def test_load_credentials_parses_the_secret(secretsmanager: Any) -> None:
    put_secret(
        secretsmanager,
        json.dumps({"accessKey": "AK1", "accessSecret": ACCESS_SECRET, "tenant_id": 7, "appkey": "pem28kje"}),
    )
    credentials = load_credentials(SECRET_ID, max_age=300)
    assert credentials.access_key == "AK1"
    assert credentials.access_secret == ACCESS_SECRET
    assert credentials.defaults == Defaults(tenant_id=7, appkey="pem28kje")


def test_second_load_is_served_from_the_cache(secretsmanager: Any, get_secret_value_calls: list[str]) -> None:
    put_secret(secretsmanager, json.dumps({"accessKey": "AK1", "accessSecret": "old-secret"}))

    first = load_credentials(SECRET_ID, max_age=300)
    put_secret(secretsmanager, json.dumps({"accessKey": "AK2", "accessSecret": "new-secret"}))  # rotation
    second = load_credentials(SECRET_ID, max_age=300)

    assert get_secret_value_calls == [SECRET_ID]  # one call for two loads
    assert (first.access_key, first.access_secret) == ("AK1", "old-secret")
    assert (second.access_key, second.access_secret) == ("AK1", "old-secret")  # the cached value, within max_age


def test_refresh_bypasses_the_cache_and_updates_it(secretsmanager: Any, get_secret_value_calls: list[str]) -> None:
    put_secret(secretsmanager, json.dumps({"accessKey": "AK1", "accessSecret": "old-secret"}))
    load_credentials(SECRET_ID, max_age=300)
    put_secret(secretsmanager, json.dumps({"accessKey": "AK2", "accessSecret": "new-secret"}))

    refreshed = load_credentials(SECRET_ID, max_age=300, refresh=True)
    after = load_credentials(SECRET_ID, max_age=300)

    assert (refreshed.access_key, refreshed.access_secret) == ("AK2", "new-secret")
    assert (after.access_key, after.access_secret) == ("AK2", "new-secret")
    assert get_secret_value_calls == [SECRET_ID, SECRET_ID]  # the load after the refresh is cached again


def test_non_json_secret_is_a_configuration_error(secretsmanager: Any) -> None:
    put_secret(secretsmanager, "accessKey=AK;accessSecret=" + ACCESS_SECRET)
    with pytest.raises(ConfigurationError) as excinfo:
        load_credentials(SECRET_ID, max_age=300)
    assert "not valid JSON" in str(excinfo.value)
    assert ACCESS_SECRET not in str(excinfo.value)
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__ is True  # the parse error (which may quote the secret) is not chained


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        pytest.param(json.dumps(["AK", ACCESS_SECRET]), "JSON object", id="json-list"),
        pytest.param(json.dumps({"accessKey": "AK"}), "accessSecret", id="json-missing-secret"),
        pytest.param(
            json.dumps({"accessKey": "AK", "accessSecret": ACCESS_SECRET, "tenant_id": 0}),
            "tenant_id",
            id="json-bad-default",
        ),
    ],
)
def test_malformed_secret_is_a_configuration_error(secretsmanager: Any, payload: str, fragment: str) -> None:
    put_secret(secretsmanager, payload)
    with pytest.raises(ConfigurationError) as excinfo:
        load_credentials(SECRET_ID, max_age=300)
    assert fragment in str(excinfo.value)
    assert ACCESS_SECRET not in str(excinfo.value)


def test_whitespace_pasted_around_the_keys_is_dropped() -> None:
    credentials = Credentials.from_secret({"accessKey": " AK\n", "accessSecret": "SK\n"})

    assert (credentials.access_key, credentials.access_secret) == ("AK", "SK")


def test_keys_of_only_whitespace_are_missing() -> None:
    with pytest.raises(ConfigurationError, match="accessSecret"):
        Credentials.from_secret({"accessKey": "AK", "accessSecret": " \n"})


def test_the_secrets_rates_name_numbers_with_a_rate_of_their_own() -> None:
    credentials = Credentials.from_secret(
        {"accessKey": "AK", "accessSecret": "SK", "rates": {"+86 158-0000-0000": 1000, "85291234867": "250"}}
    )

    assert credentials.rates == {"8615800000000": 1000, "85291234867": 250}  # digits, as messages carry them
    assert Credentials.from_secret({"accessKey": "AK", "accessSecret": "SK"}).rates == {}


@pytest.mark.parametrize(
    "rates",
    [
        [1000],
        {"8615800000000": 0},
        {"8615800000000": 1.5},
        {"8615800000000": True},
        {"not a number": 10},
        {"8615800000000": 100_001},
        {"8615800000000": "fast"},
        {"": 10},
    ],
)
def test_a_rate_that_cannot_be_right_is_a_configuration_error(rates: object) -> None:
    with pytest.raises(ConfigurationError, match="rates must map business numbers"):
        Credentials.from_secret({"accessKey": "AK", "accessSecret": "SK", "rates": rates})
