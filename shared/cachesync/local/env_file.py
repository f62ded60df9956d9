"""The local stack's env file, and the command line's environment merged from it.

``cachesync local up`` writes ``.cachesync/local.env`` (``export NAME=value`` lines) while it
runs. A ``cachesync`` command anywhere inside the checkout applies it as if those lines had been
run in its shell, and then the shell's own variables over them, per variable: a variable you set
wins, the file still supplies the others. A file left by a stack that died is ignored.

Command line and local stack only: never shipped to Lambda.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

# Written by `cachesync local up` while the local stack runs, removed when it stops.
LOCAL_ENV_FILE: Final = Path(".cachesync") / "local.env"
LOCAL_STACK_PID_VARIABLE: Final = "CACHESYNC_LOCAL_STACK_PID"

SERVICE_ENDPOINT_VARIABLES: Final = {
    "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
    "s3": "AWS_ENDPOINT_URL_S3",
    "sqs": "AWS_ENDPOINT_URL_SQS",
}
_REGION_VARIABLE: Final = "AWS_DEFAULT_REGION"
_CREDENTIAL_VARIABLES: Final = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines of an env file written by ``cachesync local up``."""
    values: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        if name and value:
            values[name.strip()] = value.strip().strip("'\"")
    return values


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


@dataclass(frozen=True)
class CliEnvironment:
    """The command line's variables: the running local stack's file, the shell's over it."""

    values: Mapping[str, str]
    """Every variable, merged per variable (the shell's value wins)."""
    from_file: frozenset[str]
    """The names whose value comes from the local stack's file (not set in the shell)."""
    file: Path | None
    """The running local stack's env file, if any."""

    def client_options(self, service: str) -> dict[str, str]:
        """Client arguments for ``service``: the file's values that the shell did not set.

        botocore reads the shell's own variables itself; what only the file supplies must be
        passed explicitly, each value on its own (an endpoint set in the shell keeps the file's
        region and keys). Empty without a running local stack: production passes nothing (SDK
        defaults).
        """
        options: dict[str, str] = {}
        endpoint = SERVICE_ENDPOINT_VARIABLES[service]
        if endpoint in self.from_file:
            options["endpoint_url"] = self.values[endpoint]
        # botocore reads its region from AWS_DEFAULT_REGION only (AWS_REGION is for Lambda).
        if _REGION_VARIABLE in self.from_file:
            options["region_name"] = self.values[_REGION_VARIABLE]
        # A key and its secret are one credential: take both from the file or neither.
        if all(name in self.from_file for name in _CREDENTIAL_VARIABLES):
            options["aws_access_key_id"] = self.values["AWS_ACCESS_KEY_ID"]
            options["aws_secret_access_key"] = self.values["AWS_SECRET_ACCESS_KEY"]
        return options


def cli_environment(
    process: Mapping[str, str] | None = None, *, start: Path | None = None
) -> CliEnvironment:
    """The process environment (default: ``os.environ``) over the running local stack's values.

    A second shell anywhere inside the checkout uses the stack ``cachesync local up`` runs
    without exporting anything; any variable set in the shell wins, so a real AWS setup is never
    overridden.
    """
    shell = dict(os.environ if process is None else process)
    path = find_local_env_file(start)
    values = read_env_file(path) if path is not None else {}
    if path is None or local_stack_pid(values) is None:
        return CliEnvironment(values=shell, from_file=frozenset(), file=None)
    from_file = frozenset(name for name in values if name not in shell)
    return CliEnvironment(values={**values, **shell}, from_file=from_file, file=path)


def export_to_process_environment(values: Mapping[str, str]) -> None:
    """Make this process look like a Lambda configured with ``values`` (local stack only).

    The local pipeline and ``cachesync invoke`` run the real entry points in this process; they
    read their settings, and botocore its endpoints, from the process environment.
    """
    os.environ.update(values)
