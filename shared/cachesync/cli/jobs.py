"""Long-running commands: ``backfill`` (resumable, Ctrl-C safe) and ``verify``."""

from __future__ import annotations

import json
import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from cachesync.backfill import (
    BackfillCheckpoint,
    BackfillFilters,
    load_checkpoint,
    save_checkpoint,
)
from cachesync.cli.configuration import load_configuration
from cachesync.cli.output import (
    EXIT_DRIFT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    Results,
    command_output,
    errors,
    print_counts,
    progress,
)
from cachesync.documents import DocumentKind
from cachesync.local.env_file import LOCAL_ENV_FILE
from cachesync.runtime import build_cli_backfill, build_verifier

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
# typer parses these formats back: a resume command must repeat the filters exactly.
_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


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


@contextmanager
def _ctrl_c_sets(cancel: threading.Event) -> Iterator[None]:
    """The first Ctrl-C asks the job to stop between objects (and save where it got); a second
    one interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def first_interrupt(_signum: int, _frame: FrameType | None) -> None:
        cancel.set()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _resume_command(
    path: Path,
    prefix: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    customer: str | None,
    kind: DocumentKind | None,
    workers: int,
    rps: float,
) -> str:
    """The command that resumes this backfill: same checkpoint, same filters."""
    words = ["cachesync", "backfill", "--resume", "--checkpoint", str(path)]
    for one in prefix or []:
        words += ["--prefix", one]
    if since is not None:
        words += ["--since", since.strftime(_DATETIME_FORMAT)]
    if until is not None:
        words += ["--until", until.strftime(_DATETIME_FORMAT)]
    if customer is not None:
        words += ["--customer", customer]
    if kind is not None:
        words += ["--type", kind.value]
    words += ["--workers", str(workers), "--rps", f"{rps:g}"]
    return shlex.join(words)


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
    """Rebuild the index from S3: guarded writes, resumable (Ctrl-C saves), rate-limited."""
    with command_output() as results:
        configuration = load_configuration()
        settings = configuration.settings
        job = build_cli_backfill(
            settings,
            rate_per_second=rps,
            workers=workers,
            client_options=configuration.client_options,
        )
        filters = _filters(prefix, since, until, customer, type_)
        path = checkpoint or LOCAL_ENV_FILE.parent / f"backfill-{settings.bucket_name}.json"
        start = load_checkpoint(path) if resume else None

        def save(current: BackfillCheckpoint) -> None:
            if not dry_run:  # a dry run changes nothing, so there is nothing to resume
                save_checkpoint(path, current)

        cancel = threading.Event()
        with progress(as_json, "backfill") as advance, _ctrl_c_sets(cancel):
            last = job.run(
                filters,
                checkpoint=start,
                dry_run=dry_run,
                on_checkpoint=save,
                on_object=advance,
                cancel=cancel,
            )
        if not last.done:
            _report_interrupted(
                last,
                dry_run,
                _resume_command(path, prefix, since, until, customer, type_, workers, rps),
            )
            raise typer.Exit(code=EXIT_INTERRUPTED)
        _report_backfill(results, last, dry_run, as_json)
        if last.summary.failed:
            raise typer.Exit(code=EXIT_ERROR)


def _report_interrupted(last: BackfillCheckpoint, dry_run: bool, resume_with: str) -> None:
    summary = last.summary
    console = errors()
    console.print(
        f"interrupted after {summary.scanned} object(s): {summary.indexed} indexed, "
        f"{summary.unchanged} unchanged, {summary.skipped_newer} newer in the index, "
        f"{summary.invalid} invalid, {summary.failed} failed",
        highlight=False,
        soft_wrap=True,
    )
    if dry_run:
        console.print("a dry run saves no checkpoint: run it again to see it all")
        return
    where = f" (up to {last.after_key})" if last.after_key is not None else ""
    console.print(f"checkpoint saved{where}; resume with:", highlight=False, soft_wrap=True)
    console.print(f"  {resume_with}", highlight=False, soft_wrap=True, markup=False)


def _report_backfill(
    results: Results, last: BackfillCheckpoint, dry_run: bool, as_json: bool
) -> None:
    summary = last.summary
    if as_json:
        results.json(json.dumps({"dry_run": dry_run, **summary.model_dump(mode="json")}, indent=2))
        return
    print_counts(
        results,
        "backfill" + (" (dry run)" if dry_run else ""),
        summary.model_dump(exclude={"invalid_reasons", "failures"}),
    )
    console = errors()
    for key, reason in summary.invalid_reasons.items():
        console.print(f"invalid: {key}: {reason}", highlight=False, soft_wrap=True)
    for key, reason in summary.failures.items():
        console.print(f"failed: {key}: {reason}", highlight=False, soft_wrap=True)


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
    with command_output() as results:
        configuration = load_configuration()
        reconciler = build_verifier(
            configuration.settings,
            rate_per_second=rps,
            workers=workers,
            client_options=configuration.client_options,
        )
        filters = _filters(prefix, since, until, customer, type_)
        with progress(as_json, "verify") as advance:
            report = reconciler.verify(filters, repair=repair, on_key=lambda: advance(None))
        after = reconciler.verify(filters) if repair and report.drift else None
        if as_json:
            payload = report.model_dump(mode="json")
            payload["counts"] = report.counts()
            if after is not None:
                payload["after_repair"] = after.counts()
            results.json(json.dumps(payload, indent=2))
        else:
            print_counts(
                results,
                "verify",
                {
                    "objects": report.objects,
                    "entries": report.entries,
                    "invalid": report.invalid,
                    **report.counts(),
                    "repaired": report.repaired,
                },
            )
            console = errors()
            for key, reason in report.invalid_reasons.items():
                console.print(f"invalid: {key}: {reason}", highlight=False, soft_wrap=True)
            for drift in report.drift[:50]:
                results.console.print(
                    f"{drift.kind.value:16} {drift.key}  {drift.detail}", highlight=False
                )
            if len(report.drift) > 50:
                results.console.print(f"... and {len(report.drift) - 50} more (--json lists all)")
            if after is not None:
                left = sum(after.counts().values())
                results.console.print(f"after repair: {left} key(s) still drift")
        if report.drift:
            raise typer.Exit(code=EXIT_DRIFT)
