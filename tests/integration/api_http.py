"""The query API over real HTTP: ``cachesync api serve`` (gunicorn) against the local stack.

Imported by the ``test_api_*`` modules: one server per module, on a free port, with its own
index, API keys and idempotency tables and its own bucket.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from cachesync.api.keys import Scope, new_api_key, split_key
from cachesync.api.request_signing import signing_master_secret, signing_secret
from cachesync.api_keys_schema import create_api_keys_table_request
from cachesync.api_usage_schema import create_api_usage_table_request
from cachesync.change_feed_schema import create_change_feed_table_request
from cachesync.documents import parse_document
from cachesync.index_models import IndexEntry, ObjectVersion, WriteSource
from cachesync.index_schema import create_idempotency_table_request, create_table_request
from cachesync.local import LocalStack
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.webhooks_schema import create_deliveries_table_request, create_webhooks_table_request

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CLI = str(Path(sys.executable).parent / "cachesync")
TOKEN_SECRET = "integration-secret-" + "x" * 40


@dataclass(frozen=True)
class Reply:
    """One HTTP response."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ApiWorld:
    """A running API server and the stores behind it."""

    host: str
    port: int
    bucket: str
    index: DynamoDBIndexStore
    keys: DynamoDBApiKeyStore
    s3: S3Client
    environment: dict[str, str]
    change_feed_table: str = ""
    """The change feed's table the server's analytics read (tests fill it through a feed)."""
    created_keys: dict[str, str] = field(default_factory=dict)

    def key(
        self,
        customers: tuple[str, ...] = ("*",),
        scopes: tuple[Scope, ...] = (),
        **options: Any,
    ) -> str:
        """A new API key (full secret form) with ``customers`` and ``scopes`` (default: read);
        ``options``: ``new_api_key``'s (allowed_cidrs, requires_signing, rate_per_minute,
        rate_burst)."""
        created = new_api_key(
            f"test-{len(self.created_keys)}",
            customers,
            scopes or (Scope.READ,),
            datetime.now(UTC),
            **options,
        )
        assert self.keys.create(created.record)
        self.created_keys[created.key] = created.record.key_id
        return created.key

    def signing_secret_of(self, key: str) -> str:
        """The signing secret of ``key`` as the server derives it (from its token secret)."""
        record = self.keys.get(split_key(key)[0])
        assert record is not None
        master = signing_master_secret(self.environment["CACHESYNC_API_TOKEN_SECRET"].encode())
        return signing_secret(master, record.key_id, record.salt)

    def request(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Reply:
        """Send one request; ``path`` goes on the wire exactly as given."""
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        payload = None
        if isinstance(body, bytes):
            payload = body  # sent as is, UTF-8 or not
        elif isinstance(body, str):
            payload = body.encode()  # sent as is, valid JSON or not
        elif body is not None:
            payload = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        # An IPv6 address is given bare to http.client (it adds no brackets to the socket call).
        connection = http.client.HTTPConnection(self.host.strip("[]"), self.port, timeout=30)
        try:
            connection.request(method, path, body=payload, headers=sent)
            response = connection.getresponse()
            return Reply(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def get(self, path: str, key: str | None = None, **headers: str) -> Reply:
        """GET ``path`` with ``key``."""
        return self.request("GET", path, key=key, headers=headers)


def change(
    doc_id: str,
    *,
    customers: tuple[str, ...] = ("acme",),
    status: str = "approved",
    modified: datetime,
    kind: str = "change",
) -> dict[str, Any]:
    """A valid document body."""
    body: dict[str, Any] = {
        "object_type": kind,
        "title": f"document {doc_id}",
        "customers": list(customers),
        "status": status,
        "modified_at": modified.isoformat(),
    }
    body["change_id" if kind == "change" else "announcement_id"] = doc_id
    return body


def index_document(world: ApiWorld, key: str, body: Mapping[str, Any]) -> None:
    """Put ``body`` at ``key`` straight into the index (queries read only the index)."""
    raw = json.dumps(body)
    now = datetime.now(UTC)
    version = ObjectVersion(
        bucket=world.bucket, key=key, etag=uuid.uuid4().hex, size=len(raw), last_modified=now
    )
    parsed = parse_document(key, raw, s3_last_modified=now, retention=timedelta(days=3650))
    world.index.put_document(IndexEntry(version=version, document=parsed, source=WriteSource.EVENT))


def _free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host.strip("[]"), 0))
        port: int = probe.getsockname()[1]
        return port


def has_ipv6_loopback() -> bool:
    """Whether this machine can listen on ``::1``."""
    try:
        _free_port("::1")
    except OSError:
        return False
    return True


def _wait_until_serving(world: ApiWorld, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}")
        try:
            if world.get("/v1/health").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API server did not answer within 60 s")


@contextmanager
def serving(
    world: ApiWorld, cwd: Path, *, overrides: Mapping[str, str] | None = None, host: str = ""
) -> Iterator[ApiWorld]:
    """Another ``cachesync api serve`` on the stores of ``world`` (same tables, bucket and
    token secret), its environment changed by ``overrides``, listening on ``host`` (default:
    ``world``'s); the server stops when the block ends."""
    with serving_all(world, cwd, [(overrides or {}, host)]) as (served,):
        yield served


@contextmanager
def serving_all(
    world: ApiWorld, cwd: Path, servers: list[tuple[Mapping[str, str], str]]
) -> Iterator[list[ApiWorld]]:
    """Several servers as :func:`serving` (``(overrides, host)`` each), started at once."""
    worlds = []
    for overrides, host in servers:
        address = host or world.host
        worlds.append(
            replace(
                world,
                host=address,
                port=_free_port(address),
                environment={**world.environment, **overrides},
                created_keys=world.created_keys,
            )
        )
    with ExitStack() as stack:
        for number, served in enumerate(worlds):
            stack.enter_context(_server(served, cwd / f"server-{served.port}-{number}.log"))
        yield worlds


@contextmanager
def _server(world: ApiWorld, log_path: Path) -> Iterator[ApiWorld]:
    """``cachesync api serve`` for ``world``: its host, port and environment."""
    # One worker: its memory cache sees every write of the tests (another worker's cache would
    # serve what it holds until its TTL, as in production).
    command = [
        CLI,
        "api",
        "serve",
        "--host",
        world.host.strip("[]"),
        "--port",
        str(world.port),
        "--workers",
        "1",
    ]
    log = log_path.open("wb")
    with (
        log,
        subprocess.Popen(
            command,
            cwd=log_path.parent,
            env=world.environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as process,
    ):
        try:
            _wait_until_serving(world, process)
            yield world
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def api_world(
    local_stack: LocalStack,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[ApiWorld]:
    """``cachesync api serve`` on a free port, on fresh tables and a fresh bucket.

    A test module may set ``API_SERVER_ENVIRONMENT`` (a dict) to add or override variables.
    Rate limits are on (as in production) with defaults high enough for any test's pace; a
    test wanting a limit gives its key one (``world.key(rate_per_minute=...)``).
    """
    dynamodb, s3 = local_stack.client("dynamodb"), local_stack.client("s3")
    suffix = uuid.uuid4().hex[:8]
    table, keys_table, idempotency = f"api-{suffix}", f"keys-{suffix}", f"idem-{suffix}"
    usage = f"usage-{suffix}"
    feed, hooks, deliveries = f"feed-{suffix}", f"hooks-{suffix}", f"deliveries-{suffix}"
    bucket = f"api-{suffix}"
    dynamodb.create_table(**create_table_request(table))
    dynamodb.create_table(**create_api_keys_table_request(keys_table))
    dynamodb.create_table(**create_idempotency_table_request(idempotency))
    dynamodb.create_table(**create_api_usage_table_request(usage))
    dynamodb.create_table(**create_change_feed_table_request(feed))
    dynamodb.create_table(**create_webhooks_table_request(hooks))
    dynamodb.create_table(**create_deliveries_table_request(deliveries))
    s3.create_bucket(Bucket=bucket)
    environment = {
        **{n: v for n, v in os.environ.items() if not n.startswith(("AWS_", "CACHESYNC_"))},
        **local_stack.environment(),
        "CACHESYNC_TABLE_NAME": table,
        "CACHESYNC_BUCKET_NAME": bucket,
        "CACHESYNC_IDEMPOTENCY_TABLE_NAME": idempotency,
        "CACHESYNC_API_KEYS_TABLE_NAME": keys_table,
        "CACHESYNC_API_USAGE_TABLE_NAME": usage,
        "CACHESYNC_CHANGE_FEED_TABLE_NAME": feed,
        "CACHESYNC_WEBHOOKS_TABLE_NAME": hooks,
        "CACHESYNC_WEBHOOK_DELIVERIES_TABLE_NAME": deliveries,
        # Test receivers listen on loopback over plain http, as in the local stack.
        "CACHESYNC_WEBHOOK_ALLOW_LOOPBACK": "true",
        "CACHESYNC_API_RATE_LIMITS_ENABLED": "true",
        "CACHESYNC_API_RATE_LIMIT_PER_MINUTE": "60000",
        "CACHESYNC_API_RATE_LIMIT_BURST": "1000",
        "CACHESYNC_API_TOKEN_SECRET": TOKEN_SECRET,
        "CACHESYNC_RETENTION_DAYS": "3650",
        "CACHESYNC_WRITE_RATE_PER_SECOND": "1000",
        "CACHESYNC_WRITE_BURST": "1000",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        # Tests revoke keys and expect the next request refused: no key record cache here
        # (test_api_key_cache.py runs a server with one).
        "CACHESYNC_API_KEY_CACHE_TTL_SECONDS": "0",
        **getattr(request.module, "API_SERVER_ENVIRONMENT", {}),
    }
    port = _free_port()
    # A folder without a local stack's env file: the server sees only this environment.
    cwd = tmp_path_factory.mktemp("api")
    world = ApiWorld(
        host="127.0.0.1",
        port=port,
        bucket=bucket,
        index=DynamoDBIndexStore(dynamodb, table),
        keys=DynamoDBApiKeyStore(dynamodb, keys_table),
        s3=s3,
        environment=environment,
        change_feed_table=feed,
    )
    with _server(world, cwd / "server.log"):
        yield world
    for name in (table, keys_table, idempotency, usage, feed, hooks, deliveries):
        dynamodb.delete_table(TableName=name)
