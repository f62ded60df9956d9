"""The TypeScript client (clients/typescript) against the real query API server.

The client's own tests (node:test) run here, with the server, keys and documents this module
sets up; `make setup` installed the client's npm packages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cachesync.api.keys import Scope
from tests.integration.api_http import ApiWorld, api_world, change, index_document

__all__ = ["api_world"]

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def test_the_typescript_client_passes_its_tests_against_the_server(api_world: ApiWorld) -> None:
    # Given a writer key, a reader key limited to acme, a writer key requiring signatures, a key
    # allowed one request per second, and 11 documents of one customer
    assert (CLIENT / "node_modules").is_dir(), "clients/typescript has no node_modules: make setup"
    npm = shutil.which("npm")
    assert npm is not None, "npm is not on PATH"
    customer = f"ts{uuid.uuid4().hex[:6]}"
    for number in range(11):
        key = f"ts/{customer}/{number:02d}.json"
        when = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=12 * number)
        index_document(api_world, key, change(f"T{number}", customers=(customer,), modified=when))
    signed = api_world.key(scopes=(Scope.READ, Scope.WRITE), requires_signing=True)
    environment = {
        **{n: v for n, v in os.environ.items() if not n.startswith(("AWS_", "CACHESYNC_"))},
        "CACHESYNC_API_URL": f"http://{api_world.host}:{api_world.port}",
        "CACHESYNC_API_KEY": api_world.key(scopes=(Scope.READ, Scope.WRITE)),
        "CACHESYNC_API_KEY_RESTRICTED": api_world.key(customers=("acme",)),
        "CACHESYNC_API_KEY_SIGNED": signed,
        "CACHESYNC_API_SIGNING_SECRET": api_world.signing_secret_of(signed),
        # One request per second: the 429 + Retry-After scenario.
        "CACHESYNC_API_KEY_LIMITED": api_world.key(rate_per_minute=100, rate_burst=1),
        "TS_TEST_CUSTOMER": customer,
        "TS_TEST_SEEDED": "11",
    }
    # When the client's test suite runs (generate types from openapi.json, compile, test)
    completed = subprocess.run(
        [npm, "test", "--silent"],
        cwd=CLIENT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    # Then every test passed
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, report[-6000:]
    assert "# fail 0" in report
    assert "# pass 0" not in report
