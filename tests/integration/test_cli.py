"""The CLI against the local stack: query, get, pages, JSON output."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cachesync.cli import app
from cachesync.index_schema import create_idempotency_table_request
from cachesync.local import LocalStack
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.integration.test_index_store import BUCKET, entry
from tests.support.s3_events import EVENTS_DIR

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
def test_query_all_concatenates_every_page(index_store: DynamoDBIndexStore) -> None:
    # Given five documents of one customer
    for number in range(5):
        index_store.put_document(entry(f"changes/all{number}.json", customers=["initech"]))
    # When the CLI walks them two a page with --all
    result = runner.invoke(
        app, ["query", "--customer", "initech", "--limit", "2", "--all", "--json"]
    )
    # Then one document lists all five once, without a token
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert sorted(item["key"] for item in page["items"]) == [
        f"changes/all{number}.json" for number in range(5)
    ]
    assert page["next_token"] is None


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


@pytest.fixture
def cli_app_env(
    local_stack: LocalStack, index_table: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A fresh bucket and idempotency table for the CLI's write path; returns the bucket."""
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    local_stack.client("s3").create_bucket(Bucket=bucket)
    idempotency = f"idem-{uuid.uuid4().hex[:8]}"
    local_stack.client("dynamodb").create_table(**create_idempotency_table_request(idempotency))
    for name, value in local_stack.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CACHESYNC_TABLE_NAME", index_table)
    monkeypatch.setenv("CACHESYNC_BUCKET_NAME", bucket)
    monkeypatch.setenv("CACHESYNC_IDEMPOTENCY_TABLE_NAME", idempotency)
    monkeypatch.chdir(tmp_path)
    return bucket


def test_put_get_delete_round_trip(cli_app_env: str, tmp_path: Path) -> None:
    # Given a document file
    document = tmp_path / "change.json"
    document.write_bytes((EVENTS_DIR / "documents" / "change.json").read_bytes())
    # When it is put (twice with one idempotency key), read, deleted, read again
    first = runner.invoke(app, ["put", "changes/c.json", str(document), "--idempotency-key", "k"])
    again = runner.invoke(app, ["put", "changes/c.json", str(document), "--idempotency-key", "k"])
    read = runner.invoke(app, ["get", "changes/c.json", "--json"])
    deleted = runner.invoke(app, ["delete", "changes/c.json"])
    gone = runner.invoke(app, ["get", "changes/c.json"])
    # Then the put committed once, the read hit the index, the delete left nothing
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["index"] == "committed"
    assert again.output == first.output
    assert json.loads(read.output)["source"] == "index"
    assert json.loads(deleted.output)["index"] == "committed"
    assert gone.exit_code == 3


def test_put_refuses_an_invalid_document_in_one_line(cli_app_env: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes((EVENTS_DIR / "documents" / "invalid_status.json").read_bytes())
    result = runner.invoke(app, ["put", "changes/bad.json", str(bad)])
    assert result.exit_code == 1
    assert "field 'status'" in result.output
    assert "Traceback" not in result.output


def test_dry_run_put_writes_nothing(cli_app_env: str, tmp_path: Path) -> None:
    document = tmp_path / "change.json"
    document.write_bytes((EVENTS_DIR / "documents" / "change.json").read_bytes())
    result = runner.invoke(app, ["put", "changes/d.json", str(document), "--dry-run"])
    assert json.loads(result.output)["index"] == "dry_run"
    assert runner.invoke(app, ["get", "changes/d.json"]).exit_code == 3


def test_backfill_resume_and_verify_exit_codes(
    cli_app_env: str, local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given documents written to S3 behind the index's back
    s3 = local_stack.client("s3")
    for number in range(30):
        body = {"object_type": "change", "change_id": f"C{number}", "customers": ["acme"]}
        s3.put_object(Bucket=cli_app_env, Key=f"changes/{number:02d}.json", Body=json.dumps(body))
    # When verify runs: drift (exit 4); a dry-run backfill writes nothing
    drift = runner.invoke(app, ["verify", "--json"])
    dry = runner.invoke(app, ["backfill", "--dry-run", "--json"])
    still = runner.invoke(app, ["verify", "--json"])
    # Then 30 are missing, and would be indexed
    assert drift.exit_code == 4
    assert json.loads(drift.output)["counts"]["missing"] == 30
    assert json.loads(dry.output)["would_index"] == 30
    assert json.loads(still.output)["counts"]["missing"] == 30
    # When a backfill runs, and a resume is asked of a finished one
    done = runner.invoke(app, ["backfill", "--json", "--checkpoint", str(tmp_path / "cp.json")])
    resume = runner.invoke(app, ["backfill", "--resume", "--checkpoint", str(tmp_path / "cp.json")])
    clean = runner.invoke(app, ["verify"])
    # Then everything is indexed, verify is clean (exit 0), and the resume says it is done
    assert json.loads(done.output)["indexed"] == 30
    assert resume.exit_code == 1
    assert "already done" in resume.output
    assert clean.exit_code == 0, clean.output


def test_put_from_a_folder_writes_each_file_and_reports_the_bad_ones(
    cli_app_env: str, tmp_path: Path
) -> None:
    # Given a folder of five valid documents, one invalid and one that is not JSON
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    valid = json.loads((EVENTS_DIR / "documents" / "change.json").read_bytes())
    for number in range(5):
        body = {**valid, "change_id": f"CHG-DIR-{number}"}
        (folder / "sub" / f"c{number}.json").write_text(json.dumps(body))
    (folder / "bad.json").write_bytes(
        (EVENTS_DIR / "documents" / "invalid_status.json").read_bytes()
    )
    (folder / "broken.json").write_text("{not json")
    # When the folder is put under a prefix, with a JSON summary
    result = runner.invoke(
        app, ["put", "--from-dir", str(folder), "--prefix", "bulk/", "--json", "--workers", "3"]
    )
    # Then the five are written, the two bad files are named with their reasons, exit 1
    summary = json.loads(result.stdout)
    assert result.exit_code == 1
    assert (summary["operations"], summary["succeeded"], summary["failed"]) == (7, 5, 2)
    reasons = {Path(f["source"]).name: f["error"] for f in summary["failures"]}
    assert "status" in reasons["bad.json"]
    assert "JSON" in reasons["broken.json"]
    read = runner.invoke(app, ["get", "bulk/sub/c3.json", "--json"])
    assert json.loads(read.stdout)["source"] == "index"


def test_put_from_json_lines_runs_puts_and_deletes_in_order(
    cli_app_env: str, tmp_path: Path
) -> None:
    # Given a JSON Lines file: two puts (one spelt as an API bulk item, "op"), a delete of the
    # first, and a malformed line
    valid = json.loads((EVENTS_DIR / "documents" / "change.json").read_bytes())
    lines = [
        {"operation": "put", "key": "jl/a.json", "document": valid, "idempotency_key": "jl-a"},
        {"op": "put", "key": "jl/b.json", "document": valid},
        {"operation": "delete", "key": "jl/a.json"},
        {"operation": "put", "key": "jl/c.json"},
    ]
    file = tmp_path / "ops.jsonl"
    file.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    # When it runs
    result = runner.invoke(app, ["put", "--from-jsonl", str(file), "--json"])
    # Then a is gone, b is there, and the malformed line is reported by its line number
    summary = json.loads(result.stdout)
    assert result.exit_code == 1
    assert (summary["succeeded"], summary["failed"]) == (3, 1)
    assert summary["failures"][0]["source"].endswith("ops.jsonl:4")
    assert "a put needs a document" in summary["failures"][0]["error"]
    assert runner.invoke(app, ["get", "jl/a.json"]).exit_code == 3
    assert runner.invoke(app, ["get", "jl/b.json"]).exit_code == 0


def test_put_refuses_a_key_with_from_dir(cli_app_env: str, tmp_path: Path) -> None:
    # Given / When a key and --from-dir are both given / Then it is a usage error
    result = runner.invoke(app, ["put", "k.json", "--from-dir", str(tmp_path)])
    assert result.exit_code == 2
