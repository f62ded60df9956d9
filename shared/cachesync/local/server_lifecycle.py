"""What every embedded local server shares: ``with`` starts and stops it, and a child process
is stopped gently first."""

from __future__ import annotations

import subprocess
from types import TracebackType
from typing import Self


class ServerLifecycle:
    """Mixin: ``with server:`` starts it and always stops it."""

    def start(self) -> None:
        """Start the server (subclasses)."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop the server (subclasses; safe to repeat)."""
        raise NotImplementedError

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


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM ``process`` if it still runs, then SIGKILL after ``timeout`` seconds."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
