"""The query API next to the local stack: ``cachesync api serve`` as a child process.

``cachesync local up`` starts it on the stack's tables with a token secret drawn for the stack,
and creates three demo API keys. It is the very code path a developer runs by hand
(``cachesync api serve``: gunicorn and the WSGI adapter of :mod:`cachesync.local.api_server`),
in its own process group of workers: gunicorn's arbiter owns its process's signals.
"""

from __future__ import annotations

import http.client
import os
import secrets
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Final

from cachesync.api.keys import Scope, new_api_key
from cachesync.exceptions import LocalStackError
from cachesync.local.dynamodb_local import die_with_parent, free_port
from cachesync.local.server_lifecycle import ServerLifecycle, stop_process
from cachesync.settings import variable_name
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore

API_URL_VARIABLE: Final = "CACHESYNC_API_URL"
API_KEY_VARIABLE: Final = "CACHESYNC_API_KEY"
RESTRICTED_API_KEY_VARIABLE: Final = "CACHESYNC_API_KEY_RESTRICTED"
ADMIN_API_KEY_VARIABLE: Final = "CACHESYNC_ADMIN_API_KEY"
CONSOLE_PATH: Final = "/console"

FULL_DEMO_KEY_NAME: Final = "demo (read, write; every customer)"
RESTRICTED_DEMO_KEY_NAME: Final = "demo (read; acme)"
ADMIN_DEMO_KEY_NAME: Final = "demo admin (read, write, admin; every customer)"
_DEMO_KEY_NAMES: Final = (FULL_DEMO_KEY_NAME, RESTRICTED_DEMO_KEY_NAME, ADMIN_DEMO_KEY_NAME)
RESTRICTED_DEMO_CUSTOMER: Final = "acme"

# gunicorn boots in about a second; the first request builds the resolver and its clients.
READY_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 15.0
# Two workers: this is a developer's stack on a laptop, next to DynamoDB Local and moto.
DEFAULT_WORKERS: Final = 2


@dataclass(frozen=True)
class DemoKeys:
    """The demo keys ``make run`` prints (full secrets: shown, never stored)."""

    full: str
    """Read and write, every customer."""
    restricted: str
    """Read only, customer ``acme``."""
    admin: str
    """Admin (webhook subscriptions, API keys) with read and write, every customer: one key
    for everything the console does."""


def create_demo_keys(store: DynamoDBApiKeyStore, now: datetime) -> DemoKeys:
    """Create the demo keys, revoking those of an earlier run (a ``--data-dir`` keeps them).

    Their secrets are printed once by the stack; only the new pair is then valid.
    """
    for record in store.list():
        if record.name in _DEMO_KEY_NAMES and not record.revoked_at:
            store.revoke(record.key_id, now)
    full = new_api_key(FULL_DEMO_KEY_NAME, ["*"], [Scope.READ, Scope.WRITE], now)
    restricted = new_api_key(
        RESTRICTED_DEMO_KEY_NAME, [RESTRICTED_DEMO_CUSTOMER], [Scope.READ], now
    )
    admin = new_api_key(ADMIN_DEMO_KEY_NAME, ["*"], [Scope.READ, Scope.WRITE, Scope.ADMIN], now)
    for created in (full, restricted, admin):
        # False only on a key id collision (48 random bits): never in practice.
        if not store.create(created.record):
            raise LocalStackError("a demo API key could not be created (key id taken): retry")
    return DemoKeys(full=full.key, restricted=restricted.key, admin=admin.key)


def draw_token_secret() -> str:
    """A secret for the stack's pagination tokens (tokens die with the stack)."""
    return secrets.token_urlsafe(48)


def _cachesync_command() -> list[str]:
    """The ``cachesync`` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "cachesync"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from cachesync.cli import main; main()"]


class LocalApiServer(ServerLifecycle):
    """``cachesync api serve`` on a loopback port, as a child process.

    ``environment`` is the child's whole environment: the stack's variables, the keys table and
    the token secret. ``port`` 0 takes a free port. The child dies with this process even when
    it is killed (``PR_SET_PDEATHSIG``); its output goes to ``log_path``.
    """

    def __init__(
        self,
        environment: Mapping[str, str],
        *,
        log_path: Path,
        port: int = 0,
        workers: int = DEFAULT_WORKERS,
        host: str = "127.0.0.1",
    ) -> None:
        self._environment = dict(environment)
        self._log_path = log_path
        self._host = host
        self._port = port or free_port()
        self._workers = workers
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The API's base URL, ending before ``/v1``."""
        return f"http://{self._host}:{self._port}"

    @property
    def docs_url(self) -> str:
        """Swagger UI."""
        return f"{self.base_url}/v1/docs"

    @property
    def console_url(self) -> str:
        """The web console."""
        return f"{self.base_url}{CONSOLE_PATH}"

    def start(self) -> None:
        """Spawn the server; :meth:`wait_until_ready` waits for it."""
        if self._process is not None:
            raise LocalStackError("the local API server is already started")
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self._log_path.open("ab")
        command = [
            *_cachesync_command(),
            "api",
            "serve",
            "--host",
            self._host,
            "--port",
            str(self._port),
            "--workers",
            str(self._workers),
        ]
        self._process = subprocess.Popen(  # noqa: S603 (our own script, fixed arguments)
            command,
            env=self._environment,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent(),
        )

    def wait_until_ready(
        self, timeout: float = READY_TIMEOUT_SECONDS, *, stop: threading.Event | None = None
    ) -> bool:
        """True once ``GET /v1/health`` answers 200, False if ``stop`` is set first (Ctrl-C
        reaches the server too); raise if the server exits or stays mute."""
        process = self._process
        if process is None:
            raise LocalStackError("the local API server is not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if process.poll() is not None:
                raise LocalStackError(
                    f"the API server exited with status {process.returncode}; "
                    f"its output is in {self._log_path}"
                )
            if self._health_status() == http.client.OK:
                return True
            time.sleep(0.2)
        raise LocalStackError(
            f"the API server did not answer within {timeout:.0f} s; see {self._log_path}"
        )

    def _health_status(self) -> int | None:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=5)
        try:
            connection.request("GET", "/v1/health")
            return connection.getresponse().status
        except OSError:
            return None
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM: gunicorn's graceful stop), then its log. Safe to repeat."""
        process, self._process = self._process, None
        stop_process(process, STOP_TIMEOUT_SECONDS)
        if self._log is not None:
            self._log.close()
            self._log = None


def api_server_environment(
    stack_environment: Mapping[str, str],
    *,
    api_keys_table_name: str,
    token_secret: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The API server's environment: ``base`` (default: this process's), the stack over it."""
    return {
        **(os.environ if base is None else base),
        **stack_environment,
        "CACHESYNC_API_KEYS_TABLE_NAME": api_keys_table_name,
        variable_name("api_token_secret"): token_secret,
    }


def api_export_lines(base_url: str, keys: DemoKeys) -> list[str]:
    """``export`` lines of the API's URL and the demo keys, as ``make run`` prints them."""
    values = {
        API_URL_VARIABLE: base_url,
        API_KEY_VARIABLE: keys.full,
        RESTRICTED_API_KEY_VARIABLE: keys.restricted,
        ADMIN_API_KEY_VARIABLE: keys.admin,
    }
    return [f"export {name}={shlex.quote(value)}" for name, value in values.items()]
