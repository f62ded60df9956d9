"""Usage statistics over HTTP: the server's access log, then ``cachesync keys usage`` reads it."""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path

from cachesync.api.keys import Scope, split_key
from tests.integration.api_http import CLI, ApiWorld, api_world

__all__ = ["api_world"]

ACCESS_LOG = Path(tempfile.gettempdir()) / f"cachesync-access-{uuid.uuid4().hex}.jsonl"
# `cachesync api serve --access-log` takes its default from this variable.
API_SERVER_ENVIRONMENT = {"CACHESYNC_API_ACCESS_LOG": str(ACCESS_LOG)}


def test_requests_through_the_server_show_in_keys_usage(api_world: ApiWorld) -> None:
    # Given a reader key and another key
    key = api_world.key(scopes=(Scope.READ,))
    other = api_world.key(scopes=(Scope.READ,))
    key_id = split_key(key)[0]
    # When the key makes 4 good queries, a bad one, a write it has no scope for, and a request
    # with a wrong secret; the other key one query
    for _ in range(4):
        assert api_world.get("/v1/documents?customer=acme", key).status == 200
    assert api_world.get("/v1/documents?limit=999", key).status == 400
    assert api_world.request("PUT", "/v1/documents/u.json", key=key, body={}).status == 403
    assert api_world.get("/v1/documents", key + "x").status == 401
    assert api_world.get("/v1/documents", other).status == 200
    usage = subprocess.run(
        [CLI, "keys", "usage", key_id, "--log", str(ACCESS_LOG), "--json"],
        env=api_world.environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    table = subprocess.run(
        [CLI, "keys", "usage", key_id, "--log", str(ACCESS_LOG)],
        env=api_world.environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # Then the report counts the key's 7 requests (3 errors) in both windows, per route
    assert usage.returncode == 0, usage.stderr
    report = json.loads(usage.stdout)
    assert report["key_id"] == key_id
    for window in report["windows"]:
        total = window["total"]
        assert (total["requests"], total["errors"], total["throttled"]) == (7, 3, 0)
        assert total["p50_ms"] > 0
        routes = {route["route"]: route for route in window["routes"]}
        assert routes["GET /v1/documents"]["requests"] == 6
        assert routes["GET /v1/documents"]["errors"] == 2
        assert routes["PUT /v1/documents/{key}"]["errors"] == 1
    assert table.returncode == 0, table.stderr
    assert "last hour" in table.stdout
    assert "GET /v1/documents" in table.stdout
    # and the log holds no secret
    text = ACCESS_LOG.read_text()
    assert split_key(key)[1] not in text
    assert split_key(other)[1] not in text
    line = json.loads(text.splitlines()[-1])
    assert set(line) >= {"request_id", "key_id", "route", "status", "latency_ms", "cache"}
    ACCESS_LOG.unlink()
