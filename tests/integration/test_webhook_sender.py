"""The webhook sender over real sockets: the checked address is the one connected to (no second
resolution), the name is kept for Host, TLS SNI and the certificate check, and an answer is
read only up to its bound."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cachesync.webhooks.http_sender import HttpWebhookSender

NAME = "hooks.cachesync.test"  # .test never resolves in DNS (RFC 6761)
BIG_ANSWER_BYTES = 64 * 1024 * 1024


def loopback_resolver(*names: str) -> Any:
    """getaddrinfo answering ``names`` with 127.0.0.1 and failing every other name."""

    def resolve(host: str, port: int, **_: Any) -> list[tuple[Any, ...]]:
        if host not in names:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    return resolve


@dataclass
class Seen:
    hosts: list[str] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    written: int = 0
    write_failed: threading.Event = field(default_factory=threading.Event)


@dataclass
class Server:
    port: int
    seen: Seen
    ca_file: Path


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for ``NAME`` (openssl), and its key."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", f"/CN={NAME}", "-addext", f"subjectAltName=DNS:{NAME}",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def serve(context: ssl.SSLContext | None, ca_file: Path, big: bool = False) -> Iterator[Server]:
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.hosts.append(self.headers.get("Host", ""))
            self.send_response(200)
            size = BIG_ANSWER_BYTES if big else 2
            self.send_header("Content-Length", str(size))
            self.end_headers()
            chunk = b"x" * 65536 if big else b"ok"
            try:
                while seen.written < size:
                    self.wfile.write(chunk)
                    seen.written += len(chunk)
            except OSError:
                seen.write_failed.set()  # the sender closed after its bounded read

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        context.sni_callback = lambda _sock, name, _ctx: seen.server_names.append(name)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield Server(port=server.server_port, seen=seen, ca_file=ca_file)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    yield from serve(context, cert)


@pytest.fixture
def big_server(tmp_path: Path) -> Iterator[Server]:
    yield from serve(None, tmp_path, big=True)


def test_https_goes_to_the_checked_address_with_the_name_as_host_and_sni(
    tls_server: Server,
) -> None:
    # Given a name only our resolver knows (DNS would fail), and a certificate for it
    sender = HttpWebhookSender(
        allow_loopback=True,
        resolver=loopback_resolver(NAME),
        tls_context=ssl.create_default_context(cafile=str(tls_server.ca_file)),
    )
    # When a webhook is sent to it
    result = sender.post(f"https://{NAME}:{tls_server.port}/hook", "{}", {})
    # Then it was delivered to the resolved address: no second lookup happened, and the
    # name went as SNI and Host, and the certificate was checked against it
    assert (result.status_code, result.error) == (200, None)
    assert tls_server.seen.server_names == [NAME]
    assert tls_server.seen.hosts == [f"{NAME}:{tls_server.port}"]


def test_a_certificate_for_another_name_is_refused(tls_server: Server) -> None:
    # Given another name resolving to the same server (whose certificate is for NAME)
    other = "other.cachesync.test"
    sender = HttpWebhookSender(
        allow_loopback=True,
        resolver=loopback_resolver(other),
        tls_context=ssl.create_default_context(cafile=str(tls_server.ca_file)),
    )
    # When a webhook is sent
    result = sender.post(f"https://{other}:{tls_server.port}/hook", "{}", {})
    # Then the TLS check fails: no status, the reason named
    assert result.status_code is None
    assert result.error is not None
    assert "SSLCertVerificationError" in result.error


def test_a_huge_answer_is_read_only_up_to_the_bound(big_server: Server) -> None:
    # Given a receiver answering 200 with 64 MB
    sender = HttpWebhookSender(allow_loopback=True, max_response_bytes=65_536)
    # When a webhook is sent
    result = sender.post(f"http://127.0.0.1:{big_server.port}/hook", "{}", {})
    # Then the status counts, and the sender hung up long before the end of the answer
    assert result.status_code == 200
    assert big_server.seen.write_failed.wait(timeout=10)
    assert big_server.seen.written < BIG_ANSWER_BYTES


@pytest.fixture
def trickling_port() -> Iterator[int]:
    """A receiver that answers one header byte every 0.1 s, for at most 8 s."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            deadline = time.monotonic() + 8
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    connection.sendall(b"X")
                except OSError:
                    return
                time.sleep(0.1)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=10)
    listener.close()


def test_a_trickling_receiver_is_cut_at_the_attempt_deadline(trickling_port: int) -> None:
    # Given a receiver that never stops sending, each byte well within the read timeout
    sender = HttpWebhookSender(allow_loopback=True, connect_timeout=0.5, read_timeout=0.5)
    # When a webhook is sent to it
    started = time.monotonic()
    result = sender.post(f"http://127.0.0.1:{trickling_port}/hook", "{}", {})
    took = time.monotonic() - started
    # Then the attempt is cut at its 1 s deadline (not after the receiver's 8 s), as a failure
    assert result.status_code is None
    assert result.error is not None
    assert "deadline of 1 s passed" in result.error
    assert took < 3
