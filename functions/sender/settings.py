"""The sender's own settings on top of the core's (``nxcloud_wa.config.NXCloudSettings``), read by the same reader.

Read once per container; a missing or malformed variable fails the first invocation with one message naming every
problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from nxcloud_wa.audience import AudienceSettings, FrequencyCap
from nxcloud_wa.config import EnvReader, NXCloudSettings

DEFAULT_IDEMPOTENCY_EXPIRY: Final = 24 * 3600
DEFAULT_MAX_SEND_CONCURRENCY: Final = 10
DEFAULT_MESSAGE_RETENTION_DAYS: Final = 30
DEFAULT_MESSAGES_PER_SECOND: Final = 80
"""WhatsApp's default rate for a business number (its first tier)."""
DEFAULT_RATE_WAIT_SECONDS: Final = 2.0
"""How long an invocation may wait for its number's capacity before putting messages back (docs/throughput.md)."""
DEFAULT_MAX_RECEIVE_COUNT: Final = 5
DEFAULT_CAMPAIGN_RATE_SHARE: Final = 0.8
"""The share of a business number's rate a campaign may use (``CampaignRateShare``): the rest stays free for the
transactional messages sent through the API on the same number (docs/campaigns.md)."""


@dataclass(frozen=True, slots=True)
class SenderSettings:
    core: NXCloudSettings
    dlq_url: str
    send_queue_url: str
    idempotency_table: str
    idempotency_expiry: int = DEFAULT_IDEMPOTENCY_EXPIRY
    max_send_concurrency: int = DEFAULT_MAX_SEND_CONCURRENCY
    messages_table: str = ""
    """The messages table (delivery tracking); empty: sent messages are not recorded and the query API finds none."""
    message_retention_days: int = DEFAULT_MESSAGE_RETENTION_DAYS
    rate_table: str = ""
    """The rate limiter's table; empty: no limiter (messages go at once, NXCloud's throttles are still delayed)."""
    messages_per_second: int = DEFAULT_MESSAGES_PER_SECOND
    rate_wait_seconds: float = DEFAULT_RATE_WAIT_SECONDS
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT
    """The send queue's ``maxReceiveCount``: a put-back copy's failures count against it with its original's."""
    audience: AudienceSettings = field(default_factory=AudienceSettings)
    """The suppression list and its check (``SUPPRESSIONS_TABLE``, ``SUPPRESSION_CHECK``; docs/audience.md)."""
    campaigns_table: str = ""
    """The campaigns table (docs/campaigns.md); empty: campaigns are disabled: the ``/audiences`` and ``/campaigns``
    routes answer 500, and a campaign row is dead-lettered (``campaigns_disabled``)."""
    campaign_bucket: str = ""
    """The bucket of audience files and reports."""
    campaign_tick_queue_url: str = ""
    """The campaign engine's tick queue: a created or resumed campaign's first pass is put there."""
    campaign_rate_share: float = DEFAULT_CAMPAIGN_RATE_SHARE

    @property
    def suppression_check(self) -> bool:
        """Whether messages are checked against the suppression list: ``enforce`` and a list to read."""
        return self.audience.enforced and bool(self.audience.suppressions_table)

    @property
    def frequency_cap(self) -> FrequencyCap | None:
        """The marketing frequency cap (``MARKETING_CAP_PER_RECIPIENT``), when set and the stack has the list's table
        to count in; None: off."""
        return self.audience.marketing_cap if self.audience.suppressions_table else None

    @property
    def screened(self) -> bool:
        """Whether the screen step runs: the suppression check, the frequency cap, or both."""
        return self.suppression_check or self.frequency_cap is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SenderSettings:
        env = EnvReader(environ)
        settings = cls(
            core=NXCloudSettings.read(env),
            dlq_url=env.required("DLQ_URL", "the dead-letter queue's URL"),
            send_queue_url=env.required("SEND_QUEUE_URL", "the send queue's URL"),
            idempotency_table=env.required("IDEMPOTENCY_TABLE", "the DynamoDB idempotency table's name"),
            idempotency_expiry=env.positive_int("IDEMPOTENCY_EXPIRY_SECONDS", DEFAULT_IDEMPOTENCY_EXPIRY),
            max_send_concurrency=env.positive_int("MAX_SEND_CONCURRENCY", DEFAULT_MAX_SEND_CONCURRENCY),
            messages_table=env.text("MESSAGES_TABLE"),
            message_retention_days=env.positive_int("MESSAGE_RETENTION_DAYS", DEFAULT_MESSAGE_RETENTION_DAYS),
            rate_table=env.text("RATE_LIMIT_TABLE"),
            messages_per_second=env.positive_int("MESSAGES_PER_SECOND", DEFAULT_MESSAGES_PER_SECOND),
            rate_wait_seconds=env.positive_float("RATE_WAIT_SECONDS", DEFAULT_RATE_WAIT_SECONDS),
            max_receive_count=env.positive_int("MAX_RECEIVE_COUNT", DEFAULT_MAX_RECEIVE_COUNT),
            audience=AudienceSettings.read(env),
            campaigns_table=env.text("CAMPAIGNS_TABLE"),
            campaign_bucket=env.text("CAMPAIGN_BUCKET"),
            campaign_tick_queue_url=env.text("CAMPAIGN_TICK_QUEUE_URL"),
            campaign_rate_share=env.positive_float("CAMPAIGN_RATE_SHARE", DEFAULT_CAMPAIGN_RATE_SHARE),
        )
        if settings.campaign_rate_share > 1:
            env.problems.append("CAMPAIGN_RATE_SHARE must be at most 1 (a share of the number's rate)")
        env.check()
        return settings
