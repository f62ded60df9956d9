"""A real HTTP receiver on a free loopback port, answering each request as scripted."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as it arrived."""

    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedReceiver:
    """Answers the n-th request with ``script[n]`` (the last entry repeats): an HTTP status,
    or ``"hang"`` (sleeps ``hang_seconds`` before answering 200)."""

    script: list[int | str]
    hang_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def next_answer(self, request: Received) -> int | str:
        with self._lock:
            self.received.append(request)
            index = min(len(self.received) - 1, len(self.script) - 1)
            return self.script[index]


@contextmanager
def scripted_receiver(
    script: list[int | str], hang_seconds: float = 3.0
) -> Iterator[ScriptedReceiver]:
    """Serve ``script`` on ``http://127.0.0.1:<free port>/hook`` until the block ends."""
    receiver = ScriptedReceiver(script=script, hang_seconds=hang_seconds)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {name.lower(): value for name, value in self.headers.items()}
            answer = receiver.next_answer(Received(headers=headers, body=body))
            if answer == "hang":
                time.sleep(receiver.hang_seconds)
                answer = 200
            try:
                self.send_response(int(answer))
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up (its read timeout): nobody to answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
