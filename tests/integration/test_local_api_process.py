"""The query API as `cachesync local up` runs it: demo keys, and the server child process."""

from __future__ import annotations

import http.client
import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cachesync.api.keys import InvalidApiKeyError, Scope, split_key, verify
from cachesync.local import LocalStack
from cachesync.local.api_process import (
    LocalApiServer,
    api_export_lines,
    api_server_environment,
    create_demo_keys,
    draw_token_secret,
)
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore


@pytest.fixture
def key_store(local_stack: LocalStack) -> DynamoDBApiKeyStore:
    return DynamoDBApiKeyStore(
        local_stack.client("dynamodb"), local_stack.resources.api_keys_table_name
    )


def test_demo_keys_have_their_scopes_and_customers_and_a_rerun_revokes_the_first_pair(
    key_store: DynamoDBApiKeyStore,
) -> None:
    # Given demo keys created by a first run (a --data-dir keeps them across runs)
    first = create_demo_keys(key_store, datetime.now(UTC))
    # When a second run creates its own
    second = create_demo_keys(key_store, datetime.now(UTC))
    # Then the new full key reads and writes everything, the restricted one reads acme only,
    # and the admin key does everything for every customer
    full_id, full_secret = split_key(second.full)
    full = verify(key_store.get(full_id), full_secret)
    assert full.scopes == {Scope.READ, Scope.WRITE}
    assert full.customers is None
    restricted_id, restricted_secret = split_key(second.restricted)
    restricted = verify(key_store.get(restricted_id), restricted_secret)
    assert restricted.scopes == {Scope.READ}
    assert restricted.customers == ("acme",)
    admin_id, admin_secret = split_key(second.admin)
    admin = verify(key_store.get(admin_id), admin_secret)
    assert admin.scopes == {Scope.READ, Scope.WRITE, Scope.ADMIN}
    assert admin.customers is None
    # And the first run's keys no longer work
    for old in (first.full, first.restricted, first.admin):
        key_id, secret = split_key(old)
        with pytest.raises(InvalidApiKeyError, match="revoked"):
            verify(key_store.get(key_id), secret)


def test_the_server_serves_on_the_stack_and_stops(
    local_stack: LocalStack, key_store: DynamoDBApiKeyStore, tmp_path: Path
) -> None:
    # Given the server configured as `local up` configures it
    keys = create_demo_keys(key_store, datetime.now(UTC))
    environment = api_server_environment(
        local_stack.environment(),
        api_keys_table_name=local_stack.resources.api_keys_table_name,
        token_secret=draw_token_secret(),
    )
    # The access log in the test's folder, not .cachesync/ of the folder the tests run from.
    access_log = tmp_path / "api-access.jsonl"
    server = LocalApiServer(
        {**environment, "CACHESYNC_API_ACCESS_LOG": str(access_log)},
        log_path=tmp_path / "api.log",
        workers=1,
    )
    # When it starts, is asked for a query with the restricted key, then stops
    with server:
        assert server.wait_until_ready()
        host_port = server.base_url.removeprefix("http://")
        connection = http.client.HTTPConnection(host_port, timeout=30)
        connection.request(
            "GET",
            "/v1/documents?customer=globex",
            headers={"Authorization": f"Bearer {keys.restricted}"},
        )
        refused = connection.getresponse().status
        connection.close()
    # Then it answered with the stack's keys (403: not acme), and no longer listens
    assert refused == 403
    # and logged it (the access line `keys usage` reads), with its key id and route
    logged = [json.loads(line) for line in access_log.read_text().splitlines()]
    assert {
        (line["key_id"], line["route"], line["status"]) for line in logged if line["key_id"]
    } == {(split_key(keys.restricted)[0], "GET /v1/documents", 403)}
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(host_port, timeout=5).request("GET", "/v1/health")
    # And its export lines hold the URL and the keys, shell-quoted
    lines = api_export_lines(server.base_url, keys)
    parsed = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
    assert parsed == {
        "CACHESYNC_API_URL": server.base_url,
        "CACHESYNC_API_KEY": keys.full,
        "CACHESYNC_API_KEY_RESTRICTED": keys.restricted,
        "CACHESYNC_ADMIN_API_KEY": keys.admin,
    }
