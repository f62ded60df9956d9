"""What the command line prints, and where: results on stdout, everything else on stderr.

stdout carries a command's result alone (with ``--json``: one JSON document), so it can be piped
to ``jq`` in every failure mode; logs, progress, warnings and errors go to stderr. Errors are one
line and an exit status, never a traceback; when stderr is not a terminal, nothing is wrapped or
cut at the terminal's width.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, TextIO

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cachesync.exceptions import CacheSyncError
from cachesync.index_models import DocumentSummary

EXIT_ERROR: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_DRIFT: Final = 4
EXIT_INTERRUPTED: Final = 130
# Piped output is not cut to 80 columns: keys must survive `| grep` and `> file`.
PIPED_WIDTH: Final = 250


def console_for(stream: TextIO) -> Console:
    """A rich console on ``stream``: the terminal's width, or unwrapped lines on a pipe."""
    return Console(file=stream, width=None if stream.isatty() else PIPED_WIDTH)


def errors() -> Console:
    """The console of stderr (progress, warnings, errors)."""
    return Console(stderr=True, width=None if sys.stderr.isatty() else PIPED_WIDTH)


def print_error(message: str) -> None:
    """One ``error:`` line on stderr."""
    errors().print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)


class Results:
    """Where a command writes its result: the real stdout, whatever else was redirected."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.console = console_for(stream)

    def json(self, document: str) -> None:
        """Write one JSON document (already serialised)."""
        self._stream.write(document + "\n")
        self._stream.flush()


@contextlib.contextmanager
def command_output() -> Iterator[Results]:
    """Run a command: yields where its result goes, and meanwhile sends to stderr anything
    else written to stdout (Powertools' JSON logs, retry warnings, a handler's metrics).
    cachesync errors become one line on stderr and exit status 1."""
    stdout = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield Results(stdout)
    except CacheSyncError as error:
        print_error(str(error))
        raise typer.Exit(code=EXIT_ERROR) from None


def show_usage_error(error: typer.TyperException) -> None:
    """A usage error (missing or unreadable file, bad option value) on stderr.

    In a terminal, typer's box; on a pipe, the whole message on one line (a box would be cut
    at the terminal's width).
    """
    # click already printed the help for a bare command (no_args_is_help).
    if type(error).__name__ == "NoArgsIsHelpError":
        return
    if sys.stderr.isatty():
        from typer import rich_utils

        # Typer's usage errors are its vendored click's, which this function is typed for.
        rich_utils.rich_format_error(error)  # type: ignore[arg-type]
        return
    context = getattr(error, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    message = " ".join(error.format_message().split())
    sys.stderr.write(f"error: {message}{hint}\n")


@contextlib.contextmanager
def progress(quiet: bool, label: str, total: int | None = None) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar (count, rate, elapsed) on stderr unless machine output is asked for;
    with ``total`` (when known up front) it also shows how far along it is."""
    if quiet:
        yield lambda _outcome: None
        return
    with Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=errors(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total, rate="")
        started = time.monotonic()
        count = [0]

        def advance(_outcome: Any) -> None:
            count[0] += 1
            rate = count[0] / max(time.monotonic() - started, 1e-6)
            bar.update(task, advance=1, rate=f"{rate:,.0f}/s")

        yield advance


def print_counts(results: Results, title: str, counts: dict[str, Any]) -> None:
    """A two-column table of counters."""
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in counts.items():
        table.add_row(name.replace("_", " "), str(value))
    results.console.print(table)


def print_summaries(results: Results, items: list[DocumentSummary]) -> None:
    """A page of documents as a table."""
    table = Table(box=box.SIMPLE_HEAD)
    # Keys, ids and times must stay copyable: only customers and titles may wrap.
    for column in ("index time", "kind", "id", "status", "key"):
        table.add_column(column, no_wrap=True)
    table.add_column("customers", overflow="fold")
    table.add_column("title", overflow="fold", ratio=1)
    for item in items:
        table.add_row(
            item.index_time.strftime("%Y-%m-%d %H:%M"),
            item.kind.value,
            item.doc_id,
            item.status,
            item.key,
            ", ".join(item.customers),
            item.title,
        )
    results.console.print(table)
    results.console.print(f"{len(items)} document(s)")
