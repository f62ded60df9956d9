"""``cachesync webhooks`` against the local stack: subscribe a ``listen`` receiver (a process of
its own, as a user runs it), ``test`` it end to end, rotate, list and remove. The other commands
run in process (typer's runner: the same entry point, without a Python start per command)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from typer.testing import CliRunner

from cachesync.cli import app
from cachesync.local import LocalStack
from cachesync.webhooks_schema import (
    create_deliveries_table_request,
    create_webhooks_table_request,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CLI = str(Path(sys.executable).parent / "cachesync")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def cli_env(local_stack: LocalStack, dynamodb_client: DynamoDBClient) -> Iterator[dict[str, str]]:
    """The process environment pointed at the stack and fresh webhook tables, loopback allowed
    (as the local stack sets it)."""
    suffix = uuid.uuid4().hex[:8]
    table, deliveries = f"webhooks-{suffix}", f"webhook-deliveries-{suffix}"
    dynamodb_client.create_table(**create_webhooks_table_request(table))
    dynamodb_client.create_table(**create_deliveries_table_request(deliveries))
    yield {
        **os.environ,
        **local_stack.environment(),
        "CACHESYNC_WEBHOOKS_TABLE_NAME": table,
        "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME": deliveries,
        "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "true",
    }
    dynamodb_client.delete_table(TableName=table)
    dynamodb_client.delete_table(TableName=deliveries)


@dataclass(frozen=True)
class Ran:
    """What one command printed and how it ended."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(env: dict[str, str], cwd: Path, *args: str) -> Ran:
    """``cachesync *args`` in this process, in ``cwd``, with ``env`` as its environment."""
    with contextlib.chdir(cwd):
        result = CliRunner().invoke(app, list(args), env=env)
    return Ran(returncode=result.exit_code, stdout=result.stdout, stderr=result.stderr)


def wait_for_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            status: int = response.status
    except urllib.error.HTTPError as error:
        return error.code
    return status


def test_listen_receives_a_test_ping_verified_and_refuses_a_bad_signature(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Given a subscription of a local receiver run by `cachesync webhooks listen`
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    added = run_cli(cli_env, tmp_path, "webhooks", "add", "--url", url, "--json")
    assert added.returncode == 0, added.stderr
    subscription = json.loads(added.stdout)
    listener = subprocess.Popen(
        [CLI, "webhooks", "listen", "--port", str(port), "--secret", subscription["secret"]],
        cwd=tmp_path,
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, listener)
        # When `cachesync webhooks test` pings it
        tested = run_cli(cli_env, tmp_path, "webhooks", "test", subscription["id"])
        # And someone posts a delivery with a wrong signature
        forged = post(
            url,
            b'{"type":"document.deleted","timestamp":"2026-12-01T00:00:00Z","data":{}}',
            {
                "webhook-id": "msg_forged",
                "webhook-timestamp": str(int(time.time())),
                "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl",
                "Content-Type": "application/json",
            },
        )
    finally:
        listener.terminate()
        out, err = listener.communicate(timeout=10)
    # Then the test reports delivery, the receiver printed one verified line for it
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.startswith("delivered msg_")
    assert "HTTP 200" in tested.stdout
    webhook_id = tested.stdout.split()[1]
    lines = out.strip().splitlines()
    assert len(lines) == 1
    assert webhook_id in lines[0]
    assert "webhook.ping" in lines[0]
    # And the forged one was refused with 400 and not printed as a delivery
    assert forged == 400
    assert "rejected msg_forged" in err


def test_test_against_a_silent_port_fails_with_the_reason(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Given a subscription of a port nothing listens on
    url = f"http://127.0.0.1:{free_port()}/hook"
    added = run_cli(cli_env, tmp_path, "webhooks", "add", "--url", url, "--json")
    subscription_id = json.loads(added.stdout)["id"]
    # When it is tested
    tested = run_cli(cli_env, tmp_path, "webhooks", "test", subscription_id)
    # Then the command fails, saying why
    assert tested.returncode == 1
    assert tested.stdout.startswith("failed msg_")
    assert "ConnectionRefusedError" in tested.stdout


def test_add_refuses_a_private_address_and_plain_http_outside_the_local_stack(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    # Given the environment of the local stack, then one without loopback allowed
    aws_like = {**cli_env, "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "false"}
    # When private and loopback targets are subscribed
    private = run_cli(cli_env, tmp_path, "webhooks", "add", "--url", "https://10.0.0.5/hook")
    loopback = run_cli(aws_like, tmp_path, "webhooks", "add", "--url", "http://127.0.0.1/hook")
    # Then both are refused with one error line
    assert private.returncode == 1
    assert "private" in private.stderr
    assert loopback.returncode == 1
    assert "https is required" in loopback.stderr


def test_list_rotate_and_remove(cli_env: dict[str, str], tmp_path: Path) -> None:
    # Given a subscription with filters
    added = run_cli(
        cli_env,
        tmp_path,
        "webhooks",
        "add",
        "--url",
        "http://127.0.0.1:9/hook",
        "--events",
        "document.created,document.deleted",
        "--customers",
        "acme",
        "--json",
    )
    created = json.loads(added.stdout)
    # When its secret is rotated with an hour's grace
    rotated = run_cli(
        cli_env, tmp_path, "webhooks", "rotate-secret", created["id"], "--grace", "1h", "--json"
    )
    assert rotated.returncode == 0, rotated.stderr
    new_secret = json.loads(rotated.stdout)["secret"]
    # Then the list shows it (never a secret), with its grace
    listed = run_cli(cli_env, tmp_path, "webhooks", "list", "--json")
    (shown,) = json.loads(listed.stdout)
    assert shown["id"] == created["id"]
    assert shown["filters"]["customers"] == ["acme"]
    assert shown["event_types"] == ["document.created", "document.deleted"]
    assert shown["previous_secret_valid_until"] is not None
    assert created["secret"] not in listed.stdout
    assert new_secret not in listed.stdout
    assert new_secret != created["secret"]
    # And once removed it is gone; removing it again fails
    assert run_cli(cli_env, tmp_path, "webhooks", "remove", created["id"]).returncode == 0
    assert json.loads(run_cli(cli_env, tmp_path, "webhooks", "list", "--json").stdout) == []
    again = run_cli(cli_env, tmp_path, "webhooks", "remove", created["id"])
    assert again.returncode == 1
    assert "no webhook subscription" in again.stderr
