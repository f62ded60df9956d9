"""The chaos experiments' fault proxy (tests/support/fault_proxy.py) against a tiny local HTTP
server: each toxic does what it says, and boto3 reads the injected errors as AWS's own."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.fault_proxy import (
    DYNAMODB_THROTTLING,
    S3_SLOW_DOWN,
    FaultProxy,
    HttpErrorToxic,
)

BIG_BODY_BYTES = 100_000


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as boto3's pool uses it
    # Headers and body are two writes: without this, Nagle and delayed ACKs cost 40 ms each.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        body = b"x" * BIG_BODY_BYTES if self.path == "/big" else f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = b'{"echo": ' + str(length).encode() + b"}"
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    with FaultProxy(("127.0.0.1", server.server_address[1]), seed=1) as fault_proxy:
        yield fault_proxy
    server.shutdown()
    server.server_close()


def _get(proxy: FaultProxy, path: str, timeout: float = 5) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _post(
    connection: http.client.HTTPConnection, target: str, body: bytes = b"{}"
) -> tuple[int, bytes]:
    connection.request("POST", "/", body=body, headers={"X-Amz-Target": target})
    response = connection.getresponse()
    return response.status, response.read()


def test_without_toxics_requests_pass_through_and_are_counted(proxy: FaultProxy) -> None:
    # Given a proxy with no toxic
    # When two requests go through it
    status, body = _get(proxy, "/a")
    second = _get(proxy, "/b")
    # Then both get the server's answers, and the proxy counted them as forwarded
    assert (status, body) == (200, b"hello /a")
    assert second == (200, b"hello /b")
    assert proxy.stats.forwarded == 2
    assert proxy.stats.injected == {}


def test_latency_delays_each_answer_once(proxy: FaultProxy) -> None:
    # Given 0.3 s of latency with 0.1 s of jitter
    proxy.set_latency(0.3, jitter=0.1)
    # When a large answer (many chunks) is fetched
    started = time.monotonic()
    status, body = _get(proxy, "/big")
    elapsed = time.monotonic() - started
    # Then it arrives whole, delayed by the latency, not once per chunk
    assert (status, len(body)) == (200, BIG_BODY_BYTES)
    assert 0.3 <= elapsed < 0.9
    # And once cleared, answers are quick again
    proxy.clear()
    started = time.monotonic()
    _get(proxy, "/a")
    assert time.monotonic() - started < 0.2


def test_bandwidth_limits_the_answer_rate(proxy: FaultProxy) -> None:
    # Given answers limited to 250 KB/s
    proxy.set_bandwidth(250_000)
    # When 100 KB are fetched
    started = time.monotonic()
    status, body = _get(proxy, "/big")
    # Then they take at least 0.4 s
    assert (status, len(body)) == (200, BIG_BODY_BYTES)
    assert time.monotonic() - started >= 0.35


def test_http_errors_answer_only_the_chosen_operation_on_a_keep_alive_connection(
    proxy: FaultProxy,
) -> None:
    # Given every PutItem answered with DynamoDB's throttling error
    proxy.set_http_errors(HttpErrorToxic(DYNAMODB_THROTTLING, 1.0, frozenset({"PutItem"})))
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        # When a PutItem, then a GetItem, then a PutItem go over one connection
        put = _post(connection, "DynamoDB_20120810.PutItem", b'{"Item": {}}')
        get = _post(connection, "DynamoDB_20120810.GetItem", b'{"Key": {}}')
        put_again = _post(connection, "DynamoDB_20120810.PutItem")
    finally:
        connection.close()
    # Then the PutItems got the injected 400, the GetItem the server's answer
    assert put[0] == put_again[0] == 400
    assert b"ProvisionedThroughputExceededException" in put[1]
    assert get == (200, b'{"echo": 11}')
    assert proxy.stats.injected == {"ProvisionedThroughputExceededException": 2}
    assert proxy.stats.operations == {"PutItem": 2, "GetItem": 1}


def test_boto3_reads_the_injected_errors_as_aws_errors(proxy: FaultProxy) -> None:
    # Given DynamoDB's throttling error, then S3's SlowDown, on every request
    config = Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=2)
    session = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1"
    )
    dynamodb = session.client("dynamodb", endpoint_url=proxy.endpoint_url, config=config)
    s3 = session.client(
        "s3",
        endpoint_url=proxy.endpoint_url,
        config=config.merge(Config(s3={"addressing_style": "path"})),
    )
    proxy.set_http_errors(HttpErrorToxic(DYNAMODB_THROTTLING, 1.0))
    # When boto3 calls through the proxy
    with pytest.raises(ClientError) as throttled:
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}})
    proxy.set_http_errors(HttpErrorToxic(S3_SLOW_DOWN, 1.0, methods=frozenset({"GET"})))
    with pytest.raises(ClientError) as slowed:
        s3.get_object(Bucket="b", Key="k")
    # Then it raises the AWS error codes the retry policy knows
    assert throttled.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert slowed.value.response["Error"]["Code"] == "SlowDown"
    assert slowed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503


def test_a_fraction_injects_about_that_share(proxy: FaultProxy) -> None:
    # Given 30 % of requests answered with an error
    proxy.set_http_errors(HttpErrorToxic(DYNAMODB_THROTTLING, 0.3))
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    try:
        # When 200 requests go through
        statuses = [_post(connection, "DynamoDB_20120810.PutItem")[0] for _ in range(200)]
    finally:
        connection.close()
    # Then about 30 % were injected (seeded), and the proxy's count agrees
    injected = statuses.count(400)
    assert 35 <= injected <= 85
    assert proxy.stats.injected["ProvisionedThroughputExceededException"] == injected


def test_reset_closes_connections_with_an_error(proxy: FaultProxy) -> None:
    # Given the reset toxic
    proxy.set_reset(True)
    # When a request is sent
    # Then the client sees the connection reset, not an answer
    with pytest.raises((ConnectionError, http.client.RemoteDisconnected)):
        _get(proxy, "/a")
    assert proxy.stats.resets >= 1
    # And after clearing it, requests pass again
    proxy.clear()
    assert _get(proxy, "/a") == (200, b"hello /a")


def test_black_hole_accepts_but_never_answers(proxy: FaultProxy) -> None:
    # Given the black hole
    proxy.set_black_hole(True)
    # When a request is sent with a short timeout
    # Then the connection is accepted, and the client times out waiting
    with pytest.raises((TimeoutError, socket.timeout)):
        _get(proxy, "/a", timeout=0.5)
    assert proxy.stats.black_holed_chunks >= 1
