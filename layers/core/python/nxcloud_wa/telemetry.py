"""The functions' Logger and Metrics (Powertools), built one way for the sender, the webhook and the publisher.

* The service name and the metrics namespace come from ``POWERTOOLS_SERVICE_NAME`` and
  ``POWERTOOLS_METRICS_NAMESPACE`` (template.yaml sets both from one mapping), else from the function's default.
* botocore's loggers are held at INFO: at DEBUG they print whole AWS requests and responses, which here means the
  NXCloud secret (``GetSecretValue``'s ``SecretString``), the bodies of dead letters and of kept callbacks (recipient
  numbers). They would inherit DEBUG from the root logger whenever a function's application log level is DEBUG
  (Lambda's advanced logging controls) or code calls ``logging.basicConfig(level=logging.DEBUG)``. Code that wants
  the wire trace anyway must ask for it by name (``boto3.set_stream_logger("botocore")``); INFO lines only name
  credential sources.
* Powertools warns "No application metrics to publish" on every flush of an invocation that counted nothing (a 409,
  a refused event, a stream batch with no change): silenced.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Final

from aws_lambda_powertools import Logger, Metrics

DEFAULT_NAMESPACE: Final = "NXCloudWhatsApp"

warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
logging.getLogger("botocore").setLevel(logging.INFO)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """One function's Logger and Metrics, and the service and namespace they report under."""

    service: str
    namespace: str
    logger: Logger
    metrics: Metrics

    @classmethod
    def of(cls, default_service: str) -> Telemetry:
        """The function's telemetry: its service name from the environment, else ``default_service``."""
        service = os.environ.get("POWERTOOLS_SERVICE_NAME", default_service)
        namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE)
        return cls(service, namespace, Logger(service=service, utc=True), Metrics(namespace=namespace, service=service))
