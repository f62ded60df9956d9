"""The ``cachesync`` command line: the local stack, queries and reads of the index.

Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cachesync.backfill import (
    Backfill,
    BackfillCheckpoint,
    BackfillFilters,
    ObjectIndexer,
    checkpoint_json,
)
from cachesync.documents import AnnouncementStatus, ChangeStatus, DocumentKind
from cachesync.exceptions import (
    CacheSyncError,
    ConfigurationError,
    DocumentNotFoundError,
    InvalidQueryError,
    LocalStackError,
)
from cachesync.index_models import DocumentSummary, IndexQuery, SortOrder
from cachesync.rate_limit import TokenBucket
from cachesync.reconcile import Reconciler
from cachesync.runtime import build_reader, build_stores, build_writer
from cachesync.settings import (
    LOCAL_ENV_FILE,
    LOCAL_STACK_PID_VARIABLE,
    CliSettings,
    cli_environment,
    export_to_process_environment,
    find_local_env_file,
    load_settings,
    local_client_options,
    local_stack_pid,
    read_env_file,
)
from cachesync.stores.dynamodb_index import DynamoDBIndexStore

app = typer.Typer(
    name="cachesync",
    help="Keep a DynamoDB index in step with JSON documents in S3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
local_app = typer.Typer(help="The embedded local AWS stack.", no_args_is_help=True)
app.add_typer(local_app, name="local")

# Piped output is not cut to 80 columns: keys must survive `| grep` and `> file`.
KNOWN_STATUSES = {status.value for status in (*ChangeStatus, *AnnouncementStatus)}
FUNCTION_LOG_FILE = LOCAL_ENV_FILE.parent / "functions.log"
EXIT_NOT_FOUND = 3
EXIT_DRIFT = 4
out = Console(width=None if sys.stdout.isatty() else 250)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 250)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """Turn cachesync errors into one line on stderr and exit status 1."""
    try:
        yield
    except CacheSyncError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None


def _index_store() -> tuple[CliSettings, DynamoDBIndexStore]:
    settings, environ = _settings()
    index, _ = build_stores(settings, _client_options(environ))
    return settings, index


# ---------------------------------------------------------------------- local stack


@local_app.command("up")
def local_up(
    dynamodb_port: Annotated[int, typer.Option(help="DynamoDB Local port (0: a free one).")] = 0,
    moto_port: Annotated[int, typer.Option(help="moto server port for S3 and SQS (0: free).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep DynamoDB Local's data in this folder.")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo documents.")] = True,
    demo_count: Annotated[int, typer.Option(help="How many demo documents.")] = 300,
) -> None:
    """Start DynamoDB Local and moto (S3, SQS), provision them, pump S3 events to the
    handlers, and run until Ctrl-C."""
    from cachesync.local import LocalStack
    from cachesync.local.pipeline import build_event_pump

    with _one_line_errors():
        running = find_local_env_file()
        pid = local_stack_pid(read_env_file(running)) if running is not None else None
        if running is not None and pid is not None:
            raise LocalStackError(f"a local stack is already running (pid {pid}, {running})")
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
        signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
        # The functions' own output (Powertools logs, EMF metrics) goes to a file; the console
        # shows the stack. The screen console holds the real stdout from before the redirect.
        screen = Console(file=sys.stdout)
        LOCAL_ENV_FILE.parent.mkdir(parents=True, exist_ok=True)
        with (
            FUNCTION_LOG_FILE.open("a", encoding="utf-8") as function_log,
            contextlib.redirect_stdout(function_log),
            LocalStack(
                dynamodb_port=dynamodb_port, moto_port=moto_port, data_dir=data_dir
            ) as stack,
        ):
            lines = [*stack.export_lines(), f"export {LOCAL_STACK_PID_VARIABLE}={os.getpid()}"]
            LOCAL_ENV_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
            pump = build_event_pump(stack)
            pumping = threading.Thread(
                target=pump.run, args=(stop,), name="event-pump", daemon=True
            )
            try:
                screen.print("[bold green]cachesync local stack is up[/bold green]")
                screen.print(f"  DynamoDB Local  {stack.dynamodb_endpoint}")
                screen.print(f"  moto (S3, SQS)  {stack.moto_endpoint}")
                screen.print(
                    f"  event pump      {stack.resources.created_queue_name}, "
                    f"{stack.resources.removed_queue_name} -> functions/ "
                    f"(their logs: {FUNCTION_LOG_FILE})"
                )
                screen.print(
                    f"\nIn another shell inside this checkout, `cachesync` finds the stack through "
                    f"{LOCAL_ENV_FILE}; other tools need these variables:"
                )
                for line in stack.export_lines():
                    screen.print(f"  {line}", highlight=False, soft_wrap=True)
                pumping.start()
                if demo:
                    _load_demo(screen, stack, pump, demo_count, stop)
                screen.print(
                    "\nTry: .venv/bin/cachesync query --customer acme   (Ctrl-C stops the stack)"
                )
                stop.wait()
            finally:
                stop.set()
                if pumping.is_alive():
                    pumping.join(timeout=10)
                LOCAL_ENV_FILE.unlink(missing_ok=True)
        screen.print("stopped")


def _load_demo(screen: Console, stack: Any, pump: Any, count: int, stop: threading.Event) -> None:
    """Upload the demo documents and wait until their events are through the pump."""
    from cachesync.local.demo_data import upload_demo_documents

    uploaded = upload_demo_documents(stack.client("s3"), stack.resources.bucket_name, count)
    message = f"uploaded {uploaded} demo documents to S3; indexing them from their S3 events"
    with screen.status(message) as status:
        stats = pump.stats
        # Received counts a batch before it runs; done counts it after.
        while not stop.is_set() and (
            stats.received < uploaded or stats.succeeded + stats.failed < stats.received
        ):
            status.update(f"{message}: {stats.succeeded} events applied")
            stop.wait(0.25)
    failed = f", {pump.stats.failed} failed" if pump.stats.failed else ""
    screen.print(
        f"Indexed {uploaded} demo documents through S3 -> SQS -> s3_object_created "
        f"({pump.stats.succeeded} event messages, S3's test events included{failed})."
    )


@app.command()
def invoke(
    function: Annotated[
        str, typer.Argument(help="A folder of functions/, e.g. s3_object_created.")
    ],
    event_file: Annotated[Path, typer.Argument(help="A JSON event, e.g. events/s3_put.json.")],
) -> None:
    """Run a Lambda handler locally on a JSON event, as the console's test button does."""
    from cachesync.local.lambda_functions import LocalLambdaContext, load_handler

    with _one_line_errors():
        try:
            event = json.loads(event_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise typer.BadParameter(f"{event_file}: {error}") from error
        environ = cli_environment()
        load_settings(CliSettings, environ)
        export_to_process_environment(environ)
        # The handler's logs and metrics go to stderr: stdout is the response alone (for jq).
        with contextlib.redirect_stdout(sys.stderr):
            handler = load_handler(function)
            response = handler(event, LocalLambdaContext(function_name=function))
        print(json.dumps(response, indent=2, default=str))


# ---------------------------------------------------------------------- reading the index


@app.command()
def query(
    customer: Annotated[str | None, typer.Option(help="Customer code.")] = None,
    status: Annotated[str | None, typer.Option(help="Document status.")] = None,
    type_: Annotated[DocumentKind | None, typer.Option("--type", help="Document kind.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Earliest index time (default: a year ago).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Latest index time (default: now).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Page size.")] = 50,
    order: Annotated[str, typer.Option(help="asc or desc (by index time).")] = "desc",
    next_token: Annotated[str | None, typer.Option(help="Token of the previous page.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List documents by customer, status, kind and time range."""
    with _one_line_errors():
        if order not in ("asc", "desc"):
            raise typer.BadParameter("--order must be asc or desc")
        if status is not None and status not in KNOWN_STATUSES:
            raise typer.BadParameter(
                f"--status must be one of: {', '.join(sorted(KNOWN_STATUSES))}"
            )
        sort_order: SortOrder = "asc" if order == "asc" else "desc"
        _, store = _index_store()
        page = store.query(
            IndexQuery(
                customer=customer,
                status=status,
                kind=type_,
                since=since,
                until=until,
                limit=limit,
                order=sort_order,
                next_token=next_token,
            )
        )
        if as_json:
            print(page.model_dump_json(indent=2))
            return
        _print_summaries(page.items)
        if page.next_token:
            out.print(f"next page: --next-token {page.next_token}", highlight=False, soft_wrap=True)


@app.command()
def get(
    key: Annotated[str, typer.Argument(help="The document's S3 key.")],
    consistent: Annotated[bool, typer.Option(help="Strongly consistent index read.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Read one document: from the index, or from S3 when the index cannot answer."""
    with _one_line_errors():
        settings, environ = _settings()
        reader = build_reader(settings, client_options=_client_options(environ))
        try:
            result = reader.get_document(key, consistent=consistent)
        except DocumentNotFoundError as error:
            err.print(str(error), highlight=False)
            raise typer.Exit(code=EXIT_NOT_FOUND) from None
        if as_json:
            print(result.model_dump_json(indent=2))
            return
        where = result.source.value
        if result.miss_reason is not None:
            backfill = ", backfilled" if result.backfilled else ""
            if result.expired:
                backfill = ", past its TTL: not backfilled"
            where = f"{where} (index: {result.miss_reason.value}{backfill})"
        out.print(f"s3://{result.bucket}/{result.key}  etag {result.etag}  from {where}")
        out.print_json(result.body)


@app.command()
def put(
    key: Annotated[str, typer.Argument(help="The document's S3 key.")],
    file: Annotated[Path, typer.Argument(help="A JSON document; '-' reads standard input.")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Replays return the first result.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing.")] = False,
) -> None:
    """Write a document: index intent, S3, commit (rolled back if S3 fails)."""
    with _one_line_errors():
        try:
            body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        except OSError as error:
            raise typer.BadParameter(f"{file}: {error.strerror}") from error
        settings, environ = _settings()
        writer = build_writer(settings, _client_options(environ))
        receipt = writer.write_document(key, body, idempotency_key=idempotency_key, dry_run=dry_run)
        print(receipt.model_dump_json(indent=2))


@app.command()
def delete(
    key: Annotated[str, typer.Argument(help="The document's S3 key.")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Replays return the first result.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Report; delete nothing.")] = False,
) -> None:
    """Delete a document: index intent, S3, commit a tombstone."""
    with _one_line_errors():
        settings, environ = _settings()
        writer = build_writer(settings, _client_options(environ))
        receipt = writer.delete_document(key, idempotency_key=idempotency_key, dry_run=dry_run)
        print(receipt.model_dump_json(indent=2))


# ---------------------------------------------------------------------- backfill and verify

PrefixOption = Annotated[
    list[str] | None, typer.Option("--prefix", help="Only keys under this prefix (repeatable).")
]
SinceOption = Annotated[datetime | None, typer.Option(help="Earliest document index time.")]
UntilOption = Annotated[datetime | None, typer.Option(help="Latest document index time.")]
CustomerOption = Annotated[str | None, typer.Option(help="Only documents naming this customer.")]
TypeOption = Annotated[DocumentKind | None, typer.Option("--type", help="Only this kind.")]
WorkersOption = Annotated[int, typer.Option(min=1, max=64, help="Concurrent S3 reads and writes.")]
RpsOption = Annotated[
    float, typer.Option(min=0.1, help="Index write rate cap (shared token bucket).")
]


def _filters(
    prefix: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    customer: str | None,
    kind: DocumentKind | None,
) -> BackfillFilters:
    return BackfillFilters(
        prefixes=tuple(prefix or [""]),
        since=_utc(since),
        until=_utc(until),
        customer=customer,
        kind=kind,
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@app.command()
def backfill(
    prefix: PrefixOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    customer: CustomerOption = None,
    type_: TypeOption = None,
    dry_run: Annotated[bool, typer.Option(help="Read and validate; write nothing.")] = False,
    workers: WorkersOption = 4,
    rps: RpsOption = 100.0,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint file (default: .cachesync/backfill-<bucket>.json)."),
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON summary, no progress bar.")
    ] = False,
) -> None:
    """Rebuild the index from S3: guarded writes, resumable, rate-limited."""
    with _one_line_errors():
        settings, environ = _settings()
        index, objects = build_stores(settings, _client_options(environ))
        indexer = ObjectIndexer(
            index, objects, retention=settings.retention, limiter=TokenBucket(rps, max(1, int(rps)))
        )
        job = Backfill(indexer, objects, bucket=settings.bucket_name, workers=workers)
        filters = _filters(prefix, since, until, customer, type_)
        path = checkpoint or LOCAL_ENV_FILE.parent / f"backfill-{settings.bucket_name}.json"
        start = None
        if resume:
            if not path.is_file():
                raise InvalidQueryError(f"--resume: no checkpoint at {path}")
            start = BackfillCheckpoint.model_validate_json(path.read_text(encoding="utf-8"))
            if start.done:
                raise InvalidQueryError(f"--resume: the backfill in {path} is already done")

        def save(current: BackfillCheckpoint) -> None:
            if dry_run:
                return  # a dry run changes nothing, so there is nothing to resume
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(".tmp")
            temporary.write_text(checkpoint_json(current), encoding="utf-8")
            temporary.replace(path)  # atomic: a crash never leaves half a checkpoint

        with _progress(as_json, "backfill") as advance:
            done = job.run(
                filters, checkpoint=start, dry_run=dry_run, on_page=save, on_object=advance
            )
        summary = done.summary
        if as_json:
            print(json.dumps({"dry_run": dry_run, **summary.model_dump(mode="json")}, indent=2))
        else:
            _print_counts(
                "backfill" + (" (dry run)" if dry_run else ""),
                summary.model_dump(exclude={"invalid_reasons", "failures"}),
            )
            for key, reason in summary.invalid_reasons.items():
                err.print(f"invalid: {key}: {reason}", highlight=False, soft_wrap=True)
            for key, reason in summary.failures.items():
                err.print(f"failed: {key}: {reason}", highlight=False, soft_wrap=True)
        if summary.failed:
            raise typer.Exit(code=1)


@app.command()
def verify(
    prefix: PrefixOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    customer: CustomerOption = None,
    type_: TypeOption = None,
    repair: Annotated[bool, typer.Option(help="Fix the drift, then verify again.")] = False,
    workers: WorkersOption = 4,
    rps: RpsOption = 100.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON report, no progress bar.")
    ] = False,
) -> None:
    """Compare the index with S3. Exit status: 0 no drift, 4 drift found (repaired or not)."""
    with _one_line_errors():
        settings, environ = _settings()
        index, objects = build_stores(settings, _client_options(environ))
        reconciler = Reconciler(
            index,
            objects,
            bucket=settings.bucket_name,
            retention=settings.retention,
            pending_stale_after=timedelta(seconds=settings.pending_stale_after_seconds),
            limiter=TokenBucket(rps, max(1, int(rps))),
            workers=workers,
        )
        filters = _filters(prefix, since, until, customer, type_)
        with _progress(as_json, "verify") as advance:
            report = reconciler.verify(filters, repair=repair, on_key=lambda: advance(None))
        after = reconciler.verify(filters) if repair and report.drift else None
        if as_json:
            payload = report.model_dump(mode="json")
            payload["counts"] = report.counts()
            if after is not None:
                payload["after_repair"] = after.counts()
            print(json.dumps(payload, indent=2))
        else:
            _print_counts(
                "verify",
                {
                    "objects": report.objects,
                    "entries": report.entries,
                    "invalid": report.invalid,
                    **report.counts(),
                    "repaired": report.repaired,
                },
            )
            for key, reason in report.invalid_reasons.items():
                err.print(f"invalid: {key}: {reason}", highlight=False, soft_wrap=True)
            for drift in report.drift[:50]:
                out.print(f"{drift.kind.value:16} {drift.key}  {drift.detail}", highlight=False)
            if len(report.drift) > 50:
                out.print(f"... and {len(report.drift) - 50} more (--json lists all)")
            if after is not None:
                left = sum(after.counts().values())
                out.print(f"after repair: {left} key(s) still drift")
        if report.drift:
            raise typer.Exit(code=EXIT_DRIFT)


@contextlib.contextmanager
def _progress(quiet: bool, label: str) -> Iterator[Callable[[Any], None]]:
    """A rich progress bar (count, rate, elapsed) unless machine output is asked for."""
    if quiet:
        yield lambda _outcome: None
        return
    with Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None, rate="")
        started = time.monotonic()
        count = [0]

        def advance(_outcome: Any) -> None:
            count[0] += 1
            rate = count[0] / max(time.monotonic() - started, 1e-6)
            progress.update(task, advance=1, rate=f"{rate:,.0f}/s")

        yield advance


def _print_counts(title: str, counts: dict[str, Any]) -> None:
    table = Table(title=title, box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, value in counts.items():
        table.add_row(name.replace("_", " "), str(value))
    out.print(table)


def _settings() -> tuple[CliSettings, dict[str, str]]:
    environ = cli_environment()
    try:
        return load_settings(CliSettings, environ), environ
    except ConfigurationError as error:
        if error.reason != "required but not set" or find_local_env_file() is not None:
            raise
        raise ConfigurationError(
            error.variable,
            "required but not set, and no local stack runs for this folder "
            "(start one with `make run` in the checkout, or export the CACHESYNC_* variables)",
        ) from error


def _client_options(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    return {service: local_client_options(environ, service) for service in ("dynamodb", "s3")}


def _print_summaries(items: list[DocumentSummary]) -> None:
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
    out.print(table)
    out.print(f"{len(items)} document(s)")


def main() -> None:
    """Entry point of the ``cachesync`` script."""
    # Powertools warns outside Lambda: no remaining time to read (idempotency), no metric
    # recorded by an invocation (invoke). Neither is the user's business on a command line.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    app()
