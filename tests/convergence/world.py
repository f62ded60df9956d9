"""The world histories run in: one local stack (DynamoDB Local + moto server) per process.

Two buckets share one index table: ``soak-versioned-<run>`` (versioning on) and
``soak-plain-<run>``. Each
history gets its own key prefix (and its own customer codes), so no table or bucket is reset
between histories. Per bucket the world holds the real entry points as Lambda would run them
(``s3_object_created``, ``s3_object_removed``, ``query_api``, loaded with settings naming the
bucket) and the use cases the executor calls directly (the write-through saga, the fallback
reader, the backfill, the reconciler) on stores whose clients this world made.

Every boto3 client, including those the handlers make at their "cold start", carries two
botocore hooks (``cachesync.aws_clients.client`` is wrapped while the world is open):

* :class:`Recorder` records each successful S3 PutObject/DeleteObject into the current
  history's :class:`~tests.convergence.model.S3Model`;
* :class:`FaultInjector` answers armed requests with an AWS error (``tests.support.faults``) or
  drops the connection (botocore's ``ConnectionClosedError``, as a reset socket raises).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import ConnectionClosedError

from cachesync import aws_clients
from cachesync.api.keys import MAX_RATE_BURST, MAX_RATE_PER_MINUTE, Scope, new_api_key
from cachesync.backfill import Backfill, ObjectIndexer
from cachesync.clock import utc_now
from cachesync.fallback_reader import FallbackReader
from cachesync.local import LocalStack
from cachesync.local.lambda_functions import LambdaHandler, load_handler
from cachesync.reconcile import Reconciler
from cachesync.retry_policies import RetryPolicy
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_index import DynamoDBIndexStore
from cachesync.stores.s3_objects import S3ObjectStore
from cachesync.write_through import DocumentWriter
from tests.convergence.history import Fault
from tests.convergence.model import S3Model
from tests.support.faults import error_response, service_of

VERSIONED_BUCKET: Final = "soak-versioned"
PLAIN_BUCKET: Final = "soak-plain"
# The saga, reader and backfill the executor calls run on stores with the product's retry logic
# but millisecond waits: the logic under test is the same, a history takes less wall time. The
# handlers and the API keep the product's default policy (real waits).
FAST_RETRIES: Final = RetryPolicy(attempts=3, initial_wait_seconds=0.002, max_wait_seconds=0.01)
# What "later" means at quiescence: a crashed write-through's marker is older than the reader's
# and the reconciler's threshold (two minutes) by then.
LATER: Final = timedelta(hours=1)

_AWS_ERRORS: Final = {
    "dynamodb_throttle": (400, "ThrottlingException"),
    "dynamodb_5xx": (500, "InternalServerError"),
    "s3_error": (503, "SlowDown"),
}
_S3_WRITES: Final = frozenset({"PutObject", "DeleteObject"})


class ProcessCrash(BaseException):
    """The process running a write-through dies here (nothing in cachesync may catch it)."""


class Recorder:
    """Records every successful S3 PutObject/DeleteObject into the current model."""

    def __init__(self) -> None:
        self.model: S3Model | None = None

    def remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["soak_params"] = dict(params)

    def done(
        self,
        http_response: Any,
        parsed: dict[str, Any],
        model: Any,
        context: dict[str, Any],
        **_: Any,
    ) -> None:
        params = context.get("soak_params")
        status = getattr(http_response, "status_code", 0)
        if self.model is None or params is None or not 200 <= status < 300:
            return
        bucket, key = params["Bucket"], params["Key"]
        if not self.model.owns(bucket, key):
            return
        at = datetime.now(UTC)
        if model.name == "PutObject":
            body = params.get("Body", b"")
            if isinstance(body, str):
                body = body.encode()
            elif not isinstance(body, bytes | bytearray):
                body.seek(0)
                body = body.read()
            self.model.record_put(key, parsed["ETag"], parsed.get("VersionId"), bytes(body), at)
        else:
            self.model.record_delete(
                key,
                requested_version=params.get("VersionId"),
                version_id=parsed.get("VersionId"),
                delete_marker=bool(parsed.get("DeleteMarker")),
                at=at,
            )


@dataclass
class _Armed:
    fault: Fault
    skip: int
    remaining: int


class FaultInjector:
    """Fails armed requests; counts what it injected."""

    def __init__(self) -> None:
        self._armed: _Armed | None = None
        self.injected = 0

    @contextmanager
    def armed(self, fault: Fault | None) -> Iterator[None]:
        """Inject ``fault`` (an AWS-error kind) into the requests made inside the block."""
        if fault is None or fault.kind.startswith("crash"):
            yield
            return
        self._armed = _Armed(fault, fault.skip, fault.times)
        try:
            yield
        finally:
            self._armed = None

    def __call__(self, request: Any, event_name: str, **_: Any) -> Any:
        armed = self._armed
        if armed is None or armed.remaining <= 0:
            return None
        service = service_of(event_name)
        kind = armed.fault.kind
        if kind == "s3_error":
            if service != "s3":
                return None
        elif service != "dynamodb":
            return None
        if armed.skip > 0:
            armed.skip -= 1
            return None
        armed.remaining -= 1
        self.injected += 1
        if kind == "dynamodb_dropped":
            raise ConnectionClosedError(endpoint_url=request.url)
        status, code = _AWS_ERRORS[kind]
        return error_response(request, event_name, status, code)


class CrashingIndex:
    """The saga's index store, dying right after ``begin_pending`` when told to."""

    def __init__(self, inner: DynamoDBIndexStore) -> None:
        self._inner = inner
        self.crash_at: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def begin_pending(self, bucket: str, key: str, operation: str) -> Any:
        pending = self._inner.begin_pending(bucket, key, operation)
        if self.crash_at == "crash_after_intent":
            raise ProcessCrash("after the intent")
        return pending


class CrashingObjects:
    """The saga's object store, dying right after S3 wrote (or after the head) when told to."""

    def __init__(self, inner: S3ObjectStore) -> None:
        self._inner = inner
        self.crash_at: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put(self, bucket: str, key: str, body: bytes) -> Any:
        result = self._inner.put(bucket, key, body)
        if self.crash_at == "crash_after_s3":
            raise ProcessCrash("after the S3 put")
        return result

    def delete(self, bucket: str, key: str) -> Any:
        result = self._inner.delete(bucket, key)
        if self.crash_at in ("crash_after_s3", "crash_before_commit"):
            raise ProcessCrash("after the S3 delete")
        return result

    def head(self, bucket: str, key: str, *, if_match: str | None = None) -> Any:
        result = self._inner.head(bucket, key, if_match=if_match)
        if self.crash_at == "crash_before_commit":
            raise ProcessCrash("before the commit")
        return result


@dataclass
class BucketRig:
    """One bucket's entry points and use cases."""

    bucket: str
    versioned: bool
    created: LambdaHandler
    removed: LambdaHandler
    api: LambdaHandler
    index: DynamoDBIndexStore
    objects: S3ObjectStore
    saga_index: CrashingIndex
    saga_objects: CrashingObjects
    writer: DocumentWriter

    def reader(self) -> FallbackReader:
        """A fresh reader (its circuit breaker starts closed in every history)."""
        return FallbackReader(self.index, self.objects, bucket=self.bucket)

    def backfill(self) -> Backfill:
        return Backfill(ObjectIndexer(self.index, self.objects), self.objects, bucket=self.bucket)

    def reconciler(self) -> Reconciler:
        """The reconciler at quiescence: a crashed write-through's marker is old by then."""
        later = DynamoDBIndexStore(
            self.index._client,
            self.index.table_name,
            clock=lambda: utc_now() + LATER,
        )
        return Reconciler(
            later, self.objects, bucket=self.bucket, workers=2, clock=lambda: utc_now() + LATER
        )


class World:
    """The local stack, the hooks, and a :class:`BucketRig` per bucket."""

    def __init__(
        self,
        *,
        stack: LocalStack | None = None,
        handler_wrapper: Callable[[LambdaHandler], LambdaHandler] | None = None,
    ) -> None:
        """``stack``: a started local stack to use (and leave running); ``None``: start one.

        ``handler_wrapper`` wraps the event handlers (the checker's own test breaks them).
        """
        self.recorder = Recorder()
        self.faults = FaultInjector()
        self.run_id = uuid.uuid4().hex[:6]
        self._handler_wrapper = handler_wrapper
        self._owns_stack = stack is None
        self._stack = stack or LocalStack()
        self.buckets = {
            True: f"{VERSIONED_BUCKET}-{self.run_id}",
            False: f"{PLAIN_BUCKET}-{self.run_id}",
        }
        self._saved_environ: dict[str, str] | None = None
        self._original_client: Any = None
        self.rigs: dict[bool, BucketRig] = {}
        self.api_key = ""
        self.s3: Any = None

    def install_hooks(self, client: Any) -> Any:
        events = client.meta.events
        for operation in _S3_WRITES:
            events.register(f"before-parameter-build.s3.{operation}", self.recorder.remember)
            events.register(f"after-call.s3.{operation}", self.recorder.done)
        events.register("before-send", self.faults)
        return client

    def __enter__(self) -> World:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(self) -> None:
        original = aws_clients.client
        self._original_client = original

        def hooked(service: str, **options: Any) -> Any:
            return self.install_hooks(original(service, **options))  # type: ignore[call-overload]

        aws_clients.client = hooked  # type: ignore[assignment]
        self._saved_environ = dict(os.environ)
        if self._owns_stack:
            self._stack.start()
        s3 = self.s3 = self._stack.client("s3")
        s3.create_bucket(Bucket=self.buckets[True])
        s3.put_bucket_versioning(
            Bucket=self.buckets[True], VersioningConfiguration={"Status": "Enabled"}
        )
        s3.create_bucket(Bucket=self.buckets[False])
        resources = self._stack.resources
        created = new_api_key(
            "soak",
            ["*"],
            [Scope.READ, Scope.WRITE],
            datetime.now(UTC),
            rate_per_minute=MAX_RATE_PER_MINUTE,
            rate_burst=MAX_RATE_BURST,
        )
        DynamoDBApiKeyStore(self._stack.client("dynamodb"), resources.api_keys_table_name).create(
            created.record
        )
        self.api_key = created.key
        os.environ.update(
            {
                **self._stack.environment(),
                "CACHESYNC_API_KEYS_TABLE_NAME": resources.api_keys_table_name,
                "CACHESYNC_API_TOKEN_SECRET": "soak-token-secret-" + "s" * 40,
                # The query cache's staleness (at most this long, by design) is not the index's.
                "CACHESYNC_API_CACHE_TTL_SECONDS": "0",
                "CACHESYNC_RETENTION_DAYS": "3650",
                "POWERTOOLS_LOG_LEVEL": "CRITICAL",
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        os.environ.pop("CACHESYNC_API_TOKEN_SECRET_ID", None)
        for versioned, bucket in self.buckets.items():
            self.rigs[versioned] = self._rig(bucket, versioned)

    def _rig(self, bucket: str, versioned: bool) -> BucketRig:
        os.environ["CACHESYNC_BUCKET_NAME"] = bucket
        wrap = self._handler_wrapper or (lambda handler: handler)
        table = self._stack.provisioned.table_name
        dynamodb, s3 = self._stack.client("dynamodb"), self._stack.client("s3")
        index = DynamoDBIndexStore(dynamodb, table, retry_policy=FAST_RETRIES)
        objects = S3ObjectStore(s3, retry_policy=FAST_RETRIES)
        saga_index, saga_objects = CrashingIndex(index), CrashingObjects(objects)
        return BucketRig(
            bucket=bucket,
            versioned=versioned,
            created=wrap(load_handler("s3_object_created")),
            removed=wrap(load_handler("s3_object_removed")),
            api=load_handler("query_api"),
            index=index,
            objects=objects,
            saga_index=saga_index,
            saga_objects=saga_objects,
            writer=DocumentWriter(saga_index, saga_objects, bucket=bucket),  # type: ignore[arg-type]
        )

    def close(self) -> None:
        try:
            if self._owns_stack:
                self._stack.stop()
        finally:
            if self._original_client is not None:
                aws_clients.client = self._original_client
            if self._saved_environ is not None:
                os.environ.clear()
                os.environ.update(self._saved_environ)

    def prefix_for(self, seed: int) -> str:
        return f"h{seed}-{self.run_id}/"
