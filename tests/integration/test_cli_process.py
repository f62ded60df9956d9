"""The ``cachesync`` script as a user runs it (a process of its own) against the local stack:
machine output under faults, and the local stack's env file merged with the shell's variables."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from cachesync.local import LocalStack
from tests.support.s3_events import change_document

CLI = str(Path(sys.executable).parent / "cachesync")


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def bare_environment(**values: str) -> dict[str, str]:
    """The process environment without any AWS or cachesync setting, plus ``values``."""
    kept = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "CACHESYNC_", "POWERTOOLS_"))
    }
    # No shared config or credentials file may supply a region or keys.
    kept |= {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    return kept | values


def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def bucket_with_document(local_stack: LocalStack, key: str) -> str:
    s3 = local_stack.client("s3")
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=key, Body=change_document("CHG-CLI"))
    return bucket


def test_get_json_with_the_index_unreachable_prints_one_document_on_stdout(
    local_stack: LocalStack, index_table: str, tmp_path: Path
) -> None:
    # Given a document in S3, and an index endpoint that refuses connections
    bucket = bucket_with_document(local_stack, "changes/faulty.json")
    env = bare_environment(
        **{
            **local_stack.environment(),
            "AWS_ENDPOINT_URL_DYNAMODB": closed_port_url(),
            "CACHESYNC_TABLE_NAME": index_table,
            "CACHESYNC_BUCKET_NAME": bucket,
        }
    )
    # When the CLI reads it with --json
    result = run_cli("get", "changes/faulty.json", "--json", cwd=tmp_path, env=env)
    # Then stdout is exactly one JSON document (the one S3 answered), the logs went to stderr
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["source"], document["miss_reason"]) == ("s3", "index_error")
    assert "retrying" in result.stderr


def test_get_json_with_nothing_reachable_prints_nothing_on_stdout(
    local_stack: LocalStack, index_table: str, tmp_path: Path
) -> None:
    # Given neither the index nor S3 reachable
    env = bare_environment(
        **{
            **local_stack.environment(),
            "AWS_ENDPOINT_URL_DYNAMODB": closed_port_url(),
            "AWS_ENDPOINT_URL_S3": closed_port_url(),
            "CACHESYNC_TABLE_NAME": index_table,
            "CACHESYNC_BUCKET_NAME": "docs-unreachable",
        }
    )
    # When the CLI reads a document with --json
    result = run_cli("get", "changes/any.json", "--json", cwd=tmp_path, env=env)
    # Then it fails with one error line on stderr and nothing on stdout
    assert result.returncode == 1
    assert result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.stderr


def test_one_variable_set_in_the_shell_keeps_the_local_stacks_others(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given a running local stack's env file in the folder (this test process stands in for
    # `cachesync local up`), and a document in the stack's bucket
    bucket = bucket_with_document(local_stack, "changes/merged.json")
    values = {**local_stack.environment(), "CACHESYNC_BUCKET_NAME": bucket}
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    lines.append(f"export CACHESYNC_LOCAL_STACK_PID={os.getpid()}")
    (tmp_path / ".cachesync").mkdir()
    (tmp_path / ".cachesync" / "local.env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # When only AWS_ENDPOINT_URL_S3 is exported in the shell (to the same moto server)
    env = bare_environment(AWS_ENDPOINT_URL_S3=local_stack.moto_endpoint)
    result = run_cli("get", "changes/merged.json", "--json", cwd=tmp_path, env=env)
    # Then the env file still supplies the region, keys and table: the read succeeds
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["key"] == "changes/merged.json"
    assert "Traceback" not in result.stderr


def test_a_variable_set_in_the_shell_wins_over_the_local_stacks(
    local_stack: LocalStack, tmp_path: Path
) -> None:
    # Given a running local stack's env file, and a document in the stack's bucket
    bucket = bucket_with_document(local_stack, "changes/winner.json")
    values = {**local_stack.environment(), "CACHESYNC_BUCKET_NAME": bucket}
    lines = [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
    lines.append(f"export CACHESYNC_LOCAL_STACK_PID={os.getpid()}")
    (tmp_path / ".cachesync").mkdir()
    (tmp_path / ".cachesync" / "local.env").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # When the shell points S3 somewhere else (nothing listens there)
    env = bare_environment(AWS_ENDPOINT_URL_S3=closed_port_url())
    result = run_cli("get", "changes/winner.json", "--json", cwd=tmp_path, env=env)
    # Then the shell's endpoint was used: the index answers a miss, S3 is unreachable
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_ctrl_c_during_a_backfill_says_how_far_and_the_resume_command_completes_it(
    local_stack: LocalStack, index_table: str, tmp_path: Path
) -> None:
    # Given 150 documents in S3 that the index does not hold (fewer than one listing page)
    s3 = local_stack.client("s3")
    bucket = f"cli-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    for number in range(150):
        s3.put_object(
            Bucket=bucket, Key=f"changes/{number:03d}.json", Body=change_document(f"C{number}")
        )
    env = bare_environment(
        **{
            **local_stack.environment(),
            "CACHESYNC_TABLE_NAME": index_table,
            "CACHESYNC_BUCKET_NAME": bucket,
        }
    )
    checkpoint = tmp_path / "cp.json"
    # When a slow backfill is interrupted with Ctrl-C once its first checkpoint is saved
    process = subprocess.Popen(
        [CLI, "backfill", "--prefix", "changes/", "--rps", "25", "--checkpoint", str(checkpoint)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    # Then it exits 130, says how far it got, and prints the exact command that resumes it
    assert process.returncode == 130, stderr
    assert stdout == ""
    assert "interrupted after" in stderr
    resume_line = next(line.strip() for line in stderr.splitlines() if "--resume" in line)
    words = shlex.split(resume_line)
    assert words[:6] == [
        "cachesync",
        "backfill",
        "--resume",
        "--checkpoint",
        str(checkpoint),
        "--prefix",
    ]
    saved = json.loads(checkpoint.read_text(encoding="utf-8"))
    assert not saved["done"]
    assert 0 < saved["summary"]["scanned"] < 150
    # When that command runs, then the index has every document: verify finds no drift
    resumed = run_cli(*words[1:], cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stderr
    clean = run_cli("verify", "--json", cwd=tmp_path, env=env)
    assert clean.returncode == 0, clean.stdout
    assert json.loads(clean.stdout)["objects"] == 150
