"""AWS resources of the stack, created in moto (or any endpoint boto3 is pointed at) for tests and local runs.

The names and settings mirror ``template.yaml``: a send queue whose redrive policy moves a message to the
dead-letter queue after ``max_receive_count`` receives, the idempotency and rate-limit tables keyed on ``id`` with TTL
on ``expiration``, the messages and suppressions tables with their indexes, and the NXCloud secret.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import boto3

from local_stack.moto_fixes import refuse_duplicate_partiql_inserts


@dataclass(frozen=True, slots=True)
class Resources:
    """What the function's environment points at."""

    region: str
    endpoint_url: str
    send_queue_url: str
    dlq_url: str
    table_name: str
    secret_id: str
    messages_table: str
    kept_callbacks_queue_url: str
    event_bus: str
    events_queue_url: str
    """Where a rule on ``event_bus`` copies every event the publisher puts there (what a subscriber would get)."""
    rate_table: str = ""
    """The business numbers' rate limiter (``RATE_LIMIT_TABLE``)."""
    suppressions_table: str = ""
    """The suppression list (``SUPPRESSIONS_TABLE``, docs/audience.md)."""
    retry_group: str = ""
    """The schedule group of 131049 retries (``RETRY_SCHEDULE_GROUP``; fired locally by ``local_stack.schedules``)."""
    send_queue_arn: str = ""
    retry_role_arn: str = ""
    campaigns_table: str = ""
    """Each campaign, its checkpoint, counts and rows' outcomes (``CAMPAIGNS_TABLE``, docs/campaigns.md)."""
    campaign_bucket: str = ""
    """Audience files and reports (``CAMPAIGN_BUCKET``)."""
    campaign_tick_queue_url: str = ""
    """The campaign engine's passes (``CAMPAIGN_TICK_QUEUE_URL``)."""

    def function_env(self) -> dict[str, str]:
        """The environment variables the Lambda function reads for these resources."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "NXCLOUD_SECRET_ID": self.secret_id,
            "DLQ_URL": self.dlq_url,
            "SEND_QUEUE_URL": self.send_queue_url,
            "IDEMPOTENCY_TABLE": self.table_name,
            "MESSAGES_TABLE": self.messages_table,
            "KEPT_CALLBACKS_QUEUE_URL": self.kept_callbacks_queue_url,
            "EVENT_BUS_NAME": self.event_bus,
            "RATE_LIMIT_TABLE": self.rate_table,
            "SUPPRESSIONS_TABLE": self.suppressions_table,
            "RETRY_SCHEDULE_GROUP": self.retry_group,
            "RETRY_QUEUE_ARN": self.send_queue_arn,
            "RETRY_ROLE_ARN": self.retry_role_arn,
            "CAMPAIGNS_TABLE": self.campaigns_table,
            "CAMPAIGN_BUCKET": self.campaign_bucket,
            "CAMPAIGN_TICK_QUEUE_URL": self.campaign_tick_queue_url,
        }

    def stream_arn(self, table_name: str | None = None) -> str:
        """A table's stream (by default the messages table's), which the publisher reads."""
        table = self.client("dynamodb").describe_table(TableName=table_name or self.messages_table)["Table"]
        return str(table["LatestStreamArn"])

    def client(self, service: str) -> Any:
        return local_client(service, self.endpoint_url, self.region)


def local_client(service: str, endpoint_url: str, region: str = "us-east-1") -> Any:
    """A boto3 client for a local endpoint; fake credentials, as moto accepts any (and nothing reaches AWS)."""
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - not a secret: moto's placeholder
    )


def send_message(sqs: Any, queue_url: str, body: str, attributes: dict[str, str] | None = None) -> str:
    """Send ``body`` as a producer would, ``attributes`` as String message attributes; return the SQS message id."""
    message_attributes = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
    sent = sqs.send_message(QueueUrl=queue_url, MessageBody=body, MessageAttributes=message_attributes)
    return str(sent["MessageId"])


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible plus in-flight messages of a queue."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def provision(
    endpoint_url: str,
    *,
    prefix: str,
    secret: dict[str, Any],
    region: str = "us-east-1",
    max_receive_count: int = 5,
    visibility_timeout: int = 180,
) -> Resources:
    """Create the queues, the table and the secret; return where they are."""
    from local_stack.template import resource_properties

    sqs = local_client("sqs", endpoint_url, region)
    dlq_url = sqs.create_queue(
        QueueName=f"{prefix}-dlq",
        Attributes={
            "MessageRetentionPeriod": "1209600",
            "SqsManagedSseEnabled": "true",
            "MaximumMessageSize": str(resource_properties("DeadLetterQueue")["MaximumMessageSize"]),
        },
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    send_queue_url = sqs.create_queue(
        QueueName=f"{prefix}-send",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "SqsManagedSseEnabled": "true",
            "MaximumMessageSize": str(resource_properties("SendQueue")["MaximumMessageSize"]),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        },
    )["QueueUrl"]
    dynamodb = local_client("dynamodb", endpoint_url, region)
    table_name = f"{prefix}-idempotency"
    dynamodb.create_table(
        TableName=table_name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    messages_table = _messages_table(dynamodb, f"{prefix}-messages")
    rate_table = _keyed_table(dynamodb, f"{prefix}-rate")
    suppressions = suppressions_table(dynamodb, f"{prefix}-suppressions")
    kept_url = sqs.create_queue(QueueName=f"{prefix}-kept-callbacks", Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    event_bus, events_url = _event_capture(endpoint_url, region, prefix, sqs)
    secrets = local_client("secretsmanager", endpoint_url, region)
    secret_id = secrets.create_secret(Name=f"{prefix}/nxcloud", SecretString=json.dumps(secret))["ARN"]
    send_queue_arn = sqs.get_queue_attributes(QueueUrl=send_queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    retry_group, retry_role = _retry_schedules(endpoint_url, region, prefix, send_queue_arn)
    campaign_bucket, tick_url = _campaign_resources(endpoint_url, region, prefix, sqs)
    return Resources(
        region,
        endpoint_url,
        send_queue_url,
        dlq_url,
        table_name,
        secret_id,
        messages_table,
        kept_url,
        event_bus,
        events_url,
        rate_table,
        suppressions,
        retry_group,
        send_queue_arn,
        retry_role,
        campaigns_table(dynamodb, f"{prefix}-campaigns"),
        campaign_bucket,
        tick_url,
    )


def _campaign_resources(endpoint_url: str, region: str, prefix: str, sqs: Any) -> tuple[str, str]:
    """The campaign bucket and the engine's tick queue (with its dead-letter queue), as template.yaml declares them."""
    from local_stack.template import resource_properties

    s3 = local_client("s3", endpoint_url, region)
    bucket = f"{prefix}-campaigns".lower()
    s3.create_bucket(Bucket=bucket)
    rules = resource_properties("CampaignBucket")["LifecycleConfiguration"]["Rules"]
    s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": r["Id"],
                    "Filter": {"Prefix": r["Prefix"]},
                    "Status": r["Status"],
                    "Expiration": {"Days": r["ExpirationInDays"]},
                }
                for r in rules
            ]
        },
    )
    tick = resource_properties("CampaignTickQueue")
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-campaign-ticks-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(tick["RedrivePolicy"]["maxReceiveCount"])}
    tick_url = sqs.create_queue(
        QueueName=f"{prefix}-campaign-ticks",
        Attributes={"VisibilityTimeout": str(tick["VisibilityTimeout"]), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    return bucket, tick_url


def _retry_schedules(endpoint_url: str, region: str, prefix: str, send_queue_arn: str) -> tuple[str, str]:
    """The 131049 retries' schedule group and the role Scheduler sends with, as template.yaml declares them."""
    scheduler = local_client("scheduler", endpoint_url, region)
    group = f"{prefix}-retries"
    scheduler.create_schedule_group(Name=group)
    iam = local_client("iam", endpoint_url, region)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "scheduler.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=f"{prefix}-retry-scheduler", AssumeRolePolicyDocument=json.dumps(trust))
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": send_queue_arn}],
    }
    iam.put_role_policy(RoleName=role["Role"]["RoleName"], PolicyName="send-retries", PolicyDocument=json.dumps(policy))
    return group, str(role["Role"]["Arn"])


def _keyed_table(dynamodb: Any, name: str) -> str:
    """A table as template.yaml declares the rate-limit table: key ``id``, TTL on ``expiration``."""
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


def suppressions_table(dynamodb: Any, name: str) -> str:
    """The suppression list as template.yaml declares it: key ``id``, the ``by_business_phone`` index, TTL on
    ``expiration`` (the unit tests of ``nxcloud_wa.suppressions`` create theirs here too)."""
    return _declared_table(dynamodb, name, "SuppressionsTable")


def campaigns_table(dynamodb: Any, name: str) -> str:
    """The campaigns table as template.yaml declares it: key (``campaign_id``, ``sk``), the ``by_created`` index, TTL
    on ``expiration``, the stream (the unit tests of ``nxcloud_wa.campaigns_table`` create theirs here too)."""
    return _declared_table(dynamodb, name, "CampaignsTable")


def _declared_table(dynamodb: Any, name: str, logical_id: str) -> str:
    """A table with the keys, indexes, billing, stream and TTL template.yaml declares for ``logical_id``."""
    from local_stack.template import resource_properties

    properties = resource_properties(logical_id)
    stream = properties.get("StreamSpecification")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        GlobalSecondaryIndexes=properties["GlobalSecondaryIndexes"],
        BillingMode=properties["BillingMode"],
        **({"StreamSpecification": {"StreamEnabled": True, **stream}} if stream else {}),
    )
    ttl = properties["TimeToLiveSpecification"]
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": ttl["Enabled"], "AttributeName": ttl["AttributeName"]}
    )
    return name


def _messages_table(dynamodb: Any, name: str) -> str:
    """The messages table as template.yaml declares it: key ``id``, TTL, the stream, no index."""
    from local_stack.template import resource_properties

    properties = resource_properties("MessagesTable")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        StreamSpecification={"StreamEnabled": True, **properties["StreamSpecification"]},
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expiration"}
    )
    return name


def _event_capture(endpoint_url: str, region: str, prefix: str, sqs: Any) -> tuple[str, str]:
    """An event bus of this stack's own and a queue that receives every event put on it."""
    events = local_client("events", endpoint_url, region)
    bus = events.create_event_bus(Name=f"{prefix}-bus")["EventBusArn"].rsplit("/", 1)[-1]
    url = sqs.create_queue(QueueName=f"{prefix}-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name=f"{prefix}-all", EventBusName=bus, EventPattern=json.dumps({"source": ["nxcloud.whatsapp"]}))
    events.put_targets(Rule=f"{prefix}-all", EventBusName=bus, Targets=[{"Id": "capture", "Arn": arn}])
    return bus, url


@dataclass(frozen=True, slots=True)
class AwsCall:
    """One request moto answered: when, for which service and action, from which client (its User-Agent)."""

    at: float
    service: str
    action: str
    user_agent: str


class CallLog:
    """WSGI middleware in front of moto that keeps an :class:`AwsCall` per request."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls: list[AwsCall] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # SigV4's credential scope names the service: "Credential=KEY/20250101/us-east-1/sqs/aws4_request".
        scope = environ.get("HTTP_AUTHORIZATION", "").split("Credential=", 1)[-1].split(",", 1)[0].split("/")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        call = AwsCall(
            at=time.monotonic(),
            service=scope[3] if len(scope) > 3 else "?",
            action=target.rsplit(".", 1)[-1] if target else environ.get("REQUEST_METHOD", "?"),
            user_agent=environ.get("HTTP_USER_AGENT", ""),
        )
        with self._lock:
            self.calls.append(call)
        return self.app(environ, start_response)

    def between(self, start: float, end: float) -> list[AwsCall]:
        with self._lock:
            return [c for c in self.calls if start <= c.at <= end]


class MotoServer:
    """moto's server on 127.0.0.1 and a free port, so AWS calls cross real HTTP as they do in Lambda; with
    :mod:`local_stack.moto_fixes` installed, where moto differs from what AWS documents."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        refuse_duplicate_partiql_inserts()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.url = ""
        self.call_log: CallLog | None = None

    def record_calls(self) -> CallLog:
        """Keep a record of every request answered from now on (werkzeug looks its app up per request)."""
        server = self._server._server  # moto's werkzeug server: moto has no hook for this
        if server is None:
            raise RuntimeError("start the server first")
        if self.call_log is None:
            self.call_log = CallLog(server.app)
            server.app = self.call_log
        return self.call_log

    def start(self) -> MotoServer:
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per AWS call is noise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()
