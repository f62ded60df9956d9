"""The fallback reader as the entry points build it, with an index that accepts connections and
never answers (a fault proxy's black hole in front of DynamoDB Local): each read ends within its
bounded index attempts, answered from S3, and the breaker opens.

Found by the chaos experiment on the API (docs/CHAOS.md, experiment 4): with the SDK's 10 s read
timeout tried five times, one index read outlasted the functions' timeouts, so the breaker never
counted a failure and never opened."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from cachesync.circuit_breaker import CircuitState
from cachesync.fallback_reader import MissReason, ReadSource
from cachesync.local import LocalStack
from cachesync.local.dynamodb_local import (
    LOCAL_ACCESS_KEY_ID,
    LOCAL_REGION,
    LOCAL_SECRET_ACCESS_KEY,
)
from cachesync.retry_policies import RetryPolicy
from cachesync.runtime import READ_PATH_INDEX_ATTEMPTS, READ_PATH_TIMEOUT_SECONDS, build_reader
from cachesync.settings import FallbackReadSettings
from tests.support.fault_proxy import FaultProxy

READ_TIMEOUT = 0.5
ATTEMPTS = 2
THRESHOLD = 2


@pytest.fixture
def black_holed_dynamodb(local_stack: LocalStack) -> Iterator[FaultProxy]:
    with FaultProxy.for_url(local_stack.dynamodb_endpoint) as proxy:
        proxy.set_black_hole(True)
        yield proxy


def test_reads_of_an_unresponsive_index_end_in_bounded_time_and_open_the_breaker(
    local_stack: LocalStack, black_holed_dynamodb: FaultProxy
) -> None:
    # Given a document in S3 and a reader built by the runtime, its index black-holed
    s3 = local_stack.client("s3")
    bucket = f"docs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    key = "changes/CHG-T0001.json"
    body = b'{"object_type": "change", "change_id": "CHG-T0001", "customers": ["acme"]}'
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    settings = FallbackReadSettings(
        table_name=local_stack.provisioned.table_name,
        bucket_name=bucket,
        breaker_failure_threshold=THRESHOLD,
    )
    credentials = {
        "region_name": LOCAL_REGION,
        "aws_access_key_id": LOCAL_ACCESS_KEY_ID,
        "aws_secret_access_key": LOCAL_SECRET_ACCESS_KEY,
    }
    reader = build_reader(
        settings,
        client_options={
            "dynamodb": {"endpoint_url": black_holed_dynamodb.endpoint_url, **credentials},
            "s3": {"endpoint_url": local_stack.moto_endpoint, **credentials},
        },
        # Shorter than the defaults (READ_PATH_*), for a quick test; the bound is the same.
        index_read_timeout=READ_TIMEOUT,
        index_read_attempts=ATTEMPTS,
    )
    # When it reads the document as often as the breaker's threshold, then once more
    durations, reasons = [], []
    for _ in range(THRESHOLD + 1):
        started = time.monotonic()
        result = reader.get_document(key)
        durations.append(time.monotonic() - started)
        assert result.source is ReadSource.S3
        assert result.body == body.decode()
        reasons.append(result.miss_reason)
    # Then each read ended after its bounded attempts (not 5 x 10 s), from S3
    bound = ATTEMPTS * READ_TIMEOUT + 1.5  # backoff and S3's answer
    assert max(durations[:THRESHOLD]) < bound, durations
    assert reasons[:THRESHOLD] == [MissReason.INDEX_ERROR] * THRESHOLD
    # And the breaker opened: the next read did not wait for the index at all
    assert reader.breaker_state is CircuitState.OPEN
    assert reasons[THRESHOLD] is MissReason.BREAKER_OPEN
    assert durations[THRESHOLD] < READ_TIMEOUT


def test_the_default_read_path_bound_fits_the_functions_timeouts() -> None:
    # Given the read path's defaults and the retry policy's longest waits between attempts
    waits = sum(
        min(RetryPolicy().max_wait_seconds, RetryPolicy().initial_wait_seconds * 2**attempt)
        for attempt in range(READ_PATH_INDEX_ATTEMPTS - 1)
    )
    # When an unresponsive index holds every attempt until its timeout
    worst = READ_PATH_INDEX_ATTEMPTS * READ_PATH_TIMEOUT_SECONDS + waits
    # Then one index read ends well within fallback_read's 10 s timeout (infra's default),
    # leaving time for S3
    assert worst <= 10 / 2
