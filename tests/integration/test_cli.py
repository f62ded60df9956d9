"""The CLI against the local stack: query, get, pages, JSON output."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cachesync.cli import app
from cachesync.local import LocalStack
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.integration.test_index_store import BUCKET, entry

runner = CliRunner()


@pytest.fixture
def cli_env(
    local_stack: LocalStack, index_table: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    for name, value in local_stack.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CACHESYNC_TABLE_NAME", index_table)
    monkeypatch.setenv("CACHESYNC_BUCKET_NAME", BUCKET)
    monkeypatch.chdir(str(tmp_path))
    local_stack.client("s3").create_bucket(Bucket=BUCKET)


@pytest.mark.usefixtures("cli_env")
def test_query_pages_through_a_customer_as_json(index_store: DynamoDBIndexStore) -> None:
    # Given three documents of one customer
    for number in range(3):
        index_store.put_document(entry(f"changes/c{number}.json", customers=["acme"]))
    # When the CLI queries two at a time
    first = runner.invoke(app, ["query", "--customer", "acme", "--limit", "2", "--json"])
    page = json.loads(first.output)
    second = runner.invoke(
        app,
        [
            "query",
            "--customer",
            "acme",
            "--limit",
            "2",
            "--json",
            "--next-token",
            page["next_token"],
        ],
    )
    # Then both pages together list the three documents
    assert first.exit_code == 0, first.output
    keys = [item["key"] for item in page["items"] + json.loads(second.output)["items"]]
    assert sorted(keys) == ["changes/c0.json", "changes/c1.json", "changes/c2.json"]


@pytest.mark.usefixtures("cli_env")
def test_query_table_output_and_get(index_store: DynamoDBIndexStore) -> None:
    index_store.put_document(entry("changes/shown.json", customers=["globex"]))
    table = runner.invoke(app, ["query", "--customer", "globex"])
    assert table.exit_code == 0
    assert "changes/shown.json" in table.output
    assert "1 document(s)" in table.output
    found = runner.invoke(app, ["get", "changes/shown.json", "--json"])
    read = json.loads(found.output)
    assert read["source"] == "index"
    assert json.loads(read["body"])["change_id"] == "changes/shown.json"
    missing = runner.invoke(app, ["get", "changes/none.json"])
    assert missing.exit_code == 3
    assert "not found" in missing.output


@pytest.mark.usefixtures("cli_env")
def test_a_foreign_token_is_one_line_error() -> None:
    result = runner.invoke(app, ["query", "--next-token", "bm9wZQ=="])
    assert result.exit_code == 1
    assert "next_token" in result.output
    assert "Traceback" not in result.output
