"""Static checks of the Terraform in infra/, without a terraform binary.

The files are parsed with python-hcl2 and compared with the code they deploy: the table layout
with ``cachesync.index_schema``, each function's environment with the settings model its handler
loads, the roles with the AWS calls the stores make. checkov (``make infra-check``) covers the
generic security rules; these tests cover what only this project knows.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal, get_args, get_origin

import hcl2
import pytest
from hcl2.utils import SerializationOptions
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from cachesync import (
    api_keys_schema,
    api_usage_schema,
    change_feed_schema,
    index_schema,
    webhooks_schema,
)
from cachesync.api.cache_metrics import API_CACHE_HITS, API_CACHE_MISSES, CACHE_DIMENSION
from cachesync.api.wiring import RATE_LIMITER_FAILURE_METRIC
from cachesync.settings import (
    ApiSettings,
    BackfillSettings,
    ChangeFeedSettings,
    FallbackReadSettings,
    SyncSettings,
    WebhookDeliverySettings,
    WriteThroughSettings,
    variable_name,
)
from cachesync.webhooks.delivery import DeliveryOutcome

ROOT: Final = Path(__file__).resolve().parents[2]
INFRA: Final = ROOT / "infra"
FUNCTIONS: Final = ROOT / "functions"
PACKAGER: Final = ROOT / "tools" / "package_lambdas.py"
EMULATOR: Final = INFRA / "emulator"

EXPECTED_FILES: Final = {
    "versions.tf",
    "variables.tf",
    "main.tf",
    "dynamodb.tf",
    "sqs.tf",
    "s3_bucket.tf",
    "s3_notifications.tf",
    "lambda.tf",
    "iam.tf",
    "cloudwatch.tf",
    "outputs.tf",
    "api_gateway.tf",
    "secrets.tf",
}

# Function folder -> the settings model its handler loads.
SETTINGS_MODELS: Final[dict[str, type[BaseModel]]] = {
    "s3_object_created": SyncSettings,
    "s3_object_removed": SyncSettings,
    "write_through": WriteThroughSettings,
    "fallback_read": FallbackReadSettings,
    "backfill": BackfillSettings,
    "query_api": ApiSettings,
    "change_feed": ChangeFeedSettings,
    "webhook_delivery": WebhookDeliverySettings,
}
# Settings a function's environment deliberately leaves out: query_api gets its token secret from
# Secrets Manager (CACHESYNC_API_TOKEN_SECRET_ID), never the secret itself.
UNSET_SETTINGS: Final = {"query_api": {"api_token_secret"}}
# Optional settings whose value comes from a resource (a table, the secret), not a variable.
RESOURCE_SETTINGS: Final = {
    "idempotency_table_name": "${aws_dynamodb_table.idempotency.name}",
    "api_keys_table_name": "${aws_dynamodb_table.api_keys.name}",
    "api_usage_table_name": "${aws_dynamodb_table.api_usage.name}",
    "api_token_secret_id": "${aws_secretsmanager_secret.api_token.arn}",
    "change_feed_table_name": "${aws_dynamodb_table.change_feed.name}",
    "webhooks_table_name": "${aws_dynamodb_table.webhooks.name}",
    "webhook_deliveries_table_name": "${aws_dynamodb_table.webhook_deliveries.name}",
    "webhook_delivery_queue_url": "${aws_sqs_queue.webhook_delivery.url}",
}
# Settings fixed in AWS, deliberately not variables: loopback (and plain-http) webhook targets are
# for the local stack only, and no variable may turn the SSRF guard's loopback refusal off.
FIXED_SETTINGS: Final = {"webhook_allow_loopback": "false"}
EVENT_FUNCTIONS: Final = {"s3_object_created", "s3_object_removed"}

# boto3 client method (as the stores call it) -> the IAM actions that authorize it.
# TransactWriteItems has no IAM action of its own: its Put, Update and Delete members are
# authorized as PutItem, UpdateItem and DeleteItem (DynamoDB developer guide, "Using IAM with
# DynamoDB transactions"); which members a store uses is checked per store (TRANSACTION_MEMBERS).
CLIENT_CALL_ACTIONS: Final = {
    "get_item": {"dynamodb:GetItem"},
    "put_item": {"dynamodb:PutItem"},
    "update_item": {"dynamodb:UpdateItem"},
    "delete_item": {"dynamodb:DeleteItem"},
    "transact_write_items": {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"},
    "query": {"dynamodb:Query"},
    "scan": {"dynamodb:Scan"},
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"},
    "head_object": {"s3:GetObject"},
    "put_object": {"s3:PutObject"},
    "delete_object": {"s3:DeleteObject"},
    "list_objects_v2": {"s3:ListBucket"},
    "invoke": {"lambda:InvokeFunction"},
    "get_secret_value": {"secretsmanager:GetSecretValue"},
    "send_message": {"sqs:SendMessage"},
    "change_message_visibility": {"sqs:ChangeMessageVisibility"},
}
TRANSACTION_MEMBER_ACTIONS: Final = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
}
# Store file -> the members its transactions use (ConditionCheck nowhere).
TRANSACTION_MEMBERS: Final = {
    "dynamodb_index.py": {"Put", "Delete"},
    "dynamodb_change_feed.py": {"Put", "Update"},
}
STREAM_READ: Final = {
    "dynamodb:DescribeStream",
    "dynamodb:GetShardIterator",
    "dynamodb:GetRecords",
    "dynamodb:ListStreams",
}

SQS_CONSUME: Final = {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
INDEX_WRITE: Final = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"}
BASE_ACTIONS: Final = {
    "logs:CreateLogStream",
    "logs:PutLogEvents",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
}
XRAY_ACTIONS: Final = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
# The IAM matrix: every action each role is allowed (static statements; KMS statements, which
# exist only when a key is configured, are checked separately). Changing a role means changing
# this on purpose.
IAM_MATRIX: Final[dict[str, set[str]]] = {
    "s3_object_created": {
        *SQS_CONSUME,
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:ListBucket",
        *INDEX_WRITE,
    },
    "s3_object_removed": {*SQS_CONSUME, "s3:ListBucket", *INDEX_WRITE},
    "write_through": {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        *INDEX_WRITE,
        "dynamodb:UpdateItem",  # the idempotency table and the claim of an entry (checked below)
    },
    "fallback_read": {"s3:GetObject", "s3:ListBucket", *INDEX_WRITE},
    "backfill": {
        "s3:GetObject",
        "s3:ListBucket",
        *INDEX_WRITE,
        "lambda:InvokeFunction",
        "sqs:SendMessage",
    },
    "query_api": {
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:ListBucket",
        *INDEX_WRITE,  # GetItem also on the API keys table (checked below)
        "dynamodb:UpdateItem",  # the idempotency table and the claim of an entry
        "dynamodb:Query",  # the GSIs only (checked below)
        "secretsmanager:GetSecretValue",  # the token secret only (checked below)
        "dynamodb:Scan",  # the webhooks table only (checked below)
    },
    "change_feed": {
        *STREAM_READ,  # the index table's stream only
        "dynamodb:GetItem",  # change feed table: published state
        "dynamodb:PutItem",  # change feed table: transaction's Put (published state)
        "dynamodb:UpdateItem",  # change feed table: transaction's Updates (counters)
        "dynamodb:Scan",  # webhooks table: the subscriptions fanned out to
        "sqs:SendMessage",  # the delivery queue, and change-feed-failures (on-failure destination)
    },
    "webhook_delivery": {
        *SQS_CONSUME,
        "sqs:ChangeMessageVisibility",  # a failed attempt's backoff
        "dynamodb:GetItem",  # webhooks table
        "dynamodb:UpdateItem",  # webhooks table: success / failure counts, status
        "dynamodb:PutItem",  # deliveries table: each attempt
    },
}

REFERENCE = re.compile(r"^\$\{(.+)\}$")


# ---------------------------------------------------------------------- parsing


class Terraform:
    """The blocks of every infra/*.tf file, merged by kind."""

    def __init__(self, folder: Path) -> None:
        options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
        self.texts: dict[str, str] = {}
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.locals: dict[str, Any] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.terraform: list[dict[str, Any]] = []
        self.providers: list[dict[str, Any]] = []
        for path in sorted(folder.glob("*.tf")):
            self.texts[path.name] = path.read_text(encoding="utf-8")
            with path.open(encoding="utf-8") as handle:
                parsed = hcl2.load(handle, serialization_options=options)
            for block in parsed.get("resource", []):
                for kind, named in block.items():
                    self._add(self.resources, kind, named)
            for block in parsed.get("data", []):
                for kind, named in block.items():
                    self._add(self.data, kind, named)
            for block in parsed.get("locals", []):
                self._merge_unique(self.locals, block, "local")
            for block in parsed.get("variable", []):
                self._merge_unique(self.variables, block, "variable")
            for block in parsed.get("output", []):
                self._merge_unique(self.outputs, block, "output")
            self.terraform += parsed.get("terraform", [])
            self.providers += parsed.get("provider", [])

    @staticmethod
    def _add(target: dict[str, dict[str, Any]], kind: str, named: dict[str, Any]) -> None:
        for name, body in named.items():
            assert name not in target.setdefault(kind, {}), f"{kind}.{name} is declared twice"
            target[kind][name] = body

    @staticmethod
    def _merge_unique(target: dict[str, Any], block: dict[str, Any], what: str) -> None:
        for name, value in block.items():
            if name == "__comments__":
                continue
            assert name not in target, f"{what} {name} is declared twice"
            target[name] = value

    def resolve(self, value: Any) -> Any:
        """A ``${local.name}`` reference replaced by the local's value (one level)."""
        if isinstance(value, str):
            match = REFERENCE.match(value)
            if match and re.fullmatch(r"local\.\w+", match.group(1)):
                return self.locals[match.group(1).removeprefix("local.")]
        return value

    def policy_document(self, reference: str) -> dict[str, Any]:
        """The aws_iam_policy_document a ``${data.aws_iam_policy_document.<name>...json}``
        reference names."""
        match = re.fullmatch(
            r"\$\{data\.aws_iam_policy_document\.(\w+)(\[[^\]]*\])?\.json\}", reference
        )
        assert match, f"policy {reference!r} is not an aws_iam_policy_document"
        return self.data["aws_iam_policy_document"][match.group(1)]

    def composed_document(self, reference: str) -> dict[str, Any]:
        """The document a reference names with the statements of its source_policy_documents
        merged in (recursively), as the provider merges them: sources' statements first, then
        its own; static statements under ``statement``, dynamic ones under ``dynamic``.

        A source named with an instance key (``name["key"].json``, a for_each document) has
        ``each.key`` replaced by that key. Sids must be unique in the result (the provider
        rejects duplicates among sources, and a statement with a source's sid would silently
        replace it), and override_policy_documents, which replaces statements, is not used."""
        document = self.policy_document(reference)
        assert "override_policy_documents" not in document, reference
        key = re.fullmatch(r".*\[\\?\"(\w+)\\?\"\]\.json\}", reference)
        if key:
            assert key.group(1) in self.resolve(document["for_each"]), reference
            document = substitute_each_key(document, key.group(1))
        composed: dict[str, Any] = {"statement": [], "dynamic": []}
        for source in document.get("source_policy_documents", []):
            merged = self.composed_document(source)
            composed["statement"] += merged["statement"]
            composed["dynamic"] += merged["dynamic"]
        composed["statement"] += document.get("statement", [])
        composed["dynamic"] += document.get("dynamic", [])
        sids = [s["sid"] for s in statements(composed) if s.get("sid")]
        assert len(sids) == len(set(sids)), f"{reference}: duplicate sids {sorted(sids)}"
        return composed


def substitute_each_key(value: Any, key: str) -> Any:
    """``each.key`` in every string of a for_each block's body, replaced by one instance key."""
    if isinstance(value, str):
        return value.replace("each.key", f'"{key}"')
    if isinstance(value, list):
        return [substitute_each_key(item, key) for item in value]
    if isinstance(value, dict):
        return {name: substitute_each_key(item, key) for name, item in value.items()}
    return value


@pytest.fixture(scope="module")
def tf() -> Terraform:
    return Terraform(INFRA)


def statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Static statements, then the contents of dynamic ones."""
    found = list(document.get("statement", []))
    for dynamic in document.get("dynamic", []):
        for name, block in dynamic.items():
            if name == "statement":
                found += block["content"]
    return found


def dynamic_statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Each dynamic statement block: its for_each and its content."""
    return [
        block
        for dynamic in document.get("dynamic", [])
        for name, block in dynamic.items()
        if name == "statement"
    ]


def unquote(value: str) -> str:
    """hcl2 keeps the escapes of quotes inside interpolations: ``[\\"x\\"]`` -> ``["x"]``."""
    return value.replace('\\"', '"')


def function_folders() -> list[str]:
    return sorted(path.parent.name for path in FUNCTIONS.glob("*/handler.py"))


def access_document(tf: Terraform, function: str) -> dict[str, Any]:
    """A function's access policy, its source_policy_documents' statements included."""
    return tf.composed_document(tf.locals["access_policies"][function])


def actions_of(tf: Terraform, statement: dict[str, Any]) -> set[str]:
    actions = tf.resolve(statement["actions"])
    assert isinstance(actions, list), f"unresolved actions {actions!r}"
    return set(actions)


def allowed_actions(
    tf: Terraform, document: dict[str, Any], *, static_only: bool = False
) -> set[str]:
    found = document.get("statement", []) if static_only else statements(document)
    return {
        action
        for statement in found
        if statement.get("effect", "Allow") == "Allow"
        for action in actions_of(tf, statement)
    }


# ---------------------------------------------------------------------- layout


def test_infra_is_split_into_the_expected_files(tf: Terraform) -> None:
    assert set(tf.texts) == EXPECTED_FILES


def test_the_aws_provider_is_pinned_to_5_x(tf: Terraform) -> None:
    (settings,) = tf.terraform
    assert settings["required_version"].startswith(">= 1.")
    (providers,) = settings["required_providers"]
    assert providers["aws"]["source"] == "hashicorp/aws"
    assert providers["aws"]["version"].startswith("~> 5.")
    (provider,) = tf.providers
    assert "default_tags" in provider["aws"]


def provider_constraint(tf: Terraform) -> str:
    (settings,) = tf.terraform
    (providers,) = settings["required_providers"]
    constraint: str = providers["aws"]["version"]
    return constraint


def test_infra_readme_states_the_provider_floor_of_versions_tf(tf: Terraform) -> None:
    # Given the constraint in versions.tf
    constraint = provider_constraint(tf)
    # When the README's file table names the provider
    readme = (INFRA / "README.md").read_text(encoding="utf-8")
    stated = set(re.findall(r"`hashicorp/aws` `([^`]+)`", readme))
    # Then it states exactly that constraint
    assert stated == {constraint}


def test_lock_file_pins_a_version_the_constraint_admits(tf: Terraform) -> None:
    # Given the committed lock file
    lock = (INFRA / ".terraform.lock.hcl").read_text(encoding="utf-8")
    # When its aws provider entry is read
    match = re.search(
        r'provider "registry\.terraform\.io/hashicorp/aws" \{\s*version\s*=\s*"([\d.]+)"'
        r'\s*constraints\s*=\s*"([^"]+)"\s*hashes\s*=\s*\[([^\]]*)\]',
        lock,
    )
    assert match, "no hashicorp/aws entry in infra/.terraform.lock.hcl"
    version, constraints, hashes = match.groups()
    # Then it records the constraint of versions.tf, a version inside it, and hashes
    constraint = provider_constraint(tf)
    assert constraints == constraint
    floor = tuple(int(part) for part in constraint.removeprefix("~> ").split("."))
    pinned = tuple(int(part) for part in version.split("."))
    assert pinned[0] == floor[0], (version, constraint)
    assert pinned[: len(floor)] >= floor, (version, constraint)
    assert re.findall(r'"h1:[A-Za-z0-9+/=]{44}"', hashes)


def test_every_variable_and_output_is_described(tf: Terraform) -> None:
    for kind, blocks in (("variable", tf.variables), ("output", tf.outputs)):
        for name, body in blocks.items():
            assert body.get("description"), f"{kind} {name} has no description"


def test_every_variable_but_booleans_is_validated(tf: Terraform) -> None:
    unvalidated = {
        name
        for name, body in tf.variables.items()
        if body.get("type") not in ("bool", "${bool}") and "validation" not in body
    }
    # build_dir is a path on the deploying machine: any string is a path.
    assert unvalidated == {"build_dir"}


def test_example_tfvars_sets_only_declared_variables(tf: Terraform) -> None:
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (INFRA / "terraform.tfvars.example").open(encoding="utf-8") as handle:
        example = hcl2.load(handle, serialization_options=options)
    names = {name for name in example if not name.startswith("__")}
    assert "documents_bucket_name" in names
    assert names <= set(tf.variables), names - set(tf.variables)


def test_checkov_skips_give_a_reason(tf: Terraform) -> None:
    for name, text in tf.texts.items():
        for line in text.splitlines():
            if "checkov:skip" in line:
                assert re.fullmatch(r"\s*#checkov:skip=CKV2?_AWS_\d+:\S.{15,}", line), (
                    f"{name}: a checkov skip without a reason: {line.strip()}"
                )


# ---------------------------------------------------------------------- emulator files


def test_the_shipped_configuration_knows_nothing_of_moto(tf: Terraform) -> None:
    # Given the files users deploy
    for name, text in tf.texts.items():
        # Then none points the provider elsewhere or skips its checks
        assert "moto" not in text.lower(), name
        assert not re.search(r"^\s*(endpoints|skip_\w+|s3_use_path_style)\b", text, re.M), name


def test_emulator_files_only_add_a_variable_or_override(tf: Terraform) -> None:
    # Given infra/emulator/ (copied next to infra/ only by tools/terraform_local.py)
    files = sorted(path.name for path in EMULATOR.glob("*.tf"))
    # Then apart from the endpoint variable, each is an override merged into infra/'s blocks
    assert files == ["moto_endpoint.tf", "moto_gaps_override.tf", "moto_provider_override.tf"]
    options = SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    with (EMULATOR / "moto_gaps_override.tf").open(encoding="utf-8") as handle:
        gaps = hcl2.load(handle, serialization_options=options)
    assert set(gaps) - {"__comments__"} == {"resource"}
    for block in gaps["resource"]:
        for kind, named in block.items():
            for name in named:
                assert name in tf.resources[kind], f"override of a missing {kind}.{name}"


def test_every_moto_workaround_names_the_gap_it_covers() -> None:
    # Given the workarounds file, split into its paragraphs (a block with the comments above it)
    text = (EMULATOR / "moto_gaps_override.tf").read_text(encoding="utf-8")
    blocks = [paragraph for paragraph in text.split("\n\n") if 'resource "' in paragraph]
    # Then every block says, in a comment, which moto gap it covers
    assert len(blocks) == text.count('\nresource "')
    for block in blocks:
        header = block[: block.index("{")]
        assert "moto gap:" in block, f"no 'moto gap:' comment for {header.strip()}"


# ---------------------------------------------------------------------- tables


def test_index_table_matches_the_schema_module(tf: Terraform) -> None:
    table = tf.resources["aws_dynamodb_table"]["index"]
    request = index_schema.create_table_request(index_schema.TABLE_NAME_DEFAULT)
    assert table["name"] == "${var.table_name}"
    assert tf.variables["table_name"]["default"] == index_schema.TABLE_NAME_DEFAULT
    assert table["billing_mode"] == request["BillingMode"] == "PAY_PER_REQUEST"
    assert table["hash_key"] == index_schema.PARTITION_KEY
    assert table["range_key"] == index_schema.SORT_KEY
    assert [{"name": a["name"], "type": a["type"]} for a in table["attribute"]] == [
        {"name": d["AttributeName"], "type": d["AttributeType"]}
        for d in request["AttributeDefinitions"]
    ]
    indexes = [
        {
            "name": gsi["name"],
            "hash_key": gsi["hash_key"],
            "range_key": gsi["range_key"],
            "projection_type": gsi["projection_type"],
            "non_key_attributes": tf.resolve(gsi["non_key_attributes"]),
        }
        for gsi in table["global_secondary_index"]
    ]
    assert indexes == [
        {
            "name": index.name,
            "hash_key": index.partition_key,
            "range_key": index.sort_key,
            "projection_type": "INCLUDE",
            "non_key_attributes": list(index_schema.SUMMARY_ATTRIBUTES),
        }
        for index in index_schema.GLOBAL_INDEXES
    ]
    (ttl,) = table["ttl"]
    assert ttl == {"attribute_name": index_schema.TTL_ATTRIBUTE, "enabled": True}


def test_tables_are_protected(tf: Terraform) -> None:
    tables = {
        "index",
        "idempotency",
        "api_keys",
        "api_usage",
        "change_feed",
        "webhooks",
        "webhook_deliveries",
    }
    assert set(tf.resources["aws_dynamodb_table"]) == tables
    for name in sorted(tables):
        table = tf.resources["aws_dynamodb_table"][name]
        assert table["point_in_time_recovery"] == [{"enabled": True}]
        (encryption,) = table["server_side_encryption"]
        assert encryption == {"enabled": True, "kms_key_arn": "${var.kms_key_arn}"}
        assert table["deletion_protection_enabled"] == "${var.deletion_protection}"
    assert tf.variables["deletion_protection"]["default"] is True


def test_api_keys_table_matches_the_schema_module(tf: Terraform) -> None:
    # Given the keys table and api_keys_schema's CreateTable request
    table = tf.resources["aws_dynamodb_table"]["api_keys"]
    request = api_keys_schema.create_api_keys_table_request(
        api_keys_schema.API_KEYS_TABLE_NAME_DEFAULT
    )
    # Then name, billing, key and TTL attribute are the schema module's
    assert table["name"] == "${var.api_keys_table_name}"
    assert tf.variables["api_keys_table_name"]["default"] == (
        api_keys_schema.API_KEYS_TABLE_NAME_DEFAULT
    )
    assert ApiSettings.model_fields["api_keys_table_name"].default == (
        api_keys_schema.API_KEYS_TABLE_NAME_DEFAULT
    )
    assert table["billing_mode"] == request["BillingMode"]
    assert [table["hash_key"]] == [k["AttributeName"] for k in request["KeySchema"]]
    assert table["hash_key"] == api_keys_schema.PARTITION_KEY
    assert "range_key" not in table
    assert [{"name": a["name"], "type": a["type"]} for a in table["attribute"]] == [
        {"name": d["AttributeName"], "type": d["AttributeType"]}
        for d in request["AttributeDefinitions"]
    ]
    (ttl,) = table["ttl"]
    assert ttl == {"attribute_name": api_keys_schema.TTL_ATTRIBUTE, "enabled": True}
    assert "global_secondary_index" not in table


def test_api_usage_table_matches_the_schema_module(tf: Terraform) -> None:
    # Given the usage table and api_usage_schema's CreateTable request
    table = tf.resources["aws_dynamodb_table"]["api_usage"]
    request = api_usage_schema.create_api_usage_table_request(
        api_usage_schema.API_USAGE_TABLE_NAME_DEFAULT
    )
    # Then name, billing, key and TTL attribute are the schema module's, as are the defaults
    assert table["name"] == "${var.api_usage_table_name}"
    assert tf.variables["api_usage_table_name"]["default"] == (
        api_usage_schema.API_USAGE_TABLE_NAME_DEFAULT
    )
    assert ApiSettings.model_fields["api_usage_table_name"].default == (
        api_usage_schema.API_USAGE_TABLE_NAME_DEFAULT
    )
    assert table["billing_mode"] == request["BillingMode"] == "PAY_PER_REQUEST"
    assert [table["hash_key"]] == [k["AttributeName"] for k in request["KeySchema"]]
    assert table["hash_key"] == api_usage_schema.PARTITION_KEY
    assert "range_key" not in table
    assert [{"name": a["name"], "type": a["type"]} for a in table["attribute"]] == [
        {"name": d["AttributeName"], "type": d["AttributeType"]}
        for d in request["AttributeDefinitions"]
    ]
    # And counters and nonces expire by the schema's TTL attribute
    (ttl,) = table["ttl"]
    assert ttl == {"attribute_name": api_usage_schema.TTL_ATTRIBUTE, "enabled": True}
    assert "global_secondary_index" not in table


def test_idempotency_table_matches_powertools_layout(tf: Terraform) -> None:
    table = tf.resources["aws_dynamodb_table"]["idempotency"]
    request = index_schema.create_idempotency_table_request(
        index_schema.IDEMPOTENCY_TABLE_NAME_DEFAULT
    )
    assert tf.variables["idempotency_table_name"]["default"] == (
        index_schema.IDEMPOTENCY_TABLE_NAME_DEFAULT
    )
    assert table["billing_mode"] == request["BillingMode"]
    assert [table["hash_key"]] == [k["AttributeName"] for k in request["KeySchema"]] == ["id"]
    assert "range_key" not in table
    (ttl,) = table["ttl"]
    assert ttl == {"attribute_name": index_schema.IDEMPOTENCY_TTL_ATTRIBUTE, "enabled": True}


# ---------------------------------------------------------------------- functions


def test_every_function_folder_has_a_function_and_a_role(tf: Terraform) -> None:
    folders = function_folders()
    assert sorted(SETTINGS_MODELS) == folders
    assert sorted(tf.locals["functions"]) == folders
    for kind, name in (
        ("aws_lambda_function", "function"),
        ("aws_iam_role", "function"),
        ("aws_iam_role_policy", "base"),
        ("aws_iam_role_policy", "access"),
        ("aws_cloudwatch_log_group", "function"),
        ("aws_cloudwatch_metric_alarm", "error_rate"),
    ):
        assert tf.resources[kind][name]["for_each"] == "${local.functions}", f"{kind}.{name}"
    assert sorted(tf.locals["access_policies"]) == folders
    assert sorted(tf.locals["function_environment"]) == folders
    function = tf.resources["aws_lambda_function"]["function"]
    assert function["role"] == "${aws_iam_role.function[each.key].arn}"


@pytest.mark.parametrize("folder", sorted(SETTINGS_MODELS))
def test_handler_loads_the_settings_model_the_test_maps_it_to(folder: str) -> None:
    tree = ast.parse((FUNCTIONS / folder / "handler.py").read_text(encoding="utf-8"))
    loaded = {
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "load_settings"
        and node.args
        and isinstance(node.args[0], ast.Name)
    }
    assert loaded == {SETTINGS_MODELS[folder].__name__}


@pytest.mark.parametrize("folder", sorted(SETTINGS_MODELS))
def test_function_environment_is_exactly_its_settings_model(tf: Terraform, folder: str) -> None:
    model = SETTINGS_MODELS[folder]
    environment = tf.locals["function_environment"][folder]
    unset = UNSET_SETTINGS.get(folder, set())
    assert set(environment) == {
        variable_name(field) for field in model.model_fields if field not in unset
    }
    function = tf.resources["aws_lambda_function"]["function"]
    (block,) = function["environment"]
    assert block["variables"] == (
        "${merge(local.function_environment[each.key], local.powertools_environment)}"
    )
    assert not [name for name in tf.locals["powertools_environment"] if "CACHESYNC" in name]


@pytest.mark.parametrize("folder", sorted(SETTINGS_MODELS))
def test_optional_settings_come_from_variables_with_the_model_defaults(
    tf: Terraform, folder: str
) -> None:
    model = SETTINGS_MODELS[folder]
    environment = tf.locals["function_environment"][folder]
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined:
            continue  # required: table and bucket names come from resources and variables
        if name in UNSET_SETTINGS.get(folder, set()):
            continue
        if name in RESOURCE_SETTINGS:
            assert environment[variable_name(name)] == RESOURCE_SETTINGS[name], name
            continue
        if name in FIXED_SETTINGS:
            # A constant, and no variable of that name that a deployment could set
            assert environment[variable_name(name)] == FIXED_SETTINGS[name], name
            assert name not in tf.variables, f"var.{name} must not exist"
            continue
        assert environment[variable_name(name)] == f"${{tostring(var.{name})}}"
        variable = tf.variables[name]
        assert variable["default"] == field.default, f"var.{name}"
        if field.annotation is bool:
            # A bool has no bounds: its type is the whole check, and null is refused.
            assert variable["type"] in ("bool", "${bool}"), f"var.{name}"
            assert variable["nullable"] is False, f"var.{name}"
            continue
        (validation,) = variable["validation"]
        condition = validation["condition"]
        if get_origin(field.annotation) is Literal:
            # A choice: the condition admits exactly the model's values.
            allowed = re.findall(r'"([^"]*)"', unquote(condition))
            assert sorted(allowed) == sorted(get_args(field.annotation)), f"var.{name}"
        for bound in field.metadata:
            for attribute, operator in (("ge", ">="), ("gt", ">"), ("le", "<=")):
                limit = getattr(bound, attribute, None)
                if limit is not None:
                    number = int(limit) if float(limit).is_integer() else limit
                    text = f"var.{name} {operator} {number}"
                    assert text in condition, f"var.{name}: {text!r} not in its validation"


def test_functions_run_python_3_12_or_newer_on_the_chosen_architecture(tf: Terraform) -> None:
    function = tf.resources["aws_lambda_function"]["function"]
    assert function["runtime"] == "${var.lambda_runtime}"
    assert function["architectures"] == ["${var.lambda_architecture}"]
    runtime = tf.variables["lambda_runtime"]
    assert runtime["default"] == "python3.12"
    (validation,) = runtime["validation"]
    allowed = re.findall(r"python3\.(\d+)", validation["condition"])
    assert allowed
    assert all(int(minor) >= 12 for minor in allowed)
    assert tf.variables["lambda_architecture"]["default"] == "arm64"
    assert function["memory_size"] == "${var.function_memory_mb[each.key]}"
    assert function["timeout"] == "${var.function_timeout_seconds[each.key]}"
    assert function["tracing_config"] == [{"mode": "Active"}]


def load_packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_lambdas_for_infra_test", PACKAGER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_terraform_deploys_what_make_package_builds(tf: Terraform) -> None:
    packager = load_packager()
    function = tf.resources["aws_lambda_function"]["function"]
    assert function["handler"] == packager.HANDLER
    assert tf.locals["layer_zip"] == "${local.build_dir}/lambda/layer.zip"
    assert unquote(tf.locals["function_zips"]) == (
        '${{for name in keys(local.functions) : name => "${local.build_dir}'
        '/lambda/functions/${name}.zip"}}'
    )
    assert function["source_code_hash"] == "${filebase64sha256(local.function_zips[each.key])}"
    layer = tf.resources["aws_lambda_layer_version"]["runtime"]
    assert layer["source_code_hash"] == "${filebase64sha256(local.layer_zip)}"
    architectures = tf.variables["lambda_architecture"]["validation"][0]["condition"]
    assert set(re.findall(r'"(\w+)"', unquote(architectures))) == set(packager.PLATFORMS)
    runtimes = tf.variables["lambda_runtime"]["validation"][0]["condition"]
    assert set(re.findall(r"python(3\.\d+)", runtimes)) == set(packager.PYTHON_VERSIONS)


@pytest.fixture
def lambda_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Lambda-like environment: no CACHESYNC_* of the developer's, a region, no telemetry."""
    for name in list(os.environ):
        if name.startswith(("CACHESYNC_", "AWS_ENDPOINT_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


@pytest.mark.parametrize("folder", sorted(SETTINGS_MODELS))
def test_handler_named_in_terraform_imports_and_is_callable(
    tf: Terraform, folder: str, lambda_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    module_name, attribute = tf.resources["aws_lambda_function"]["function"]["handler"].split(".")
    path = FUNCTIONS / folder / f"{module_name}.py"
    assert path.is_file()
    model = SETTINGS_MODELS[folder]
    for name, field in model.model_fields.items():
        if field.default is PydanticUndefined:  # required: give it a plausible value
            monkeypatch.setenv(variable_name(name), f"cachesync-{name.replace('_', '-')}")
    if folder == "query_api":
        # One of the two token secret sources is required; the secret itself needs no network.
        monkeypatch.setenv(variable_name("api_token_secret"), "s" * 32)
    if folder in ("change_feed", "webhook_delivery"):
        # Terraform always sets it (a resource setting); webhook_delivery refuses to start without.
        monkeypatch.setenv(
            variable_name("webhook_delivery_queue_url"),
            "https://sqs.us-east-1.amazonaws.com/123456789012/cachesync-webhook-delivery",
        )
    unique = f"infra_check_{folder}_{module_name}"
    spec = importlib.util.spec_from_file_location(unique, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        assert callable(getattr(module, attribute))
    finally:
        sys.modules.pop(unique, None)


# ---------------------------------------------------------------------- events


def test_event_handlers_consume_their_queues_with_partial_batch_responses(tf: Terraform) -> None:
    assert set(tf.locals["event_functions"]) == EVENT_FUNCTIONS
    mapping = tf.resources["aws_lambda_event_source_mapping"]["events"]
    assert mapping["for_each"] == "${local.event_functions}"
    assert mapping["event_source_arn"] == "${aws_sqs_queue.events[each.key].arn}"
    assert mapping["function_name"] == "${aws_lambda_function.function[each.key].arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["batch_size"] == "${var.event_source_mapping.batch_size}"
    assert mapping["maximum_batching_window_in_seconds"] == (
        "${var.event_source_mapping.maximum_batching_window_seconds}"
    )
    assert mapping["scaling_config"] == [
        {"maximum_concurrency": "${var.event_source_mapping.maximum_concurrency}"}
    ]


def test_event_queues_have_encrypted_dead_letter_queues(tf: Terraform) -> None:
    queues = tf.resources["aws_sqs_queue"]
    for name in ("events", "events_dlq", "backfill_failures"):
        assert queues[name]["kms_master_key_id"] == "${var.kms_key_arn}"
        assert queues[name]["sqs_managed_sse_enabled"] == "${var.kms_key_arn == null ? true : null}"
    redrive = unquote(queues["events"]["redrive_policy"])
    assert "aws_sqs_queue.events_dlq[each.key].arn" in redrive
    assert "var.queue_max_receive_count" in redrive


def test_queue_policies_admit_only_the_documents_bucket(tf: Terraform) -> None:
    policy = tf.resources["aws_sqs_queue_policy"]["events"]
    document = tf.policy_document(policy["policy"])
    allows = [s for s in statements(document) if s.get("effect") == "Allow"]
    by_sid = {s["sid"]: s for s in allows}
    assert set(by_sid) == {"AllowDocumentsBucketNotifications", "AllowDocumentsEventBridgeRule"}
    s3 = by_sid["AllowDocumentsBucketNotifications"]
    assert s3["principals"] == [{"type": "Service", "identifiers": ["s3.amazonaws.com"]}]
    assert s3["actions"] == ["sqs:SendMessage"]
    conditions = {c["variable"]: (c["test"], c["values"]) for c in s3["condition"]}
    assert conditions == {
        "aws:SourceArn": ("ArnEquals", ["${local.bucket_arn}"]),
        "aws:SourceAccount": ("StringEquals", ["${local.account_id}"]),
    }
    rule = by_sid["AllowDocumentsEventBridgeRule"]
    assert rule["principals"] == [{"type": "Service", "identifiers": ["events.amazonaws.com"]}]
    (condition,) = rule["condition"]
    assert condition["variable"] == "aws:SourceArn"


def test_bucket_notifications_route_every_change_to_its_handler(tf: Terraform) -> None:
    events = tf.locals["s3_notification_events"]
    assert events == {
        "s3_object_created": ["s3:ObjectCreated:*"],
        # ObjectRemoved:* does not include lifecycle expirations.
        "s3_object_removed": ["s3:ObjectRemoved:*", "s3:LifecycleExpiration:*"],
    }
    assert tf.locals["eventbridge_detail_types"] == {
        "s3_object_created": "Object Created",
        "s3_object_removed": "Object Deleted",
    }
    notification = tf.resources["aws_s3_bucket_notification"]["documents"]
    assert notification["eventbridge"] == (
        "${local.eventbridge || var.existing_notifications.eventbridge}"
    )
    assert notification["depends_on"] == ["${aws_sqs_queue_policy.events}"]
    mode = tf.variables["notification_mode"]
    assert mode["default"] == "sqs"
    assert "eventbridge" in mode["validation"][0]["condition"]


def test_existing_bucket_by_default_created_bucket_on_request(tf: Terraform) -> None:
    assert "default" not in tf.variables["documents_bucket_name"]
    assert tf.variables["create_bucket"]["default"] is False
    assert tf.data["aws_s3_bucket"]["documents"]["count"] == "${var.create_bucket ? 0 : 1}"
    for kind in (
        "aws_s3_bucket",
        "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration",
        "aws_s3_bucket_public_access_block",
        "aws_s3_bucket_policy",
    ):
        assert tf.resources[kind]["documents"]["count"] == "${var.create_bucket ? 1 : 0}", kind
    bucket_policy = tf.data["aws_iam_policy_document"]["documents_bucket"]
    assert all(s["effect"] == "Deny" for s in statements(bucket_policy))


# ---------------------------------------------------------------------- IAM


def test_stores_make_only_calls_the_matrix_knows() -> None:
    calls = set()
    for path in STORES.glob("*.py"):
        calls |= set(re.findall(r"self\._client\.(\w+)\(", path.read_text(encoding="utf-8")))
    assert calls <= set(CLIENT_CALL_ACTIONS), f"update CLIENT_CALL_ACTIONS and iam.tf: {calls}"
    # Transactions use exactly the members TRANSACTION_MEMBERS says (never ConditionCheck), and
    # only the stores it names make transactions
    for path in STORES.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "transact_write_items(" not in text:
            assert path.name not in TRANSACTION_MEMBERS, path.name
            continue
        assert transaction_members(text) == TRANSACTION_MEMBERS[path.name], path.name


STORES: Final = ROOT / "shared" / "cachesync" / "stores"


def transaction_members(text: str) -> set[str]:
    """The TransactWriteItems member kinds a store's source builds (``"Put": {`` ...)."""
    return set(re.findall(r"[\"'](Put|Update|Delete|ConditionCheck)[\"']\s*:\s*\{", text))


@pytest.mark.parametrize("folder", sorted(IAM_MATRIX))
def test_each_role_is_allowed_exactly_its_matrix(tf: Terraform, folder: str) -> None:
    base = tf.data["aws_iam_policy_document"]["base"]
    assert base["for_each"] == "${local.functions}"
    assert allowed_actions(tf, base) == BASE_ACTIONS
    access = access_document(tf, folder)
    assert allowed_actions(tf, access, static_only=True) == IAM_MATRIX[folder]
    # Dynamic statements exist only with a KMS key, and grant only KMS actions on that key.
    for block in dynamic_statements(access):
        assert "kms_key_arn" in block["for_each"]
        for content in block["content"]:
            assert all(action.startswith("kms:") for action in actions_of(tf, content))
            assert content["resources"] == ["${statement.value}"]
            (condition,) = content["condition"]
            assert condition["variable"] == "kms:ViaService"


def test_no_function_scans_and_only_query_api_queries_the_indexes(tf: Terraform) -> None:
    webhooks = "${aws_dynamodb_table.webhooks.arn}"
    for folder in IAM_MATRIX:
        document = access_document(tf, folder)
        # The one table a function may scan: the webhook subscriptions (few; change_feed's
        # fan-out and GET /v1/webhooks), in a statement of its own
        for statement in statements(document):
            if "dynamodb:Scan" in actions_of(tf, statement):
                assert statement["resources"] == [webhooks], folder
        if folder != "query_api":
            assert "dynamodb:Query" not in allowed_actions(tf, document), folder
    # query_api queries the GSIs (IndexName), never the base table
    (query,) = [
        s
        for s in statements(access_document(tf, "query_api"))
        if "dynamodb:Query" in actions_of(tf, s) and s["resources"][0].startswith("${local.")
    ]
    assert actions_of(tf, query) == {"dynamodb:Query"}
    assert query["resources"] == ["${local.table_arn}/index/*"]
    # Its other queries: the analytics (change feed table) and the recent delivery attempts
    others = [
        s
        for s in statements(access_document(tf, "query_api"))
        if "dynamodb:Query" in actions_of(tf, s) and s is not query
    ]
    assert sorted(r for s in others for r in s["resources"]) == [
        "${aws_dynamodb_table.change_feed.arn}",
        "${aws_dynamodb_table.webhook_deliveries.arn}",
    ]


def test_removed_handler_cannot_read_objects(tf: Terraform) -> None:
    granted = allowed_actions(tf, access_document(tf, "s3_object_removed")) | allowed_actions(
        tf, tf.data["aws_iam_policy_document"]["base"]
    )
    assert not [action for action in granted if action.startswith("s3:GetObject")]
    assert "s3:ListBucket" in granted


def test_event_handlers_consume_only_their_own_queue(tf: Terraform) -> None:
    for folder in EVENT_FUNCTIONS:
        (statement,) = [
            s
            for s in statements(access_document(tf, folder))
            if "sqs:ReceiveMessage" in actions_of(tf, s)
        ]
        assert [unquote(r) for r in statement["resources"]] == [
            f'${{aws_sqs_queue.events["{folder}"].arn}}'
        ]


def test_idempotency_and_self_invocation_are_scoped(tf: Terraform) -> None:
    updates = [
        s
        for s in statements(access_document(tf, "write_through"))
        if "dynamodb:UpdateItem" in actions_of(tf, s)
    ]
    # Idempotency records; and the write-through's claim, which may update nothing else.
    assert sorted(u["resources"][0] for u in updates) == [
        "${local.idempotency_table_arn}",
        "${local.table_arn}",
    ]
    (claim,) = [u for u in updates if u["resources"] == ["${local.table_arn}"]]
    assert actions_of(tf, claim) == {"dynamodb:UpdateItem"}
    (invoke,) = [
        s
        for s in statements(access_document(tf, "backfill"))
        if "lambda:InvokeFunction" in actions_of(tf, s)
    ]
    assert [unquote(r) for r in invoke["resources"]] == [
        '${aws_lambda_function.function["backfill"].arn}',
        '${aws_lambda_function.function["backfill"].arn}:*',
    ]


def all_policy_documents(tf: Terraform) -> dict[str, dict[str, Any]]:
    return tf.data["aws_iam_policy_document"]


def test_no_statement_allows_a_wildcard_except_xray(tf: Terraform) -> None:
    wildcard_statements = []
    for name, document in all_policy_documents(tf).items():
        for statement in statements(document):
            actions = actions_of(tf, statement)
            resources = [unquote(r) for r in statement.get("resources", [])]
            if statement.get("effect", "Allow") == "Deny":
                continue  # deny-all-insecure-transport statements may say s3:* / sqs:*
            assert not [a for a in actions if a == "*" or a.endswith(":*")], (name, actions)
            if "*" in resources:
                wildcard_statements.append((name, statement.get("sid"), actions))
                assert actions == XRAY_ACTIONS, f"{name}: Resource * outside the X-Ray statement"
                assert resources == ["*"]
    assert wildcard_statements == [("base", "XRayWriteTraces", XRAY_ACTIONS)]
    # The exception is documented next to it.
    iam = tf.texts["iam.tf"]
    comment = iam[: iam.index('sid       = "XRayWriteTraces"')].rsplit("statement {", 1)[0]
    assert "X-Ray" in comment.splitlines()[-2] or "X-Ray" in comment[-600:]


def test_every_policy_is_a_policy_document(tf: Terraform) -> None:
    """Policies written as jsonencode() would escape the wildcard test above."""
    policies = [
        ("aws_iam_role_policy", name, body["policy"])
        for name, body in tf.resources["aws_iam_role_policy"].items()
    ]
    policies += [
        ("aws_iam_policy", n, b["policy"]) for n, b in tf.resources["aws_iam_policy"].items()
    ]
    policies += [
        (kind, n, b["policy"])
        for kind in ("aws_sqs_queue_policy", "aws_s3_bucket_policy")
        for n, b in tf.resources[kind].items()
    ]
    policies += [
        ("aws_iam_role", n, b["assume_role_policy"])
        for n, b in tf.resources["aws_iam_role"].items()
    ]
    for kind, name, policy in policies:
        if policy == "${local.access_policies[each.key]}":
            for reference in tf.locals["access_policies"].values():
                tf.policy_document(reference)
        else:
            tf.policy_document(policy)  # asserts the reference shape
        assert "jsonencode" not in policy, f"{kind}.{name}"
    # Nor may a document compose one: every source is itself a policy document.
    for name, document in all_policy_documents(tf).items():
        for source in document.get("source_policy_documents", []):
            tf.policy_document(source)  # asserts the reference shape
            assert "jsonencode" not in source, f"aws_iam_policy_document.{name}"


# ---------------------------------------------------------------------- CloudWatch


def alarm(tf: Terraform, name: str) -> dict[str, Any]:
    return tf.resources["aws_cloudwatch_metric_alarm"][name]


def test_every_alarm_notifies_the_optional_topic(tf: Terraform) -> None:
    assert tf.variables["alarm_sns_topic_arn"]["default"] is None
    for name, body in tf.resources["aws_cloudwatch_metric_alarm"].items():
        assert body["alarm_actions"] == "${local.alarm_actions}", name
        assert "docs/RUNBOOK.md#" in body["alarm_description"], name


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")


def test_alarm_runbook_links_point_at_runbook_sections(tf: Terraform) -> None:
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text(encoding="utf-8")
    anchors = {github_anchor(line[3:]) for line in runbook.splitlines() if line.startswith("## ")}
    lookup = '${lookup(local.dead_letter_runbook_sections, each.key, "dlq-depth")}'
    for name, body in tf.resources["aws_cloudwatch_metric_alarm"].items():
        description = unquote(body["alarm_description"])
        if lookup in description:
            # A dead-letter queue's alarm: its own section, or DLQ depth for the others
            sections = tf.locals["dead_letter_runbook_sections"]
            for queue in sections:
                assert f"{queue} = aws_sqs_queue." in tf.locals["dead_letter_queues"], queue
            found = [*sections.values(), "dlq-depth"]
        else:
            found = re.findall(r"docs/RUNBOOK\.md#([a-z0-9-]+)", description)
            assert len(found) == 1, name
        for anchor in found:
            assert anchor in anchors, f"alarm {name}: no RUNBOOK section #{anchor}"


def test_cache_hit_rate_alarm_reads_the_reader_metrics(tf: Terraform) -> None:
    hit_rate = alarm(tf, "cache_hit_rate")
    assert hit_rate["comparison_operator"] == "LessThanThreshold"
    assert tf.variables["cache_hit_rate_threshold_percent"]["default"] == 80
    metrics = {q["id"]: q["metric"][0] for q in hit_rate["metric_query"] if "metric" in q}
    assert {m["metric_name"] for m in metrics.values()} == {"CacheHits", "CacheMisses"}
    for metric in metrics.values():
        # Powertools' Metrics(namespace="cachesync", service=SERVICE): dimension "service".
        assert metric["namespace"] == "cachesync"
        assert metric["dimensions"] == {"service": "fallback_read"}
    (expression,) = [q for q in hit_rate["metric_query"] if "expression" in q]
    assert expression["return_data"] is True


def test_latency_error_dlq_and_lag_alarms(tf: Terraform) -> None:
    latency = alarm(tf, "read_latency_p99")
    assert (latency["namespace"], latency["metric_name"]) == ("AWS/Lambda", "Duration")
    assert latency["extended_statistic"] == "p99"
    assert tf.variables["read_latency_p99_threshold_ms"]["default"] == 500
    assert "fallback_read" in unquote(latency["dimensions"]["FunctionName"])

    errors = alarm(tf, "error_rate")
    names = {q["metric"][0]["metric_name"] for q in errors["metric_query"] if "metric" in q}
    assert names == {"Errors", "Invocations"}
    assert tf.variables["error_rate_threshold_percent"]["default"] == 1

    dlq = alarm(tf, "dlq_depth")
    assert dlq["for_each"] == "${local.dead_letter_queues}"
    assert dlq["metric_name"] == "ApproximateNumberOfMessagesVisible"
    assert (dlq["comparison_operator"], dlq["threshold"]) == ("GreaterThanThreshold", 0)
    dead_letter_queues = unquote(tf.locals["dead_letter_queues"])
    assert "aws_sqs_queue.events_dlq[name].name" in dead_letter_queues
    assert "aws_sqs_queue.backfill_failures.name" in dead_letter_queues

    lag = alarm(tf, "sync_lag_p99")
    assert lag["for_each"] == "${local.event_functions}"
    assert (lag["namespace"], lag["metric_name"]) == ("cachesync", "SyncLag")
    assert lag["dimensions"] == {"service": "${each.key}"}
    assert lag["extended_statistic"] == "p99"


def test_outputs_name_what_operators_need(tf: Terraform) -> None:
    assert {
        "table_name",
        "table_arn",
        "function_arns",
        "queue_urls",
        "bucket_name",
        "dead_letter_queue_urls",
    } <= set(tf.outputs)


# ---------------------------------------------------------------------- query API


def test_every_path_and_the_root_go_to_query_api_as_a_lambda_proxy(tf: Terraform) -> None:
    # Given the REST API's resources, methods and integrations
    proxy = tf.resources["aws_api_gateway_resource"]["proxy"]
    methods = tf.resources["aws_api_gateway_method"]["query"]
    integrations = tf.resources["aws_api_gateway_integration"]["query"]
    # Then "{proxy+}" under the root, and both take ANY method to the function (payload 1.0)
    assert proxy["path_part"] == "{proxy+}"
    assert proxy["parent_id"] == "${aws_api_gateway_rest_api.query.root_resource_id}"
    assert tf.locals["api_resources"] == {
        "root": "${aws_api_gateway_rest_api.query.root_resource_id}",
        "proxy": "${aws_api_gateway_resource.proxy.id}",
    }
    assert methods["for_each"] == integrations["for_each"] == "${local.api_resources}"
    assert methods["http_method"] == "ANY"
    # The function authenticates (API keys); API Gateway authorizes nothing itself
    assert methods["authorization"] == "NONE"
    assert integrations["type"] == "AWS_PROXY"
    assert integrations["integration_http_method"] == "POST"
    assert unquote(integrations["uri"]) == (
        '${aws_lambda_function.function["query_api"].invoke_arn}'
    )
    # And a new deployment follows any routing change
    deployment = tf.resources["aws_api_gateway_deployment"]["query"]
    trigger = unquote(deployment["triggers"]["redeployment"])
    for reference in ("aws_api_gateway_method.query", "aws_api_gateway_integration.query"):
        assert reference in trigger
    assert deployment["lifecycle"] == [{"create_before_destroy": True}]


def test_the_stage_logs_access_without_headers_and_throttles(tf: Terraform) -> None:
    stage = tf.resources["aws_api_gateway_stage"]["query"]
    assert stage["stage_name"] == "${var.api_stage_name}"
    assert stage["xray_tracing_enabled"] is True
    (access,) = stage["access_log_settings"]
    assert access["destination_arn"] == "${aws_cloudwatch_log_group.api_access.arn}"
    # A JSON line per request (jsonencode of $context variables) ...
    log_format = access["format"]
    assert log_format.startswith("${jsonencode(")
    fields = dict(re.findall(r"(\w+)\s*=\s*\"(\$context\.[\w.]+)\"", unquote(log_format)))
    assert {"requestId", "status", "path", "httpMethod", "responseLatency"} <= set(fields)
    # ... that holds no header at all (Authorization and X-Api-Key carry keys)
    assert not [v for v in fields.values() if "header" in v.lower() or "apikey" in v.lower()]
    assert "authorization" not in log_format.lower()
    log_group = tf.resources["aws_cloudwatch_log_group"]["api_access"]
    assert log_group["retention_in_days"] == "${var.log_retention_days}"
    assert log_group["kms_key_id"] == "${var.kms_key_arn}"
    # Throttling and metrics for every method, execution logs off
    (settings,) = tf.resources["aws_api_gateway_method_settings"]["all"]["settings"]
    assert tf.resources["aws_api_gateway_method_settings"]["all"]["method_path"] == "*/*"
    assert settings["throttling_rate_limit"] == "${var.api_throttle_rate_limit}"
    assert settings["throttling_burst_limit"] == "${var.api_throttle_burst_limit}"
    assert settings["metrics_enabled"] is True
    assert settings["data_trace_enabled"] is False
    assert settings["logging_level"] in ("ERROR", "OFF")


def test_only_this_api_stage_may_invoke_query_api(tf: Terraform) -> None:
    permission = tf.resources["aws_lambda_permission"]["query_api_from_api_gateway"]
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert permission["action"] == "lambda:InvokeFunction"
    assert unquote(permission["function_name"]) == (
        '${aws_lambda_function.function["query_api"].function_name}'
    )
    assert permission["source_arn"] == (
        "${aws_api_gateway_rest_api.query.execution_arn}/${var.api_stage_name}/*/*"
    )


def test_the_token_secret_is_drawn_once_and_never_in_the_environment(tf: Terraform) -> None:
    # Given the secret, its version and the function's environment
    version = tf.resources["aws_secretsmanager_secret_version"]["api_token"]
    password = tf.data["aws_secretsmanager_random_password"]["api_token"]
    environment = tf.locals["function_environment"]["query_api"]
    # Then the value comes from Secrets Manager's generator, at least 32 characters, set once
    assert version["secret_string"] == (
        "${data.aws_secretsmanager_random_password.api_token.random_password}"
    )
    assert password["password_length"] >= 32
    (lifecycle,) = version["lifecycle"]
    assert lifecycle["ignore_changes"] == ["secret_string"]
    # And the function is told where it is, never what it is
    assert "CACHESYNC_API_TOKEN_SECRET" not in environment
    assert environment["CACHESYNC_API_TOKEN_SECRET_ID"] == (
        "${aws_secretsmanager_secret.api_token.arn}"
    )
    secret = tf.resources["aws_secretsmanager_secret"]["api_token"]
    assert secret["kms_key_id"] == "${var.kms_key_arn}"


def test_query_api_reads_and_rotates_keys_and_reads_its_secret_only(tf: Terraform) -> None:
    document = access_document(tf, "query_api")
    by_action: dict[str, list[list[str]]] = {}
    for statement in statements(document):
        for action in actions_of(tf, statement):
            by_action.setdefault(action, []).append(
                [unquote(r) for r in statement.get("resources", [])]
            )
    # The token secret, and nothing else, may be read
    assert by_action["secretsmanager:GetSecretValue"] == [
        ["${aws_secretsmanager_secret.api_token.arn}"]
    ]
    # The keys table is read (GetItem) and, for the admin rotate route, written (PutItem)
    keys_table = "${aws_dynamodb_table.api_keys.arn}"
    touching_keys = [
        action
        for action, grants in by_action.items()
        for resources in grants
        if keys_table in resources
    ]
    assert sorted(touching_keys) == ["dynamodb:GetItem", "dynamodb:PutItem"]
    # The usage table: exactly the actions of the calls its store makes, in a statement of its own
    usage_table = "${aws_dynamodb_table.api_usage.arn}"
    usage_store = ROOT / "shared" / "cachesync" / "stores" / "dynamodb_api_usage.py"
    usage_calls = set(
        re.findall(r"self\._client\.(\w+)\(", usage_store.read_text(encoding="utf-8"))
    )
    assert usage_calls == {"update_item", "put_item"}
    touching_usage = [
        action
        for action, grants in by_action.items()
        for resources in grants
        if usage_table in resources
    ]
    assert sorted(touching_usage) == sorted(
        action for call in usage_calls for action in CLIENT_CALL_ACTIONS[call]
    )
    assert [
        [unquote(r) for r in s["resources"]]
        for s in statements(document)
        if usage_table in [unquote(r) for r in s.get("resources", [])]
    ] == [[usage_table]]
    # Updates: the idempotency records, the write-through's claim on the index, the counters
    # (and the webhook subscriptions: PATCH, rotate-secret, a successful test ping)
    assert sorted(r[0] for r in by_action["dynamodb:UpdateItem"]) == [
        "${aws_dynamodb_table.api_usage.arn}",
        "${aws_dynamodb_table.webhooks.arn}",
        "${local.idempotency_table_arn}",
        "${local.table_arn}",
    ]
    # KMS (only with a key): the cachesync key through DynamoDB and Secrets Manager
    via = {
        content["condition"][0]["values"][0]
        for block in dynamic_statements(document)
        for content in block["content"]
        if "kms_key_arn" in block["for_each"] and "documents" not in block["for_each"]
    }
    assert via == {
        "dynamodb.${local.region}.amazonaws.com",
        "secretsmanager.${local.region}.amazonaws.com",
    }


def test_operators_manage_api_keys(tf: Terraform) -> None:
    operator = tf.data["aws_iam_policy_document"]["operator"]
    (manage,) = [s for s in statements(operator) if s.get("sid") == "ManageApiKeys"]
    # cachesync keys create (PutItem), list (Scan), revoke (GetItem, PutItem)
    assert actions_of(tf, manage) == {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Scan"}
    assert manage["resources"] == ["${aws_dynamodb_table.api_keys.arn}"]
    # Signing keys' secrets are derived from the token secret: create and rotate read it, only it
    (signing,) = [s for s in statements(operator) if s.get("sid") == "ShowSigningSecrets"]
    assert actions_of(tf, signing) == {"secretsmanager:GetSecretValue"}
    assert signing["resources"] == ["${aws_secretsmanager_secret.api_token.arn}"]
    secret_readers = [
        s for s in statements(operator) if "secretsmanager:GetSecretValue" in actions_of(tf, s)
    ]
    assert secret_readers == [signing]


def test_api_alarms_5xx_rate_p95_latency_and_4xx_spike(tf: Terraform) -> None:
    dimensions = tf.locals["api_dimensions"]
    assert dimensions == {
        "ApiName": "${aws_api_gateway_rest_api.query.name}",
        "Stage": "${aws_api_gateway_stage.query.stage_name}",
    }
    for name, metric, threshold in (
        ("api_5xx_rate", "5XXError", "api_5xx_rate_threshold_percent"),
        ("api_4xx_rate", "4XXError", "api_4xx_rate_threshold_percent"),
    ):
        rate = alarm(tf, name)
        assert rate["threshold"] == f"${{var.{threshold}}}"
        assert rate["comparison_operator"] == "GreaterThanThreshold"
        metrics = {q["id"]: q["metric"][0] for q in rate["metric_query"] if "metric" in q}
        assert {m["metric_name"] for m in metrics.values()} == {metric, "Count"}
        assert all(m["namespace"] == "AWS/ApiGateway" for m in metrics.values())
        assert all(m["dimensions"] == "${local.api_dimensions}" for m in metrics.values())
        (expression,) = [q for q in rate["metric_query"] if "expression" in q]
        assert "var.api_alarm_min_requests" in expression["expression"]
    assert tf.variables["api_5xx_rate_threshold_percent"]["default"] == 1
    latency = alarm(tf, "api_latency_p95")
    assert (latency["namespace"], latency["metric_name"]) == ("AWS/ApiGateway", "Latency")
    assert latency["extended_statistic"] == "p95"
    assert latency["threshold"] == "${var.api_latency_p95_threshold_ms}"
    assert tf.variables["api_latency_p95_threshold_ms"]["default"] == 200


def test_dashboard_shows_the_api_cache_hit_ratio_of_the_emitted_metrics(tf: Terraform) -> None:
    # Given the dashboard's widgets (HCL text: the body is built with jsonencode)
    text = tf.texts["cloudwatch.tf"]
    start = text.index('title  = "Query API cache hit ratio (%)"')
    widget = text[start : text.index("\n    },", start)]
    # Then it divides hits by lookups, from the metrics and dimension cache_metrics.py emits
    for name in (API_CACHE_HITS, API_CACHE_MISSES):
        for cache in ("query", "document"):
            assert f'"{name}", "service", "query_api", "{CACHE_DIMENSION}", "{cache}"' in widget
    assert "100 * (FILL(hq, 0) + FILL(hd, 0)) /" in widget
    for title in ("Query API requests and errors (count)", "Query API latency (ms)"):
        assert f'title  = "{title}"' in text


# The query API's own metric names (namespace cachesync): the contract with the code that emits
# them, written down in docs/RUNBOOK.md#query-api-metrics. Per request, with dimensions
# {service, route} and {service, key_id}: requests, errors, throttled, latency; per limiter
# failure, with {service} only.
API_THROTTLED: Final = "ApiThrottled"
API_RATE_LIMITER_UNAVAILABLE: Final = "ApiRateLimiterUnavailable"
API_REQUEST_METRICS: Final = ("ApiRequests", "ApiClientErrors", "ApiServerErrors", API_THROTTLED)
API_LATENCY: Final = "ApiLatency"


def test_api_rate_limit_alarms_watch_the_emitted_metrics(tf: Terraform) -> None:
    # Given the two rate-limit alarms
    assert tf.locals["api_metric_dimensions"] == {"service": "query_api"}
    throttled = alarm(tf, "api_throttled_requests")
    unavailable = alarm(tf, "api_rate_limiter_unavailable")
    # And the code emits the limiter metric under the name the alarm watches
    assert RATE_LIMITER_FAILURE_METRIC == API_RATE_LIMITER_UNAVAILABLE
    # Then the throttled requests of every route are summed by one Metrics Insights query over
    # exactly the {service, route} set (an alarm cannot SEARCH; the key_id set would count twice)
    (query,) = throttled["metric_query"]
    assert query["expression"] == "${local.api_throttled_query}"
    assert query["return_data"] is True
    assert query["period"] == "${var.alarm_period_seconds}"
    # A CloudWatch Metrics Insights query, not SQL.
    schema = 'SCHEMA("cachesync", route, service)'
    insights = f"SELECT SUM({API_THROTTLED}) FROM {schema} WHERE service = 'query_api'"  # noqa: S608
    assert unquote(tf.locals["api_throttled_query"]) == insights
    assert throttled["comparison_operator"] == "GreaterThanThreshold"
    assert throttled["threshold"] == "${var.api_throttled_requests_threshold}"
    assert tf.variables["api_throttled_requests_threshold"]["default"] == 100
    # And any limiter failure in one period alarms
    assert (unavailable["namespace"], unavailable["metric_name"]) == (
        "cachesync",
        API_RATE_LIMITER_UNAVAILABLE,
    )
    assert unavailable["dimensions"] == "${local.api_metric_dimensions}"
    assert (unavailable["comparison_operator"], unavailable["threshold"]) == (
        "GreaterThanThreshold",
        0,
    )
    assert (unavailable["statistic"], unavailable["evaluation_periods"]) == ("Sum", 1)


def test_runbook_names_the_query_api_metrics_the_alarms_and_dashboard_use(
    tf: Terraform,
) -> None:
    # Given the RUNBOOK's metrics contract and the dashboard's text
    runbook = (ROOT / "docs" / "RUNBOOK.md").read_text(encoding="utf-8")
    section = runbook[runbook.index("## Query API metrics") :]
    section = section[: section.index("\n## ", 1)]
    text = tf.texts["cloudwatch.tf"]
    dashboard = text[text.index("dashboard_widgets") :]
    # Then every name is documented there and used on the dashboard
    for name in (*API_REQUEST_METRICS, API_LATENCY, API_RATE_LIMITER_UNAVAILABLE):
        assert f"`{name}`" in section, name
        assert name in dashboard, name
    # And per-route and per-key lines come from SEARCH on exactly those dimensions
    for dimension in ("route", "key_id"):
        assert f"SEARCH('{{cachesync,service,{dimension}}} MetricName" in dashboard, dimension
        assert f"`{dimension}`" in section, dimension


def test_outputs_give_the_api_url(tf: Terraform) -> None:
    assert tf.outputs["api_url"]["value"] == "${aws_api_gateway_stage.query.invoke_url}"
    assert {
        "api_docs_url",
        "api_keys_table_name",
        "api_usage_table_name",
        "api_token_secret_arn",
    } <= set(tf.outputs)


# ---------------------------------------------------------------------- change feed and webhooks


def test_index_table_streams_both_images_as_the_schema_module_says(tf: Terraform) -> None:
    # Given the index table and the schema module's CreateTable request
    table = tf.resources["aws_dynamodb_table"]["index"]
    request = index_schema.create_table_request(index_schema.TABLE_NAME_DEFAULT)
    # Then the stream is on, with the view type the change feed reads
    assert request["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": index_schema.STREAM_VIEW_TYPE,
    }
    assert table["stream_enabled"] is True
    assert table["stream_view_type"] == index_schema.STREAM_VIEW_TYPE == "NEW_AND_OLD_IMAGES"


def key_layout(table: dict[str, Any]) -> list[dict[str, str]]:
    """A Terraform table's key schema, as CreateTable's KeySchema."""
    keys = [{"AttributeName": table["hash_key"], "KeyType": "HASH"}]
    if "range_key" in table:
        keys.append({"AttributeName": table["range_key"], "KeyType": "RANGE"})
    return keys


@pytest.mark.parametrize(
    ("name", "variable", "request_", "ttl"),
    [
        (
            "change_feed",
            "change_feed_table_name",
            change_feed_schema.create_change_feed_table_request(
                change_feed_schema.CHANGE_FEED_TABLE_NAME_DEFAULT
            ),
            None,
        ),
        (
            "webhooks",
            "webhooks_table_name",
            webhooks_schema.create_webhooks_table_request(
                webhooks_schema.WEBHOOKS_TABLE_NAME_DEFAULT
            ),
            None,
        ),
        (
            "webhook_deliveries",
            "webhook_deliveries_table_name",
            webhooks_schema.create_deliveries_table_request(
                webhooks_schema.WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT
            ),
            webhooks_schema.deliveries_ttl_request(
                webhooks_schema.WEBHOOK_DELIVERIES_TABLE_NAME_DEFAULT
            )["TimeToLiveSpecification"],
        ),
    ],
)
def test_change_feed_and_webhook_tables_match_their_schema_modules(
    tf: Terraform,
    name: str,
    variable: str,
    request_: dict[str, Any],
    ttl: dict[str, Any] | None,
) -> None:
    # Given a table and its schema module's CreateTable (and UpdateTimeToLive) request
    table = tf.resources["aws_dynamodb_table"][name]
    # Then name (default included), billing, keys, attributes and TTL are the module's
    assert table["name"] == f"${{var.{variable}}}"
    assert tf.variables[variable]["default"] == request_["TableName"]
    for model in (ApiSettings, ChangeFeedSettings, WebhookDeliverySettings):
        if variable in model.model_fields:
            assert model.model_fields[variable].default == request_["TableName"], model
    assert table["billing_mode"] == request_["BillingMode"] == "PAY_PER_REQUEST"
    assert key_layout(table) == request_["KeySchema"]
    assert [{"name": a["name"], "type": a["type"]} for a in table["attribute"]] == [
        {"name": d["AttributeName"], "type": d["AttributeType"]}
        for d in request_["AttributeDefinitions"]
    ]
    assert "global_secondary_index" not in table
    assert "GlobalSecondaryIndexes" not in request_
    if ttl is None:
        assert "ttl" not in table
    else:
        (block,) = table["ttl"]
        assert block == {"attribute_name": ttl["AttributeName"], "enabled": ttl["Enabled"]}
        assert ttl["AttributeName"] == webhooks_schema.TTL_ATTRIBUTE


def test_change_feed_reads_the_index_stream_with_partial_failures_and_a_destination(
    tf: Terraform,
) -> None:
    # Given the stream's event source mapping
    mapping = tf.resources["aws_lambda_event_source_mapping"]["change_feed"]
    # Then it reads the index table's stream into change_feed, from the oldest record kept
    assert mapping["event_source_arn"] == "${aws_dynamodb_table.index.stream_arn}"
    assert unquote(mapping["function_name"]) == (
        '${aws_lambda_function.function["change_feed"].arn}'
    )
    assert mapping["starting_position"] == "TRIM_HORIZON"
    # And failed records are reported one by one, bisected, retried a bounded number of times
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["bisect_batch_on_function_error"] is True
    for attribute, setting in (
        ("batch_size", "batch_size"),
        ("maximum_batching_window_in_seconds", "maximum_batching_window_seconds"),
        ("maximum_retry_attempts", "maximum_retry_attempts"),
        ("maximum_record_age_in_seconds", "maximum_record_age_seconds"),
    ):
        assert mapping[attribute] == f"${{var.change_feed_stream.{setting}}}", attribute
    # And what still fails is described in its own queue
    (destination,) = mapping["destination_config"]
    assert destination["on_failure"] == [
        {"destination_arn": "${aws_sqs_queue.change_feed_failures.arn}"}
    ]
    assert mapping["depends_on"] == ["${aws_iam_role_policy.access}"]
    failures = tf.resources["aws_sqs_queue"]["change_feed_failures"]
    assert failures["message_retention_seconds"] == "${var.dlq_message_retention_seconds}"


def test_webhook_delivery_queue_retries_the_settings_budget_then_its_dlq(tf: Terraform) -> None:
    # Given the delivery queue, its DLQ and the mapping to webhook_delivery
    queues = tf.resources["aws_sqs_queue"]
    queue, dlq = queues["webhook_delivery"], queues["webhook_delivery_dlq"]
    mapping = tf.resources["aws_lambda_event_source_mapping"]["webhook_delivery"]
    # Then SQS's receive count is the attempt number: maxReceiveCount is the function's budget
    redrive = unquote(queue["redrive_policy"])
    assert "deadLetterTargetArn = aws_sqs_queue.webhook_delivery_dlq.arn" in redrive
    assert "maxReceiveCount = var.webhook_max_attempts" in redrive
    assert (
        tf.variables["webhook_max_attempts"]["default"]
        == (WebhookDeliverySettings.model_fields["webhook_max_attempts"].default)
        == 12
    )
    # And the queue keeps messages 4 days, the DLQ 14 days; both encrypted
    assert queue["message_retention_seconds"] == "${var.queue_message_retention_seconds}"
    assert dlq["message_retention_seconds"] == "${var.dlq_message_retention_seconds}"
    assert tf.variables["queue_message_retention_seconds"]["default"] == 4 * 86400
    assert tf.variables["dlq_message_retention_seconds"]["default"] == 14 * 86400
    for body in (queue, dlq):
        assert body["kms_master_key_id"] == "${var.kms_key_arn}"
        assert body["sqs_managed_sse_enabled"] == "${var.kms_key_arn == null ? true : null}"
    # And a batch in flight stays hidden 6 x the function's timeout (+ the batching window)
    assert queue["visibility_timeout_seconds"] == (
        "${6 * var.function_timeout_seconds.webhook_delivery"
        " + var.webhook_delivery_source.maximum_batching_window_seconds}"
    )
    # And the mapping reports failed messages one by one, with bounded concurrency
    assert mapping["event_source_arn"] == "${aws_sqs_queue.webhook_delivery.arn}"
    assert mapping["function_response_types"] == ["ReportBatchItemFailures"]
    assert mapping["batch_size"] == "${var.webhook_delivery_source.batch_size}"
    assert mapping["scaling_config"] == [
        {"maximum_concurrency": "${var.webhook_delivery_source.maximum_concurrency}"}
    ]
    # And only the delivery queue may redrive into its DLQ
    allow = tf.resources["aws_sqs_queue_redrive_allow_policy"]["webhook_delivery_dlq"]
    assert "sourceQueueArns = [aws_sqs_queue.webhook_delivery.arn]" in unquote(
        allow["redrive_allow_policy"]
    )


def test_webhook_delivery_timeout_covers_a_batch_of_slow_receivers(tf: Terraform) -> None:
    # Given the defaults: messages per batch, the sender's timeouts, the function's timeout
    batch = int(
        re.findall(
            r"batch_size\s*= optional\(number, (\d+)\)",
            tf.variables["webhook_delivery_source"]["type"],
        )[0]
    )
    timeouts = re.findall(
        r"webhook_delivery\s*= optional\(number, (\d+)\)",
        tf.variables["function_timeout_seconds"]["type"],
    )
    timeout = int(timeouts[0])
    per_message = (
        WebhookDeliverySettings.model_fields["webhook_connect_timeout_seconds"].default
        + WebhookDeliverySettings.model_fields["webhook_read_timeout_seconds"].default
    )
    # Then a batch whose every receiver times out still fits in one invocation, with a margin
    assert per_message == 13
    assert timeout >= batch * per_message + 10
    # And Terraform refuses a configuration that breaks the rule
    mapping = tf.resources["aws_lambda_event_source_mapping"]["webhook_delivery"]
    ((precondition,),) = [block["precondition"] for block in mapping["lifecycle"]]
    assert precondition["condition"] == (
        "${var.function_timeout_seconds.webhook_delivery >= var.webhook_delivery_source.batch_size"
        " * ceil(var.webhook_connect_timeout_seconds + var.webhook_read_timeout_seconds) + 10}"
    )


# Store class file -> method -> the client calls it makes and the table attribute they name.
def store_calls(file: str) -> dict[str, set[tuple[str, str]]]:
    """Per method of a store: (client call, the ``self._<attribute>`` it names as TableName, or
    "queue" for a queue store's calls). A transaction counts as the member kinds the store's
    file builds (its members may be built in helpers), as the actions that authorize them."""
    text = (STORES / file).read_text(encoding="utf-8")
    tree = ast.parse(text)
    found: dict[str, set[tuple[str, str]]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        segment = ast.get_source_segment(text, node) or ""
        # A request built as a dict ({"TableName": self._table, ...}) names its table there
        named = set(re.findall(r"[\"']TableName[\"']:\s*self\.(_\w+)", segment))
        default = named.pop() if len(named) == 1 else "queue"
        calls: set[tuple[str, str]] = set()
        for call in ast.walk(node):
            if not (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and isinstance(call.func.value, ast.Attribute)
                and call.func.value.attr == "_client"
            ):
                continue
            table = default
            for keyword in call.keywords:
                if keyword.arg == "TableName" and isinstance(keyword.value, ast.Attribute):
                    table = keyword.value.attr
            calls.add((call.func.attr, table))
        # partial(self._client.query, **request): a call named, not made, here
        for name in re.findall(r"partial\(self\._client\.(\w+)", segment):
            calls.add((name, default))
        if any(name == "transact_write_items" for name, _ in calls):
            calls = {c for c in calls if c[0] != "transact_write_items"}
            calls |= {
                (TRANSACTION_MEMBER_ACTIONS[member], default)
                for member in transaction_members(text)
            }
        found[node.name] = calls
    return found


def actions_for(calls: set[tuple[str, str]], table: str) -> set[str]:
    """The IAM actions that authorize a set of (call, table attribute) on one table."""
    actions: set[str] = set()
    for call, named in calls:
        if named != table:
            continue
        actions |= {call} if call.startswith("dynamodb:") else CLIENT_CALL_ACTIONS[call]
    return actions


def used(file: str, methods: list[str]) -> set[tuple[str, str]]:
    calls = store_calls(file)
    return {call for method in methods for call in calls[method]}


# What each function calls of the change feed and webhook stores (runtime.build_change_feed,
# webhooks/wiring.py, api/wiring.py; helpers the methods call included).
CHANGE_FEED_STORE: Final = "dynamodb_change_feed.py"
WEBHOOK_STORE: Final = "dynamodb_webhooks.py"
QUEUE_STORE: Final = "sqs_webhook_queue.py"
STORE_USE: Final = {
    "change_feed": {
        CHANGE_FEED_STORE: ["published", "commit"],
        WEBHOOK_STORE: ["list_subscriptions", "_scan"],
        QUEUE_STORE: ["send"],
    },
    "webhook_delivery": {
        WEBHOOK_STORE: ["get", "record_attempt", "record_success", "record_failure"],
        QUEUE_STORE: ["postpone"],
    },
    "query_api": {
        CHANGE_FEED_STORE: ["volume", "lag", "_days"],
        WEBHOOK_STORE: [
            "create",
            "get",
            "list_subscriptions",
            "_scan",
            "update",
            "delete",
            "rotate_secret",
            "record_attempt",
            "record_success",
            "recent_attempts",
        ],
    },
}
# (store file, table attribute) -> the Terraform resource's ARN.
STORE_RESOURCES: Final = {
    (CHANGE_FEED_STORE, "_table"): "${aws_dynamodb_table.change_feed.arn}",
    (WEBHOOK_STORE, "_table"): "${aws_dynamodb_table.webhooks.arn}",
    (WEBHOOK_STORE, "_deliveries"): "${aws_dynamodb_table.webhook_deliveries.arn}",
    (QUEUE_STORE, "queue"): "${aws_sqs_queue.webhook_delivery.arn}",
}


def grants_on(tf: Terraform, function: str, resource: str) -> set[str]:
    """Every action a function's access policy allows on exactly ``resource``."""
    return {
        action
        for statement in statements(access_document(tf, function))
        if resource in [unquote(r) for r in statement.get("resources", [])]
        for action in actions_of(tf, statement)
    }


@pytest.mark.parametrize("function", sorted(STORE_USE))
def test_roles_allow_exactly_what_the_feed_and_webhook_stores_call(
    tf: Terraform, function: str
) -> None:
    # Given the store methods a function uses
    for (file, table), resource in STORE_RESOURCES.items():
        methods = STORE_USE[function].get(file)
        expected = actions_for(used(file, methods), table) if methods else set()
        if file == QUEUE_STORE and function == "webhook_delivery":
            expected |= SQS_CONSUME  # its event source mapping receives and deletes
        # Then its role allows exactly the actions of those calls on that table or queue
        assert grants_on(tf, function, resource) == expected, (function, file, table)


def test_store_call_reading_sees_the_calls_each_store_makes() -> None:
    # The helper above is only as good as its reading of the stores: check it on known calls
    feed = store_calls(CHANGE_FEED_STORE)
    assert feed["commit"] == {("dynamodb:PutItem", "_table"), ("dynamodb:UpdateItem", "_table")}
    assert feed["published"] == {("get_item", "_table")}
    assert feed["_days"] == {("query", "_table")}
    webhooks = store_calls(WEBHOOK_STORE)
    assert webhooks["record_attempt"] == {("put_item", "_deliveries")}
    assert webhooks["_scan"] == {("scan", "_table")}
    queue = store_calls(QUEUE_STORE)
    assert queue["send"] == {("send_message", "queue")}
    assert queue["postpone"] == {("change_message_visibility", "queue")}


def test_change_feed_reads_only_the_index_stream_and_sends_only_to_its_queues(
    tf: Terraform,
) -> None:
    document = access_document(tf, "change_feed")
    (stream,) = [s for s in statements(document) if "dynamodb:GetRecords" in actions_of(tf, s)]
    assert actions_of(tf, stream) == STREAM_READ
    assert stream["resources"] == ["${aws_dynamodb_table.index.stream_arn}"]
    sends = sorted(
        r
        for s in statements(document)
        if "sqs:SendMessage" in actions_of(tf, s)
        for r in s["resources"]
    )
    assert sends == [
        "${aws_sqs_queue.change_feed_failures.arn}",
        "${aws_sqs_queue.webhook_delivery.arn}",
    ]
    # Nothing of the index table itself, the documents or the other tables
    everything = {r for s in statements(document) for r in s.get("resources", [])}
    assert not [r for r in everything if "table_arn" in r or "s3" in r or "documents" in r]


def test_webhook_delivery_metrics_count_the_lines_the_processor_logs(tf: Terraform) -> None:
    # Given what webhooks/queue_processing.py logs per delivery, and the outcomes it can have
    source = (ROOT / "shared" / "cachesync" / "webhooks" / "queue_processing.py").read_text(
        encoding="utf-8"
    )
    assert re.search(r'self\._logger\.info\(\s*"webhook delivery"', source)
    assert '"result": outcome.result' in source
    results = set(get_args(DeliveryOutcome.model_fields["result"].annotation))
    assert results == {"delivered", "retry", "exhausted", "skipped"}
    # When the metric filters' patterns are read
    patterns = {
        name: unquote(pattern)
        for name, pattern in tf.locals["webhook_delivery_log_metrics"].items()
    }

    def matched(pattern: str) -> set[str]:
        assert '$.message = "webhook delivery"' in pattern
        return set(re.findall(r'\$\.result = "(\w+)"', pattern))

    # Then an attempt is every POST (skipped ones POST nothing), a failure every non-2xx POST
    assert matched(patterns["WebhookDeliveryAttempts"]) == results - {"skipped"}
    assert matched(patterns["WebhookDeliveryFailures"]) == {"retry", "exhausted"}
    metric_filter = tf.resources["aws_cloudwatch_log_metric_filter"]["webhook_delivery"]
    assert metric_filter["for_each"] == "${local.webhook_delivery_log_metrics}"
    assert unquote(metric_filter["log_group_name"]) == (
        '${aws_cloudwatch_log_group.function["webhook_delivery"].name}'
    )
    (transformation,) = metric_filter["metric_transformation"]
    assert transformation["namespace"] == "cachesync"
    assert transformation["dimensions"] == {"service": "$.service"}
    # And the alarm divides failures by attempts in service webhook_delivery (the handler's)
    handler = (FUNCTIONS / "webhook_delivery" / "handler.py").read_text(encoding="utf-8")
    assert 'SERVICE = "webhook_delivery"' in handler
    rate = alarm(tf, "webhook_failure_rate")
    metrics = {q["id"]: q["metric"][0] for q in rate["metric_query"] if "metric" in q}
    assert {m["metric_name"] for m in metrics.values()} == set(patterns)
    assert all(m["dimensions"] == {"service": "webhook_delivery"} for m in metrics.values())
    (expression,) = [q for q in rate["metric_query"] if "expression" in q]
    assert "100 * FILL(failures, 0) / attempts" in expression["expression"]
    assert "var.webhook_alarm_min_attempts" in expression["expression"]


def test_change_feed_alarms_watch_iterator_age_and_the_emitted_failures(tf: Terraform) -> None:
    # Given the two change feed alarms and what the processor emits
    processing = (ROOT / "shared" / "cachesync" / "change_feed_processing.py").read_text(
        encoding="utf-8"
    )
    handler = (FUNCTIONS / "change_feed" / "handler.py").read_text(encoding="utf-8")
    age = alarm(tf, "change_feed_iterator_age")
    failures = alarm(tf, "change_feed_failures")
    # Then the stream's lag is Lambda's IteratorAge of change_feed
    assert (age["namespace"], age["metric_name"], age["statistic"]) == (
        "AWS/Lambda",
        "IteratorAge",
        "Maximum",
    )
    assert unquote(age["dimensions"]["FunctionName"]) == (
        '${aws_lambda_function.function["change_feed"].function_name}'
    )
    assert age["threshold"] == "${var.change_feed_iterator_age_threshold_ms}"
    # And failures are the metric change_feed_processing.py emits, in the handler's service
    assert 'name="ChangeFeedFailures"' in processing
    assert 'SERVICE = "change_feed"' in handler
    assert 'Metrics(namespace="cachesync"' in handler
    assert (failures["namespace"], failures["metric_name"]) == ("cachesync", "ChangeFeedFailures")
    assert failures["dimensions"] == {"service": "change_feed"}
    assert (failures["comparison_operator"], failures["threshold"]) == ("GreaterThanThreshold", 0)
    # And both dead-letter queues are watched like the others
    queues = unquote(tf.locals["dead_letter_queues"])
    assert "aws_sqs_queue.change_feed_failures.name" in queues
    assert "aws_sqs_queue.webhook_delivery_dlq.name" in queues
    # And the dashboard shows them
    text = tf.texts["cloudwatch.tf"]
    for title in (
        "Change feed: stream iterator age (ms)",
        "Change feed events (count)",
        "Webhook deliveries (count, failure rate %)",
        "Webhook delivery queue",
    ):
        assert f'title  = "{title}"' in text, title


def test_the_local_terraform_runs_plan_with_every_function_folder() -> None:
    # Given the stand-in zips tools/terraform_local.py writes for `make infra-check`'s plan
    spec = importlib.util.spec_from_file_location(
        "terraform_local_for_infra_test", ROOT / "tools" / "terraform_local.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module while loading
    try:
        spec.loader.exec_module(module)
        # Then it knows every function infra/ deploys (a missing zip fails the plan)
        assert list(module.FUNCTIONS) == function_folders()
    finally:
        sys.modules.pop(spec.name, None)


@pytest.mark.parametrize("function", ["change_feed", "webhook_delivery"])
def test_feed_and_delivery_use_the_cachesync_key_via_dynamodb_and_sqs_only(
    tf: Terraform, function: str
) -> None:
    # Given the function's KMS statements (present only with kms_key_arn)
    document = access_document(tf, function)
    blocks = dynamic_statements(document)
    # Then they name the cachesync key, never the documents key (no S3 object is read), and
    # only through the services whose data it encrypts for them: the tables (and the stream),
    # the queues
    assert all(
        block["for_each"] == "${var.kms_key_arn == null ? [] : [var.kms_key_arn]}"
        for block in blocks
    )
    via = {content["condition"][0]["values"][0] for block in blocks for content in block["content"]}
    assert via == {"dynamodb.${local.region}.amazonaws.com", "sqs.${local.region}.amazonaws.com"}
