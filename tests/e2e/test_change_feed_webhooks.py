"""Issue 12 end to end on the stack ``make run`` starts (``cachesync local up`` in a fresh
folder): a document put to S3 is indexed from its S3 event, the index's stream reaches the
``change_feed`` function, its delivery message the ``webhook_delivery`` function, and a real
receiver gets a signed delivery that verifies with the ``standardwebhooks`` library, within a
bounded time; the document is then served by the API.

Two receivers are subscribed: ``cachesync webhooks listen`` (the README's demo, subscribed with
``cachesync webhooks add``) and an in-process one that keeps each request's raw bytes
(subscribed through the API with the admin key), which the test verifies itself.
"""

from __future__ import annotations

import json
import queue
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cachesync.local.dynamodb_local import free_port
from cachesync.local.env_file import LOCAL_ENV_FILE, read_env_file
from tests.e2e.make_run import CLI, RunningStack, clean_environment
from tests.support.s3_events import change_document
from tests.support.webhook_receiver import ScriptedReceiver, scripted_receiver

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Only a few demo documents: this module is about one document's way through.
DEMO_COUNT = 5
CUSTOMER = "hooks-e2e"
# Issue 12 asks for "within a second"; the assertion leaves room for a loaded CI machine.
LATENCY_BOUND_SECONDS = 3.0
# The local change feed rereads subscriptions every second (LOCAL_WEBHOOK_ENVIRONMENT).
SUBSCRIPTIONS_SEEN_SECONDS = 1.5
LISTEN_READY_SECONDS = 20.0
# Locally a failed attempt waits a jittered [0, 2] s (LOCAL_WEBHOOK_ENVIRONMENT), then the pump
# receives the message again.
RETRY_BOUND_SECONDS = 10.0


@dataclass(frozen=True)
class Listener:
    """``cachesync webhooks listen`` running, and the lines it printed (with arrival times)."""

    url: str
    lines: queue.Queue[tuple[float, str]]


def _values(stack: RunningStack) -> dict[str, str]:
    return read_env_file(stack.folder / LOCAL_ENV_FILE)


def _api(
    stack: RunningStack, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """Call the stack's API with the admin key; the status and the JSON answer."""
    values = _values(stack)
    request = urllib.request.Request(  # noqa: S310 (the local stack's loopback URL)
        f"{values['CACHESYNC_API_URL']}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {values['CACHESYNC_ADMIN_API_KEY']}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return response.status, json.loads(response.read() or b"null")


def _s3(stack: RunningStack) -> S3Client:
    """An S3 client on the stack's moto server."""
    values = _values(stack)
    return boto3.client(
        "s3",
        endpoint_url=values["AWS_ENDPOINT_URL_S3"],
        region_name=values["AWS_DEFAULT_REGION"],
        aws_access_key_id=values["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=values["AWS_SECRET_ACCESS_KEY"],
    )


def _cli(stack: RunningStack, *arguments: str) -> subprocess.CompletedProcess[str]:
    """A ``cachesync`` command in the stack's folder (it finds the stack's env file there)."""
    return subprocess.run(
        [CLI, *arguments],
        cwd=stack.folder,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _read_lines(process: subprocess.Popen[str], lines: queue.Queue[tuple[float, str]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put((time.monotonic(), line.rstrip("\n")))


@pytest.fixture(scope="module")
def listener(make_run_stack: RunningStack) -> Iterator[Listener]:
    """``cachesync webhooks add`` then ``cachesync webhooks listen``, as the README shows."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    added = _cli(make_run_stack, "webhooks", "add", "--url", url, "--customers", CUSTOMER, "--json")
    assert added.returncode == 0, added.stderr
    secret = json.loads(added.stdout)["secret"]
    lines: queue.Queue[tuple[float, str]] = queue.Queue()
    with subprocess.Popen(
        [CLI, "webhooks", "listen", "--port", str(port), "--secret", secret],
        cwd=make_run_stack.folder,
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as process:
        threading.Thread(target=_read_lines, args=(process, lines), daemon=True).start()
        try:
            _wait_listening(port)
            yield Listener(url=url, lines=lines)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + LISTEN_READY_SECONDS
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers (501: GET is not served): it listens
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"cachesync webhooks listen did not listen on {port}")


@pytest.fixture(scope="module")
def raw_receiver(make_run_stack: RunningStack) -> Iterator[tuple[ScriptedReceiver, str]]:
    """A receiver keeping each request's bytes, subscribed through the API (admin key)."""
    with scripted_receiver([200]) as receiver:
        status, created = _api(
            make_run_stack,
            "POST",
            "/v1/webhooks",
            {
                "url": receiver.url,
                "event_types": ["document.created"],
                "filters": {"customers": [CUSTOMER]},
            },
        )
        assert status == 201, created
        yield receiver, created["secret"]


def _wait_for(receiver: ScriptedReceiver, count: int, timeout: float) -> float | None:
    """When ``receiver`` had ``count`` requests (monotonic), or None after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(receiver.received) >= count:
            return time.monotonic()
        time.sleep(0.005)
    return None


def test_a_document_put_to_s3_is_delivered_signed_and_served(
    make_run_stack: RunningStack,
    listener: Listener,
    raw_receiver: tuple[ScriptedReceiver, str],
) -> None:
    receiver, secret = raw_receiver
    s3 = _s3(make_run_stack)
    bucket = _values(make_run_stack)["CACHESYNC_BUCKET_NAME"]
    key = f"changes/hooks/CHG-{uuid.uuid4().hex[:8]}.json"
    # Given both subscriptions seen by the change feed (it rereads them every second)
    time.sleep(SUBSCRIPTIONS_SEEN_SECONDS)
    already = len(receiver.received)
    # When a document for the subscribed customer is put to S3
    started = time.monotonic()
    s3.put_object(Bucket=bucket, Key=key, Body=change_document("HOOK-1", customers=[CUSTOMER]))
    # Then the raw receiver gets one delivery within the bound
    arrived = _wait_for(receiver, already + 1, LATENCY_BOUND_SECONDS * 3)
    assert arrived is not None, "no delivery reached the receiver"
    latency = arrived - started
    print(f"\nS3 put -> signed webhook delivery at the receiver: {latency * 1000:.0f} ms")
    assert latency < LATENCY_BOUND_SECONDS
    delivery = receiver.received[already]
    # And it verifies with the standardwebhooks library, and names the document
    payload = Webhook(secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "document.created"
    assert payload["data"]["key"] == key
    assert payload["data"]["document"]["customers"] == [CUSTOMER]
    assert delivery.headers["webhook-id"]
    # And an altered body does not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(delivery.body.replace(b"HOOK-1", b"HOOK-2"), delivery.headers)
    # And `cachesync webhooks listen` verified and printed its own delivery of the document
    # (one message, and webhook-id, per event and subscription)
    line = _listener_line(listener, key, LATENCY_BOUND_SECONDS * 3)
    assert "document.created" in line
    assert delivery.headers["webhook-id"] not in line
    # And the document is served by the API
    status, document = _api(
        make_run_stack, "GET", f"/v1/documents/{urllib.parse.quote(key, safe='/')}"
    )
    assert status == 200
    assert document["customers"] == [CUSTOMER]


def _listener_line(listener: Listener, key: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, line = listener.lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if key in line:
            return line
    pytest.fail(f"cachesync webhooks listen printed no delivery of {key}")


def test_a_failed_delivery_is_retried_within_seconds_with_the_same_webhook_id(
    make_run_stack: RunningStack,
) -> None:
    # Given a receiver that fails its first request, subscribed to its own customer
    customer = f"retry-{uuid.uuid4().hex[:6]}"
    with scripted_receiver([500, 200]) as receiver:
        status, created = _api(
            make_run_stack,
            "POST",
            "/v1/webhooks",
            {"url": receiver.url, "filters": {"customers": [customer]}},
        )
        assert status == 201, created
        subscription_id = created["subscription"]["id"]
        time.sleep(SUBSCRIPTIONS_SEEN_SECONDS)
        # When a document of that customer is put to S3
        _s3(make_run_stack).put_object(
            Bucket=_values(make_run_stack)["CACHESYNC_BUCKET_NAME"],
            Key=f"changes/retry/{customer}.json",
            Body=change_document("RETRY-1", customers=[customer]),
        )
        # Then the delivery is retried after the local backoff (seconds, not AWS's minutes)
        assert _wait_for(receiver, 2, RETRY_BOUND_SECONDS) is not None, "no retry arrived"
    first, second = receiver.received[:2]
    # And both attempts carry one webhook-id (receivers deduplicate on it), both signed
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    secret = created["secret"]
    assert Webhook(secret).verify(second.body, second.headers)["type"] == "document.created"
    # And the subscription's recent deliveries show the failed attempt and the successful one
    status, deliveries = _api(make_run_stack, "GET", f"/v1/webhooks/{subscription_id}/deliveries")
    assert status == 200
    attempts = sorted((item["attempt"], item["status_code"]) for item in deliveries["items"])
    assert attempts == [(1, 500), (2, 200)]
