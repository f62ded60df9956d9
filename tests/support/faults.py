"""Fault injection for integration tests: botocore hooks that answer a call with an AWS error.

Register a :class:`Fail` on a client's ``before-send.<service>.<Operation>`` event (botocore's
event names carry the service), e.g.
``client.meta.events.register("before-send.dynamodb.GetItem", Fail(500, "InternalServerError"))``.
The error body is shaped like the named service's own errors (DynamoDB's JSON, S3's XML), so
botocore parses the code the real service would send, whatever port the emulator listens on.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final

from botocore.awsrequest import AWSResponse

# Services whose protocol answers errors in a JSON body with "__type" (awsJson 1.0 / 1.1).
_JSON_ERROR_SERVICES: Final = frozenset({"dynamodb", "dynamodbstreams", "sqs", "lambda"})


def service_of(event_name: str) -> str:
    """The service named by a botocore event (``before-send.dynamodb.GetItem`` -> ``dynamodb``)."""
    parts = event_name.split(".")
    if len(parts) < 2:
        raise ValueError(f"not a botocore service event: {event_name!r}")
    return parts[1]


def error_body(service: str, code: str, message: str = "injected") -> bytes:
    """An error body as ``service`` would send it."""
    if service in _JSON_ERROR_SERVICES:
        return json.dumps(
            {"__type": f"com.amazonaws.{service}#{code}", "message": message}
        ).encode()
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


class Fail:
    """A before-send hook answering matching requests with an AWS error while ``remaining > 0``.

    ``calls`` counts every request the hook saw (also after it stopped failing), ``failed`` the
    failures it injected; ``then`` runs just before each injected failure (to make something
    happen "meanwhile").
    """

    def __init__(
        self,
        status: int,
        code: str,
        *,
        times: int = 1_000,
        then: Callable[[], None] | None = None,
    ) -> None:
        self.status, self.code, self.remaining, self.then = status, code, times, then
        self.calls = 0
        self.failed = 0

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        self.calls += 1
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        self.failed += 1
        if self.then is not None:
            self.then()
        return error_response(request, event_name, self.status, self.code)


class ThrottleEachRequest:
    """A before-send hook throttling the first ``times`` attempts of every distinct request.

    Requests are told apart by their body, so each write is throttled on its own and then let
    through on its retry: the hook shows that retries absorb throttling without losing a write.
    Thread-safe (backfill workers share the client).
    """

    def __init__(self, times: int = 2, code: str = "ThrottlingException") -> None:
        self.times, self.code = times, code
        self.attempts: dict[bytes, int] = {}
        self.throttled = 0
        self._lock = threading.Lock()

    def __call__(self, request: Any, event_name: str, **_: Any) -> AWSResponse | None:
        with self._lock:
            seen = self.attempts.get(request.body, 0)
            self.attempts[request.body] = seen + 1
            if seen >= self.times:
                return None
            self.throttled += 1
        return error_response(request, event_name, 400, self.code)


def error_response(request: Any, event_name: str, status: int, code: str) -> AWSResponse:
    """The response an injected ``code`` gets, shaped like the service of ``event_name``."""
    body = error_body(service_of(event_name), code)
    return AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, _Raw(body))


class _Raw:
    """The raw body botocore reads from an injected response."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data

    def read(self) -> bytes:
        return self._data
