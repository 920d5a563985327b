"""Where the stack's API and queues are: from CloudFormation outputs, the local stack's state file, or flags.

Flags win over what a stack or the state file says, so one value can be overridden without naming the rest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Final

LOCAL_STATE: Final = Path(__file__).resolve().parents[2] / ".local-stack.json"
"""Written by ``make run ARGS=--serve`` while the local stack runs; read by ``nxwa --local``."""


@dataclass(frozen=True, slots=True)
class Targets:
    """The endpoints ``nxwa`` talks to. ``endpoint_url`` is set only for the local stack (moto)."""

    region: str | None = None
    endpoint_url: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    queue_url: str | None = None
    dlq_url: str | None = None
    kept_callbacks_queue_url: str | None = None
    webhook_url: str | None = None
    """The webhook's URL without the token (the stack's ``WebhookUrl`` output)."""
    webhook_token: str | None = None
    secret_id: str | None = None
    """The NXCloud secret's id or ARN (the stack's ``NXCloudSecretArn``): ``nxwa templates`` signs with it."""
    template_base_url: str | None = None
    """getTemplate's base URL (the stack's ``NXCloudTemplateBaseUrl``)."""
    default_appkey: str | None = None
    default_business_phone: str | None = None
    """The stack's ``DefaultAppKey``/``DefaultBusinessPhone``: the account ``nxwa templates`` lists by default."""

    def client(self, service: str) -> Any:
        import boto3

        if self.endpoint_url:
            from local_stack.aws import local_client

            return local_client(service, self.endpoint_url, self.region or "us-east-1")
        return boto3.client(service, region_name=self.region)

    def require(self, *names: str) -> None:
        """Fail with one message naming every missing endpoint and how to give it."""
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            flags = ", ".join("--" + n.replace("_", "-") for n in missing)
            raise SystemExit(f"nxwa: unknown {flags}: give --stack NAME, --local, or the flag(s)")

    def overridden(self, **flags: str | None) -> Targets:
        return replace(self, **{k: v for k, v in flags.items() if v})


def from_state_file(path: Path = LOCAL_STATE) -> Targets:
    """The local stack's endpoints, as ``make run ARGS=--serve`` wrote them."""
    if not path.exists():
        raise SystemExit(f"nxwa: {path.name} not found: start the local stack with `make run ARGS=--serve` first")
    data = json.loads(path.read_text(encoding="utf-8"))
    return Targets(**{f.name: data.get(f.name) for f in fields(Targets)})


def from_stack(stack_name: str, region: str | None = None) -> Targets:
    """A deployed stack's endpoints, from its outputs; the API key's value is looked up by its id."""
    import boto3

    cloudformation = boto3.client("cloudformation", region_name=region)
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue") for p in stacks[0].get("Parameters", [])}
    api_key = None
    if outputs.get("ApiKeyId"):
        apigateway = boto3.client("apigateway", region_name=region)
        api_key = apigateway.get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True).get("value")
    return Targets(
        region=region or cloudformation.meta.region_name,
        api_url=outputs.get("ApiUrl"),
        api_key=api_key,
        queue_url=outputs.get("SendQueueUrl"),
        dlq_url=outputs.get("DeadLetterQueueUrl"),
        kept_callbacks_queue_url=outputs.get("KeptCallbacksQueueUrl"),
        webhook_url=outputs.get("WebhookUrl"),
        webhook_token=_webhook_token(parameters.get("NXCloudSecretArn"), region),
        secret_id=parameters.get("NXCloudSecretArn"),
        template_base_url=parameters.get("NXCloudTemplateBaseUrl"),
        default_appkey=parameters.get("DefaultAppKey") or None,
        default_business_phone=parameters.get("DefaultBusinessPhone") or None,
    )


def _webhook_token(secret_arn: str | None, region: str | None) -> str | None:
    """The ``webhook_token`` of the NXCloud secret, when the operator may read it (replay needs it)."""
    import boto3
    from botocore.exceptions import ClientError

    if not secret_arn:
        return None
    try:
        text = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)["SecretString"]
    except ClientError:
        return None
    token = json.loads(text).get("webhook_token")
    return token if isinstance(token, str) else None
