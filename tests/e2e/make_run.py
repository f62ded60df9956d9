"""``cachesync local up`` (what ``make run`` runs) as a child process in a fresh folder, for the
end-to-end tests that drive the stack the way a developer does."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "cachesync")
STACK_READY_SECONDS = 240
# The last line `local up` prints (how to run a webhook receiver): the env file is written and
# the demo documents indexed.
READY_LINE = "cachesync webhooks listen --port"


@dataclass(frozen=True)
class RunningStack:
    """``cachesync local up`` running in ``folder`` (its env file is there)."""

    folder: Path
    output: list[str]


def clean_environment() -> dict[str, str]:
    """This process's environment without AWS or cachesync settings (a new user's shell)."""
    return {n: v for n, v in os.environ.items() if not n.startswith(("AWS_", "CACHESYNC_"))}


def _pump_lines(stream: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert stream.stdout is not None
    for line in stream.stdout:
        lines.put(line)


@contextmanager
def make_run(folder: Path, demo_count: int) -> Iterator[RunningStack]:
    """``cachesync local up`` in ``folder`` until its demo documents are indexed; Ctrl-C after."""
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    with subprocess.Popen(
        [CLI, "local", "up", "--demo-count", str(demo_count)],
        cwd=folder,
        env=clean_environment(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        threading.Thread(target=_pump_lines, args=(process, lines), daemon=True).start()
        try:
            deadline = time.monotonic() + STACK_READY_SECONDS
            while not any(READY_LINE in line for line in output):
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("cachesync local up did not get ready:\n" + "".join(output))
                try:
                    output.append(lines.get(timeout=1))
                except queue.Empty:
                    continue
            yield RunningStack(folder=folder, output=output)
        finally:
            # Ctrl-C, as a user stops `make run`.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                raise
