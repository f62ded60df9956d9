"""What single operations cost on this machine: the figures behind docs/PERFORMANCE.md's advice.

``python -m tests.load.unit_costs`` (about a minute; not part of ``make bench``): its own local
stack (DynamoDB Local + moto), ``CACHESYNC_COST_DOCUMENTS`` (600) seeded demo documents, then, in
this process, the median and p95 of ``CACHESYNC_COST_SAMPLES`` (40) calls each of:

* an index store query page by page size (``limit`` 10 to 500), for one customer and for two
  statuses (a shape that reads several periods and lanes per page);
* the request guard's per-request work: the rate-limit counter update and the nonce put (one
  DynamoDB write each), a limit check as the API makes it (from a lease: a write now and then),
  the signature's HMAC, the allowlist check against eleven networks;
* the query API's cold start: importing ``functions/query_api/handler.py`` (settings, clients,
  resolver) in a fresh interpreter, three times.

Results go to ``build/bench/unit_costs.json`` and are printed. A guard feature the code does not
have is reported "not available".
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cachesync.api import keys as api_keys
from cachesync.api import request_signing
from cachesync.api.request_limits import LimitPolicy, RequestLimiter
from cachesync.index_models import IndexQuery
from cachesync.local import LocalStack
from cachesync.local.demo_data import DEMO_CUSTOMERS
from cachesync.stores.dynamodb_api_usage import DynamoDBApiUsageStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.load import guard_phases, run_load

ROOT: Final = Path(__file__).resolve().parents[2]
OUTPUT: Final = ROOT / "build" / "bench" / "unit_costs.json"
DOCUMENTS: Final = int(os.environ.get("CACHESYNC_COST_DOCUMENTS", "600"))
SAMPLES: Final = int(os.environ.get("CACHESYNC_COST_SAMPLES", "40"))
PAGE_SIZES: Final = (10, 25, 50, 100, 500)


def timed(call: Callable[[], object], samples: int = SAMPLES) -> dict[str, float]:
    """Median and p95 of ``samples`` calls, in milliseconds (after one unmeasured call)."""
    call()
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        call()
        durations.append((time.perf_counter() - started) * 1000)
    durations.sort()
    return {
        "median_ms": round(statistics.median(durations), 3),
        "p95_ms": round(durations[int(len(durations) * 0.95) - 1], 3),
    }


def page_sizes(stack: LocalStack) -> dict[str, Any]:
    """One query page per page size, for two shapes; items returned per page too."""
    store = DynamoDBIndexStore(stack.client("dynamodb"), stack.provisioned.table_name)
    shapes: dict[str, dict[str, Any]] = {
        "customer": {"customer": DEMO_CUSTOMERS[0]},
        "two_statuses": {"statuses": ("approved", "published")},
    }
    found: dict[str, Any] = {}
    for shape, filters in shapes.items():
        for limit in PAGE_SIZES:
            query = IndexQuery(limit=limit, **filters)
            items = len(store.query(query).items)
            figures = timed(lambda query=query: store.query(query))  # type: ignore[misc]
            found[f"{shape} limit={limit}"] = figures | {"items": items}
    return found


def guard_costs(stack: LocalStack, usage_table: str) -> dict[str, Any]:
    """The guard's work for one request, each part alone."""
    usage = DynamoDBApiUsageStore(stack.client("dynamodb"), usage_table)
    limiter = RequestLimiter(usage)
    policy = LimitPolicy(per_minute=60_000, burst=1_000)
    costs: dict[str, Any] = {
        "rate_limit_counter_update": timed(
            lambda: usage.count("cost-probe", int(time.time()), per_minute=10**9, per_second=10**9)
        ),
        # One request's limit check as the API makes it: from a lease, a write now and then.
        "rate_limit_check_leased": timed(
            lambda: limiter.check("cost-probe-leased", policy), samples=SAMPLES * 10
        ),
        "nonce_put": timed(
            lambda: usage.remember("cost-probe", secrets.token_urlsafe(16), int(time.time()) + 600)
        ),
    }
    canonical = request_signing.canonical_request(
        "GET", "/v1/documents", [("customer", "acme"), ("limit", "50")], "1780000000", "n" * 22, b""
    )
    costs["signature_hmac"] = timed(
        lambda: request_signing.signature("css_" + "0" * 64, canonical), samples=2000
    )
    allowed = getattr(api_keys, "address_allowed", None)
    if allowed is None:
        costs["allowlist_check"] = "not available: api.keys has no address_allowed"
    else:
        # Looked up by name: the code measured may be older than the allowlists.
        new_api_key: Callable[..., Any] = getattr(api_keys, "new_api_key")  # noqa: B009
        record = new_api_key(
            "cost-probe",
            ["*"],
            (api_keys.Scope.READ,),
            datetime.now(UTC),
            allowed_cidrs=list(guard_phases.ALLOWED_NETWORKS),
        ).record
        costs["allowlist_check"] = timed(lambda: allowed(record, "127.0.0.1"), samples=2000)
    return costs


def cold_starts(stack: LocalStack, runs: int = 3) -> list[float]:
    """Seconds to import the query_api handler (what a Lambda init does) in a new interpreter."""
    environment = {
        **{n: v for n, v in os.environ.items() if not n.startswith(("AWS_", "CACHESYNC_"))},
        **stack.environment(),
        "CACHESYNC_API_KEYS_TABLE_NAME": stack.resources.api_keys_table_name,
        "CACHESYNC_API_TOKEN_SECRET": run_load.TOKEN_SECRET,
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    script = (
        "import sys, time; started = time.perf_counter(); sys.path.insert(0, sys.argv[1]); "
        "import handler; print(time.perf_counter() - started)"
    )
    seconds = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", script, str(ROOT / "functions" / "query_api")],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        seconds.append(round(float(output.strip().splitlines()[-1]), 3))
    return seconds


def main() -> int:
    """Measure, write and print."""
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": list(os.getloadavg()),
        "documents": DOCUMENTS,
        "samples": SAMPLES,
    }
    with LocalStack() as stack:
        run_load.seed(stack, DOCUMENTS)
        usage_table = guard_phases.ensure_usage_table(stack)
        results["page_sizes"] = page_sizes(stack)
        results["guard"] = guard_costs(stack, usage_table)
        results["cold_start_seconds"] = cold_starts(stack)
    results["load_end"] = list(os.getloadavg())
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
