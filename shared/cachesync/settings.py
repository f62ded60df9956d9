"""Settings: one pydantic model per entry point, validated from the environment once, at start.

Each field ``name`` is read from the variable ``CACHESYNC_NAME``; a missing or invalid value
raises :class:`ConfigurationError` naming the variable. This module is the only reader of
``os.environ`` in cachesync (AWS variables are read by botocore itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cachesync.exceptions import ConfigurationError

PREFIX: Final = "CACHESYNC_"
# Written by `cachesync local up` while the local stack runs, removed when it stops.
LOCAL_ENV_FILE: Final = Path(".cachesync") / "local.env"
LOCAL_STACK_PID_VARIABLE: Final = "CACHESYNC_LOCAL_STACK_PID"

S = TypeVar("S", bound="BaseSettings")


class BaseSettings(BaseModel):
    """Settings shared by every entry point."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    table_name: str = Field(min_length=3, max_length=255)
    """The index table (``CACHESYNC_TABLE_NAME``)."""
    bucket_name: str = Field(min_length=3, max_length=63)
    """The documents bucket (``CACHESYNC_BUCKET_NAME``)."""
    retention_days: int = Field(default=90, ge=1, le=3650)
    """How long completed, cancelled and archived documents stay in the index."""
    tombstone_ttl_days: int = Field(default=30, ge=1, le=3650)
    """How long a deleted key's tombstone is kept."""

    @property
    def retention(self) -> timedelta:
        """:attr:`retention_days` as a duration."""
        return timedelta(days=self.retention_days)

    @property
    def tombstone_ttl(self) -> timedelta:
        """:attr:`tombstone_ttl_days` as a duration."""
        return timedelta(days=self.tombstone_ttl_days)


class SyncSettings(BaseSettings):
    """Settings of the S3 event handlers (``s3_object_created``, ``s3_object_removed``)."""

    sync_workers: int = Field(default=8, ge=1, le=20)
    """Changes of one batch applied at once (different keys only; one key's changes stay in
    order). At most the 20 connections of a client's pool; 1 applies them one by one."""


class _IdempotencySettings(BaseModel):
    idempotency_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    """How long an idempotency key is remembered."""
    write_rate_per_second: float = Field(default=50.0, gt=0, le=10_000)
    """Token-bucket rate shared by the write path."""
    write_burst: int = Field(default=50, ge=1, le=10_000)


class _ReaderSettings(BaseModel):
    breaker_failure_threshold: int = Field(default=5, ge=1, le=1000)
    """Consecutive index failures that open the circuit breaker."""
    breaker_cool_down_seconds: float = Field(default=30.0, gt=0, le=3600)
    pending_stale_after_seconds: int = Field(default=120, ge=1, le=86400)
    """A write-through pending longer than this is taken as crashed and resolved by reads."""


class WriteThroughSettings(BaseSettings, _IdempotencySettings):
    """Settings of the ``write_through`` function."""

    idempotency_table_name: str = Field(min_length=3, max_length=255)
    """The table Powertools' idempotency utility persists to."""


class FallbackReadSettings(BaseSettings, _ReaderSettings):
    """Settings of the ``fallback_read`` function."""


class CliSettings(BaseSettings, _IdempotencySettings, _ReaderSettings):
    """Settings of the ``cachesync`` command line."""

    idempotency_table_name: str | None = None
    """Without it, ``--idempotency-key`` is refused."""


def variable_name(field: str) -> str:
    """The environment variable that sets ``field``."""
    return f"{PREFIX}{field.upper()}"


def load_settings(model: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Validate ``model`` from ``environ`` (default: the process environment)."""
    source = os.environ if environ is None else environ
    values = {
        field: source[variable_name(field)]
        for field in model.model_fields
        if variable_name(field) in source
    }
    try:
        return model.model_validate(values)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        reason = "required but not set" if first["type"] == "missing" else first["msg"]
        raise ConfigurationError(variable_name(field), reason) from error


def read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of an env file written by ``cachesync local up``."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and value:
            values[name.strip()] = value.strip().strip("'\"")
    return values


_SERVICE_ENDPOINT_VARIABLES: Final = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "s3": "AWS_ENDPOINT_URL_S3",
    "sqs": "AWS_ENDPOINT_URL_SQS",
}


def local_client_options(environ: Mapping[str, str], service: str) -> dict[str, str]:
    """Client arguments for ``service`` taken from the local stack's env file.

    Empty unless the values came from the file rather than the process environment: botocore
    reads the process environment itself, and production passes nothing (SDK defaults).
    """
    if environ.get(_SERVICE_ENDPOINT_VARIABLES[service]) in (
        None,
        os.environ.get(_SERVICE_ENDPOINT_VARIABLES[service]),
    ):
        return {}
    return {
        "endpoint_url": environ[_SERVICE_ENDPOINT_VARIABLES[service]],
        "region_name": environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "aws_access_key_id": environ.get("AWS_ACCESS_KEY_ID", "cachesync"),
        "aws_secret_access_key": environ.get("AWS_SECRET_ACCESS_KEY", "cachesync"),
    }


def find_local_env_file(start: Path | None = None) -> Path | None:
    """The local stack's env file in ``start`` (default: cwd) or the nearest folder above."""
    origin = (start or Path.cwd()).resolve()
    for folder in (origin, *origin.parents):
        candidate = folder / LOCAL_ENV_FILE
        if candidate.is_file():
            return candidate
    return None


def local_stack_pid(values: Mapping[str, str]) -> int | None:
    """The pid of the ``cachesync local up`` that wrote ``values``, if it is still running."""
    try:
        pid = int(values.get(LOCAL_STACK_PID_VARIABLE, ""))
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ValueError, ProcessLookupError):
        return None
    except PermissionError:
        return pid  # it exists, under another user
    return pid


def cli_environment() -> dict[str, str]:
    """The CLI's environment: the process environment over the running local stack's values.

    A second shell anywhere inside the checkout can use the stack ``cachesync local up`` runs
    without exporting anything. A file left by a stack that died is ignored. Any variable set in
    the environment wins, so a real AWS setup is never overridden.
    """
    path = find_local_env_file()
    values = read_env_file(path) if path is not None else {}
    merged = values if local_stack_pid(values) is not None else {}
    merged.update(os.environ)
    return merged


def export_to_process_environment(values: Mapping[str, str]) -> None:
    """Make this process look like a Lambda configured with ``values`` (local stack only).

    The local pipeline and ``cachesync invoke`` run the real entry points in this process; they
    read their settings, and botocore its endpoints, from the process environment.
    """
    os.environ.update(values)


class BackfillSettings(BaseSettings):
    """Settings of the ``backfill`` function (backfill requests and S3 Batch Operations)."""

    backfill_rate_per_second: float = Field(default=100.0, gt=0, le=10_000)
    """Index writes per second, per execution environment (a token bucket). S3 Batch Operations
    runs many environments at once: bound the total with the function's reserved concurrency."""
    backfill_workers: int = Field(default=8, ge=1, le=20)
    """Objects read and written at once; at most the 20 connections of a client's pool."""
    backfill_page_size: int = Field(default=200, ge=1, le=1000)
    """Objects listed per page. A backfill stops between pages, so a page must fit comfortably in
    what remains of an invocation."""
    backfill_stop_margin_seconds: float = Field(default=30.0, ge=0, le=900)
    """A backfill request starts no new page with less time left than this (or than twice the
    slowest page so far), and returns its continuation instead."""
