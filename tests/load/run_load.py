"""The query API under load: its own stack, seeded, served by gunicorn, driven by locust headless.

``make bench`` runs it after the pytest benchmarks (``python -m tests.load.run_load``). Steps:

1. DynamoDB Local and a moto server on free ports (:class:`~cachesync.local.LocalStack`).
2. Seed: ``CACHESYNC_LOAD_DOCUMENTS`` demo documents (changes and announcements, six customers,
   every status, spread over six months) put into S3 and indexed; five API keys: three for every
   customer, two limited to one customer each (all read + write).
3. The API as in production locally: ``cachesync api serve`` (gunicorn, the WSGI adapter of
   ``local/api_server.py``) with ``CACHESYNC_LOAD_WORKERS`` worker processes.
4. locust, headless, ``CACHESYNC_LOAD_USERS`` users (100) without think time, FastHttpUser,
   ``CACHESYNC_LOAD_PROCESSES`` locust processes (1), users spawned in one second and statistics
   reset once all run:

   a. the mix (``MixUser``: 70% queries and page walks, 20% document reads, 10% writes) for
      ``CACHESYNC_LOAD_SECONDS`` (60); reported whole and for its reads alone; then the read
      mix (``ReadUser``: the same without the writes) as long: the issue's goals are on it;
   b. side by side, alternating ``CACHESYNC_LOAD_PAIR_ROUNDS`` (2) times: ``/v1/health`` then one
      cached query, ``CACHESYNC_LOAD_PAIR_SECONDS`` (15) each, on the same server;
   c. the request guard's cost (``tests/load/guard_phases.py``): baseline keys, rate limits on,
      signed requests, IP allowlists and all three at once side by side,
      ``CACHESYNC_LOAD_GUARD_ROUNDS`` (2) rounds of ``CACHESYNC_LOAD_GUARD_SECONDS`` (15) per
      variant and workload
      (``CACHESYNC_LOAD_GUARD_WORKLOADS``: ``cached,reads``) after an unmeasured warm-up of
      ``CACHESYNC_LOAD_GUARD_WARMUP_SECONDS`` (5) each, every variant as a ratio to the baseline;
      a feature the code does not have is reported "not available".

The server of phases a, b and the baseline runs with rate limits off
(``CACHESYNC_API_RATE_LIMITS_ENABLED=false``: the figures compare with earlier runs); the rate
limit variant has a second server of its own, with limits on and too high to refuse anything.

The machine's load average is recorded before and after each phase (the emulators, the server
and locust share its cores; other work on the machine shows there). Results go to
``build/bench/api_load.json`` and are printed at the end, beside the issue's goals. No goal is
asserted: the figures depend on the machine; the runner fails only when a phase did not run.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cachesync.api.keys import Scope, new_api_key
from cachesync.documents import parse_document
from cachesync.index_models import IndexEntry, IndexQuery, ObjectVersion, WriteSource
from cachesync.index_schema import DOCUMENT_SORT_KEY, PARTITION_KEY, SORT_KEY
from cachesync.local import LocalStack
from cachesync.local.demo_data import DEMO_CUSTOMERS, demo_documents
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from tests.load import guard_phases

ROOT: Final = Path(__file__).resolve().parents[2]
OUTPUT: Final = ROOT / "build" / "bench"
LOCUSTFILE: Final = Path(__file__).with_name("locustfile.py")
CLI: Final = str(Path(sys.executable).parent / "cachesync")
RETENTION: Final = timedelta(days=3650)


def _setting(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


DOCUMENTS: Final = _setting("CACHESYNC_LOAD_DOCUMENTS", 1200)
WORKERS: Final = _setting("CACHESYNC_LOAD_WORKERS", 4)
USERS: Final = _setting("CACHESYNC_LOAD_USERS", 100)
PROCESSES: Final = _setting("CACHESYNC_LOAD_PROCESSES", 1)
MIX_SECONDS: Final = _setting("CACHESYNC_LOAD_SECONDS", 60)
PAIR_SECONDS: Final = _setting("CACHESYNC_LOAD_PAIR_SECONDS", 15)
PAIR_ROUNDS: Final = _setting("CACHESYNC_LOAD_PAIR_ROUNDS", 2)
FLOOR_SECONDS: Final = _setting("CACHESYNC_LOAD_FLOOR_SECONDS", 10)
GUARD_SECONDS: Final = _setting("CACHESYNC_LOAD_GUARD_SECONDS", 15)
GUARD_ROUNDS: Final = _setting("CACHESYNC_LOAD_GUARD_ROUNDS", 2)
GUARD_WARMUP_SECONDS: Final = _setting("CACHESYNC_LOAD_GUARD_WARMUP_SECONDS", 5)
GUARD_WORKLOADS: Final = tuple(
    os.environ.get("CACHESYNC_LOAD_GUARD_WORKLOADS", "cached,reads").split(",")
)
GUARD_USERS: Final = {"cached": "CachedQueryUser", "reads": "ReadUser"}
PHASES: Final = frozenset(
    os.environ.get("CACHESYNC_LOAD_PHASES", "mix,reads,pair,guard").split(",")
)
"""The phases to run (all four by default; fewer when comparing settings)."""
SERVER_SETTINGS: Final = (
    "CACHESYNC_API_KEY_CACHE_TTL_SECONDS",
    "CACHESYNC_API_CACHE_TTL_SECONDS",
    "CACHESYNC_API_CACHE_MAX_ENTRIES",
)
GOAL_RPS: Final = 1000
GOAL_P95_MS: Final = 200
GOAL_ERROR_RATE: Final = 0.001
GOAL_CACHED_OVER_HEALTH: Final = 0.6
TOKEN_SECRET: Final = "load-test-secret-" + "x" * 40


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def seed(stack: LocalStack, count: int = DOCUMENTS) -> list[dict[str, Any]]:
    """Put ``count`` demo documents into S3 and the index (as the S3 events would); their keys
    and customers."""
    s3 = stack.client("s3")
    bucket = stack.provisioned.bucket_name
    index = DynamoDBIndexStore(stack.client("dynamodb"), stack.provisioned.table_name)

    def put(item: tuple[str, bytes]) -> dict[str, Any]:
        key, body = item
        response = s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        now = datetime.now(UTC)
        parsed = parse_document(key, body, s3_last_modified=now, retention=RETENTION)
        version = ObjectVersion(
            bucket=bucket,
            key=key,
            etag=response["ETag"].strip('"'),
            size=len(body),
            last_modified=now,
        )
        index.put_document(IndexEntry(version=version, document=parsed, source=WriteSource.EVENT))
        return {"key": key, "customers": list(parsed.customers)}

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(put, demo_documents(count)))


def create_keys(stack: LocalStack) -> list[dict[str, Any]]:
    """Three keys for every customer, two limited to one customer; one in five users takes a
    limited one."""
    store = DynamoDBApiKeyStore(stack.client("dynamodb"), stack.resources.api_keys_table_name)
    scopes = (Scope.READ, Scope.WRITE)
    keys: list[dict[str, Any]] = []
    for name, customers, weight in (
        ("load-all-1", None, 27),
        ("load-all-2", None, 27),
        ("load-all-3", None, 26),
        ("load-acme", [DEMO_CUSTOMERS[0]], 10),
        ("load-globex", [DEMO_CUSTOMERS[1]], 10),
    ):
        created = new_api_key(name, customers or ["*"], scopes, datetime.now(UTC))
        if not store.create(created.record):
            raise RuntimeError(f"key id collision for {name}")
        keys.append({"name": name, "key": created.key, "customers": customers, "weight": weight})
    return keys


def _months(now: datetime) -> list[str]:
    first = datetime(now.year, now.month, 1, tzinfo=UTC)
    months = []
    for back in range(7, -1, -1):
        year, month = divmod(first.year * 12 + first.month - 1 - back, 12)
        months.append(f"{year:04d}-{month + 1:02d}-01")
    months.append(f"{(first + timedelta(days=32)).strftime('%Y-%m')}-01")
    return months


def store_floor(stack: LocalStack, seconds: float) -> dict[str, Any]:
    """What the stack itself answers per second, with no API in front: 8 threads in this
    process, each calling in a loop for ``seconds``: (1) the index store's query for one
    customer's 50 newest documents (the work of a cheap query miss), (2) one consistent
    ``GetItem`` (the work of ``/v1/health``)."""
    client = stack.client("dynamodb")
    store = DynamoDBIndexStore(client, stack.provisioned.table_name)
    query = IndexQuery(customer=DEMO_CUSTOMERS[0], limit=50)

    def rate(call: Callable[[], object]) -> float:
        deadline = time.monotonic() + seconds

        def loop() -> int:
            done = 0
            while time.monotonic() < deadline:
                call()
                done += 1
            return done

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            total = sum(pool.map(lambda _: loop(), range(8)))
        return total / (time.monotonic() - started)

    before = _load_average()
    return {
        "index_query_per_second": rate(lambda: store.query(query)),
        "get_item_per_second": rate(
            lambda: client.get_item(
                TableName=stack.provisioned.table_name,
                Key={PARTITION_KEY: {"S": "floor"}, SORT_KEY: {"S": DOCUMENT_SORT_KEY}},
                ConsistentRead=True,
            )
        ),
        "load_before": before,
        "load_after": _load_average(),
    }


@contextmanager
def api_server(
    stack: LocalStack,
    workers: int,
    log: Path,
    *,
    usage_table: str,
    guard: dict[str, str] = guard_phases.UNLIMITED_SERVER,
) -> Iterator[str]:
    """``cachesync api serve`` on a free port against ``stack``; its base URL. ``guard``: its
    rate-limit settings (off by default)."""
    port = _free_port()
    environment = {
        **{n: v for n, v in os.environ.items() if not n.startswith(("AWS_", "CACHESYNC_"))},
        **stack.environment(),
        "CACHESYNC_API_KEYS_TABLE_NAME": stack.resources.api_keys_table_name,
        "CACHESYNC_API_USAGE_TABLE_NAME": usage_table,
        **guard,
        "CACHESYNC_API_TOKEN_SECRET": TOKEN_SECRET,
        "CACHESYNC_RETENTION_DAYS": str(RETENTION.days),
        "CACHESYNC_WRITE_RATE_PER_SECOND": "10000",
        "CACHESYNC_WRITE_BURST": "10000",
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        # The server's tunables, from the caller (to compare settings in one place).
        **{n: os.environ[n] for n in SERVER_SETTINGS if n in os.environ},
    }
    command = [CLI, "api", "serve", "--port", str(port), "--workers", str(workers)]
    url = f"http://127.0.0.1:{port}"
    with (
        log.open("wb") as output,
        subprocess.Popen(
            command, cwd=log.parent, env=environment, stdout=output, stderr=subprocess.STDOUT
        ) as process,
    ):
        try:
            _wait_until_serving(url, process)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/v1/health", timeout=5) as response:  # noqa: S310
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the API server did not answer within 60 s")


def run_locust(
    url: str, plan: Path, user_class: str, seconds: int, label: str, variant: str | None = None
) -> dict[str, Any]:
    """One headless locust run of ``user_class`` against ``url`` (with the keys of ``variant``
    of the plan, if given); its result, with the machine's load average before and after."""
    result_file = OUTPUT / f"api_load_{label}.json"
    result_file.unlink(missing_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(USERS), "--spawn-rate", str(USERS), "--run-time", f"{seconds}s",
        "--host", url, "--reset-stats", "--only-summary", "--stop-timeout", "10",
        "--loglevel", "WARNING",
    ]  # fmt: skip
    if PROCESSES > 1:
        command += ["--processes", str(PROCESSES)]
    command.append(user_class)
    environment = {
        **os.environ,
        "CACHESYNC_LOAD_PLAN": str(plan),
        "CACHESYNC_LOAD_RESULT": str(result_file),
        **({"CACHESYNC_LOAD_VARIANT": variant} if variant else {}),
    }
    before = _load_average()
    started = time.monotonic()
    log = OUTPUT / f"api_load_{label}.locust.log"
    with log.open("wb") as output:
        # check=False: locust exits 1 when any request failed; the result file says which.
        subprocess.run(
            command,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=seconds + 120,
            check=False,
        )
    if not result_file.exists():
        raise RuntimeError(f"locust wrote no result for {label}: see {log}")
    result: dict[str, Any] = json.loads(result_file.read_text())
    result |= {
        "user_class": user_class,
        "seconds": round(time.monotonic() - started, 1),
        "load_before": before,
        "load_after": _load_average(),
    }
    return result


def _line(name: str, figures: dict[str, Any]) -> str:
    return (
        f"  {name:<26} {figures['rps']:8.1f} rps  p50 {figures['p50_ms']:5.0f}  "
        f"p95 {figures['p95_ms']:5.0f}  p99 {figures['p99_ms']:5.0f} ms  "
        f"errors {figures['error_rate']:.3%} ({figures['failures']}/{figures['requests']})"
    )


def _phase(title: str, phase: dict[str, Any]) -> list[str]:
    lines = [f"{title} for {MIX_SECONDS} s (load {phase['load_before']} -> {phase['load_after']}):"]
    lines.append(_line("all requests", phase["total"]))
    if phase["reads"] is not None:
        lines.append(_line("reads (queries + documents)", phase["reads"]))
    lines += [_line(name, figures) for name, figures in phase["by_name"].items()]
    cache = phase["x_cache"]
    ratio = cache["hit_ratio"]
    lines.append(
        f"  X-Cache hit ratio {'-' if ratio is None else f'{ratio:.1%}'} "
        f"({cache['hits']}/{cache['lookups']})"
    )
    lines += [
        f"  error x{error['occurrences']} {error['name']}: {error['error'][:120]}"
        for error in phase["errors"][:5]
    ]
    return lines


def report(results: dict[str, Any]) -> str:
    """The figures beside the issue's goals, as printed (of the phases that ran)."""
    lines = [
        f"API load test: {USERS} users, {WORKERS} gunicorn workers, {PROCESSES} locust "
        f"process(es), {results['cpus']} CPUs, load average at start {results['load_start']}"
    ]
    if "mix" in results:
        lines += _phase("(a) mix 70/20/10 (queries/reads/writes)", results["mix"])
    if "reads" in results:
        lines += _phase("(a') read mix 70:20 (queries/reads)", results["reads"])
    pair = results.get("pair")
    if pair is not None:
        lines.append(
            f"(b) side by side, {PAIR_ROUNDS} rounds of {PAIR_SECONDS} s each: "
            f"health {pair['health_rps']:.1f} rps, cached query {pair['cached_rps']:.1f} rps, "
            f"ratio {pair['ratio']:.2f} (goal >= {GOAL_CACHED_OVER_HEALTH})"
        )
        for run in pair["runs"]:
            name = "health" if run["user_class"] == "HealthUser" else "cached query"
            lines.append(_line(name, run["total"]) + f"  load {run['load_before']}")
    guard = results.get("guard")
    if guard is not None:
        settings = results["settings"]
        lines += guard_phases.report_lines(
            guard["summary"], settings["guard_rounds"], settings["guard_seconds"]
        )
    floor = results["floor"]
    lines.append(
        f"stack floor, no API (8 threads, {FLOOR_SECONDS} s each, load {floor['load_before']}): "
        f"index store query {floor['index_query_per_second']:.0f}/s, "
        f"consistent GetItem {floor['get_item_per_second']:.0f}/s"
    )
    goals: dict[str, bool] = {}
    if "reads" in results:
        reads = results["reads"]["total"]
        goals[f">= {GOAL_RPS} rps (read mix)"] = reads["rps"] >= GOAL_RPS
        goals[f"p95 < {GOAL_P95_MS} ms (read mix)"] = reads["p95_ms"] < GOAL_P95_MS
    for name in ("reads", "mix"):
        if name in results:
            goals[f"errors < {GOAL_ERROR_RATE:.1%} ({name})"] = (
                results[name]["total"]["error_rate"] < GOAL_ERROR_RATE
            )
    if pair is not None:
        goals[f"cached query >= {GOAL_CACHED_OVER_HEALTH} x health rps"] = (
            pair["ratio"] >= GOAL_CACHED_OVER_HEALTH
        )
    if guard is not None:
        # The goals with each guard feature on (the read mix), and no failed request.
        workloads = guard["summary"]["workloads"]
        for variant, figures in workloads.get("reads", {}).items():
            goals[f">= {GOAL_RPS} rps (read mix, {variant})"] = figures["rps"] >= GOAL_RPS
            goals[f"p95 < {GOAL_P95_MS} ms (read mix, {variant})"] = figures["p95_ms"] < GOAL_P95_MS
        for workload, variants in workloads.items():
            for variant, figures in variants.items():
                rate = figures["failures"] / figures["requests"] if figures["requests"] else 1.0
                goals[f"errors < {GOAL_ERROR_RATE:.1%} ({workload}, {variant})"] = (
                    rate < GOAL_ERROR_RATE
                )
    lines += [f"  goal {'met   ' if met else 'MISSED'} {goal}" for goal, met in goals.items()]
    return "\n".join(lines)


def run_guard_phases(
    stack: LocalStack,
    url: str,
    plan_file: Path,
    variants: dict[str, list[dict[str, Any]]],
    unavailable: dict[str, str],
    usage_table: str,
) -> dict[str, Any]:
    """Phase (c): every available guard variant, probed, then measured in alternation with the
    baseline; their runs and summary."""
    unavailable = dict(unavailable)
    limited_log = OUTPUT / "api_load_server_rate_limited.log"
    with api_server(
        stack, WORKERS, limited_log, usage_table=usage_table, guard=guard_phases.RATE_LIMITED_SERVER
    ) as limited_url:
        urls = {
            variant: limited_url if variant in guard_phases.LIMITED_VARIANTS else url
            for variant in variants
        }
        measured = []
        for variant in guard_phases.VARIANTS:
            if variant not in variants:
                continue
            try:
                guard_phases.probe(variant, urls[variant], variants)
                measured.append(variant)
            except guard_phases.FeatureUnavailableError as reason:
                unavailable[variant] = str(reason)
        if "baseline" not in measured:
            raise RuntimeError(f"the baseline keys do not work: {unavailable.get('baseline')}")
        # Not measured: the first run on a fresh server (imports, connection pools, the JVM's
        # compiler) would otherwise count against whichever variant comes first.
        for variant in measured:
            for workload in GUARD_WORKLOADS if GUARD_WARMUP_SECONDS > 0 else ():
                run_locust(
                    urls[variant],
                    plan_file,
                    GUARD_USERS[workload],
                    GUARD_WARMUP_SECONDS,
                    f"guard_warmup_{workload}_{variant}",
                    variant=variant,
                )
        runs = []
        for round_number in range(GUARD_ROUNDS):
            # The order turns each round: no variant always runs on the warmest stack.
            shift = round_number % len(measured)
            for variant in measured[shift:] + measured[:shift]:
                for workload in GUARD_WORKLOADS:
                    label = f"guard_{workload}_{variant}_{round_number}"
                    run = run_locust(
                        urls[variant],
                        plan_file,
                        GUARD_USERS[workload],
                        GUARD_SECONDS,
                        label,
                        variant=variant,
                    )
                    runs.append(run | {"variant": variant, "workload": workload})
    summary = guard_phases.summarise(runs, unavailable)
    summary["usage_writes"] = guard_phases.usage_writes(stack, usage_table)
    return {"runs": runs, "summary": summary}


def main() -> int:
    """Run every phase; write and print the results."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_start": _load_average(),
        "settings": {
            "documents": DOCUMENTS,
            "workers": WORKERS,
            "users": USERS,
            "locust_processes": PROCESSES,
            "mix_seconds": MIX_SECONDS,
            "pair_seconds": PAIR_SECONDS,
            "pair_rounds": PAIR_ROUNDS,
            "guard_seconds": GUARD_SECONDS,
            "guard_rounds": GUARD_ROUNDS,
            "guard_workloads": list(GUARD_WORKLOADS),
            "guard_warmup_seconds": GUARD_WARMUP_SECONDS,
            "server": {n: os.environ[n] for n in SERVER_SETTINGS if n in os.environ},
        },
    }
    with LocalStack() as stack:
        documents = seed(stack)
        usage_table = guard_phases.ensure_usage_table(stack)
        variants, unavailable = guard_phases.create_variant_keys(stack, TOKEN_SECRET)
        plan = {
            "keys": create_keys(stack),
            "variants": variants,
            "documents": documents,
            "customers": list(DEMO_CUSTOMERS),
            "months": _months(datetime.now(UTC)),
            "write_time": datetime.now(UTC).isoformat(),
        }
        plan_file = OUTPUT / "api_load_plan.json"
        plan_file.write_text(json.dumps(plan))
        results["floor"] = store_floor(stack, FLOOR_SECONDS)
        server_log = OUTPUT / "api_load_server.log"
        with api_server(stack, WORKERS, server_log, usage_table=usage_table) as url:
            if "mix" in PHASES:
                results["mix"] = run_locust(url, plan_file, "MixUser", MIX_SECONDS, "mix")
            if "reads" in PHASES:
                results["reads"] = run_locust(url, plan_file, "ReadUser", MIX_SECONDS, "reads")
            runs = []
            for round_number in range(PAIR_ROUNDS if "pair" in PHASES else 0):
                for user_class, label in (("HealthUser", "health"), ("CachedQueryUser", "cached")):
                    runs.append(
                        run_locust(
                            url, plan_file, user_class, PAIR_SECONDS, f"{label}_{round_number}"
                        )
                    )
            if "guard" in PHASES:
                results["guard"] = run_guard_phases(
                    stack, url, plan_file, variants, unavailable, usage_table
                )
    if runs:
        health = [r["total"]["rps"] for r in runs if r["user_class"] == "HealthUser"]
        cached = [r["total"]["rps"] for r in runs if r["user_class"] == "CachedQueryUser"]
        health_rps, cached_rps = sum(health) / len(health), sum(cached) / len(cached)
        results["pair"] = {
            "runs": runs,
            "health_rps": health_rps,
            "cached_rps": cached_rps,
            "ratio": cached_rps / health_rps if health_rps else 0.0,
        }
    results["load_end"] = _load_average()
    (OUTPUT / "api_load.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"written to {OUTPUT / 'api_load.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
