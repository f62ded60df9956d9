"""Experiment 4: the query API (gunicorn, as `cachesync api serve`) under load while DynamoDB is
slow, then unreachable."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cachesync.backfill import ObjectIndexer
from cachesync.local import LocalStack
from cachesync.local.api_process import (
    LocalApiServer,
    api_server_environment,
    create_demo_keys,
    draw_token_secret,
)
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from tests.chaos.harness import latency_figures, recent_documents, verify_drift
from tests.chaos.report import ChaosReport, Experiment
from tests.support.fault_proxy import FaultProxy
from tests.support.scale import scaled

DOCUMENTS = 60
USERS = 4
WORKERS = 4  # one per user: the figures show the server's time, not a queue in front of it
PHASE_SECONDS = scaled(15, 60)
# (name, latency, jitter, black hole, seconds): the black hole outlasts the request bound.
PHASES: tuple[tuple[str, float, float, bool, int], ...] = (
    ("baseline", 0.0, 0.0, False, PHASE_SECONDS),
    ("slow", 0.2, 0.2, False, PHASE_SECONDS),
    ("very_slow", 0.4, 0.4, False, PHASE_SECONDS),
    ("black_hole", 0.0, 0.0, True, 45),
    ("recovery", 0.0, 0.0, False, PHASE_SECONDS),
)
# What bounds one request in AWS: the query_api function's timeout (infra: 15 s; API Gateway's
# own is 29 s). Locally nothing cuts a request short (gunicorn's gthread workers keep
# heartbeating while a request waits), so the bound must come from the code's own timeouts.
REQUEST_BOUND_SECONDS = 15.0
CLIENT_TIMEOUT_SECONDS = 90.0


class _Load:
    """``USERS`` threads sending reads and queries without think time, each on its own
    keep-alive connection; every answer's phase, status and latency recorded."""

    def __init__(self, base_url: str, api_key: str, keys: list[str]) -> None:
        self._host, _, port = base_url.removeprefix("http://").partition(":")
        self._port = int(port)
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self._keys = keys
        self.phase = "baseline"
        self.results: list[tuple[str, str, float, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._user, args=(n,), daemon=True) for n in range(USERS)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT_SECONDS + 5)

    def _user(self, number: int) -> None:
        connection: http.client.HTTPConnection | None = None
        count = 0
        while not self._stop.is_set():
            count += 1
            if count % 3 == 0:
                path = "/v1/documents?customer=acme&limit=10"
            else:
                key = self._keys[(number * 7 + count) % len(self._keys)]
                path = f"/v1/documents/{quote(key, safe='/')}"
            phase = self.phase
            began = time.monotonic()
            source = None
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(
                        self._host, self._port, timeout=CLIENT_TIMEOUT_SECONDS
                    )
                connection.request("GET", path, headers=self._auth)
                response = connection.getresponse()
                body = response.read()
                status = str(response.status)
                if response.status == 200 and "?" not in path:
                    source = json.loads(body).get("source")
            except (OSError, http.client.HTTPException) as error:
                status = f"connection error ({type(error).__name__})"
                if connection is not None:
                    connection.close()
                connection = None
            with self._lock:
                self.results.append((phase, status, time.monotonic() - began, source))


def test_the_api_stays_bounded_and_answers_while_dynamodb_is_slow(
    stack: LocalStack, chaos_report: ChaosReport, tmp_path: Path
) -> None:
    experiment = chaos_report.add(
        Experiment(
            name="4. The API under load while DynamoDB is slow, then unreachable",
            hypothesis=(
                "With DynamoDB slow (under the read path's 2 s timeout), the API answers slower "
                "but answers: no 5xx. With DynamoDB accepting connections and never answering, "
                f"every request still ends within query_api's {REQUEST_BOUND_SECONDS:.0f} s "
                "timeout, with 503 at worst (no 502/504, no hung connection); document reads "
                "are answered from S3 once the breaker opens; afterwards everything is back to "
                "normal."
            ),
            fault=(
                f"`cachesync api serve` ({WORKERS} gunicorn workers) reaching DynamoDB Local "
                f"through a fault proxy; {USERS} users without think time (2 document reads, "
                f"1 query in 3); phases: "
                + ", ".join(
                    f"{name}"
                    + (
                        f" ({latency} s + up to {jitter} s)"
                        if latency
                        else (" (black hole)" if hole else "")
                    )
                    + f" {seconds} s"
                    for name, latency, jitter, hole, seconds in PHASES
                )
                + ". Requests are counted in the phase they started in."
            ),
        )
    )
    started = time.monotonic()
    provisioned = stack.provisioned
    bucket, table = provisioned.bucket_name, provisioned.table_name
    s3, dynamodb = stack.client("s3"), stack.client("dynamodb")
    # Given indexed documents and an API key
    indexer = ObjectIndexer(DynamoDBIndexStore(dynamodb, table), S3ObjectStore(s3))
    documents = recent_documents(DOCUMENTS, prefix="changes/API")
    for key, body in documents:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        indexer.index_object(bucket, key)
    api_keys_table = stack.resources.api_keys_table_name
    keys = create_demo_keys(DynamoDBApiKeyStore(dynamodb, api_keys_table), datetime.now(UTC))
    with FaultProxy.for_url(stack.dynamodb_endpoint, seed=7) as proxy:
        # And the API server reaching DynamoDB through the proxy (rate limits on, never refusing)
        environment = api_server_environment(
            {**stack.environment(), "AWS_ENDPOINT_URL_DYNAMODB": proxy.endpoint_url},
            api_keys_table_name=api_keys_table,
            token_secret=draw_token_secret(),
        )
        environment |= {
            "CACHESYNC_API_ACCESS_LOG": str(tmp_path / "access.jsonl"),
            "CACHESYNC_API_RATE_LIMIT_PER_MINUTE": "60000",
            "CACHESYNC_API_RATE_LIMIT_BURST": "1000",
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        }
        server = LocalApiServer(environment, log_path=tmp_path / "api.log", workers=WORKERS)
        with server:
            server.wait_until_ready()
            load = _Load(server.base_url, keys.full, [key for key, _ in documents])
            # When the load runs through each phase of DynamoDB's trouble
            load.start()
            try:
                for name, latency, jitter, hole, seconds in PHASES:
                    proxy.clear()
                    proxy.set_latency(latency, jitter)
                    proxy.set_black_hole(hole)
                    load.phase = name
                    time.sleep(seconds)
                proxy.clear()
            finally:
                load.stop()
            log_tail = (tmp_path / "api.log").read_text(errors="replace")[-3000:]
    drift, totals = verify_drift(dynamodb, s3, table=table, bucket=bucket)
    phases = _phase_figures(load.results)
    worker_timeouts = log_tail.count("WORKER TIMEOUT")
    experiment.drift = drift
    experiment.seconds = time.monotonic() - started
    experiment.figures = {
        "phases": phases,
        "proxy": {
            "black_holed_chunks": proxy.stats.black_holed_chunks,
            "delayed_chunks": proxy.stats.delayed_chunks,
            "connections": proxy.stats.connections,
        },
        "gunicorn_worker_timeouts_in_log_tail": worker_timeouts,
        "verify": totals,
    }
    five_xx = {name: figures["5xx"] for name, figures in phases.items()}
    unanswered = {name: figures["connection_errors"] for name, figures in phases.items()}
    slowest = max(figures["max_ms"] for figures in phases.values()) / 1000
    recovery, outage = phases["recovery"], phases["black_hole"]
    healthy_phases = ("baseline", "slow", "recovery")
    outage_reads_ok = outage["read_sources"].get("s3", 0) > 0
    other_5xx = {
        name: sum(
            n
            for status, n in figures["statuses"].items()
            if status.startswith("5") and status != "503"
        )
        for name, figures in phases.items()
    }
    experiment.confirmed = (
        slowest <= REQUEST_BOUND_SECONDS
        and sum(five_xx[n] + unanswered[n] for n in healthy_phases) == 0
        and outage_reads_ok
        and not any(other_5xx.values())
        and five_xx["very_slow"] == 0
        and recovery["2xx_share"] >= 0.99
        and not any(drift.values())
    )
    experiment.outcome = (
        "; ".join(
            f"{name}: {figures['requests']} requests, p50 {figures['p50_ms']:.0f} ms, p99 "
            f"{figures['p99_ms']:.0f} ms, max {figures['max_ms']:.0f} ms, statuses "
            f"{figures['statuses']}, reads by source {figures['read_sources']}"
            for name, figures in phases.items()
        )
        + f". Slowest request {slowest:.1f} s (bound {REQUEST_BOUND_SECONDS:.0f} s)."
        + (
            ""
            if outage_reads_ok
            else " Refuted: no document read was answered from S3 during the outage: the API "
            "authenticates each key against DynamoDB once its 5 s key cache expires, and each "
            "worker's breaker needs 5 failed reads of about 4 s to open, so requests answer "
            "503 (fast) before the breaker can help."
        )
    )
    # Then no 5xx while DynamoDB answers, no 5xx but 503 at all, every request ended within
    # the bound and got an answer, and the API recovered
    for name in healthy_phases:
        assert five_xx[name] == 0, (name, phases[name]["statuses"])
    for name in phases:
        assert unanswered[name] == 0, (name, phases[name]["statuses"])
    assert not any(other_5xx.values()), other_5xx
    assert slowest <= REQUEST_BOUND_SECONDS, phases
    assert recovery["2xx_share"] >= 0.99, recovery
    assert not any(drift.values()), drift


def _prefix_counter(statuses: Counter[str]) -> Callable[[str], int]:
    def count(prefix: str) -> int:
        return sum(n for status, n in statuses.items() if status.startswith(prefix))

    return count


def _phase_figures(results: list[tuple[str, str, float, str | None]]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for name, *_ in PHASES:
        rows = [row for row in results if row[0] == name]
        statuses = Counter(status for _, status, _, _ in rows)
        count = _prefix_counter(statuses)
        figures[name] = {
            "requests": len(rows),
            "statuses": dict(statuses),
            "2xx_share": round(count("2") / len(rows), 3) if rows else 0.0,
            "5xx": count("5"),
            "connection_errors": count("connection"),
            "read_sources": dict(Counter(source for *_, source in rows if source)),
            **latency_figures([seconds for _, _, seconds, _ in rows]),
        }
    return figures
