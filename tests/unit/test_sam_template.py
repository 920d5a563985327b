"""template.yaml, parsed: the properties the deployed stack relies on.

`make validate` (sam validate --lint, cfn-lint) checks that the template is well-formed; these tests check that it says
what the design needs: runtime and layers, queue timings, encryption, the API key, least-privilege IAM, alarms.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from local_stack.template import SAM_FUNCTION_DEFAULTS, TEMPLATE, function_properties, load_template

ROOT = TEMPLATE.parent

NO_VALUE = {"Ref": "AWS::NoValue"}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def getatt(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}


def when(condition: str, value: Any) -> dict[str, list[Any]]:
    """``!If [condition, value, !Ref AWS::NoValue]``."""
    return {"Fn::If": [condition, value, NO_VALUE]}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """template.yaml as tools/local_stack/template.py reads it (the project's one reader)."""
    return load_template()


@pytest.fixture(scope="module")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]


@pytest.fixture(scope="module")
def function(template: dict[str, Any]) -> dict[str, Any]:
    """The function's properties, Globals applied (the resource's own values win, as in SAM)."""
    return function_properties("SenderFunction", template)


def props(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    return resources[logical_id]["Properties"]


def parameter(template: dict[str, Any], name: str) -> dict[str, Any]:
    return template["Parameters"][name]


def events_of_type(function: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [event["Properties"] for event in function["Events"].values() if event["Type"] == kind]


# --- function and layers -------------------------------------------------------------------------------------------


def test_function_runtime_architecture_and_limits(function: dict[str, Any]) -> None:
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["CodeUri"] == "functions/sender/"
    assert function["Handler"] == "app.lambda_handler"
    assert function["MemorySize"] == 512
    assert function["Timeout"] == 30
    assert function["Tracing"] == "Active"


def test_snapstart_is_a_parameter_off_by_default(template: dict[str, Any], function: dict[str, Any]) -> None:
    assert parameter(template, "SnapStart")["AllowedValues"] == ["None", "PublishedVersions"]
    assert function["SnapStart"] == {"ApplyOn": ref("SnapStart")}
    # SAM's version hash does not see the parameter; the description does, and changing it publishes a version.
    assert "${SnapStart}" in function["VersionDescription"]["Fn::Sub"]


def test_both_triggers_invoke_an_alias_republished_when_the_function_or_a_layer_changes(
    resources: dict[str, Any], function: dict[str, Any]
) -> None:
    """SAM points the SQS event source mapping and the API's integration at the alias (AutoPublishAlias), which is
    what SnapStart needs; checked in the transform's output when this was written, see docs/benchmarks.md."""
    assert function["AutoPublishAlias"] == "live"
    assert function["AutoPublishAliasAllProperties"] is True
    for layer in ("DependenciesLayer", "CoreLayer"):
        assert resources[layer]["Properties"]["PublishLambdaVersion"] is True


def test_function_folder_has_no_requirements_txt() -> None:
    # Dependencies come from the layer. With a requirements.txt, `sam build` runs pip for python3.13 and fails
    # without a python3.13 on PATH (and would package the dependencies twice).
    assert not (ROOT / "functions" / "sender" / "requirements.txt").exists()


def test_function_uses_both_layers_dependencies_first(function: dict[str, Any]) -> None:
    assert function["Layers"] == [ref("DependenciesLayer"), ref("CoreLayer")]


def test_dependencies_layer_is_built_for_lambda_without_docker(resources: dict[str, Any]) -> None:
    layer = resources["DependenciesLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/deps/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}

    pip = layer_build_commands()
    for flag in (
        "--platform manylinux2014_aarch64",
        "--implementation cp",
        "--python-version 3.13",
        "--only-binary=:all:",
        "--no-compile",
        '--target "/artifacts/python"',
    ):
        assert flag in pip, flag


def layer_build_commands(**environment: str) -> str:
    """What `sam build` runs for the dependencies layer (make -n: printed, not run), with extra environment."""
    done = subprocess.run(
        [
            "make",
            "-n",
            "-s",
            "-C",
            str(ROOT / "layers" / "deps"),
            "build-DependenciesLayer",
            "ARTIFACTS_DIR=/artifacts",
        ],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "LAMBDA_ARCHITECTURE"}, **environment},
        check=True,
    )
    return done.stdout


def test_only_an_explicit_x86_64_build_of_the_layer_fetches_x86_64_wheels() -> None:
    """make sam-local's x86_64 run builds a copy of the stack with LAMBDA_ARCHITECTURE=x86_64; nothing else does."""
    assert "--platform manylinux2014_x86_64" in layer_build_commands(LAMBDA_ARCHITECTURE="x86_64")
    assert "aarch64" not in layer_build_commands(LAMBDA_ARCHITECTURE="x86_64")
    assert "--platform manylinux2014_aarch64" in layer_build_commands(LAMBDA_ARCHITECTURE="arm64")


def test_core_layer_packages_the_first_party_code(resources: dict[str, Any]) -> None:
    layer = resources["CoreLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/core/"
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64", "ContextPath": "layers/deps"}
    makefile = (ROOT / layer["Metadata"]["ContextPath"] / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^build-CoreLayer:", makefile, re.MULTILINE)
    assert (ROOT / "layers" / "core" / "python" / "nxcloud_wa" / "__init__.py").is_file()


def test_function_logs_to_its_own_log_group_with_retention(
    template: dict[str, Any], resources: dict[str, Any], function: dict[str, Any]
) -> None:
    assert function["LoggingConfig"]["LogGroup"] == ref("SenderLogGroup")
    assert resources["SenderLogGroup"]["Type"] == "AWS::Logs::LogGroup"
    assert props(resources, "SenderLogGroup")["RetentionInDays"] == ref("LogRetentionInDays")
    assert props(resources, "ApiAccessLogGroup")["RetentionInDays"] == ref("LogRetentionInDays")
    assert parameter(template, "LogRetentionInDays")["Default"] == 30


def test_reserved_concurrency_is_optional(template: dict[str, Any], function: dict[str, Any]) -> None:
    assert function["ReservedConcurrentExecutions"] == {
        "Fn::If": ["HasReservedConcurrency", ref("ReservedConcurrency"), NO_VALUE]
    }
    assert template["Conditions"]["HasReservedConcurrency"] == {
        "Fn::Not": [{"Fn::Equals": [ref("ReservedConcurrency"), "0"]}]
    }
    assert parameter(template, "ReservedConcurrency")["Default"] == 0


# --- configuration -------------------------------------------------------------------------------------------------

AUDIENCE_ENVIRONMENT = {
    "SUPPRESSIONS_TABLE": ref("SuppressionsTable"),
    "SUPPRESSION_CHECK": ref("SuppressionCheck"),
    "OPT_OUT_PAYLOADS": ref("OptOutPayloads"),
    "OPT_IN_PAYLOADS": ref("OptInPayloads"),
    "OPT_OUT_KEYWORDS": ref("OptOutKeywords"),
    "OPT_IN_KEYWORDS": ref("OptInKeywords"),
    "UNDELIVERABLE_SUPPRESSION_DAYS": ref("UndeliverableSuppressionDays"),
    "MARKETING_CAP_PER_RECIPIENT": ref("MarketingCapPerRecipient"),
}
"""The audience settings (nxcloud_wa.audience), the same for the sender and the webhook."""

EXPECTED_ENVIRONMENT = {
    "NXCLOUD_SECRET_ID": ref("NXCloudSecretArn"),
    "NXCLOUD_BASE_URL": ref("NXCloudBaseUrl"),
    "NXCLOUD_TEMPLATE_BASE_URL": ref("NXCloudTemplateBaseUrl"),
    "TEMPLATE_CHECK": ref("TemplateCheck"),
    "DEFAULT_TENANT_ID": ref("DefaultTenantId"),
    "DEFAULT_APPKEY": ref("DefaultAppKey"),
    "DEFAULT_BUSINESS_PHONE": ref("DefaultBusinessPhone"),
    "NXCLOUD_CONNECT_TIMEOUT": "3",
    "NXCLOUD_READ_TIMEOUT": "10",
    "UNKNOWN_OUTCOME_POLICY": ref("UnknownOutcomePolicy"),
    "DLQ_URL": ref("DeadLetterQueue"),
    "SEND_QUEUE_URL": ref("SendQueue"),
    "IDEMPOTENCY_TABLE": ref("IdempotencyTable"),
    "IDEMPOTENCY_EXPIRY_SECONDS": ref("IdempotencyExpirySeconds"),
    "MESSAGES_TABLE": {"Fn::If": ["TracksDeliveries", ref("MessagesTable"), ""]},
    "MESSAGE_RETENTION_DAYS": ref("MessageRetentionDays"),
    "MAX_SEND_CONCURRENCY": "10",
    "RATE_LIMIT_TABLE": ref("RateLimitTable"),
    "MESSAGES_PER_SECOND": ref("MessagesPerSecond"),
    "RATE_WAIT_SECONDS": "2",
    "MAX_RECEIVE_COUNT": ref("MaxReceiveCount"),
    **AUDIENCE_ENVIRONMENT,
    "MARKETING_LIMIT_RETRY_HOURS": ref("MarketingLimitRetryHours"),
    "CAMPAIGNS_TABLE": ref("CampaignsTable"),
    "CAMPAIGN_BUCKET": ref("CampaignBucket"),
    "CAMPAIGN_TICK_QUEUE_URL": ref("CampaignTickQueue"),
    "CAMPAIGN_RATE_SHARE": ref("CampaignRateShare"),
    "POWERTOOLS_SERVICE_NAME": {"Fn::FindInMap": ["Observability", "Powertools", "ServiceName"]},
    "POWERTOOLS_METRICS_NAMESPACE": {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]},
    "POWERTOOLS_LOG_LEVEL": ref("LogLevel"),
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "AWS_ENDPOINT_URL": when("HasLocalAwsEndpoint", ref("LocalAwsEndpointUrl")),
}


def test_environment_variables(function: dict[str, Any]) -> None:
    assert function["Environment"]["Variables"] == EXPECTED_ENVIRONMENT


def test_a_deployed_function_gets_no_aws_endpoint_override(template: dict[str, Any]) -> None:
    """AWS_ENDPOINT_URL is declared only so that `sam local --env-vars` may set it (docs/sam-local.md): with the
    parameter's default the condition is false and CloudFormation leaves the variable out (AWS::NoValue)."""
    endpoint = parameter(template, "LocalAwsEndpointUrl")
    condition = template["Conditions"]["HasLocalAwsEndpoint"]

    assert endpoint["Default"] == ""
    assert condition == {"Fn::Not": [{"Fn::Equals": [ref("LocalAwsEndpointUrl"), ""]}]}
    pattern = endpoint["AllowedPattern"]
    assert re.fullmatch(pattern, "") and re.fullmatch(pattern, "http://127.0.0.1:5000")
    for elsewhere in ("https://sqs.us-east-1.amazonaws.com", "http://169.254.169.254", "http://127.0.0.1.evil:1"):
        assert not re.fullmatch(pattern, elsewhere), elsewhere


def test_powertools_names(template: dict[str, Any]) -> None:
    assert template["Mappings"]["Observability"]["Powertools"] == {
        "ServiceName": "nxcloud-wa-sender",
        "WebhookServiceName": "nxcloud-wa-webhook",
        "PublisherServiceName": "nxcloud-wa-publisher",
        "PlannerServiceName": "nxcloud-wa-planner",
        "MetricsNamespace": "NXCloudWhatsApp",
    }


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("NXCloudBaseUrl", "https://api.nxcloud.com"),
        ("NXCloudTemplateBaseUrl", "https://api2.nxcloud.com"),
        ("TemplateCheck", "enforce"),
        ("DefaultTenantId", ""),
        ("DefaultAppKey", ""),
        ("DefaultBusinessPhone", ""),
        ("UnknownOutcomePolicy", "dead_letter"),
        ("IdempotencyExpirySeconds", 86400),
        ("LogLevel", "INFO"),
        ("NXCloudSecretKmsKeyArn", ""),
        ("AlarmEmail", ""),
        ("SnapStart", "None"),
        ("SuppressionCheck", "enforce"),
        ("OptOutPayloads", "Stop promotions"),
        ("OptInPayloads", ""),
        ("OptOutKeywords", "STOP,UNSUBSCRIBE,退订"),
        ("OptInKeywords", "START"),
        ("UndeliverableSuppressionDays", 30),
        ("MarketingCapPerRecipient", ""),
        ("CampaignRateShare", 0.8),
    ],
)
def test_parameter_defaults(template: dict[str, Any], name: str, default: object) -> None:
    assert parameter(template, name)["Default"] == default


def test_the_campaign_rate_share_is_a_share_whose_default_is_the_codes(template: dict[str, Any]) -> None:
    from settings import DEFAULT_CAMPAIGN_RATE_SHARE

    share = parameter(template, "CampaignRateShare")
    assert (share["MinValue"], share["MaxValue"], share["Default"]) == (0.05, 1, DEFAULT_CAMPAIGN_RATE_SHARE)


def test_secret_has_no_default_and_the_policy_choices_are_closed(template: dict[str, Any]) -> None:
    assert "Default" not in parameter(template, "NXCloudSecretArn")
    assert parameter(template, "UnknownOutcomePolicy")["AllowedValues"] == ["dead_letter", "retry"]


def test_template_check_choices_are_the_settings_and_the_defaults_are_the_codes() -> None:
    """The parameter offers exactly the modes the function reads ("off" a string, not YAML's false), and both new
    parameters default to what the code does without them."""
    from nxcloud_wa.config import DEFAULT_TEMPLATE_BASE_URL, TemplateCheckMode

    template = load_template()
    assert parameter(template, "TemplateCheck")["AllowedValues"] == [str(mode) for mode in TemplateCheckMode]
    assert parameter(template, "TemplateCheck")["Default"] == TemplateCheckMode.ENFORCE
    assert parameter(template, "NXCloudTemplateBaseUrl")["Default"] == DEFAULT_TEMPLATE_BASE_URL


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:nxcloud/credentials-AbC123", True),
        ("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:nxcloud-Xy9z8W", True),
        ("nxcloud/credentials", False),  # a name: the IAM policy could not name the secret exactly
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:nxcloud/credentials", False),  # no suffix
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:*", False),
        ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:nxcloud-*", False),
    ],
)
def test_secret_parameter_takes_a_full_arn_only(template: dict[str, Any], value: str, accepted: bool) -> None:
    pattern = parameter(template, "NXCloudSecretArn")["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", True),
        ("arn:aws:kms:eu-west-1:123456789012:alias/nxcloud", False),  # an alias ARN does not authorise the key
        ("*", False),
    ],
)
def test_kms_key_parameter(template: dict[str, Any], value: str, accepted: bool) -> None:
    pattern = parameter(template, "NXCloudSecretKmsKeyArn")["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is accepted


@pytest.mark.parametrize(
    ("value", "accepted"),
    [("https://api.nxcloud.com", True), ("https://sim.example/v1", True), ("http://api.nxcloud.com", False)],
)
@pytest.mark.parametrize("name", ["NXCloudBaseUrl", "NXCloudTemplateBaseUrl"])
def test_base_url_must_be_https(template: dict[str, Any], name: str, value: str, accepted: bool) -> None:
    assert bool(re.fullmatch(parameter(template, name)["AllowedPattern"], value)) is accepted


def test_every_parameter_is_used_and_every_ref_resolves(template: dict[str, Any]) -> None:
    refs: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"Ref"}:
                refs.add(node["Ref"])
            if "Fn::Sub" in node:
                text = node["Fn::Sub"] if isinstance(node["Fn::Sub"], str) else node["Fn::Sub"][0]
                local = set() if isinstance(node["Fn::Sub"], str) else set(node["Fn::Sub"][1])
                refs.update(n.split(".")[0] for n in re.findall(r"\$\{([^!}][^}]*)\}", text) if n not in local)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk({key: value for key, value in template.items() if key != "Parameters"})
    unused = set(template["Parameters"]) - refs
    assert not unused, f"parameters never used: {sorted(unused)}"
    generated_by_sam = {"ApiApiKey"}  # Auth.UsagePlan CreateUsagePlan: PER_API on the Api resource
    known = set(template["Parameters"]) | set(template["Resources"]) | generated_by_sam
    dangling = {name for name in refs if not name.startswith("AWS::")} - known
    assert not dangling, f"references to nothing: {sorted(dangling)}"


# --- queues and the SQS trigger ------------------------------------------------------------------------------------


def test_send_queue_visibility_timeout_covers_six_timeouts_plus_the_batching_window(
    template: dict[str, Any], resources: dict[str, Any], function: dict[str, Any]
) -> None:
    longest_window = parameter(template, "SqsBatchingWindowSeconds")["MaxValue"]
    assert props(resources, "SendQueue")["VisibilityTimeout"] >= 6 * function["Timeout"] + longest_window


def test_dead_letter_queue_has_room_for_the_largest_message_plus_its_reason_attributes(
    resources: dict[str, Any],
) -> None:
    from nxcloud_wa.models import MAX_MESSAGE_BYTES

    send_queue = props(resources, "SendQueue")["MaximumMessageSize"]
    dead_letter = props(resources, "DeadLetterQueue")["MaximumMessageSize"]

    assert send_queue >= MAX_MESSAGE_BYTES
    assert dead_letter - send_queue >= 64 * 1024
    assert dead_letter <= 256 * 1024  # within the limit every SQS API and CloudFormation version accepts


def test_dead_letter_queue_keeps_messages_14_days_longer_than_the_send_queue(resources: dict[str, Any]) -> None:
    dead_letter = props(resources, "DeadLetterQueue")["MessageRetentionPeriod"]
    assert dead_letter == 14 * 24 * 3600
    assert dead_letter > props(resources, "SendQueue").get("MessageRetentionPeriod", 4 * 24 * 3600)


@pytest.mark.parametrize("queue", ["SendQueue", "DeadLetterQueue"])
def test_queues_are_encrypted(resources: dict[str, Any], queue: str) -> None:
    properties = props(resources, queue)
    assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties


def test_queues_refuse_plain_http(resources: dict[str, Any]) -> None:
    policy = props(resources, "QueuesTlsOnlyPolicy")
    assert policy["Queues"] == [ref("SendQueue"), ref("DeadLetterQueue")]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Principal"] == "*"
    assert statement["Action"] == "sqs:*"
    assert statement["Resource"] == [getatt("SendQueue", "Arn"), getatt("DeadLetterQueue", "Arn")]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_redrive_policy(template: dict[str, Any], resources: dict[str, Any]) -> None:
    assert props(resources, "SendQueue")["RedrivePolicy"] == {
        "deadLetterTargetArn": getatt("DeadLetterQueue", "Arn"),
        "maxReceiveCount": ref("MaxReceiveCount"),
    }
    assert parameter(template, "MaxReceiveCount")["Default"] == 5


def test_sqs_event_source(template: dict[str, Any], function: dict[str, Any]) -> None:
    [event] = events_of_type(function, "SQS")
    assert event["Queue"] == getatt("SendQueue", "Arn")
    assert event["BatchSize"] == 10
    assert event["MaximumBatchingWindowInSeconds"] == ref("SqsBatchingWindowSeconds")
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert event["ScalingConfig"] == {"MaximumConcurrency": ref("SqsMaximumConcurrency")}
    assert event.get("Enabled", True) is True
    assert parameter(template, "SqsBatchingWindowSeconds")["Default"] == 1
    concurrency = parameter(template, "SqsMaximumConcurrency")
    assert (concurrency["Default"], concurrency["MinValue"]) == (5, 2)


# --- REST API ------------------------------------------------------------------------------------------------------


def test_function_has_only_the_two_triggers(function: dict[str, Any]) -> None:
    types = [event["Type"] for event in function["Events"].values()]
    assert sorted(set(types)) == ["Api", "SQS"]
    assert types.count("SQS") == 1


def test_the_routes_are_the_documented_ones_and_each_requires_an_api_key(function: dict[str, Any]) -> None:
    """The API's routes are exactly those of openapi.json (generated from functions/sender/api.py), so a route the
    function serves cannot be left out of the API, nor one declared that the function does not serve."""
    routes = {(event["Path"], event["Method"].lower()) for event in events_of_type(function, "Api")}
    document = json.loads((ROOT / "openapi.json").read_text(encoding="utf-8"))
    assert routes == {(path, method) for path, operations in document["paths"].items() for method in operations}
    assert {("/messages", "post"), ("/messages/{message_id}", "get"), ("/suppressions", "get")} <= routes
    for event in events_of_type(function, "Api"):
        assert event["RestApiId"] == ref("Api")
        assert event["Auth"] == {"ApiKeyRequired": True}


def test_api_requires_keys_everywhere_with_a_usage_plan(template: dict[str, Any], resources: dict[str, Any]) -> None:
    assert [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Api"] == ["Api"]
    api = props(resources, "Api")
    assert api["StageName"] == "v1"
    assert api["Auth"]["ApiKeyRequired"] is True
    assert "DefaultAuthorizer" not in api["Auth"]
    assert "Cors" not in api
    plan = api["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert plan["Throttle"] == {"RateLimit": ref("ApiRateLimit"), "BurstLimit": ref("ApiBurstLimit")}
    assert plan["Quota"] == {"Limit": ref("ApiQuotaLimit"), "Period": ref("ApiQuotaPeriod")}
    for name in ("ApiRateLimit", "ApiBurstLimit", "ApiQuotaLimit"):
        assert parameter(template, name)["MinValue"] >= 1, name


def test_api_stage_settings(resources: dict[str, Any]) -> None:
    [settings] = props(resources, "Api")["MethodSettings"]
    assert (settings["ResourcePath"], settings["HttpMethod"]) == ("/*", "*")
    assert settings["MetricsEnabled"] is True
    assert props(resources, "Api")["TracingEnabled"] is True
    assert settings["LoggingLevel"] == "OFF"  # the string: YAML 1.1 reads a bare OFF as false
    assert settings["DataTraceEnabled"] is False  # request bodies (phone numbers) never reach execution logs
    assert settings["ThrottlingRateLimit"] == ref("ApiRateLimit")
    assert settings["ThrottlingBurstLimit"] == ref("ApiBurstLimit")


def test_api_access_logs_are_json_and_never_contain_the_key(resources: dict[str, Any]) -> None:
    access = props(resources, "Api")["AccessLogSetting"]
    assert "${ApiAccessLogGroup}" in access["DestinationArn"]["Fn::Sub"]
    line = json.loads(access["Format"])
    assert line["requestId"] == "$context.requestId"
    assert line["status"] == "$context.status"
    assert line["apiKeyId"] == "$context.identity.apiKeyId"
    assert not re.search(r"\$context\.identity\.apiKey(?!Id)", access["Format"])


def test_api_gateway_logging_role_is_optional_and_outlives_the_stack(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert parameter(template, "ApiGatewayCloudWatchRole")["AllowedValues"] == ["create", "existing"]
    assert template["Conditions"]["CreateApiGatewayCloudWatchRole"] == {
        "Fn::Equals": [ref("ApiGatewayCloudWatchRole"), "create"]
    }
    role, account = resources["ApiGatewayCloudWatchLogsRole"], resources["ApiGatewayAccount"]
    for resource in (role, account):
        assert resource["Condition"] == "CreateApiGatewayCloudWatchRole"
        assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"
    assert account["Properties"]["CloudWatchRoleArn"] == getatt("ApiGatewayCloudWatchLogsRole", "Arn")
    assert role["Properties"]["ManagedPolicyArns"] == [
        {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"}
    ]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert "Policies" not in role["Properties"]
    # The stage (through its access log group) waits for the account setting when this stack makes it.
    assert resources["ApiAccessLogGroup"]["Metadata"]["WaitsFor"] == {
        "Fn::If": ["CreateApiGatewayCloudWatchRole", ref("ApiGatewayAccount"), NO_VALUE]
    }


# --- idempotency table ---------------------------------------------------------------------------------------------


def test_idempotency_table(resources: dict[str, Any]) -> None:
    table = props(resources, "IdempotencyTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True


# --- the suppression list (docs/audience.md) -----------------------------------------------------------------------


def test_suppressions_table(resources: dict[str, Any]) -> None:
    from nxcloud_wa.suppressions import INDEX

    resource = resources["SuppressionsTable"]
    assert resource["DeletionPolicy"] == resource["UpdateReplacePolicy"] == "Retain"  # an opt-out outlives the stack
    table = resource["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == INDEX
    assert index["KeySchema"] == [
        {"AttributeName": "business_phone", "KeyType": "HASH"},
        {"AttributeName": "recipient", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    assert {d["AttributeName"]: d["AttributeType"] for d in table["AttributeDefinitions"]} == {
        "id": "S",
        "business_phone": "S",
        "recipient": "S",
    }


def test_both_functions_read_the_same_audience_settings(resources: dict[str, Any]) -> None:
    webhook = props(resources, "WebhookFunction")["Environment"]["Variables"]
    assert {name: webhook.get(name) for name in AUDIENCE_ENVIRONMENT} == AUDIENCE_ENVIRONMENT


def test_audience_parameters_default_to_what_the_code_does_without_them(template: dict[str, Any]) -> None:
    """Every audience parameter's default, read as the function reads its variable, is the code's own default; and
    SuppressionCheck offers exactly the modes the code knows ("off" a string, not YAML's false)."""
    from nxcloud_wa.audience import AudienceSettings, SuppressionCheckMode

    names = {variable: value["Ref"] for variable, value in AUDIENCE_ENVIRONMENT.items()}
    environ = {v: str(parameter(template, n)["Default"]) for v, n in names.items() if n in template["Parameters"]}
    assert set(environ) == set(AUDIENCE_ENVIRONMENT) - {"SUPPRESSIONS_TABLE"}  # the table is a resource
    assert AudienceSettings.from_env(environ) == AudienceSettings()
    assert parameter(template, "SuppressionCheck")["AllowedValues"] == [str(mode) for mode in SuppressionCheckMode]


# --- IAM -----------------------------------------------------------------------------------------------------------

# Every permission of the function, statement by statement: (actions, resources). "*" only where AWS allows nothing
# narrower (X-Ray has no resource-level permissions).
EXPECTED_STATEMENTS = {
    "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, [getatt("SenderLogGroup", "Arn")]),
    "ConsumeSendQueue": (
        {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        [getatt("SendQueue", "Arn")],
    ),
    "SendToQueues": ({"sqs:SendMessage"}, [getatt("SendQueue", "Arn"), getatt("DeadLetterQueue", "Arn")]),
    "IdempotencyRecords": (
        {"dynamodb:PartiQLInsert", "dynamodb:BatchGetItem", "dynamodb:PutItem", "dynamodb:BatchWriteItem"},
        [getatt("IdempotencyTable", "Arn")],
    ),
    "RateLimiter": ({"dynamodb:UpdateItem"}, [getatt("RateLimitTable", "Arn")]),
    "MessageRecords": ({"dynamodb:BatchWriteItem", "dynamodb:BatchGetItem"}, [getatt("MessagesTable", "Arn")]),
    "FindMessageByKey": ({"dynamodb:GetItem"}, [getatt("IdempotencyTable", "Arn")]),
    "SuppressionList": (
        {
            "dynamodb:BatchGetItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
        },
        [getatt("SuppressionsTable", "Arn")],
    ),
    "ListSuppressionsByNumber": (
        {"dynamodb:Query"},
        [{"Fn::Sub": "${SuppressionsTable.Arn}/index/by_business_phone"}],
    ),
    "CampaignRecords": (
        {
            "dynamodb:GetItem",
            "dynamodb:BatchGetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:PartiQLInsert",
        },
        [getatt("CampaignsTable", "Arn")],
    ),
    "ListCampaignsByCreation": ({"dynamodb:Query"}, [{"Fn::Sub": "${CampaignsTable.Arn}/index/by_created"}]),
    "FindAudienceFiles": ({"s3:ListBucket"}, [getatt("CampaignBucket", "Arn")]),
    "AudienceFiles": ({"s3:PutObject", "s3:GetObject"}, [{"Fn::Sub": "${CampaignBucket.Arn}/audiences/*"}]),
    "CampaignReports": ({"s3:GetObject"}, [{"Fn::Sub": "${CampaignBucket.Arn}/reports/*"}]),
    "TickCampaigns": ({"sqs:SendMessage"}, [getatt("CampaignTickQueue", "Arn")]),
    "ReadNXCloudSecret": ({"secretsmanager:GetSecretValue"}, [ref("NXCloudSecretArn")]),
    "DecryptNXCloudSecret": ({"kms:Decrypt"}, [ref("NXCloudSecretKmsKeyArn")]),
    "WriteTraces": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, ["*"]),
}
WILDCARD_ALLOWED = {"WriteTraces"}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def function_statements(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return statements_of(resources, "SenderFunctionRole")


def statements_of(resources: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    """A role's statements by Sid, conditional ones (``!If [c, statement, NoValue]``) unwrapped."""
    [policy] = props(resources, role)["Policies"]
    statements: dict[str, dict[str, Any]] = {}
    for entry in policy["PolicyDocument"]["Statement"]:
        if "Fn::If" in entry:
            condition, statement, otherwise = entry["Fn::If"]
            assert otherwise == NO_VALUE
            statement = {**statement, "_condition": condition}
        else:
            statement = entry
        assert statement["Sid"] not in statements
        statements[statement["Sid"]] = statement
    return statements


def test_function_runs_with_its_own_role_only(function: dict[str, Any], resources: dict[str, Any]) -> None:
    # An explicit role: SAM's generated one would carry AWS managed policies with "*" resources.
    assert function["Role"] == getatt("SenderFunctionRole", "Arn")
    assert "Policies" not in function
    role = props(resources, "SenderFunctionRole")
    assert "ManagedPolicyArns" not in role
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust == {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}


def test_no_other_grants_in_the_template(resources: dict[str, Any]) -> None:
    roles = sorted(name for name, r in resources.items() if r["Type"] == "AWS::IAM::Role")
    assert roles == [
        "ApiGatewayCloudWatchLogsRole",
        "PlannerFunctionRole",
        "PublisherFunctionRole",
        "RetrySchedulerRole",
        "SenderFunctionRole",
        "WebhookFunctionRole",
    ]
    assert not [
        name
        for name, r in resources.items()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::User", "AWS::IAM::Group")
    ]
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    assert sorted(functions) == ["PlannerFunction", "PublisherFunction", "SenderFunction", "WebhookFunction"]
    for name, resource in functions.items():
        assert resource["Properties"]["Role"] == getatt(f"{name}Role", "Arn"), name
        assert "Policies" not in resource["Properties"], name


def test_function_permissions_are_exactly_the_allowlist(function_statements: dict[str, dict[str, Any]]) -> None:
    actual = {
        sid: (set(_as_list(statement["Action"])), _as_list(statement["Resource"]))
        for sid, statement in function_statements.items()
    }
    assert actual == EXPECTED_STATEMENTS
    for sid, statement in function_statements.items():
        assert statement["Effect"] == "Allow", sid
        assert not {"NotAction", "NotResource", "Principal"} & set(statement), sid
        assert not any("*" in action for action in _as_list(statement["Action"])), sid


WEBHOOK_STATEMENTS = {
    "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, [getatt("WebhookLogGroup", "Arn")]),
    "StoreCallbacks": ({"dynamodb:UpdateItem", "dynamodb:PutItem"}, [getatt("MessagesTable", "Arn")]),
    "ReadSendRecords": ({"dynamodb:BatchGetItem"}, [getatt("MessagesTable", "Arn")]),
    "CampaignDeliveryCounts": ({"dynamodb:UpdateItem"}, [getatt("CampaignsTable", "Arn")]),
    "RecordSuppressions": (
        {"dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:UpdateItem"},
        [getatt("SuppressionsTable", "Arn")],
    ),
    "KeepUnstoredCallbacks": ({"sqs:SendMessage"}, [getatt("KeptCallbacksQueue", "Arn")]),
    "ScheduleRetries": (
        {"scheduler:CreateSchedule"},
        [
            {
                "Fn::Sub": "arn:${AWS::Partition}:scheduler:${AWS::Region}:${AWS::AccountId}:schedule/"
                "${RetryScheduleGroup}/*"
            }
        ],
    ),
    "PassRetrySchedulerRole": ({"iam:PassRole"}, [getatt("RetrySchedulerRole", "Arn")]),
    "ReadWebhookToken": ({"secretsmanager:GetSecretValue"}, [ref("NXCloudSecretArn")]),
    "DecryptNXCloudSecret": ({"kms:Decrypt"}, [ref("NXCloudSecretKmsKeyArn")]),
    "WriteTraces": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, ["*"]),
}
PUBLISHER_STATEMENTS = {
    "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, [getatt("PublisherLogGroup", "Arn")]),
    "ReadTimelineStream": (
        {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"},
        [getatt("MessagesTable", "StreamArn"), getatt("CampaignsTable", "StreamArn")],
    ),
    "ListStreams": (
        {"dynamodb:ListStreams"},
        [{"Fn::Sub": "${MessagesTable.Arn}/stream/*"}, {"Fn::Sub": "${CampaignsTable.Arn}/stream/*"}],
    ),
    "ReadSendRecords": ({"dynamodb:BatchGetItem"}, [getatt("MessagesTable", "Arn")]),
    "PublishToTheBus": (
        {"events:PutEvents"},
        [{"Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"}],
    ),
    "ReportFailedBatches": ({"sqs:SendMessage"}, [getatt("PublisherFailureQueue", "Arn")]),
    "WriteTraces": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, ["*"]),
}


PLANNER_STATEMENTS = {
    "WriteOwnLogs": ({"logs:CreateLogStream", "logs:PutLogEvents"}, [getatt("PlannerLogGroup", "Arn")]),
    "ConsumeTickQueue": (
        {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"},
        [getatt("CampaignTickQueue", "Arn")],
    ),
    "QueueTicksAndRows": ({"sqs:SendMessage"}, [getatt("CampaignTickQueue", "Arn"), getatt("SendQueue", "Arn")]),
    "ReadAndAdvanceCampaigns": (
        {"dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:Query"},
        [getatt("CampaignsTable", "Arn")],
    ),
    "ReadAudienceFiles": ({"s3:GetObject"}, [{"Fn::Sub": "${CampaignBucket.Arn}/audiences/*"}]),
    "KeepPlannerState": (
        {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"},
        [{"Fn::Sub": "${CampaignBucket.Arn}/state/*"}],
    ),
    "WriteReports": ({"s3:GetObject", "s3:PutObject"}, [{"Fn::Sub": "${CampaignBucket.Arn}/reports/*"}]),
    "ReadDeliveryStatuses": ({"dynamodb:BatchGetItem"}, [getatt("MessagesTable", "Arn")]),
    "TellDeletedFiles": ({"s3:ListBucket"}, [getatt("CampaignBucket", "Arn")]),
    "ReadNXCloudSecret": ({"secretsmanager:GetSecretValue"}, [ref("NXCloudSecretArn")]),
    "DecryptNXCloudSecret": ({"kms:Decrypt"}, [ref("NXCloudSecretKmsKeyArn")]),
    "WriteTraces": ({"xray:PutTraceSegments", "xray:PutTelemetryRecords"}, ["*"]),
}


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("WebhookFunctionRole", WEBHOOK_STATEMENTS),
        ("PublisherFunctionRole", PUBLISHER_STATEMENTS),
        ("PlannerFunctionRole", PLANNER_STATEMENTS),
    ],
)
def test_lifecycle_functions_have_exactly_their_allowlist(
    resources: dict[str, Any], role: str, expected: dict[str, Any]
) -> None:
    statements = statements_of(resources, role)
    actual = {sid: (set(_as_list(s["Action"])), _as_list(s["Resource"])) for sid, s in statements.items()}
    assert actual == expected
    wildcard = {sid for sid, s in statements.items() if any(r == "*" for r in _as_list(s["Resource"]))}
    assert wildcard == WILDCARD_ALLOWED
    for statement in statements.values():
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in _as_list(statement["Action"]))


def test_wildcard_resources_only_where_aws_requires_them(function_statements: dict[str, dict[str, Any]]) -> None:
    wildcard = {sid for sid, s in function_statements.items() if any(r == "*" for r in _as_list(s["Resource"]))}
    assert wildcard == WILDCARD_ALLOWED


def test_kms_decrypt_only_with_a_key_and_only_through_secrets_manager(
    template: dict[str, Any], function_statements: dict[str, dict[str, Any]]
) -> None:
    statement = function_statements["DecryptNXCloudSecret"]
    assert statement["_condition"] == "HasSecretKmsKey"
    assert template["Conditions"]["HasSecretKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [ref("NXCloudSecretKmsKeyArn"), ""]}]
    }
    assert statement["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}}
    }
    unconditional = {sid for sid, s in function_statements.items() if "_condition" not in s}
    assert unconditional == set(EXPECTED_STATEMENTS) - {"DecryptNXCloudSecret"}


# --- alarms, dashboard, outputs ------------------------------------------------------------------------------------

EXPECTED_ALARMS = {
    "DeadLetterQueueNotEmptyAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        getatt("DeadLetterQueue", "QueueName"),
        0,
    ),
    "SenderErrorsAlarm": ("AWS/Lambda", "Errors", "FunctionName", ref("SenderFunction"), 0),
    "SenderThrottlesAlarm": ("AWS/Lambda", "Throttles", "FunctionName", ref("SenderFunction"), 0),
    "SendQueueAgeAlarm": (
        "AWS/SQS",
        "ApproximateAgeOfOldestMessage",
        "QueueName",
        getatt("SendQueue", "QueueName"),
        ref("SendQueueAgeAlarmSeconds"),
    ),
    "KeptCallbacksAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        getatt("KeptCallbacksQueue", "QueueName"),
        0,
    ),
    "PublisherFailuresAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        getatt("PublisherFailureQueue", "QueueName"),
        0,
    ),
    "CampaignTicksFailedAlarm": (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        "QueueName",
        getatt("CampaignTickDeadLetterQueue", "QueueName"),
        0,
    ),
}
METRIC_MATH_ALARMS = {"FailedDeliveriesAlarm", "SuppressionCheckFailedAlarm"}
SENDER_METRIC_ALARMS = {
    # name: (the sender's metric, minutes in a row)
    "NumberAtRateAlarm": ("MessagesRateLimited", ref("RateAlarmMinutes")),
    "UpstreamThrottlesAlarm": ("MessagesThrottled", 5),
}
POWERTOOLS_ALARMS = {"TemplateCheckSkippedAlarm"}


def test_alarms(resources: dict[str, Any]) -> None:
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert set(alarms) == set(EXPECTED_ALARMS) | METRIC_MATH_ALARMS | set(SENDER_METRIC_ALARMS) | POWERTOOLS_ALARMS
    for name, (namespace, metric, dimension, value, threshold) in EXPECTED_ALARMS.items():
        alarm = alarms[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, metric), name
        assert alarm["Dimensions"] == [{"Name": dimension, "Value": value}], name
        assert alarm["Threshold"] == threshold, name
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold", name
        assert alarm["AlarmActions"] == when("HasAlarmEmail", [ref("AlarmTopic")]), name
        assert alarm["OKActions"] == when("HasAlarmEmail", [ref("AlarmTopic")]), name


def test_the_rate_alarms_fire_when_every_minute_in_a_row_saw_it(resources: dict[str, Any]) -> None:
    """A number at its rate for RateAlarmMinutes, or NXCloud refusing for a rate for 5 minutes, not one busy minute."""
    for name, (metric, minutes) in SENDER_METRIC_ALARMS.items():
        alarm = props(resources, name)
        assert (alarm["Namespace"], alarm["MetricName"]) == (
            {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]},
            metric,
        ), name
        assert alarm["Dimensions"] == [
            {"Name": "service", "Value": {"Fn::FindInMap": ["Observability", "Powertools", "ServiceName"]}}
        ]
        assert (alarm["Statistic"], alarm["Period"], alarm["Threshold"]) == ("Sum", 60, 0), name
        assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == minutes, name
        assert alarm["TreatMissingData"] == "notBreaching", name
        assert alarm["AlarmActions"] == when("HasAlarmEmail", [ref("AlarmTopic")]), name


def test_the_rate_limit_table_and_its_parameters(template: dict[str, Any], resources: dict[str, Any]) -> None:
    table = props(resources, "RateLimitTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert "PointInTimeRecoverySpecification" not in table  # a clock per number: nothing worth restoring
    assert parameter(template, "MessagesPerSecond")["Default"] == 80  # WhatsApp's default tier
    assert parameter(template, "MessagesPerSecond")["MinValue"] == 1
    assert parameter(template, "RateAlarmMinutes")["Default"] == 30
    assert parameter(template, "RateAlarmMinutes")["MaxValue"] == 1440  # an alarm evaluates a day at most


def test_template_check_skipped_alarm_fires_when_skips_persist(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """Sends without the check in three 5-minute periods running (one skip is a blip, 15 minutes is an outage), on
    the metric the function emits, with the dimension Powertools gives it."""
    from template_gate import SKIPPED_METRIC

    alarm = props(resources, "TemplateCheckSkippedAlarm")
    names = template["Mappings"]["Observability"]["Powertools"]
    assert (alarm["Namespace"], alarm["MetricName"]) == (
        {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]},
        SKIPPED_METRIC,
    )
    assert alarm["Dimensions"] == [
        {"Name": "service", "Value": {"Fn::FindInMap": ["Observability", "Powertools", "ServiceName"]}}
    ]
    assert names["ServiceName"] == "nxcloud-wa-sender"
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (
        "Sum",
        300,
        3,
        3,
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == when("HasAlarmEmail", [ref("AlarmTopic")])
    assert alarm["OKActions"] == when("HasAlarmEmail", [ref("AlarmTopic")])


def test_failed_deliveries_alarm_is_the_failed_share_of_the_ends(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    alarm = props(resources, "FailedDeliveriesAlarm")
    names = template["Mappings"]["Observability"]["Powertools"]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(stats) == {"failed", "delivered"}
    for status, stat in stats.items():
        metric = stat["Metric"]
        assert metric["MetricName"] == "StatusChanged"
        assert {d["Name"]: d["Value"] for d in metric["Dimensions"]} == {
            "service": {"Fn::FindInMap": ["Observability", "Powertools", "PublisherServiceName"]},
            "status": status,
        }
    assert names["PublisherServiceName"] == "nxcloud-wa-publisher"  # what the publisher's metrics carry
    [expression] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert expression["Expression"] == "100 * FILL(failed, 0) / (FILL(failed, 0) + FILL(delivered, 0))"
    assert alarm["Threshold"] == ref("FailedDeliveryAlarmPercent")
    assert alarm["AlarmActions"] == when("HasAlarmEmail", [ref("AlarmTopic")])


def test_suppression_check_failed_alarm_fires_when_the_list_stays_unreadable(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """The list unreadable in three 5-minute periods running (marketing held back, the rest sent unchecked): the sum
    of the metric over both of the Actions the sender emits it with, as the template check's alarm is shaped."""
    from nxcloud_wa.audience import WhenUnreadable

    alarm = props(resources, "SuppressionCheckFailedAlarm")
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    actions = set()
    for stat in stats.values():
        metric = stat["Metric"]
        assert (metric["Namespace"], metric["MetricName"]) == (
            {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]},
            "SuppressionCheckFailed",
        )
        dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
        assert dimensions.pop("service") == {"Fn::FindInMap": ["Observability", "Powertools", "ServiceName"]}
        actions.add(dimensions.pop("Action"))
        assert dimensions == {}
        assert (stat["Stat"], stat["Period"]) == ("Sum", 300)
    assert set(actions) == {str(action) for action in WhenUnreadable}
    [expression] = [m for m in alarm["Metrics"] if m.get("ReturnData")]
    assert expression["Expression"] == " + ".join(f"FILL({i}, 0)" for i in stats)
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 3
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["TreatMissingData"] == "notBreaching"
    assert alarm["AlarmActions"] == when("HasAlarmEmail", [ref("AlarmTopic")])
    assert alarm["OKActions"] == when("HasAlarmEmail", [ref("AlarmTopic")])


def test_alarm_topic_only_with_an_email(template: dict[str, Any], resources: dict[str, Any]) -> None:
    topic = resources["AlarmTopic"]
    assert topic["Condition"] == "HasAlarmEmail"
    assert topic["Properties"]["Subscription"] == [{"Protocol": "email", "Endpoint": ref("AlarmEmail")}]
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [ref("AlarmEmail"), ""]}]}
    conditional = {name for name, r in resources.items() if r.get("Condition") == "HasAlarmEmail"}
    assert conditional == {"AlarmTopic"}


def _dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as JSON: the Powertools names substituted, other ${...} replaced by placeholders."""
    text, variables = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    names = template["Mappings"]["Observability"]["Powertools"]
    assert variables == {
        "Namespace": {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]},
        "Service": {"Fn::FindInMap": ["Observability", "Powertools", "ServiceName"]},
        "WebhookService": {"Fn::FindInMap": ["Observability", "Powertools", "WebhookServiceName"]},
        "PublisherService": {"Fn::FindInMap": ["Observability", "Powertools", "PublisherServiceName"]},
    }
    values = {
        "Namespace": names["MetricsNamespace"],
        "Service": names["ServiceName"],
        "WebhookService": names["WebhookServiceName"],
        "PublisherService": names["PublisherServiceName"],
    }
    return json.loads(re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m[1], f"<{m[1]}>"), text))


def test_dashboard_shows_the_powertools_metrics_and_the_queues(template: dict[str, Any]) -> None:
    assert template["Resources"]["Api"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-api"}
    body = _dashboard(template)
    rows = [row for widget in body["widgets"] for row in widget["properties"].get("metrics", [])]
    plain = {tuple(x for x in row if not isinstance(x, dict)) for row in rows}
    namespace, service = "NXCloudWhatsApp", "nxcloud-wa-sender"
    for metric in ("MessagesSent", "MessagesDeadLettered", "MessagesRetried", "UpstreamLatency"):
        assert (namespace, metric, "service", service) in plain, metric
    for row in (
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "<SendQueue.QueueName>"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", "<DeadLetterQueue.QueueName>"),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", "<SendQueue.QueueName>"),
        ("AWS/Lambda", "Errors", "FunctionName", "<SenderFunction>"),
        ("AWS/Lambda", "Duration", "FunctionName", "<SenderFunction>"),
        ("AWS/ApiGateway", "5XXError", "ApiName", "<AWS::StackName>-api", "Stage", "v1"),
    ):
        assert row in plain, row
    searches = [x["expression"] for row in rows for x in row if isinstance(x, dict) and "expression" in x]
    assert any("MessagesDeadLettered" in s and "error_class" in s for s in searches)
    latency_stats = {row[-1]["stat"] for row in rows if "UpstreamLatency" in row}
    assert {"p50", "p99"} <= latency_stats
    # The lifecycle: statuses per minute by status, unmatched and kept callbacks, failures by WhatsApp code.
    assert any("StatusChanged" in s and "status}" in s for s in searches)
    assert any("DeliveryFailed" in s and "error_code}" in s for s in searches)
    assert (namespace, "StatusCallbacksUnmatched", "service", "nxcloud-wa-publisher") in plain
    assert (namespace, "CallbacksKept", "service", "nxcloud-wa-webhook") in plain
    # The business numbers' rate.
    for metric in ("MessagesRateLimited", "MessagesDelayed", "MessagesThrottled", "RateLimitWait"):
        assert (namespace, metric, "service", service) in plain, metric
    assert (namespace, "TemplateCheckSkipped", "service", service) in plain
    assert (namespace, "TemplateCheckWarnings", "service", service) in plain
    alarms = [a for widget in body["widgets"] for a in widget["properties"].get("alarms", [])]
    assert {"<NumberAtRateAlarm.Arn>", "<UpstreamThrottlesAlarm.Arn>", "<TemplateCheckSkippedAlarm.Arn>"} <= set(alarms)


def _source_literals() -> str:
    """Every Python source the functions and the layer are built from, as one text."""
    paths = [*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers").rglob("*.py")]
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def _powertools_metric_names(template: dict[str, Any]) -> set[str]:
    """The names of the functions' own metrics the dashboard's rows, its SEARCH expressions and the alarms read."""
    body = _dashboard(template)
    rows = [row for widget in body["widgets"] for row in widget["properties"].get("metrics", [])]
    names = {row[1] for row in rows if row[0] == "NXCloudWhatsApp"}
    searches = [x["expression"] for row in rows for x in row if isinstance(x, dict) and "expression" in x]
    names |= {name for s in searches for name in re.findall(r'MetricName=\\?"(\w+)\\?"', s)}
    namespace = {"Fn::FindInMap": ["Observability", "Powertools", "MetricsNamespace"]}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        alarm = resource["Properties"]
        metrics = [alarm, *(m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m)]
        names |= {m["MetricName"] for m in metrics if m.get("Namespace") == namespace}
    return names


def test_every_metric_the_dashboard_and_alarms_read_is_one_the_code_emits(template: dict[str, Any]) -> None:
    """A renamed metric would leave a widget or an alarm silently empty: each name must be a literal in the code."""
    names = _powertools_metric_names(template)
    assert {"MessagesSkipped", "SuppressionCheckFailed", "SuppressionsAdded", "RetriesScheduled"} <= names
    source = _source_literals()
    assert {name for name in names if f'"{name}"' not in source} == set()


def test_dashboard_shows_the_audience_rules(template: dict[str, Any]) -> None:
    """One row: skipped by reason, the list's entries added / removed, 131049 retries, the list unreadable; each
    metric with the dimensions and values the code emits it with (docs/audience.md)."""
    from fate import FREQUENCY_CAP, SUPPRESSED
    from nxcloud_wa.audience import WhenUnreadable
    from nxcloud_wa.suppressions import Reason

    body = _dashboard(template)
    [row_y] = {w["y"] for w in body["widgets"] if "Audience" in w["properties"].get("title", "")}
    row = [w for w in body["widgets"] if w["y"] == row_y]
    assert sum(w["width"] for w in row) == 24 and row_y == max(w["y"] for w in body["widgets"])
    shown: dict[tuple[str, str], set[str]] = {}
    for widget in row:
        for metric in widget["properties"]["metrics"]:
            plain = [x for x in metric if not isinstance(x, dict)]
            namespace, name, *dimensions = plain
            assert namespace == "NXCloudWhatsApp"
            pairs = dict(zip(dimensions[::2], dimensions[1::2], strict=True))
            service = pairs.pop("service")
            [(dimension, value)] = pairs.items() or [("", "")]
            shown.setdefault((service, f"{name}/{dimension}" if dimension else name), set()).add(value)
    sender, webhook = "nxcloud-wa-sender", "nxcloud-wa-webhook"
    webhook_reasons = {str(r) for r in Reason} - {Reason.MANUAL}  # a manual entry comes from the API, uncounted
    assert shown == {
        (sender, "MessagesSkipped/Reason"): {SUPPRESSED, FREQUENCY_CAP},
        (sender, "SuppressionCheckFailed/Action"): {str(a) for a in WhenUnreadable},
        (webhook, "SuppressionsAdded/Reason"): webhook_reasons,
        (webhook, "SuppressionsRemoved"): {""},
        (webhook, "SuppressionsUnkeyed"): {""},
        (webhook, "RetriesScheduled"): {""},
        (webhook, "RetriesNotScheduled"): {""},
    }
    alarms = [a for widget in body["widgets"] for a in widget["properties"].get("alarms", [])]
    assert "<SuppressionCheckFailedAlarm.Arn>" in alarms


def test_dashboard_shows_the_campaign_metrics_the_code_emits(template: dict[str, Any]) -> None:
    """One widget: the planner's rows by state, the sender's unrecorded rows or counts (by What), the webhook's lost
    delivery counts; no widget overlaps another (the grid is 24 wide)."""
    body = _dashboard(template)
    [widget] = [w for w in body["widgets"] if w["properties"].get("title", "").startswith("Campaigns")]
    rows = widget["properties"]["metrics"]
    searches = [x["expression"] for row in rows for x in row if isinstance(x, dict) and "expression" in x]
    assert any("{NXCloudWhatsApp,service,state}" in s and '"CampaignRowsPlanned"' in s for s in searches)
    assert any("{NXCloudWhatsApp,service,What}" in s and '"CampaignRowsUnrecorded"' in s for s in searches)
    plain = {tuple(x for x in row if not isinstance(x, dict)) for row in rows}
    assert ("NXCloudWhatsApp", "CampaignCountsLost", "service", "nxcloud-wa-webhook") in plain
    cells = [
        (w["x"] + dx, w["y"] + dy) for w in body["widgets"] for dx in range(w["width"]) for dy in range(w["height"])
    ]
    assert len(cells) == len(set(cells)) and all(x < 24 for x, _ in cells)


def test_the_campaign_bucket_expires_reports_audiences_and_the_engines_state(resources: dict[str, Any]) -> None:
    rules = props(resources, "CampaignBucket")["LifecycleConfiguration"]["Rules"]
    days = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if rule["Status"] == "Enabled"}
    assert days == {"reports/": 30, "audiences/": 90, "state/": 90}


EXPECTED_OUTPUTS = {
    "ApiUrl": {"Fn::Sub": "https://${Api}.execute-api.${AWS::Region}.amazonaws.com/v1/messages"},
    "ApiKeyId": ref("ApiApiKey"),
    "SendQueueUrl": ref("SendQueue"),
    "SendQueueArn": getatt("SendQueue", "Arn"),
    "DeadLetterQueueUrl": ref("DeadLetterQueue"),
    "DeadLetterQueueArn": getatt("DeadLetterQueue", "Arn"),
    "IdempotencyTableName": ref("IdempotencyTable"),
    "RateLimitTableName": ref("RateLimitTable"),
    "SuppressionsTableName": ref("SuppressionsTable"),
    "SenderFunctionName": ref("SenderFunction"),
}


def test_outputs(template: dict[str, Any]) -> None:
    outputs = {name: output["Value"] for name, output in template["Outputs"].items()}
    assert {name: outputs.get(name) for name in EXPECTED_OUTPUTS} == EXPECTED_OUTPUTS


# --- delivery lifecycle --------------------------------------------------------------------------------------------


def test_messages_table(resources: dict[str, Any]) -> None:
    table = props(resources, "MessagesTable")
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    # No index: each one costs a write unit per item it holds; a key finds its message through its idempotency record.
    assert "GlobalSecondaryIndexes" not in table and "LocalSecondaryIndexes" not in table
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]


def test_webhook_route_is_its_own_throttled_http_api_without_a_key(resources: dict[str, Any]) -> None:
    webhook = props(resources, "WebhookFunction")
    [event] = webhook["Events"].values()
    assert event["Type"] == "HttpApi"
    assert event["Properties"] == {"ApiId": ref("WebhookApi"), "Path": "/webhooks/nxcloud/{token}", "Method": "post"}
    api = props(resources, "WebhookApi")
    assert api["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": ref("WebhookRateLimit"),
        "ThrottlingBurstLimit": ref("WebhookBurstLimit"),
    }
    assert "Auth" not in api  # NXCloud sends no credentials: the path's token is checked by the function


def test_webhook_access_log_names_the_route_never_the_token(resources: dict[str, Any]) -> None:
    fmt = props(resources, "WebhookApi")["AccessLogSettings"]["Format"]
    line = json.loads(fmt)
    assert line["routeKey"] == "$context.routeKey"
    assert not re.search(r"\$context\.(path|resourcePath)|\$request", fmt)


@pytest.mark.parametrize(
    ("name", "table", "keys"),
    [
        ("TimelineChanges", "MessagesTable", {"id": {"S": [{"prefix": "status#"}, {"prefix": "click#"}]}}),
        ("CampaignChanges", "CampaignsTable", {"sk": {"S": ["campaign"]}}),
    ],
)
def test_publisher_reads_the_streams_as_outboxes(
    template: dict[str, Any], resources: dict[str, Any], name: str, table: str, keys: dict[str, Any]
) -> None:
    publisher = props(resources, "PublisherFunction")
    assert set(publisher["Events"]) == {"TimelineChanges", "CampaignChanges"}
    event = publisher["Events"][name]
    assert event["Type"] == "DynamoDB"
    source = event["Properties"]
    assert source["Stream"] == getatt(table, "StreamArn")
    assert props(resources, table)["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BisectBatchOnFunctionError"] is True
    assert source["DestinationConfig"] == {
        "OnFailure": {"Type": "SQS", "Destination": getatt("PublisherFailureQueue", "Arn")}
    }
    [pattern] = source["FilterCriteria"]["Filters"]
    assert json.loads(pattern["Pattern"]) == {"dynamodb": {"Keys": keys}}
    env = publisher["Environment"]["Variables"]
    assert env["EVENT_BUS_NAME"] == ref("EventBusName")
    assert env["PUBLISH_STATUSES"] == ref("PublishStatuses")
    assert parameter(template, "EventBusName")["Default"] == "default"


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("sent,delivered,read,failed,deleted", True),
        ("failed", True),
        ("", True),
        ("failed,,read", False),
        ("accepted", False),
        ("Failed", False),
    ],
)
def test_publish_statuses_parameter(template: dict[str, Any], value: str, accepted: bool) -> None:
    from nxcloud_wa.statuses import CALLBACK_STATUSES

    definition = parameter(template, "PublishStatuses")
    assert set(definition["Default"].split(",")) == CALLBACK_STATUSES
    assert bool(re.fullmatch(definition["AllowedPattern"], value)) is accepted


def test_lifecycle_queues_are_encrypted_and_refuse_plain_http(resources: dict[str, Any]) -> None:
    queues = ["KeptCallbacksQueue", "PublisherFailureQueue"]
    for queue in queues:
        assert props(resources, queue)["SqsManagedSseEnabled"] is True
        assert props(resources, queue)["MessageRetentionPeriod"] == 14 * 24 * 3600
    policy = props(resources, "LifecycleQueuesTlsOnlyPolicy")
    assert policy["Queues"] == [ref(q) for q in queues]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})


def test_webhook_url_output_leaves_the_token_out(template: dict[str, Any]) -> None:
    output = template["Outputs"]["WebhookUrl"]
    assert output["Value"] == {
        "Fn::Sub": "https://${WebhookApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/webhooks/nxcloud/"
    }
    assert "webhook_token" in output["Description"]


# --- the reader (tools/local_stack/template.py) ---------------------------------------------------------------------

SYNTHETIC = {
    "Parameters": {"Memory": {"Type": "Number", "Default": 256}, "Secret": {"Type": "String"}},
    "Mappings": {"Names": {"Service": {"Name": "svc"}}},
    "Globals": {
        "Function": {
            "Timeout": 20,
            "Layers": [{"Ref": "GlobalLayer"}],
            "Environment": {"Variables": {"FROM_GLOBALS": "g", "OVERRIDDEN": "global"}},
            "ReservedConcurrentExecutions": {"Fn::If": ["Cond", 5, {"Ref": "AWS::NoValue"}]},
        }
    },
    "Resources": {
        "Plain": {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "a.b"}},
        "Own": {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Handler": "a.b",
                "Timeout": 7,
                "MemorySize": {"Ref": "Memory"},
                "Layers": [{"Ref": "OwnLayer"}],
                "Environment": {
                    "Variables": {
                        "OVERRIDDEN": "own",
                        "NAME": {"Fn::FindInMap": ["Names", "Service", "Name"]},
                        "SECRET": {"Ref": "Secret"},
                        "QUEUE": {"Ref": "Queue"},
                        "ARN": {"Fn::GetAtt": ["Queue", "Arn"]},
                    }
                },
                "ReservedConcurrentExecutions": 2,
            },
        },
    },
}


def test_sam_defaults_apply_where_neither_the_function_nor_globals_sets_a_value() -> None:
    from local_stack.template import resolve

    plain = function_properties("Plain", SYNTHETIC)
    assert plain["Timeout"] == 20  # Globals
    assert plain["MemorySize"] == SAM_FUNCTION_DEFAULTS["MemorySize"] == 128  # SAM's default
    assert dict(SAM_FUNCTION_DEFAULTS) == {"Timeout": 3, "MemorySize": 128}
    assert resolve(function_properties("Own", SYNTHETIC)["MemorySize"], SYNTHETIC) == 256  # the parameter's default


def test_globals_merge_as_sam_merges_them() -> None:
    own = function_properties("Own", SYNTHETIC)
    assert own["Timeout"] == 7  # a scalar of the resource's own replaces the global one
    assert own["Layers"] == [{"Ref": "GlobalLayer"}, {"Ref": "OwnLayer"}]  # lists: the global items first
    assert own["Environment"]["Variables"]["FROM_GLOBALS"] == "g"  # maps merge key by key
    assert own["Environment"]["Variables"]["OVERRIDDEN"] == "own"
    assert own["ReservedConcurrentExecutions"] == 2  # an intrinsic is replaced whole, not merged into
    assert SYNTHETIC["Globals"]["Function"]["Layers"] == [{"Ref": "GlobalLayer"}]  # the template is left as it was


def test_only_what_needs_no_deployment_resolves() -> None:
    from local_stack.template import UnresolvedValue, function_environment, resolve

    assert function_environment("Own", SYNTHETIC) == {"FROM_GLOBALS": "g", "OVERRIDDEN": "own", "NAME": "svc"}
    for value in ({"Ref": "Secret"}, {"Ref": "Queue"}, {"Fn::GetAtt": ["Queue", "Arn"]}, {"Fn::Sub": "${Queue}"}):
        with pytest.raises(UnresolvedValue):
            resolve(value, SYNTHETIC)


def test_every_reader_sees_the_same_function() -> None:
    """make invoke's FunctionSpec, the local stack's function_setting and these tests read one merged definition."""
    from local_stack.invoke import FunctionSpec
    from local_stack.template import function_setting

    spec = FunctionSpec()
    assert spec.timeout == function_setting("SenderFunction", "Timeout") == 30
    assert spec.memory == function_setting("SenderFunction", "MemorySize") == 512
    assert spec.handler == "app.lambda_handler"
    assert spec.default_environment()["POWERTOOLS_SERVICE_NAME"] == "nxcloud-wa-sender"
    assert spec.default_environment()["IDEMPOTENCY_EXPIRY_SECONDS"] == "86400"
    assert "NXCLOUD_SECRET_ID" not in spec.default_environment()  # a parameter without default
    assert "DLQ_URL" not in spec.default_environment()  # a resource's id
    assert [p.name for p in spec.code_paths()] == ["sender", "python"]  # the function, then the core layer's python/


@pytest.mark.parametrize("value", ["", "off", "OFF", "1/24h", "3/7d", "10/1H", "0/24h", "1/0d", "1/24", "1 / 24h", "x"])
def test_the_frequency_cap_parameter_takes_exactly_what_the_function_parses(
    template: dict[str, Any], value: str
) -> None:
    """A value CloudFormation lets through never fails the function's first invocation, and one it refuses is one the
    function would refuse (or read differently)."""
    import re

    from nxcloud_wa.audience import FrequencyCap

    allowed = re.fullmatch(parameter(template, "MarketingCapPerRecipient")["AllowedPattern"], value) is not None
    try:
        FrequencyCap.parse(value)
        parses = value == value.strip()
    except ValueError:
        parses = False
    assert allowed is parses


# --- 131049 retries --------------------------------------------------------------------------------------------------


def test_retry_schedules_go_to_the_send_queue_through_a_role_that_can_only_send_there(
    resources: dict[str, Any],
) -> None:
    role = props(resources, "RetrySchedulerRole")
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": ref("AWS::AccountId")}}
    statements = statements_of(resources, "RetrySchedulerRole")
    assert {sid: (s["Action"], s["Resource"]) for sid, s in statements.items()} == {
        "SendRetries": ("sqs:SendMessage", getatt("SendQueue", "Arn"))
    }
    assert resources["RetryScheduleGroup"]["Type"] == "AWS::Scheduler::ScheduleGroup"
    webhook = statements_of(resources, "WebhookFunctionRole")["PassRetrySchedulerRole"]
    assert webhook["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}


def test_the_webhook_counts_campaign_deliveries_in_the_campaigns_table(resources: dict[str, Any]) -> None:
    assert props(resources, "WebhookFunction")["Environment"]["Variables"]["CAMPAIGNS_TABLE"] == ref("CampaignsTable")


def test_the_webhook_schedules_retries_where_the_stack_says(
    resources: dict[str, Any], template: dict[str, Any]
) -> None:
    from nxcloud_wa.audience import AudienceSettings

    variables = props(resources, "WebhookFunction")["Environment"]["Variables"]
    assert variables["RETRY_SCHEDULE_GROUP"] == ref("RetryScheduleGroup")
    assert variables["RETRY_QUEUE_ARN"] == getatt("SendQueue", "Arn")
    assert variables["RETRY_ROLE_ARN"] == getatt("RetrySchedulerRole", "Arn")
    environ = {
        "MARKETING_LIMIT_RETRY_HOURS": str(parameter(template, "MarketingLimitRetryHours")["Default"]),
        "MARKETING_LIMIT_RETRIES": str(parameter(template, "MarketingLimitRetries")["Default"]),
    }
    assert variables["MARKETING_LIMIT_RETRY_HOURS"] == ref("MarketingLimitRetryHours")
    assert variables["MARKETING_LIMIT_RETRIES"] == ref("MarketingLimitRetries")
    defaults = AudienceSettings()
    settings = AudienceSettings.from_env(environ)
    assert (settings.marketing_limit_retry_hours, settings.marketing_limit_retries) == (
        defaults.marketing_limit_retry_hours,
        defaults.marketing_limit_retries,
    )
    assert parameter(template, "MarketingLimitRetryHours")["MinValue"] == 0  # 0 turns it off


def test_the_planner_takes_one_tick_at_a_time_from_the_tick_queue(resources: dict[str, Any]) -> None:
    planner = props(resources, "PlannerFunction")
    assert planner["CodeUri"] == "functions/planner/"
    assert planner["Handler"] == "planner.lambda_handler"
    [source] = planner["Events"].values()
    assert source["Type"] == "SQS"
    assert source["Properties"]["Queue"] == getatt("CampaignTickQueue", "Arn")
    assert source["Properties"]["BatchSize"] == 1
    assert source["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # A pass must end before its tick can be received again.
    assert planner["Timeout"] < props(resources, "CampaignTickQueue")["VisibilityTimeout"]
    variables = planner["Environment"]["Variables"]
    assert variables["CAMPAIGN_TICK_QUEUE_URL"] == ref("CampaignTickQueue")
    assert variables["SEND_QUEUE_URL"] == ref("SendQueue")
    assert variables["MESSAGES_TABLE"] == {"Fn::If": ["TracksDeliveries", ref("MessagesTable"), ""]}
