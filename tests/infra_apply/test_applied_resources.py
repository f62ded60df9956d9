"""What ``terraform apply`` of infra/ created in moto, read back through boto3.

The expectations come from the same sources as the static checks: the table layout from
``cachesync.index_schema``, each function's environment from its settings model, the roles from
the IAM matrix of tests/unit/test_infra.py (the README's permission table), names and defaults
from infra/ itself. Run by ``make infra-apply-local`` (tools/terraform_local.py) only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any, Final

import pytest

from cachesync import (
    api_keys_schema,
    api_usage_schema,
    change_feed_schema,
    index_schema,
    webhooks_schema,
)
from cachesync.settings import variable_name
from tests.unit.test_infra import (
    API_RATE_LIMITER_UNAVAILABLE,
    API_THROTTLED,
    BASE_ACTIONS,
    EVENT_FUNCTIONS,
    FIXED_SETTINGS,
    IAM_MATRIX,
    INFRA,
    SETTINGS_MODELS,
    UNSET_SETTINGS,
    XRAY_ACTIONS,
    Terraform,
)

NAME_PREFIX: Final = "cachesync"
FUNCTIONS: Final = sorted(SETTINGS_MODELS)
QUEUE_SUFFIXES: Final = {
    "s3_object_created": "object-created",
    "s3_object_removed": "object-removed",
}


def function_name(folder: str) -> str:
    """The deployed name of a function folder (infra/lambda.tf's local.function_names)."""
    return f"{NAME_PREFIX}-{folder.replace('_', '-')}"


def optional_defaults(tf: Terraform, variable: str) -> dict[str, int]:
    """The ``optional(number, N)`` defaults of an object variable's attributes."""
    found = re.findall(r"(\w+) = optional\(number, (-?\d+)\)", tf.variables[variable]["type"])
    return {name: int(value) for name, value in found}


def allow_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The Allow statements of an IAM policy document, Action and Resource as lists."""
    found = []
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions, resources = statement["Action"], statement["Resource"]
        found.append(
            {
                **statement,
                "Action": [actions] if isinstance(actions, str) else actions,
                "Resource": [resources] if isinstance(resources, str) else resources,
            }
        )
    return found


def policy_json(value: Any) -> dict[str, Any]:
    """A policy document as IAM returns it (a dict, or URL-encoded or plain JSON text)."""
    if isinstance(value, dict):
        return value
    from urllib.parse import unquote

    text = str(value)
    document: dict[str, Any] = json.loads(unquote(text) if text.startswith("%7B") else text)
    return document


# ---------------------------------------------------------------------- tables


def test_index_table_has_the_schema_keys_indexes_ttl_and_pitr(
    aws: Any, outputs: dict[str, Any]
) -> None:
    # Given the applied index table
    dynamodb = aws("dynamodb")
    table_name = outputs["table_name"]
    # When it is described
    table = dynamodb.describe_table(TableName=table_name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    backups = dynamodb.describe_continuous_backups(TableName=table_name)
    # Then keys, attributes, GSIs, TTL and PITR are what index_schema says
    request = index_schema.create_table_request(table_name)
    assert table["KeySchema"] == request["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        request["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {gsi["IndexName"]: gsi for gsi in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {index.name for index in index_schema.GLOBAL_INDEXES}
    assert len(indexes) == 3
    for index in index_schema.GLOBAL_INDEXES:
        deployed = indexes[index.name]
        assert deployed["KeySchema"] == [
            {"AttributeName": index.partition_key, "KeyType": "HASH"},
            {"AttributeName": index.sort_key, "KeyType": "RANGE"},
        ]
        assert deployed["Projection"]["ProjectionType"] == "INCLUDE"
        assert sorted(deployed["Projection"]["NonKeyAttributes"]) == sorted(
            index_schema.SUMMARY_ATTRIBUTES
        )
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": index_schema.TTL_ATTRIBUTE,
    }
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_idempotency_table_has_powertools_layout(aws: Any, outputs: dict[str, Any]) -> None:
    # Given the applied idempotency table
    dynamodb = aws("dynamodb")
    name = outputs["idempotency_table_name"]
    # When it is described
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    # Then it has Powertools' key and TTL attribute
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert ttl == {
        "TimeToLiveStatus": "ENABLED",
        "AttributeName": index_schema.IDEMPOTENCY_TTL_ATTRIBUTE,
    }
    recovery = dynamodb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"
    ]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


# ---------------------------------------------------------------------- queues and events


def queue_arn(aws: Any, url: str) -> str:
    attributes = aws("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    arn: str = attributes["Attributes"]["QueueArn"]
    return arn


def test_bucket_notifications_send_each_change_to_its_queue(
    aws: Any, outputs: dict[str, Any], applied: dict[str, str], tf: Terraform
) -> None:
    # Given the applied bucket notification configuration
    configuration = aws("s3").get_bucket_notification_configuration(
        Bucket=applied["INFRA_APPLY_BUCKET"]
    )
    # When its queue configurations are read
    by_id = {entry["Id"]: entry for entry in configuration.get("QueueConfigurations", [])}
    # Then each event handler's queue gets exactly its events, and nothing else is configured
    expected_events = tf.locals["s3_notification_events"]
    assert set(by_id) == {f"{NAME_PREFIX}-{QUEUE_SUFFIXES[f]}" for f in EVENT_FUNCTIONS}
    for folder in EVENT_FUNCTIONS:
        entry = by_id[f"{NAME_PREFIX}-{QUEUE_SUFFIXES[folder]}"]
        assert entry["QueueArn"] == queue_arn(aws, outputs["queue_urls"][folder])
        assert sorted(entry["Events"]) == sorted(expected_events[folder])
    assert not configuration.get("TopicConfigurations")
    assert not configuration.get("LambdaFunctionConfigurations")


def test_event_queues_redrive_to_their_dead_letter_queues(
    aws: Any, outputs: dict[str, Any], tf: Terraform
) -> None:
    # Given each event queue and its DLQ
    sqs = aws("sqs")
    for folder in EVENT_FUNCTIONS:
        url = outputs["queue_urls"][folder]
        # When the queue's attributes are read
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # Then failed messages move to its own DLQ after queue_max_receive_count receives
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == outputs["dead_letter_queue_arns"][folder]
        assert redrive["deadLetterTargetArn"] == queue_arn(
            aws, outputs["dead_letter_queue_urls"][folder]
        )
        assert int(redrive["maxReceiveCount"]) == tf.variables["queue_max_receive_count"]["default"]
        assert attributes["SqsManagedSseEnabled"] == "true"
        # And only the documents bucket may send to it
        policy = json.loads(attributes["Policy"])
        (allow,) = allow_statements(policy)
        assert allow["Principal"] == {"Service": "s3.amazonaws.com"}
        assert allow["Action"] == ["sqs:SendMessage"]
        assert allow["Condition"]["ArnEquals"]["aws:SourceArn"] == outputs["bucket_arn"]


# ---------------------------------------------------------------------- functions


def test_functions_run_the_packaged_handlers_with_their_settings(
    aws: Any, outputs: dict[str, Any], manifest: dict[str, Any], tf: Terraform
) -> None:
    lambda_client = aws("lambda")
    memory = optional_defaults(tf, "function_memory_mb")
    timeout = optional_defaults(tf, "function_timeout_seconds")
    handler = tf.resources["aws_lambda_function"]["function"]["handler"]
    assert set(outputs["function_names"]) == set(FUNCTIONS)
    for folder in FUNCTIONS:
        # Given a deployed function
        name = outputs["function_names"][folder]
        assert name == function_name(folder)
        # When its configuration is read
        configuration = lambda_client.get_function_configuration(FunctionName=name)
        # Then it runs the packaged handler on the packaged runtime and architecture
        assert configuration["Handler"] == handler == manifest["handler"]
        assert configuration["Runtime"] == manifest["runtime"]
        assert configuration["Architectures"] == [manifest["architecture"]]
        assert configuration["CodeSha256"] == manifest["functions"][folder]["base64_sha256"]
        (layer,) = configuration["Layers"]
        assert re.fullmatch(rf".*:layer:{NAME_PREFIX}-runtime:\d+", layer["Arn"]), layer
        assert configuration["MemorySize"] == memory[folder]
        assert configuration["Timeout"] == timeout[folder]
        assert configuration["TracingConfig"] == {"Mode": "Active"}
        assert configuration["Role"].endswith(f":role/{name}-role")
        # And its environment is exactly its settings model's variables (plus Powertools')
        variables = configuration["Environment"]["Variables"]
        model = SETTINGS_MODELS[folder]
        unset = UNSET_SETTINGS.get(folder, set())
        assert set(variables) == {
            variable_name(field) for field in model.model_fields if field not in unset
        } | {"POWERTOOLS_LOG_LEVEL"}
        if "table_name" in model.model_fields:
            assert variables["CACHESYNC_TABLE_NAME"] == outputs["table_name"]
            assert variables["CACHESYNC_BUCKET_NAME"] == outputs["bucket_name"]
        for setting, value in FIXED_SETTINGS.items():
            if setting in model.model_fields:
                assert variables[variable_name(setting)] == value, (folder, setting)
        for setting in ("change_feed_table_name", "webhooks_table_name"):
            if setting in model.model_fields:
                assert variables[variable_name(setting)] == outputs[setting], (folder, setting)
        if "webhook_deliveries_table_name" in model.model_fields:
            assert (
                variables["CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME"]
                == (outputs["webhook_deliveries_table_name"])
            )
        if folder in ("change_feed", "webhook_delivery"):
            assert (
                variables["CACHESYNC_WEBHOOK_DELIVERY_QUEUE_URL"]
                == (outputs["webhook_delivery_queue_url"])
            )
        if folder in ("write_through", "query_api"):
            assert (
                variables["CACHESYNC_IDEMPOTENCY_TABLE_NAME"] == (outputs["idempotency_table_name"])
            )
        if folder == "query_api":
            # The secret's ARN, never the secret
            assert variables["CACHESYNC_API_TOKEN_SECRET_ID"] == outputs["api_token_secret_arn"]
            assert "CACHESYNC_API_TOKEN_SECRET" not in variables
            assert variables["CACHESYNC_API_KEYS_TABLE_NAME"] == outputs["api_keys_table_name"]
            assert variables["CACHESYNC_API_USAGE_TABLE_NAME"] == outputs["api_usage_table_name"]


def test_the_layer_is_the_packaged_layer(aws: Any, manifest: dict[str, Any]) -> None:
    # Given the deployed runtime layer
    versions = aws("lambda").list_layer_versions(LayerName=f"{NAME_PREFIX}-runtime")
    (version,) = versions["LayerVersions"]
    # When its content is read
    layer = aws("lambda").get_layer_version(
        LayerName=f"{NAME_PREFIX}-runtime", VersionNumber=version["Version"]
    )
    # Then it is the zip make package built, for the same runtime and architecture
    layer_zip = INFRA.parent / "build" / manifest["layer"]["path"]
    digest = base64.b64encode(hashlib.sha256(layer_zip.read_bytes()).digest()).decode()
    assert layer["Content"]["CodeSha256"] == digest
    assert layer["CompatibleRuntimes"] == [manifest["runtime"]]
    assert layer["CompatibleArchitectures"] == [manifest["architecture"]]


def test_event_handlers_consume_their_queue_with_partial_batch_responses(
    aws: Any, outputs: dict[str, Any], tf: Terraform
) -> None:
    batching = optional_defaults(tf, "event_source_mapping")
    # Given every event source mapping (moto filters by the name the mapping was created with,
    # an ARN here: filter on FunctionArn instead)
    mappings = aws("lambda").list_event_source_mappings()["EventSourceMappings"]
    for folder in FUNCTIONS:
        # When a deployed function's mappings are picked
        arn = outputs["function_arns"][folder]
        own = [mapping for mapping in mappings if mapping["FunctionArn"] == arn]
        # Then only the event handlers have one: their own queue, with ReportBatchItemFailures
        # (change_feed and webhook_delivery: test_change_feed_and_webhook_delivery_sources)
        if folder in ("change_feed", "webhook_delivery"):
            assert len(own) == 1, folder
            continue
        if folder not in EVENT_FUNCTIONS:
            assert own == [], folder
            continue
        (mapping,) = own
        assert mapping["EventSourceArn"] == queue_arn(aws, outputs["queue_urls"][folder])
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        assert mapping["BatchSize"] == batching["batch_size"]


def test_fallback_read_live_alias_and_backfill_failure_destination(
    aws: Any, outputs: dict[str, Any]
) -> None:
    lambda_client = aws("lambda")
    # Given the read path's alias and backfill's asynchronous invocation settings
    alias = lambda_client.get_alias(FunctionName=function_name("fallback_read"), Name="live")
    invoke_config = lambda_client.get_function_event_invoke_config(
        FunctionName=function_name("backfill")
    )
    # Then applications read through "live", and failed continuations land in backfill-failures
    assert alias["AliasArn"] == outputs["fallback_read_alias_arn"]
    destination = invoke_config["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == outputs["dead_letter_queue_arns"]["backfill"]
    assert invoke_config["MaximumRetryAttempts"] == 2


# ---------------------------------------------------------------------- IAM


def role_documents(aws: Any, role: str) -> dict[str, dict[str, Any]]:
    """A role's inline policies by name (parsed)."""
    iam = aws("iam")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    return {
        name: policy_json(iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"])
        for name in names
    }


@pytest.mark.parametrize("folder", sorted(IAM_MATRIX))
def test_each_role_allows_exactly_its_matrix(
    aws: Any, outputs: dict[str, Any], folder: str
) -> None:
    # Given a function's deployed role
    role = f"{function_name(folder)}-role"
    # When its policies are read back from IAM
    documents = role_documents(aws, role)
    attached = aws("iam").list_attached_role_policies(RoleName=role)["AttachedPolicies"]
    # Then it has only the two inline policies, and together they allow exactly the matrix
    assert attached == []
    assert set(documents) == {"logs-and-traces", "cachesync-access"}
    granted = {
        action
        for document in documents.values()
        for statement in allow_statements(document)
        for action in statement["Action"]
    }
    assert granted == IAM_MATRIX[folder] | BASE_ACTIONS
    # And the only Resource "*" is X-Ray's; logs go to the function's own log group only
    for document in documents.values():
        for statement in allow_statements(document):
            if "*" in statement["Resource"]:
                assert set(statement["Action"]) == XRAY_ACTIONS
            if any(action.startswith("logs:") for action in statement["Action"]):
                assert all(
                    f"log-group:/aws/lambda/{function_name(folder)}:" in resource
                    for resource in statement["Resource"]
                ), statement
    # And an event handler consumes its own queue only
    if folder in EVENT_FUNCTIONS:
        (consume,) = [
            statement
            for statement in allow_statements(documents["cachesync-access"])
            if "sqs:ReceiveMessage" in statement["Action"]
        ]
        assert consume["Resource"] == [queue_arn(aws, outputs["queue_urls"][folder])]


def test_updates_reach_only_the_idempotency_table_and_the_claims_index_table(
    aws: Any, outputs: dict[str, Any]
) -> None:
    # Given write_through's access policy
    document = role_documents(aws, f"{function_name('write_through')}-role")["cachesync-access"]
    # When the statements allowing UpdateItem are found
    updates = [s for s in allow_statements(document) if "dynamodb:UpdateItem" in s["Action"]]
    # Then one names the idempotency table (Powertools' records) and the other the index table
    # alone, for UpdateItem alone (the write-through's claim); nothing else may be updated
    assert sorted(tuple(u["Resource"]) for u in updates) == sorted(
        [(outputs["idempotency_table_arn"],), (outputs["table_arn"],)]
    )
    (claim,) = [u for u in updates if u["Resource"] == [outputs["table_arn"]]]
    assert claim["Action"] == ["dynamodb:UpdateItem"]


# ---------------------------------------------------------------------- CloudWatch


def test_alarms_and_dashboard_exist(aws: Any, outputs: dict[str, Any]) -> None:
    cloudwatch = aws("cloudwatch")
    # Given the applied alarms
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=NAME_PREFIX)["MetricAlarms"]
    names = {alarm["AlarmName"] for alarm in alarms}
    # Then there is one per README row and function / queue
    dlq_names = {url.rsplit("/", 1)[1] for url in outputs["dead_letter_queue_urls"].values()}
    queue_names = {url.rsplit("/", 1)[1] for url in outputs["queue_urls"].values()}
    assert names == (
        {f"{NAME_PREFIX}-cache-hit-rate", f"{NAME_PREFIX}-read-latency-p99"}
        | {f"{NAME_PREFIX}-api-5xx-rate", f"{NAME_PREFIX}-api-4xx-rate"}
        | {f"{NAME_PREFIX}-api-latency-p95"}
        | {f"{NAME_PREFIX}-api-throttled-requests", f"{NAME_PREFIX}-api-rate-limiter-unavailable"}
        | {f"{function_name(f)}-error-rate" for f in FUNCTIONS}
        | {f"{name}-depth" for name in dlq_names}
        | {f"{function_name(f)}-sync-lag-p99" for f in EVENT_FUNCTIONS}
        | {f"{name}-oldest-message-age" for name in queue_names}
        | {f"{function_name('change_feed')}-iterator-age"}
        | {f"{function_name('change_feed')}-failures"}
        | {f"{NAME_PREFIX}-webhook-failure-rate"}
    )
    assert len(dlq_names) == 5
    by_name = {alarm["AlarmName"]: alarm for alarm in alarms}
    latency = by_name[f"{NAME_PREFIX}-read-latency-p99"]
    assert (latency["Namespace"], latency["MetricName"]) == ("AWS/Lambda", "Duration")
    assert latency["ExtendedStatistic"] == "p99"
    hit_rate = by_name[f"{NAME_PREFIX}-cache-hit-rate"]
    metric_names = {
        query["MetricStat"]["Metric"]["MetricName"]
        for query in hit_rate["Metrics"]
        if "MetricStat" in query
    }
    assert metric_names == {"CacheHits", "CacheMisses"}
    # And the rate-limit alarms read the query API's own metrics, in its service dimension
    limiter = by_name[f"{NAME_PREFIX}-api-rate-limiter-unavailable"]
    assert (limiter["Namespace"], limiter["MetricName"]) == (
        "cachesync",
        API_RATE_LIMITER_UNAVAILABLE,
    )
    assert limiter["Dimensions"] == [{"Name": "service", "Value": "query_api"}]
    throttled = by_name[f"{NAME_PREFIX}-api-throttled-requests"]
    (query,) = throttled["Metrics"]
    insights = f"SELECT SUM({API_THROTTLED}) FROM SCHEMA("  # noqa: S608 - CloudWatch, not SQL
    assert query["Expression"].startswith(insights)
    # And the dashboard shows the figures the README names
    dashboard = cloudwatch.get_dashboard(DashboardName=outputs["dashboard_name"])
    body = json.loads(dashboard["DashboardBody"])
    titles = {widget["properties"].get("title") for widget in body["widgets"]}
    assert {"Cache hit rate (fallback_read, %)", "Read latency p99 (ms)"} <= titles
    assert "Dead-letter queue depth" in titles
    assert "Query API cache hit ratio (%)" in titles
    assert {
        "Query API rate limits (count)",
        "Query API requests and errors per route (count)",
        "Query API latency p95 per route (ms)",
        "Query API requests and throttled per key (top 10, count)",
    } <= titles
    assert {
        "Change feed: stream iterator age (ms)",
        "Change feed events (count)",
        "Webhook deliveries (count, failure rate %)",
        "Webhook delivery queue",
    } <= titles


def test_every_function_has_its_log_group(aws: Any, tf: Terraform) -> None:
    # Given the applied log groups
    groups = aws("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"]
    # Then each function has its own, with the configured retention
    retention = {group["logGroupName"]: group.get("retentionInDays") for group in groups}
    default_days = tf.variables["log_retention_days"]["default"]
    assert retention == {f"/aws/lambda/{function_name(f)}": default_days for f in FUNCTIONS}


# ---------------------------------------------------------------------- query API


def rest_api(aws: Any) -> dict[str, Any]:
    """The applied query API (found by its name)."""
    apis = aws("apigateway").get_rest_apis()["items"]
    (api,) = [api for api in apis if api["name"] == f"{NAME_PREFIX}-query-api"]
    return dict(api)


def test_every_path_and_the_root_reach_query_api_through_a_lambda_proxy(
    aws: Any, outputs: dict[str, Any]
) -> None:
    apigateway = aws("apigateway")
    # Given the applied REST API
    api = rest_api(aws)
    resources = apigateway.get_resources(restApiId=api["id"])["items"]
    by_path = {resource["path"]: resource for resource in resources}
    # Then it has the root and the greedy proxy, each with ANY to the function (AWS_PROXY, POST)
    assert set(by_path) == {"/", "/{proxy+}"}
    function_arn = outputs["function_arns"]["query_api"]
    for resource in by_path.values():
        assert set(resource.get("resourceMethods", {})) == {"ANY"}
        method = apigateway.get_method(
            restApiId=api["id"], resourceId=resource["id"], httpMethod="ANY"
        )
        assert method["authorizationType"] == "NONE"
        integration = apigateway.get_integration(
            restApiId=api["id"], resourceId=resource["id"], httpMethod="ANY"
        )
        assert integration["type"] == "AWS_PROXY"
        assert integration["httpMethod"] == "POST"
        assert f"/functions/{function_arn}/invocations" in integration["uri"]


def test_the_stage_logs_json_without_headers_and_throttles(
    aws: Any, outputs: dict[str, Any], tf: Terraform
) -> None:
    # Given the applied stage
    api = rest_api(aws)
    stage_name = tf.variables["api_stage_name"]["default"]
    stage = aws("apigateway").get_stage(restApiId=api["id"], stageName=stage_name)
    # Then the base URL ends with the stage (the routes add /v1)
    assert outputs["api_url"].startswith(f"https://{api['id']}.execute-api.")
    assert outputs["api_url"].endswith(f"/{stage_name}")
    assert outputs["api_docs_url"] == f"{outputs['api_url']}/v1/docs"
    # And access logs go to their log group as JSON with no header in it
    log_group = f"/aws/apigateway/{NAME_PREFIX}-query-api/access"
    access = stage["accessLogSettings"]
    assert access["destinationArn"].endswith(f":log-group:{log_group}")
    fields = json.loads(access["format"])
    assert fields["status"] == "$context.status"
    assert not [value for value in fields.values() if "header" in value.lower()]
    assert stage["tracingEnabled"] is True
    # And every method is throttled stage-wide with the variables' defaults
    settings = stage["methodSettings"]["*/*"]
    assert settings["throttlingRateLimit"] == tf.variables["api_throttle_rate_limit"]["default"]
    assert settings["throttlingBurstLimit"] == tf.variables["api_throttle_burst_limit"]["default"]
    assert settings["metricsEnabled"] is True
    assert settings["dataTraceEnabled"] is False
    groups = aws("logs").describe_log_groups(logGroupNamePrefix=log_group)["logGroups"]
    assert [(g["logGroupName"], g.get("retentionInDays")) for g in groups] == [
        (log_group, tf.variables["log_retention_days"]["default"])
    ]


def test_only_the_stage_may_invoke_query_api(aws: Any, tf: Terraform) -> None:
    # Given query_api's resource policy
    policy = json.loads(aws("lambda").get_policy(FunctionName=function_name("query_api"))["Policy"])
    # Then API Gateway may invoke it from this API's stage only
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Action"] == "lambda:InvokeFunction"
    api = rest_api(aws)
    stage_name = tf.variables["api_stage_name"]["default"]
    source = statement["Condition"]["ArnLike"]["AWS:SourceArn"]
    assert source.endswith(f":{api['id']}/{stage_name}/*/*")


def test_api_keys_table_has_the_schema_key_ttl_and_pitr(aws: Any, outputs: dict[str, Any]) -> None:
    # Given the applied keys table
    dynamodb = aws("dynamodb")
    name = outputs["api_keys_table_name"]
    assert name == api_keys_schema.API_KEYS_TABLE_NAME_DEFAULT
    # When it is described
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    backups = dynamodb.describe_continuous_backups(TableName=name)
    # Then it is what api_keys_schema says, with TTL on revoked keys and PITR
    request = api_keys_schema.create_api_keys_table_request(name)
    assert table["KeySchema"] == request["KeySchema"]
    assert table["AttributeDefinitions"] == request["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == request["BillingMode"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": api_keys_schema.TTL_ATTRIBUTE}
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_api_usage_table_has_the_schema_key_ttl_and_only_query_api_counts_in_it(
    aws: Any, outputs: dict[str, Any]
) -> None:
    # Given the applied usage table
    dynamodb = aws("dynamodb")
    name = outputs["api_usage_table_name"]
    assert name == api_usage_schema.API_USAGE_TABLE_NAME_DEFAULT
    # When it is described
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    # Then it is what api_usage_schema says, with TTL on counters and nonces
    request = api_usage_schema.create_api_usage_table_request(name)
    assert table["KeySchema"] == request["KeySchema"]
    assert table["AttributeDefinitions"] == request["AttributeDefinitions"]
    assert table["BillingModeSummary"]["BillingMode"] == request["BillingMode"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": api_usage_schema.TTL_ATTRIBUTE}
    # And query_api's role may update counters and put nonces there, nothing else
    document = role_documents(aws, f"{function_name('query_api')}-role")["cachesync-access"]
    on_usage = [s for s in allow_statements(document) if table["TableArn"] in s["Resource"]]
    assert [(sorted(s["Action"]), s["Resource"]) for s in on_usage] == [
        (["dynamodb:PutItem", "dynamodb:UpdateItem"], [table["TableArn"]])
    ]
    # And no other function's role names it
    for folder in FUNCTIONS:
        if folder == "query_api":
            continue
        documents = role_documents(aws, f"{function_name(folder)}-role")
        assert name not in json.dumps(documents), folder


def test_the_token_secret_holds_a_generated_value_only_query_api_may_read(
    aws: Any, outputs: dict[str, Any]
) -> None:
    # Given the applied secret
    arn = outputs["api_token_secret_arn"]
    secret = aws("secretsmanager").describe_secret(SecretId=arn)
    value = aws("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    # Then it is named after the prefix and holds a generated value long enough to sign with
    assert secret["Name"] == f"{NAME_PREFIX}/api-token-secret"
    assert len(value) == 64
    assert value.isalnum()
    # And query_api's role may read it, and only it, and query the GSIs only
    document = role_documents(aws, f"{function_name('query_api')}-role")["cachesync-access"]
    statements = allow_statements(document)
    (read_secret,) = [s for s in statements if "secretsmanager:GetSecretValue" in s["Action"]]
    assert read_secret["Action"] == ["secretsmanager:GetSecretValue"]
    assert read_secret["Resource"] == [arn]
    (query,) = [
        s
        for s in statements
        if "dynamodb:Query" in s["Action"] and outputs["table_arn"] in s["Resource"][0]
    ]
    assert query["Resource"] == [f"{outputs['table_arn']}/index/*"]


# ---------------------------------------------------------------------- change feed and webhooks


def test_index_table_streams_both_images(aws: Any, outputs: dict[str, Any]) -> None:
    # Given the applied index table
    table = aws("dynamodb").describe_table(TableName=outputs["table_name"])["Table"]
    # Then its stream is on with both images, and it is the stream the outputs name
    assert table["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": index_schema.STREAM_VIEW_TYPE,
    }
    assert table["LatestStreamArn"] == outputs["index_stream_arn"]


@pytest.mark.parametrize(
    ("output", "layout", "ttl_attribute"),
    [
        ("change_feed_table_name", change_feed_schema.create_change_feed_table_request, None),
        ("webhooks_table_name", webhooks_schema.create_webhooks_table_request, None),
        (
            "webhook_deliveries_table_name",
            webhooks_schema.create_deliveries_table_request,
            webhooks_schema.TTL_ATTRIBUTE,
        ),
    ],
)
def test_change_feed_and_webhook_tables_have_their_schema_layout(
    aws: Any, outputs: dict[str, Any], output: str, layout: Any, ttl_attribute: str | None
) -> None:
    # Given an applied table
    dynamodb = aws("dynamodb")
    name = outputs[output]
    # When it is described
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    backups = dynamodb.describe_continuous_backups(TableName=name)
    # Then keys, attributes, billing, TTL and PITR are the schema module's
    request = layout(name)
    assert table["KeySchema"] == request["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(
        request["AttributeDefinitions"], key=str
    )
    assert table["BillingModeSummary"]["BillingMode"] == request["BillingMode"]
    if ttl_attribute is None:
        assert ttl["TimeToLiveStatus"] == "DISABLED"
    else:
        assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": ttl_attribute}
    recovery = backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert recovery["PointInTimeRecoveryStatus"] == "ENABLED"


def test_change_feed_and_webhook_delivery_sources(
    aws: Any, outputs: dict[str, Any], tf: Terraform
) -> None:
    stream = optional_defaults(tf, "change_feed_stream")
    delivery = optional_defaults(tf, "webhook_delivery_source")
    timeout = optional_defaults(tf, "function_timeout_seconds")
    mappings = aws("lambda").list_event_source_mappings()["EventSourceMappings"]
    by_function = {m["FunctionArn"]: m for m in mappings}
    # Given change_feed's mapping: the index stream, from its oldest record, bisected, bounded,
    # with failed batches described in change-feed-failures
    feed = by_function[outputs["function_arns"]["change_feed"]]
    assert feed["EventSourceArn"] == outputs["index_stream_arn"]
    assert feed["StartingPosition"] == "TRIM_HORIZON"
    assert feed["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert feed["BisectBatchOnFunctionError"] is True
    assert feed["BatchSize"] == stream["batch_size"]
    assert feed["MaximumRetryAttempts"] == stream["maximum_retry_attempts"]
    assert feed["MaximumRecordAgeInSeconds"] == stream["maximum_record_age_seconds"]
    assert (
        feed["DestinationConfig"]["OnFailure"]["Destination"]
        == (outputs["dead_letter_queue_arns"]["change_feed"])
    )
    # And webhook_delivery's: the delivery queue, partial batch failures
    sender = by_function[outputs["function_arns"]["webhook_delivery"]]
    assert sender["EventSourceArn"] == queue_arn(aws, outputs["webhook_delivery_queue_url"])
    assert sender["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sender["BatchSize"] == delivery["batch_size"]
    # And the delivery queue retries webhook_max_attempts times, then its DLQ; 4 and 14 days
    sqs = aws("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=outputs["webhook_delivery_queue_url"], AttributeNames=["All"]
    )["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == outputs["dead_letter_queue_arns"]["webhook_delivery"]
    assert int(redrive["maxReceiveCount"]) == tf.variables["webhook_max_attempts"]["default"] == 12
    assert int(attributes["MessageRetentionPeriod"]) == 4 * 86400
    assert (
        int(attributes["VisibilityTimeout"])
        == 6 * timeout["webhook_delivery"] + (delivery["maximum_batching_window_seconds"])
    )
    dlq = sqs.get_queue_attributes(
        QueueUrl=outputs["dead_letter_queue_urls"]["webhook_delivery"],
        AttributeNames=["MessageRetentionPeriod"],
    )["Attributes"]
    assert int(dlq["MessageRetentionPeriod"]) == 14 * 86400


def test_webhook_delivery_metric_filters_count_its_log_lines(aws: Any, tf: Terraform) -> None:
    # Given the metric filters on webhook_delivery's log group
    group = f"/aws/lambda/{function_name('webhook_delivery')}"
    filters = aws("logs").describe_metric_filters(logGroupName=group)["metricFilters"]
    # Then there is one per metric, in namespace cachesync, with the service dimension
    expected = tf.locals["webhook_delivery_log_metrics"]
    by_metric = {f["metricTransformations"][0]["metricName"]: f for f in filters}
    assert set(by_metric) == set(expected)
    for metric, found in by_metric.items():
        (transformation,) = found["metricTransformations"]
        assert transformation["metricNamespace"] == "cachesync"
        assert transformation["dimensions"] == {"service": "$.service"}
        assert found["filterPattern"] == expected[metric].replace('\\"', '"')
