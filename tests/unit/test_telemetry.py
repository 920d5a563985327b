"""The three functions' Logger and Metrics come from one place (botocore's level: tests/security/test_leaks.py)."""

from __future__ import annotations

import pytest

from nxcloud_wa.telemetry import DEFAULT_NAMESPACE, Telemetry


def test_the_environment_names_the_service_and_namespace_else_the_functions_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    default = Telemetry.of("nxcloud-wa-test")
    assert (default.service, default.namespace, default.logger.service) == (
        "nxcloud-wa-test",
        DEFAULT_NAMESPACE,
        "nxcloud-wa-test",
    )

    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Ns")
    named = Telemetry.of("nxcloud-wa-test")
    assert (named.service, named.namespace, named.metrics.namespace) == ("svc", "Ns", "Ns")


def test_the_three_functions_log_and_count_through_their_telemetry() -> None:
    import observability
    import publisher
    import webhook

    for module in (observability, webhook, publisher):
        assert (module.logger, module.metrics) == (module.TELEMETRY.logger, module.TELEMETRY.metrics)
