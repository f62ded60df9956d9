"""The query API over real HTTP, locally: one WSGI adapter under gunicorn.

The adapter turns a WSGI request into the API Gateway REST (payload 1.0) event the Lambda
function receives, and the resolver's answer back into a WSGI response: the routes, validation,
auth and headers are the very code that runs in Lambda. Each gunicorn worker builds its own
resolver (and boto3 clients) after the fork.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qsl, urlsplit

from gunicorn.app.base import BaseApplication

from cachesync.api.problems import PROBLEM_CONTENT_TYPE, TYPE_PREFIX
from cachesync.api.request_guard import RAW_PATH_CONTEXT_FIELD
from cachesync.local.lambda_functions import LocalLambdaContext

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from cachesync.api.app import CacheSyncResolver

STAGE = "local"
# Lambda's request payload limit (synchronous invocation): in AWS a bigger request never reaches
# the function. The local server refuses it the same way, before reading it, with a 413 problem.
MAX_BODY_BYTES: Final = 6 * 1024 * 1024
_DRAIN_BYTES: Final = 64 * 1024 * 1024


def _header_name(wsgi_name: str) -> str:
    return "-".join(part.capitalize() for part in wsgi_name.split("_"))


def event_from_environ(environ: WSGIEnvironment) -> dict[str, Any]:
    """The API Gateway REST proxy event (payload 1.0) of one WSGI request."""
    # PEP 3333: PATH_INFO holds the decoded path's bytes as latin-1 characters.
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace") or "/"
    method = environ["REQUEST_METHOD"].upper()
    headers: dict[str, list[str]] = {}
    for name, value in environ.items():
        if name.startswith("HTTP_"):
            headers.setdefault(_header_name(name[5:]), []).append(value)
    for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(name):
            headers[_header_name(name)] = [environ[name]]
    query: dict[str, list[str]] = {}
    for name, value in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True):
        query.setdefault(name, []).append(value)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    try:
        body: str | None = raw.decode("utf-8") if raw else None
        encoded = False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(raw).decode(), True
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {name: values[-1] for name, values in headers.items()},
        "multiValueHeaders": headers,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "stage": STAGE,
            "requestId": str(uuid.uuid4()),
            "httpMethod": method,
            "path": f"/{STAGE}{path}",
            "resourcePath": path,
            "requestTimeEpoch": int(time.time() * 1000),
            # The TCP peer (gunicorn never takes it from X-Forwarded-For: see serve()).
            "identity": {"sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1")},
            # The path as sent, still percent-encoded: what a signature covers.
            RAW_PATH_CONTEXT_FIELD: _raw_path(environ) or path,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _raw_path(environ: WSGIEnvironment) -> str:
    """The request target's path as sent (gunicorn's ``RAW_URI``), query left out."""
    raw = str(environ.get("RAW_URI") or "")
    # An absolute-form target (http://host/path) is allowed by HTTP/1.1.
    return raw.split("?", 1)[0] if raw.startswith("/") else urlsplit(raw).path


class ResolverWsgiApp:
    """A WSGI application answering every request through the API's resolver.

    Powertools keeps the request being resolved in class attributes (``BaseRouter.current_event``,
    shared by every resolver of the process): two requests resolved at once in one process
    would read each other's headers, keys included. So a process resolves one request at a
    time (the lock), and concurrency comes from gunicorn's worker processes.
    """

    def __init__(self, resolver: CacheSyncResolver) -> None:
        self._resolver = resolver
        self._lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Answer one request."""
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length > MAX_BODY_BYTES:
            return _too_large(environ, length, start_response)
        context = cast("LambdaContext", LocalLambdaContext(function_name="query_api"))
        event = event_from_environ(environ)
        with self._lock:
            result = self._resolver.resolve(event, context)
        status = int(result["statusCode"])
        headers: list[tuple[str, str]] = []
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers += [(name, str(value)) for value in values]
        for name, value in (result.get("headers") or {}).items():
            headers.append((name, str(value)))
        body = result.get("body") or ""
        payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        if status in (HTTPStatus.NOT_MODIFIED, HTTPStatus.NO_CONTENT):
            payload = b""
        headers.append(("Content-Length", str(len(payload))))
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        start_response(f"{status} {phrase}".strip(), headers)
        return [payload]


def _too_large(
    environ: WSGIEnvironment, length: int, start_response: StartResponse
) -> Iterable[bytes]:
    """The 413 problem of a body over :data:`MAX_BODY_BYTES`. The body is read and dropped (up
    to a bound) first: a client still sending when the connection closes would never see the
    answer."""
    remaining = min(length, _DRAIN_BYTES)
    stream = environ["wsgi.input"]
    while remaining > 0 and (chunk := stream.read(min(remaining, 1 << 20))):
        remaining -= len(chunk)
    payload = json.dumps(
        {
            "type": f"{TYPE_PREFIX}content-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"the body is {length} bytes; a request holds at most {MAX_BODY_BYTES}",
            "instance": environ.get("PATH_INFO", "/"),
        }
    ).encode()
    start_response(
        "413 Content Too Large",
        [
            ("Content-Type", PROBLEM_CONTENT_TYPE),
            ("Content-Length", str(len(payload))),
            ("Connection", "close"),
        ],
    )
    return [payload]


class ApiServer(BaseApplication):  # type: ignore[misc]
    """gunicorn serving the API: ``build`` runs in each worker after the fork."""

    def __init__(self, build: Callable[[], CacheSyncResolver], options: Mapping[str, Any]) -> None:
        self._build = build
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        """Apply the options (gunicorn's own setting names)."""
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> WSGIApplication:
        """The WSGI application of one worker."""
        return ResolverWsgiApp(self._build())


def serve(build: Callable[[], CacheSyncResolver], *, host: str, port: int, workers: int) -> None:
    """Serve the API until interrupted: ``workers`` processes, one request at a time each
    (see :class:`ResolverWsgiApp`); gthread workers for HTTP keep-alive."""
    ApiServer(
        build,
        {
            # An IPv6 address is bracketed in a bind address: [::1]:8080.
            "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "workers": workers,
            "threads": 1,
            "worker_class": "gthread",
            # gunicorn 23+ would create a control socket under the home folder.
            "control_socket_disable": True,
            # REMOTE_ADDR is the TCP peer: gunicorn reads no PROXY protocol header (off by
            # default) and trusts forwarding headers (scheme only) from no address.
            "forwarded_allow_ips": "",
            "timeout": 30,
            "graceful_timeout": 5,
        },
    ).run()
