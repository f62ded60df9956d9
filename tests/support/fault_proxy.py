"""A small TCP fault proxy (toxiproxy-like) for chaos experiments against the local stack.

No toxiproxy server installs on these machines (PyPI and npm hold only its clients, Debian has no
package), so this is our own: a threaded proxy on a free loopback port in front of one real
server (DynamoDB Local, moto). boto3 clients reach the server through it by ``endpoint_url``.
Toxics are switched at run time, from any thread:

* ``latency``: each chunk from the server is held ``latency + uniform(0, jitter)`` seconds
  (a delay line: chunks of one answer are not delayed once each);
* ``bandwidth``: answers flow at most ``bytes_per_second``;
* ``reset``: connections (new and open) are closed with a TCP RST at their next activity;
* ``black_hole``: connections are accepted, requests read and dropped, nothing answered;
* ``http_errors``: a ``fraction`` of HTTP requests (optionally only some ``X-Amz-Target``
  operations or methods) are answered by the proxy itself with an AWS error and never reach
  the server, as throttling storms are HTTP answers, not broken connections.

HTTP awareness needs request framing: requests with ``Content-Length`` (what boto3 sends) are
parsed one by one on a keep-alive connection; a request without it (chunked upload) switches
that connection to plain forwarding. Clients do not pipeline (urllib3 waits for each answer),
so an injected answer never interleaves with a forwarded one.

Everything injected is counted in :attr:`FaultProxy.stats`.
"""

from __future__ import annotations

import contextlib
import json
import queue
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Self

_CHUNK: Final = 65_536
_HEADER_END: Final = b"\r\n\r\n"
_MAX_HEADER_BYTES: Final = 65_536


@dataclass(frozen=True)
class AwsError:
    """An error answer the proxy sends in place of the server's."""

    name: str
    status: int
    content_type: str
    body: bytes
    extra_headers: tuple[tuple[str, str], ...] = ()

    def response(self) -> bytes:
        """The whole HTTP/1.1 response, keep-alive."""
        headers = [
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Error')}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "x-amzn-RequestId: fault-proxy",
            "Connection: keep-alive",
            *(f"{name}: {value}" for name, value in self.extra_headers),
        ]
        return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + self.body


_REASONS: Final = {400: "Bad Request", 500: "Internal Server Error", 503: "Slow Down"}


def _dynamodb_error(name: str, status: int, message: str) -> AwsError:
    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{name}", "message": message}
    ).encode()
    return AwsError(name, status, "application/x-amz-json-1.0", body)


DYNAMODB_THROTTLING: Final = _dynamodb_error(
    "ProvisionedThroughputExceededException",
    400,
    "The level of configured provisioned throughput for the table was exceeded.",
)
DYNAMODB_INTERNAL_ERROR: Final = _dynamodb_error(
    "InternalServerError", 500, "Internal server error (injected by the fault proxy)"
)
S3_SLOW_DOWN: Final = AwsError(
    "SlowDown",
    503,
    "application/xml",
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>",
)


@dataclass(frozen=True)
class HttpErrorToxic:
    """Answer ``fraction`` of matching requests with ``error``."""

    error: AwsError
    fraction: float
    operations: frozenset[str] | None = None
    """``X-Amz-Target`` operation names (``PutItem``); None: every request."""
    methods: frozenset[str] | None = None
    """HTTP methods (``GET``); None: every method."""

    def matches(self, method: str, target: str | None) -> bool:
        """Whether a request of ``method`` with that ``X-Amz-Target`` is in scope."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.operations is not None:
            operation = (target or "").rpartition(".")[2]
            return operation in self.operations
        return True


@dataclass
class ProxyStats:
    """What went through the proxy and what it injected."""

    connections: int = 0
    requests: int = 0
    """HTTP requests seen (HTTP-aware connections only)."""
    forwarded: int = 0
    injected: Counter[str] = field(default_factory=Counter)
    """Injected error answers by error name."""
    resets: int = 0
    black_holed_chunks: int = 0
    delayed_chunks: int = 0
    operations: Counter[str] = field(default_factory=Counter)
    """Requests seen per ``X-Amz-Target`` operation (or HTTP method)."""

    def snapshot(self) -> dict[str, object]:
        """A JSON-friendly copy."""
        return {
            "connections": self.connections,
            "requests": self.requests,
            "forwarded": self.forwarded,
            "injected": dict(self.injected),
            "resets": self.resets,
            "black_holed_chunks": self.black_holed_chunks,
            "delayed_chunks": self.delayed_chunks,
            "operations": dict(self.operations),
        }


@dataclass
class _Toxics:
    latency: float = 0.0
    jitter: float = 0.0
    bytes_per_second: float | None = None
    reset: bool = False
    black_hole: bool = False
    http_errors: HttpErrorToxic | None = None


class FaultProxy:
    """A TCP proxy on ``127.0.0.1:<free port>`` in front of ``upstream`` (``host``, ``port``)."""

    def __init__(self, upstream: tuple[str, int], *, seed: int | None = None) -> None:
        self._upstream = upstream
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._toxics = _Toxics()
        self.stats = ProxyStats()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._connections: set[_Connection] = set()
        self._acceptor: threading.Thread | None = None

    @classmethod
    def for_url(cls, endpoint_url: str, *, seed: int | None = None) -> FaultProxy:
        """A proxy in front of ``http://host:port``."""
        host, _, port = endpoint_url.removeprefix("http://").rstrip("/").partition(":")
        return cls((host, int(port)), seed=seed)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The loopback port clients connect to."""
        if self._listener is None:
            raise RuntimeError("the fault proxy is not started")
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``, for boto3's ``endpoint_url``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen and accept connections on a daemon thread."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        listener.settimeout(0.05)  # how soon stop() is noticed
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting and close every connection."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- toxics ------------------------------------------------------------------------------

    def set_latency(self, seconds: float, jitter: float = 0.0) -> None:
        """Hold each answer chunk ``seconds`` plus up to ``jitter`` more."""
        with self._lock:
            self._toxics.latency, self._toxics.jitter = seconds, jitter

    def set_bandwidth(self, bytes_per_second: float | None) -> None:
        """Limit answers to ``bytes_per_second`` (None: unlimited)."""
        with self._lock:
            self._toxics.bytes_per_second = bytes_per_second

    def set_reset(self, enabled: bool) -> None:
        """Reset (RST) every connection at its next activity, new ones at once."""
        with self._lock:
            self._toxics.reset = enabled

    def set_black_hole(self, enabled: bool) -> None:
        """Accept and read, but forward and answer nothing."""
        with self._lock:
            self._toxics.black_hole = enabled

    def set_http_errors(self, toxic: HttpErrorToxic | None) -> None:
        """Answer a fraction of matching HTTP requests with an AWS error (None: off)."""
        with self._lock:
            self._toxics.http_errors = toxic

    def clear(self) -> None:
        """Remove every toxic."""
        with self._lock:
            self._toxics = _Toxics()

    @contextlib.contextmanager
    def toxic(self, apply: Callable[[FaultProxy], None]) -> Iterator[Self]:
        """``with proxy.toxic(lambda p: p.set_latency(1)):``: the toxic, then :meth:`clear`."""
        apply(self)
        try:
            yield self
        finally:
            self.clear()

    # -- internals ---------------------------------------------------------------------------

    def _current(self) -> _Toxics:
        with self._lock:
            return _Toxics(**vars(self._toxics))

    def _count(self, update: Callable[[ProxyStats], None]) -> None:
        with self._lock:
            update(self.stats)

    def _delay(self) -> float:
        toxics = self._current()
        if toxics.latency <= 0 and toxics.jitter <= 0:
            return 0.0
        with self._lock:
            return toxics.latency + self._random.uniform(0, toxics.jitter)

    def _decide_error(self, method: str, target: str | None) -> AwsError | None:
        with self._lock:
            toxic = self._toxics.http_errors
            if toxic is None or not toxic.matches(method, target):
                return None
            return toxic.error if self._random.random() < toxic.fraction else None

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._count(lambda s: setattr(s, "connections", s.connections + 1))
            connection = _Connection(self, client)
            with self._lock:
                self._connections.add(connection)
            threading.Thread(target=connection.run, name="fault-proxy-conn", daemon=True).start()

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a crashed peer or a middlebox would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class _Connection:
    """One client connection and its upstream connection; three threads."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream: socket.socket | None = None
        self._client_write_lock = threading.Lock()
        self._closed = threading.Event()
        # Chunks from upstream with the time they may be delivered (None: end of stream).
        self._delay_line: queue.Queue[tuple[float, bytes] | None] = queue.Queue()

    def run(self) -> None:
        try:
            self._client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._proxy._current().reset:
                self._reset()
                return
            try:
                upstream = socket.create_connection(self._proxy._upstream, timeout=5)
            except OSError:
                # The server is down: refuse as it would (the client sees a closed connection).
                _abort(self._client)
                return
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._upstream = upstream
            reader = threading.Thread(target=self._from_upstream, daemon=True)
            writer = threading.Thread(target=self._to_client, daemon=True)
            reader.start()
            writer.start()
            self._from_client()
            reader.join()
            writer.join()
        finally:
            self.close()
            self._proxy._forget(self)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for sock in (self._client, self._upstream):
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
        self._delay_line.put(None)

    def _reset(self) -> None:
        self._proxy._count(lambda s: setattr(s, "resets", s.resets + 1))
        self._closed.set()
        _abort(self._client)
        if self._upstream is not None:
            _abort(self._upstream)
        self._delay_line.put(None)

    # client -> upstream: HTTP-aware while requests are framed by Content-Length.
    def _from_client(self) -> None:
        buffer = b""
        http_aware = True
        while not self._closed.is_set():
            try:
                data = self._client.recv(_CHUNK)
            except OSError:
                break
            if not data:
                break
            toxics = self._proxy._current()
            if toxics.reset:
                self._reset()
                return
            if toxics.black_hole:
                self._proxy._count(
                    lambda s: setattr(s, "black_holed_chunks", s.black_holed_chunks + 1)
                )
                continue
            if not http_aware:
                self._send_upstream(data)
                continue
            buffer += data
            while buffer:
                request = _split_request(buffer)
                if request is None:
                    if len(buffer) > _MAX_HEADER_BYTES and _HEADER_END not in buffer:
                        http_aware = False  # not HTTP as we know it: forward as is
                        self._send_upstream(buffer)
                        buffer = b""
                    break
                if request is _UNFRAMED:
                    http_aware = False
                    self._send_upstream(buffer)
                    buffer = b""
                    break
                assert isinstance(request, _Request)
                buffer = buffer[request.length :]
                self._handle_request(request)
        # The client is done sending: let the server finish its answer.
        if self._upstream is not None:
            with contextlib.suppress(OSError):
                self._upstream.shutdown(socket.SHUT_WR)

    def _handle_request(self, request: _Request) -> None:
        label = (request.target or "").rpartition(".")[2] or request.method

        def seen(stats: ProxyStats) -> None:
            stats.requests += 1
            stats.operations[label] += 1

        self._proxy._count(seen)
        error = self._proxy._decide_error(request.method, request.target)
        if error is None:
            self._proxy._count(lambda s: setattr(s, "forwarded", s.forwarded + 1))
            self._send_upstream(request.raw)
            return
        self._proxy._count(lambda s: s.injected.update([error.name]))
        # Answered after the same latency as a real answer would be.
        self._delay_line.put((time.monotonic() + self._proxy._delay(), error.response()))

    def _send_upstream(self, data: bytes) -> None:
        if self._upstream is None:
            return
        try:
            self._upstream.sendall(data)
        except OSError:
            self.close()

    # upstream -> delay line -> client.
    def _from_upstream(self) -> None:
        assert self._upstream is not None
        while not self._closed.is_set():
            try:
                data = self._upstream.recv(_CHUNK)
            except OSError:
                break
            if not data:
                break
            toxics = self._proxy._current()
            if toxics.reset:
                self._reset()
                return
            if toxics.black_hole:
                self._proxy._count(
                    lambda s: setattr(s, "black_holed_chunks", s.black_holed_chunks + 1)
                )
                continue
            delay = self._proxy._delay()
            if delay > 0:
                self._proxy._count(lambda s: setattr(s, "delayed_chunks", s.delayed_chunks + 1))
            self._delay_line.put((time.monotonic() + delay, data))
        self._delay_line.put(None)

    def _to_client(self) -> None:
        while True:
            item = self._delay_line.get()
            if item is None or self._closed.is_set():
                # Server closed: close the client side once every earlier chunk went out.
                self.close()
                return
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            rate = self._proxy._current().bytes_per_second
            try:
                if rate:
                    for start in range(0, len(data), 1024):
                        piece = data[start : start + 1024]
                        self._client.sendall(piece)
                        time.sleep(len(piece) / rate)
                else:
                    self._client.sendall(data)
            except OSError:
                self.close()
                return


@dataclass(frozen=True)
class _Request:
    method: str
    target: str | None
    length: int
    raw: bytes


_UNFRAMED: Final = object()


def _split_request(buffer: bytes) -> _Request | object | None:
    """The first whole request in ``buffer``; None if incomplete; _UNFRAMED if not framed by
    ``Content-Length``."""
    end = buffer.find(_HEADER_END)
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1")
    lines = head.split("\r\n")
    method = lines[0].split(" ", 1)[0].upper()
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _UNFRAMED
    length = end + len(_HEADER_END) + int(headers.get("content-length", "0") or 0)
    if len(buffer) < length:
        return None
    return _Request(
        method=method, target=headers.get("x-amz-target"), length=length, raw=buffer[:length]
    )
