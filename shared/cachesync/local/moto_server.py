"""moto in server mode, in a thread of this process: serves S3 and SQS to any client.

moto keeps its state in module-level backends shared by the whole process: two servers in one
process see the same buckets and queues, :meth:`MotoServer.reset` clears them all, and an active
``moto.mock_aws`` in the same process intercepts boto3 calls before they reach any endpoint.
"""

from __future__ import annotations

import errno
import http.client
import logging
import socket
from typing import Final

from moto.server import ThreadedMotoServer

from cachesync.exceptions import LocalStackError
from cachesync.local.server_lifecycle import ServerLifecycle

_HOST: Final = "127.0.0.1"
_RESET_TIMEOUT_SECONDS: Final = 10.0


def _ensure_port_free(port: int) -> None:
    """Raise if ``port`` is taken: ThreadedMotoServer.start() would otherwise wait forever."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((_HOST, port))
        except OSError as error:
            reason = "in use" if error.errno == errno.EADDRINUSE else str(error)
            raise LocalStackError(f"moto server cannot bind {_HOST}:{port}: {reason}") from error


class MotoServer(ServerLifecycle):
    """A moto server on loopback; ``port=0`` picks a free port."""

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._server: ThreadedMotoServer | None = None
        self._endpoint_url: str | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._endpoint_url is None:
            raise LocalStackError("moto server is not started")
        return self._endpoint_url

    def start(self) -> None:
        """Start serving; returns once the socket is listening (well under a second)."""
        if self._server is not None:
            raise LocalStackError("moto server is already started")
        if self._port:
            _ensure_port_free(self._port)
        access_log = logging.getLogger("werkzeug")
        # werkzeug logs every request to stderr at INFO unless a level was chosen: keep it quiet.
        if access_log.level == logging.NOTSET:
            access_log.setLevel(logging.WARNING)
        server = ThreadedMotoServer(ip_address=_HOST, port=self._port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        self._server = server
        self._endpoint_url = f"http://{host}:{port}"

    def reset(self) -> None:
        """Delete every resource of every moto backend in this process (``/moto-api/reset``)."""
        host, port = self._host_and_port()
        connection = http.client.HTTPConnection(host, port, timeout=_RESET_TIMEOUT_SECONDS)
        try:
            connection.request("POST", "/moto-api/reset")
            response = connection.getresponse()
            response.read()
        except OSError as error:
            raise LocalStackError(f"moto reset on {self.endpoint_url} failed: {error}") from error
        finally:
            connection.close()
        if response.status != http.HTTPStatus.OK:
            raise LocalStackError(f"moto reset on {self.endpoint_url} answered {response.status}")

    def stop(self) -> None:
        """Stop serving and close the socket. Safe to call more than once."""
        server, self._server, self._endpoint_url = self._server, None, None
        if server is not None:
            server.stop()

    def _host_and_port(self) -> tuple[str, int]:
        if self._server is None:
            raise LocalStackError("moto server is not started")
        host, port = self._server.get_host_and_port()
        return host, port
