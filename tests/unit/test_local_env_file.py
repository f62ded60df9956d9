"""The local stack's env file merged with the shell's variables, per variable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cachesync.local.env_file import LOCAL_STACK_PID_VARIABLE, cli_environment

FILE_VALUES = {
    "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8001",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:5001",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local-secret",
    "CACHESYNC_TABLE_NAME": "local-index",
}


def write_env_file(folder: Path, pid: int) -> None:
    lines = [f"export {name}='{value}'" for name, value in FILE_VALUES.items()]
    lines.append(f"export {LOCAL_STACK_PID_VARIABLE}={pid}")
    (folder / ".cachesync").mkdir()
    (folder / ".cachesync" / "local.env").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_one_shell_variable_keeps_every_other_value_of_the_file(tmp_path: Path) -> None:
    # Given a running stack's file, and a shell that sets only the S3 endpoint
    write_env_file(tmp_path, os.getpid())
    shell = {"AWS_ENDPOINT_URL_S3": "http://elsewhere:9000", "HOME": "/home/me"}
    # When the command line's environment is built in a folder below
    (tmp_path / "sub").mkdir()
    environment = cli_environment(shell, start=tmp_path / "sub")
    # Then the shell's endpoint wins and botocore reads it itself; the file supplies the rest
    assert environment.values["AWS_ENDPOINT_URL_S3"] == "http://elsewhere:9000"
    assert environment.values["CACHESYNC_TABLE_NAME"] == "local-index"
    assert environment.client_options("s3") == {
        "region_name": "us-east-1",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local-secret",
    }
    assert environment.client_options("dynamodb") == {
        "endpoint_url": "http://127.0.0.1:8001",
        "region_name": "us-east-1",
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local-secret",
    }


def test_a_region_or_key_pair_set_in_the_shell_wins(tmp_path: Path) -> None:
    # Given a running stack's file, and a shell with its own region and one half of a key pair
    write_env_file(tmp_path, os.getpid())
    shell = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "mine"}
    # When the client options are built
    options = cli_environment(shell, start=tmp_path).client_options("s3")
    # Then neither the file's region nor its key pair is passed (botocore uses the shell's)
    assert options == {"endpoint_url": "http://127.0.0.1:5001"}


def test_a_dead_stacks_file_and_no_file_change_nothing(tmp_path: Path) -> None:
    # Given a file written by a stack whose process is gone
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    write_env_file(tmp_path, int(finished.stdout))
    shell = {"CACHESYNC_TABLE_NAME": "mine"}
    # When the environment is built there, and in a folder without any file
    dead = cli_environment(shell, start=tmp_path)
    (tmp_path.parent / f"{tmp_path.name}-empty").mkdir()
    none = cli_environment(shell, start=tmp_path.parent / f"{tmp_path.name}-empty")
    # Then only the shell counts, and clients get SDK defaults
    for environment in (dead, none):
        assert dict(environment.values) == shell
        assert environment.file is None
        assert environment.client_options("s3") == {}
