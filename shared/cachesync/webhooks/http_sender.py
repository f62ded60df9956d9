"""POST one signed webhook to a checked address, with bounded time and response size."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Final

from cachesync.exceptions import CacheSyncError, UnsafeWebhookUrlError
from cachesync.webhooks.address_guard import ResolvedTarget, Resolver, resolve_target

USER_AGENT: Final = "cachesync-webhooks/1"


@dataclass(frozen=True)
class SendResult:
    """What one POST got: an HTTP status, or the error that prevented one."""

    status_code: int | None
    error: str | None
    latency_ms: int


@dataclass(frozen=True)
class HttpWebhookSender:
    """Sends webhooks through the SSRF guard: resolve once, check, connect to that address."""

    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    """Bounds each wait for the receiver's bytes (the TLS handshake included)."""
    max_response_bytes: int = 65_536
    allow_loopback: bool = False
    """Only the local stack allows loopback (and plain http)."""
    resolver: Resolver = field(default=socket.getaddrinfo)
    """Resolves a host once (``getaddrinfo``'s signature)."""
    tls_context: ssl.SSLContext | None = None
    """Verifies receivers' certificates; ``None``: the system's trust store."""

    def post(self, url: str, body: str, headers: dict[str, str]) -> SendResult:
        """POST ``body`` with ``headers`` to ``url``; never raises for a receiver's failure."""
        started = time.monotonic()
        try:
            target = resolve_target(url, allow_loopback=self.allow_loopback, resolver=self.resolver)
            status = self._exchange(target, body.encode(), headers)
        except UnsafeWebhookUrlError as error:
            return SendResult(None, f"refused: {error.reason}", _ms_since(started))
        except _DeadlinePassedError as error:
            return SendResult(None, str(error), _ms_since(started))
        except (OSError, http.client.HTTPException) as error:
            # Timeouts, refused connections, TLS failures, malformed answers: a failed
            # attempt to retry later, named by its type.
            return SendResult(None, f"{type(error).__name__}: {error}", _ms_since(started))
        return SendResult(status, None, _ms_since(started))

    @property
    def deadline_seconds(self) -> float:
        """The longest one attempt may take in total: the read timeout bounds each wait only,
        and a receiver trickling a byte at a time would otherwise hold the whole batch."""
        return self.connect_timeout + self.read_timeout

    def _exchange(self, target: ResolvedTarget, body: bytes, headers: dict[str, str]) -> int:
        connection = self._connection(target)
        watchdog = _Watchdog(connection, self.deadline_seconds)
        try:
            connection.request(
                "POST",
                target.path,
                body=body,
                headers={
                    **headers,
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                },
            )
            response = connection.getresponse()
            # Read a bounded part only: the status is the answer, the body is not needed, and
            # a hostile receiver must not make us hold megabytes.
            response.read(self.max_response_bytes)
            status = response.status
            if watchdog.fired:
                # The cut can look like a clean end of the headers: never a delivery.
                raise _DeadlinePassedError(self.deadline_seconds)
        except (OSError, http.client.HTTPException) as error:
            if watchdog.fired:
                raise _DeadlinePassedError(self.deadline_seconds) from error
            raise
        finally:
            watchdog.cancel()
            connection.close()
        return status

    def _connection(self, target: ResolvedTarget) -> http.client.HTTPConnection:
        # The name stays the connection's host (Host header, TLS SNI and certificate check);
        # only the socket goes to the checked address, so no second DNS lookup happens.
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = http.client.HTTPSConnection(
                target.host, target.port, context=self.tls_context or ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(target.host, target.port)
        connect_timeout, read_timeout = self.connect_timeout, self.read_timeout

        def pinned(
            _address: tuple[str, int],
            _timeout: float | None = None,
            source_address: tuple[str, int] | None = None,
        ) -> socket.socket:
            sock = socket.create_connection(
                (target.address, target.port), connect_timeout, source_address
            )
            sock.settimeout(read_timeout)
            return sock

        connection._create_connection = pinned  # type: ignore[attr-defined]
        return connection


class _DeadlinePassedError(CacheSyncError):
    """Internal: an attempt was cut at its deadline."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"deadline of {seconds:g} s passed: connection cut")


class _Watchdog:
    """Cuts a connection that outlives its deadline: a shutdown wakes a blocked read."""

    def __init__(self, connection: http.client.HTTPConnection, seconds: float) -> None:
        self._connection = connection
        self.fired = False
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True
        self._timer.start()

    def _cut(self) -> None:
        self.fired = True
        sock = self._connection.sock
        if sock is not None:
            # The plain socket's shutdown, under TLS too: it only wakes the reader, which then
            # fails and closes the connection itself.
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        """The attempt ended in time."""
        self._timer.cancel()


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
