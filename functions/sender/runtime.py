"""What one Lambda container builds once and reuses across invocations: settings, clients, pools.

Built on the first invocation rather than at import, so a configuration error is reported as a clear error for that
invocation (and import stays cheap for the cold-start budget). :func:`reset` exists for tests and local tools that
change the environment between runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from campaign_rows import CampaignRows

from delivery import Delivery, Pacing
from idempotency import IdempotencyStore
from nxcloud_wa.campaigns_table import CampaignStore
from nxcloud_wa.catalogue import TemplateCatalogue
from nxcloud_wa.config import TemplateCheckMode, UnknownOutcomePolicy
from nxcloud_wa.sender import Sender
from nxcloud_wa.suppressions import SuppressionStore
from nxcloud_wa.template_client import TemplateClient
from nxcloud_wa.timeline import Timeline
from rate_limiter import RateLimiter
from screen import Screen
from settings import SenderSettings
from template_gate import TemplateGate


@dataclass(slots=True)
class Runtime:
    settings: SenderSettings
    sender: Sender
    delivery: Delivery
    sqs: LazyClient
    executor: ThreadPoolExecutor
    timeline: Timeline | None = None
    catalogue: TemplateCatalogue | None = None
    """The account's templates, kept for ``TEMPLATE_CACHE_SECONDS``; None when neither the template check nor the
    screen (the suppression check, the frequency cap) is on (the screen reads the templates' categories from it)."""
    suppressions: SuppressionStore | None = None
    """The suppression list (``SUPPRESSIONS_TABLE``; None without one): the check before each send and the
    ``/suppressions`` routes share it."""
    campaigns: CampaignStore | None = None
    """The campaigns table (``CAMPAIGNS_TABLE``; None without one), for the ``/campaigns`` routes."""
    campaign_catalogue: TemplateCatalogue | None = None
    """The catalogue a campaign's columns are checked against: ``catalogue`` when there is one, else one of its own
    (a campaign is always checked, whatever ``TEMPLATE_CHECK`` says: its rows are built from the template)."""
    s3: LazyClient | None = None
    """The campaign bucket's client (presigned uploads, the audience file's header), created on first use."""


_lock = threading.Lock()
_runtime: Runtime | None = None


def get() -> Runtime:
    """The container's runtime, built on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = _build(SenderSettings.from_env())
        return _runtime


def current() -> Runtime | None:
    """The container's runtime if it was built, without building it (the SnapStart restore hook)."""
    with _lock:
        return _runtime


def reset() -> None:
    """Forget the runtime (tests, local tools): the next :func:`get` reads the environment again."""
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.executor.shutdown(wait=False)
        _runtime = None


def _build(settings: SenderSettings) -> Runtime:
    import boto3
    from botocore.config import Config

    pool = settings.max_send_concurrency + 2
    aws_config = Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=pool
    )
    session = boto3.session.Session()
    _share_session_with_parameters(session)
    sender = Sender(settings.core)
    policy = settings.core.unknown_outcome_policy
    # No client-side parameter validation: the store and the limiter build every request themselves, in the one shape
    # DynamoDB takes (tests/unit/test_idempotency.py and test_rate_limiter.py run each against moto), and botocore's
    # walk over ten typed items per request was about a tenth of the CPU of a warm batch. DynamoDB still validates
    # every request it receives.
    writer = session.client("dynamodb", config=aws_config.merge(Config(parameter_validation=False)))
    store = IdempotencyStore(
        writer,
        settings.idempotency_table,
        expiry_seconds=settings.idempotency_expiry,
        take_over_interrupted=policy is UnknownOutcomePolicy.RETRY,
    )
    # Built on first use: a batch that is all sent writes no dead letter, and an SQS client is ~10 ms of CPU at
    # cold start (make bench).
    sqs = LazyClient(lambda: session.client("sqs", config=aws_config))
    executor = ThreadPoolExecutor(max_workers=settings.max_send_concurrency, thread_name_prefix="send")
    # The timeline's own reads (GET /messages/{id}) go through a client that validates what a caller's id becomes,
    # created on the first such request; the send records it keeps are written by the store's settlement.
    dynamodb = LazyClient(lambda: session.client("dynamodb", config=aws_config))
    timeline = (
        Timeline(
            dynamodb,
            settings.messages_table,
            retention_days=settings.message_retention_days,
            idempotency_table=settings.idempotency_table,
        )
        if settings.messages_table
        else None
    )
    catalogue = _catalogue(settings, sender)
    template_check = settings.core.template_check
    checked = template_check is not TemplateCheckMode.OFF
    gate = TemplateGate(catalogue, template_check) if catalogue is not None and checked else None
    # The claim's client (no client-side validation): SuppressionStore builds its requests in DynamoDB's shape itself
    # (tests/unit/test_suppressions.py runs it against moto), and DynamoDB still validates what it receives.
    table = settings.audience.suppressions_table
    suppressions = SuppressionStore(writer, table) if table else None
    screen = (
        Screen(suppressions, catalogue, check=settings.suppression_check, cap=settings.frequency_cap)
        if suppressions is not None and settings.screened
        else None
    )
    campaigns = CampaignStore(dynamodb, settings.campaigns_table) if settings.campaigns_table else None
    campaign_catalogue = (catalogue or _new_catalogue(settings, sender)) if campaigns is not None else None
    # Presigned uploads must be SigV4 (S3 refuses SigV2 in every region opened since 2014).
    s3 = LazyClient(lambda: session.client("s3", config=aws_config.merge(Config(signature_version="s3v4"))))
    delivery = Delivery(
        sender,
        store,
        sqs=sqs,
        dlq_url=settings.dlq_url,
        executor=executor,
        policy=policy,
        timeline=timeline,
        gate=gate,
        screen=screen,
        pacing=_pacing(settings, writer),
        send_queue_url=settings.send_queue_url,
        max_receive_count=settings.max_receive_count,
        audience=settings.audience,
        catalogue=catalogue,
        campaigns=CampaignRows(CampaignStore(writer, settings.campaigns_table)) if settings.campaigns_table else None,
    )
    return Runtime(
        settings=settings,
        sender=sender,
        delivery=delivery,
        sqs=sqs,
        executor=executor,
        timeline=timeline,
        catalogue=catalogue,
        suppressions=suppressions,
        campaigns=campaigns,
        campaign_catalogue=campaign_catalogue,
        s3=s3 if campaigns is not None else None,
    )


def _catalogue(settings: SenderSettings, sender: Sender) -> TemplateCatalogue | None:
    """The container's template catalogue, fetched through getTemplate over the sender's connection pool: for the
    template check, and for the suppression check's and the frequency cap's categories even when
    ``TEMPLATE_CHECK=off``."""
    if settings.core.template_check is TemplateCheckMode.OFF and not settings.screened:
        return None
    return _new_catalogue(settings, sender)


def _new_catalogue(settings: SenderSettings, sender: Sender) -> TemplateCatalogue:
    core = settings.core
    client = TemplateClient(
        core.template_base_url,
        connect_timeout=core.connect_timeout,
        read_timeout=core.read_timeout,
        pool=sender.client.pool,
    )
    return TemplateCatalogue(client, ttl=core.template_cache_seconds)


def _pacing(settings: SenderSettings, client: Any) -> Pacing | None:
    """The business numbers' rate, when the stack has a limiter table. The wait keeps back one send's worst case
    (connect and read timeouts) and a second for the settlement, so it never runs an invocation into its timeout."""
    if not settings.rate_table:
        return None
    core = settings.core
    return Pacing(
        RateLimiter(client, settings.rate_table),
        messages_per_second=settings.messages_per_second,
        max_wait=settings.rate_wait_seconds,
        reserve=core.connect_timeout + core.read_timeout + 1.0,
    )


class LazyClient:
    """A boto3 client created on its first use, then the same one for the container's life (thread-safe).

    Every attribute (``send_message``, ``meta``...) is the real client's, so callers cannot tell it apart.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def created(self) -> bool:
        return self._client is not None

    def get(self) -> Any:
        """The client, created now if it was not yet."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._factory()
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


def _share_session_with_parameters(session: Any) -> None:
    """Let Powertools' ``get_secret`` use a client from the function's boto3 session instead of its own.

    Left alone, its SecretsProvider builds a second ``boto3.session.Session()``, and every botocore session loads
    the endpoint rules and service index again: about 100 ms of the cold start (``make bench``). The client gets no
    custom config, exactly as the provider would build it, so retries and timeouts are unchanged. A provider already
    in place (and its cached secret) is kept; ``parameters.clear_caches()`` drops it, and the next get falls back to
    Powertools' own.
    """
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.constants import DEFAULT_PROVIDERS

    if "secrets" not in DEFAULT_PROVIDERS:
        DEFAULT_PROVIDERS["secrets"] = SecretsProvider(boto3_client=session.client("secretsmanager"))
