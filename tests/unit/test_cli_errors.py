"""The CLI's errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cachesync.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_local_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from an empty folder (no .cachesync/local.env) with no cachesync settings.
    monkeypatch.chdir(tmp_path)
    for name in ("CACHESYNC_TABLE_NAME", "CACHESYNC_BUCKET_NAME"):
        monkeypatch.delenv(name, raising=False)


def test_query_without_settings_names_the_missing_variable() -> None:
    result = runner.invoke(app, ["query", "--customer", "acme"])
    assert result.exit_code == 1
    assert "CACHESYNC_TABLE_NAME: required but not set" in result.output
    assert "Traceback" not in result.output


def test_invalid_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHESYNC_TABLE_NAME", "t")
    monkeypatch.setenv("CACHESYNC_BUCKET_NAME", "docs")
    result = runner.invoke(app, ["query"])
    assert result.exit_code == 1
    assert "CACHESYNC_TABLE_NAME" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_order_is_refused() -> None:
    result = runner.invoke(app, ["query", "--order", "sideways"])
    assert result.exit_code != 0
    assert "asc or desc" in result.output


def test_invoke_of_an_unknown_function_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CACHESYNC_TABLE_NAME", "table")
    monkeypatch.setenv("CACHESYNC_BUCKET_NAME", "docs")
    event = tmp_path / "event.json"
    event.write_text("{}")
    monkeypatch.chdir(Path(__file__).resolve().parents[2])
    result = runner.invoke(app, ["invoke", "no_such_function", str(event)])
    assert result.exit_code == 1
    assert "no function 'no_such_function'" in result.output
    assert "s3_object_created" in result.output


def test_no_region_anywhere_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given cachesync's settings but no AWS region in the environment or a config file
    monkeypatch.setenv("CACHESYNC_TABLE_NAME", "table")
    monkeypatch.setenv("CACHESYNC_BUCKET_NAME", "docs")
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    # When a command builds its AWS clients
    result = runner.invoke(app, ["get", "changes/a.json"])
    # Then it fails with one line naming the missing region, no traceback
    assert result.exit_code == 1
    assert "region" in result.output
    assert "AWS_DEFAULT_REGION" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)


def run_script(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The installed script, stderr a pipe (not a terminal), in an 80-column environment."""
    env = {**os.environ, "COLUMNS": "80", "TERM": "xterm-256color"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "cachesync"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


LONG_NAME = "a-document-file-whose-name-is-longer-than-any-terminal-is-wide-" * 3 + ".json"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["put", "changes/a.json", LONG_NAME], f"{LONG_NAME}: No such file or directory"),
        (["invoke", "s3_object_created", LONG_NAME], f"{LONG_NAME}: [Errno 2]"),
        (["invoke", "s3_object_created", "not-json.txt"], "not-json.txt: Expecting value"),
    ],
)
def test_usage_errors_on_a_pipe_are_one_full_line(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    # Given a file that is not JSON, and stderr that is a pipe
    (tmp_path / "not-json.txt").write_text("this is not json", encoding="utf-8")
    # When a command is given a missing or unreadable file, or an event that is not JSON
    result = run_script(*args, cwd=tmp_path)
    # Then the whole message is on one line of stderr, without a box, and the exit status is 2
    assert result.returncode == 2, result.stderr
    assert [line for line in result.stderr.splitlines() if expected in line], result.stderr
    assert "─" not in result.stderr
    assert result.stdout == ""
