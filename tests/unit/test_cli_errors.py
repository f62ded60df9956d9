"""The CLI's errors are one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

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
