"""template.yaml's side of the security scan: each checkov suppression is the one `make security` reports, on its
resource, with its reason; and the function is never configured to log whole events."""

from __future__ import annotations

from typing import Any

import pytest

from local_stack.template import load_template

SUPPRESSED = {
    "SenderFunction": {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "SenderLogGroup": {"CKV_AWS_158"},
    "SendQueue": {"CKV_AWS_27"},
    "DeadLetterQueue": {"CKV_AWS_27"},
    "IdempotencyTable": {"CKV_AWS_119"},
    "RateLimitTable": {"CKV_AWS_28", "CKV_AWS_119"},
    "Api": {"CKV_AWS_120"},
    "ApiAccessLogGroup": {"CKV_AWS_158"},
    "AlarmTopic": {"CKV_AWS_26"},
    "MessagesTable": {"CKV_AWS_119"},
    "SuppressionsTable": {"CKV_AWS_119"},
    "CampaignsTable": {"CKV_AWS_119"},
    "CampaignBucket": {"CKV_AWS_18", "CKV_AWS_21", "CKV_AWS_145"},
    "CampaignTickQueue": {"CKV_AWS_27"},
    "CampaignTickDeadLetterQueue": {"CKV_AWS_27"},
    "WebhookFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "WebhookLogGroup": {"CKV_AWS_158"},
    "WebhookAccessLogGroup": {"CKV_AWS_158"},
    "KeptCallbacksQueue": {"CKV_AWS_27"},
    "PublisherFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "PublisherLogGroup": {"CKV_AWS_158"},
    "PublisherFailureQueue": {"CKV_AWS_27"},
    "PlannerFunction": {"CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"},
    "PlannerLogGroup": {"CKV_AWS_158"},
}
"""Every suppression, reviewed: a new one must be added here too, so it cannot slip in unnoticed."""


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    return dict(load_template()["Resources"])


def _skips(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list((resource.get("Metadata") or {}).get("checkov", {}).get("skip", []))


def test_the_suppressions_are_exactly_the_reviewed_ones(resources: dict[str, Any]) -> None:
    found = {name: {s["id"] for s in _skips(r)} for name, r in resources.items() if _skips(r)}
    assert found == SUPPRESSED


def test_every_suppression_says_why(resources: dict[str, Any]) -> None:
    for name, resource in resources.items():
        for skip in _skips(resource):
            assert set(skip) == {"id", "comment"}, (name, skip)
            assert len(skip["comment"].split()) >= 10, f"{name} {skip['id']}: say why it is not fixed"


@pytest.mark.parametrize("function", ["SenderFunction", "WebhookFunction", "PublisherFunction", "PlannerFunction"])
def test_no_function_logs_whole_events(resources: dict[str, Any], function: str) -> None:
    """POWERTOOLS_LOGGER_LOG_EVENT would log every event, message bodies, numbers and the webhook token included;
    POWERTOOLS_DEBUG is a trace switch for Powertools itself. Neither belongs in the deployed configuration."""
    variables = resources[function]["Properties"]["Environment"]["Variables"]
    assert not {"POWERTOOLS_LOGGER_LOG_EVENT", "POWERTOOLS_DEBUG"} & set(variables)
