"""Experiment 2: S3 latency spikes, then an index outage: the fallback reader's circuit breaker."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import Any

from cachesync.backfill import ObjectIndexer
from cachesync.circuit_breaker import CircuitState
from cachesync.fallback_reader import FallbackReader, ReadResult
from cachesync.local import LocalStack
from cachesync.local.dynamodb_local import local_client
from cachesync.local.pipeline import build_event_pump
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from tests.chaos.harness import counting_retries, latency_figures, recent_documents, verify_drift
from tests.chaos.report import ChaosReport, Experiment
from tests.support.fault_proxy import DYNAMODB_INTERNAL_ERROR, FaultProxy, HttpErrorToxic

HOT = 30
COLD_PER_PHASE = 10
DOCUMENTS = HOT + 3 * COLD_PER_PHASE
COLD_EVERY = 3  # in each phase, one read in three is of a key not indexed yet
S3_LATENCY, S3_JITTER = 0.8, 0.4
FAILURE_THRESHOLD = 5  # the default (settings.breaker_failure_threshold)
COOL_DOWN_SECONDS = 3.0  # the default is 30 s: shortened so that the experiment lasts seconds


def test_reads_keep_answering_through_s3_spikes_and_the_breaker_guards_the_index(
    stack: LocalStack, chaos_report: ChaosReport
) -> None:
    experiment = chaos_report.add(
        Experiment(
            name="2. S3 latency spikes, then an index outage (circuit breaker)",
            hypothesis=(
                "During S3 latency spikes every read still answers: index hits at index speed, "
                "misses slower by the spike; the breaker (it guards the index, as ARCHITECTURE "
                "and circuit_breaker.py say) stays closed. When the index fails, it opens after "
                f"{FAILURE_THRESHOLD} consecutive failures, reads go to S3 without touching the "
                "index, and after the cool-down one probe closes it again."
            ),
            fault=(
                f"Fault proxies in front of moto (S3) and DynamoDB Local. Phase spike: S3 "
                f"latency {S3_LATENCY} s + up to {S3_JITTER} s jitter. Phase outage: spike kept "
                f"and every DynamoDB request answered 500 InternalServerError. Phase heal: "
                f"faults cleared. Reader: threshold {FAILURE_THRESHOLD}, cool-down "
                f"{COOL_DOWN_SECONDS:.0f} s (30 s by default)."
            ),
        )
    )
    started = time.monotonic()
    provisioned = stack.provisioned
    bucket, table = provisioned.bucket_name, provisioned.table_name
    s3, dynamodb = stack.client("s3"), stack.client("dynamodb")
    documents = dict(recent_documents(DOCUMENTS, prefix="changes/BREAKER"))
    # Given documents in S3: some indexed (hot), the others not, a set of those per phase (a
    # read of a cold key goes to S3, then backfills it: each phase needs cold keys of its own)
    direct_index = DynamoDBIndexStore(dynamodb, table)
    indexer = ObjectIndexer(direct_index, S3ObjectStore(s3))
    keys = list(documents)
    hot = keys[:HOT]
    cold_sets = {
        phase: keys[HOT + n * COLD_PER_PHASE : HOT + (n + 1) * COLD_PER_PHASE]
        for n, phase in enumerate(("baseline", "s3_spike", "index_outage"))
    }
    for key, body in documents.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        if key in hot:
            indexer.index_object(bucket, key)
    with (
        FaultProxy.for_url(stack.moto_endpoint, seed=2) as s3_proxy,
        FaultProxy.for_url(stack.dynamodb_endpoint, seed=3) as dynamodb_proxy,
        counting_retries() as retries,
    ):
        # And a fallback reader reaching both through the fault proxies
        reader = FallbackReader(
            DynamoDBIndexStore(local_client("dynamodb", dynamodb_proxy.endpoint_url), table),
            S3ObjectStore(local_client("s3", s3_proxy.endpoint_url)),
            bucket=bucket,
            breaker_failure_threshold=FAILURE_THRESHOLD,
            breaker_cool_down=timedelta(seconds=COOL_DOWN_SECONDS),
        )
        phases: dict[str, dict[str, Any]] = {}
        states: list[tuple[str, float]] = []

        def read_phase(name: str, count: int) -> None:
            seconds: dict[str, list[float]] = {"hot": [], "cold": []}
            sources: Counter[str] = Counter()
            errors = 0
            phase_started = time.monotonic()
            cold = iter(cold_sets.get(name, []))
            for number in range(count):
                key = next(cold, None) if number % COLD_EVERY == 0 else None
                kind = "hot" if key is None else "cold"
                key = key or hot[number % len(hot)]
                began = time.monotonic()
                try:
                    result: ReadResult = reader.get_document(key)
                except Exception:  # noqa: BLE001 - any failure of a read is what we count
                    errors += 1
                else:
                    label = result.source.value
                    if result.miss_reason is not None:
                        label += f"/{result.miss_reason.value}"
                    sources[label] += 1
                    assert result.body == documents[key].decode()
                seconds[kind].append(time.monotonic() - began)
                state = reader.breaker_state.value
                if not states or states[-1][0] != state:
                    states.append((state, time.monotonic()))
            every = seconds["hot"] + seconds["cold"]
            phases[name] = {
                "reads": len(every),
                "errors": errors,
                "sources": dict(sources),
                **latency_figures(every),
                "index_hits_p50_ms": latency_figures(seconds["hot"])["p50_ms"],
                "s3_reads_p50_ms": latency_figures(seconds["cold"])["p50_ms"],
                "breaker_after": reader.breaker_state.value,
                "seconds": round(time.monotonic() - phase_started, 1),
            }

        # When reads run at rest, during an S3 latency spike, during an index outage, and after
        read_phase("baseline", COLD_EVERY * COLD_PER_PHASE)
        s3_proxy.set_latency(S3_LATENCY, S3_JITTER)
        read_phase("s3_spike", COLD_EVERY * COLD_PER_PHASE)
        state_after_spike = reader.breaker_state
        dynamodb_proxy.set_http_errors(HttpErrorToxic(DYNAMODB_INTERNAL_ERROR, 1.0))
        outage_started = time.monotonic()
        read_phase("index_outage", 2 * FAILURE_THRESHOLD + 5)
        index_requests_in_outage = dynamodb_proxy.stats.requests
        state_in_outage = reader.breaker_state
        dynamodb_proxy.clear()
        s3_proxy.clear()
        healed_at = time.monotonic()
        # Reads every 0.2 s until the breaker closes (or three cool-downs pass)
        seconds_to_close = None
        deadline = healed_at + 3 * COOL_DOWN_SECONDS
        while time.monotonic() < deadline:
            read_phase("recovery", 1)
            if reader.breaker_state is CircuitState.CLOSED:
                seconds_to_close = time.monotonic() - healed_at
                break
            time.sleep(0.2)
        read_phase("after", HOT)
        injected = dict(dynamodb_proxy.stats.injected)
        delayed = s3_proxy.stats.delayed_chunks
    # The documents' S3 events (queued all along) are applied at last: the keys read from S3
    # during the outage were not backfilled (by design), the events index them.
    events = build_event_pump(stack, wait_seconds=0).drain(timeout_seconds=120)
    drift, totals = verify_drift(dynamodb, s3, table=table, bucket=bucket)
    experiment.drift = drift
    experiment.seconds = time.monotonic() - started
    outage = phases["index_outage"]
    outage_sources: dict[str, int] = outage["sources"]
    experiment.figures = {
        "phases": phases,
        "breaker_states_seen": [state for state, _ in states],
        "dynamodb_errors_injected": injected,
        "index_requests_during_outage": index_requests_in_outage,
        "s3_chunks_delayed": delayed,
        "retries_by_retry_policy": retries.retries,
        "seconds_outage_to_open": next(
            (round(at - outage_started, 1) for state, at in states if state == "open"), None
        ),
        "seconds_heal_to_closed": round(seconds_to_close, 1) if seconds_to_close else None,
        "events_applied_at_the_end": events.succeeded,
        "verify": totals,
    }
    errors = sum(int(phase["errors"]) for phase in phases.values())
    breaker_open_reads = outage_sources.get("s3/breaker_open", 0)
    experiment.confirmed = (
        errors == 0
        and state_after_spike is CircuitState.CLOSED
        and state_in_outage is CircuitState.OPEN
        and breaker_open_reads > 0
        and seconds_to_close is not None
        and not any(drift.values())
    )
    experiment.outcome = (
        f"{errors} failed reads in {sum(int(p['reads']) for p in phases.values())}. "
        f"S3 spike: index hits p50 {phases['s3_spike']['index_hits_p50_ms']} ms, S3 reads p50 "
        f"{phases['s3_spike']['s3_reads_p50_ms']} ms, p99 {phases['s3_spike']['p99_ms']} ms, "
        f"breaker {state_after_spike.value}. Index "
        f"outage: breaker {state_in_outage.value} after {FAILURE_THRESHOLD} index errors, "
        f"{breaker_open_reads} reads answered from S3 without asking the index. Healed: closed "
        f"{experiment.figures['seconds_heal_to_closed']} s later (cool-down "
        f"{COOL_DOWN_SECONDS:.0f} s, one probe). States: "
        f"{' -> '.join(state for state, _ in states)}."
    )
    # Then no read failed, the spike left the breaker closed, the outage opened it, and it closed
    assert errors == 0
    assert state_after_spike is CircuitState.CLOSED
    assert state_in_outage is CircuitState.OPEN
    assert breaker_open_reads > 0
    assert seconds_to_close is not None
    assert [state for state, _ in states][:2] == ["closed", "open"]
    assert not any(drift.values()), drift
