"""Send one validated message: fill in defaults, sign and POST it, and refresh rotated credentials once.

This is what the Lambda handler, the local tools and the benchmarks call; it owns no AWS or HTTP details itself.
"""

from __future__ import annotations

from collections.abc import Callable

from .client import NXCloudClient, SendResult
from .config import NXCloudSettings, merge_defaults
from .credentials import Credentials, load_credentials
from .exceptions import AuthError
from .models import Defaults, SendRequest

CredentialsLoader = Callable[..., Credentials]


class Sender:
    """One per process: holds the settings, the HTTP client (and so its connection pool) and the secret's id."""

    def __init__(
        self,
        settings: NXCloudSettings,
        client: NXCloudClient | None = None,
        loader: CredentialsLoader = load_credentials,
    ) -> None:
        self.settings = settings
        self.client = client or NXCloudClient(
            settings.base_url,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_attempts=settings.max_attempts,
        )
        self._loader = loader

    def credentials(self, *, refresh: bool = False) -> Credentials:
        """The current credentials, from the cache unless ``refresh``."""
        return self._loader(self.settings.secret_id, max_age=self.settings.secret_max_age, refresh=refresh)

    def defaults_for(self, credentials: Credentials) -> Defaults:
        """The values a message may leave out: the environment's over the secret's."""
        return merge_defaults(self.settings.defaults, credentials.defaults)

    def body_for(self, request: SendRequest, credentials: Credentials) -> dict[str, object]:
        """The upstream body: message values over environment defaults over the secret's defaults."""
        return request.to_upstream(self.defaults_for(credentials))

    def send(self, request: SendRequest, credentials: Credentials | None = None) -> SendResult:
        """Send; on an auth error, re-read the secret once and try once more with what it now holds."""
        creds = credentials or self.credentials()
        try:
            return self.client.send(self.body_for(request, creds), creds)
        except AuthError:
            fresh = self.credentials(refresh=True)
            return self.client.send(self.body_for(request, fresh), fresh)
