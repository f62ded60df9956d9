"""``cachesync put --from-dir DIR`` / ``--from-jsonl FILE``: many writes, each its own saga."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, ValidationError

from cachesync.bulk_writes import BulkOperation, BulkOutcome, BulkWriter
from cachesync.cli.configuration import load_configuration
from cachesync.cli.output import EXIT_ERROR, Results, print_counts, progress
from cachesync.runtime import build_writer
from cachesync.validation_errors import first_validation_error


class BulkFailure(BaseModel):
    """One operation (or input line) that did not complete, and why."""

    model_config = ConfigDict(frozen=True)

    source: str
    """Where it came from: ``path/to/file.json`` or ``FILE:LINE``."""
    key: str | None
    error: str


class BulkSummary(BaseModel):
    """What ``put --from-dir`` / ``--from-jsonl`` prints on stdout."""

    model_config = ConfigDict(frozen=True)

    operations: int
    succeeded: int
    failed: int
    dry_run: bool
    failures: list[BulkFailure]


def operations_from_dir(folder: Path, prefix: str) -> Iterator[tuple[str, BulkOperation | str]]:
    """A put per ``*.json`` file under ``folder`` (sorted), keyed ``prefix`` + relative path;
    a file that is not a JSON object yields its error instead."""
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder}: not a folder", param_hint="--from-dir")
    for path in sorted(folder.rglob("*.json")):
        source = str(path)
        key = prefix + path.relative_to(folder).as_posix()
        try:
            document = json.loads(path.read_bytes())
        except (OSError, ValueError, RecursionError) as error:
            # RecursionError: a file nested deeper than the json module recurses.
            yield source, f"not readable as JSON: {error}"
            continue
        if not isinstance(document, dict):
            yield source, "not a JSON object"
            continue
        try:
            yield source, BulkOperation(operation="put", key=key, document=document)
        except ValidationError as error:
            first = first_validation_error(error)
            yield source, f"{first.field}: {first.message}" if first.field else first.message


def operations_from_jsonl(file: Path) -> Iterator[tuple[str, BulkOperation | str]]:
    """The operations of a JSON Lines file (one ``{operation, key, document?,
    idempotency_key?}`` per line; blank lines skipped); a bad line yields its error instead."""
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise typer.BadParameter(f"{file}: {error}", param_hint="--from-jsonl") from error
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{file}:{number}"
        try:
            yield source, BulkOperation.model_validate_json(line)
        except ValidationError as error:
            first = first_validation_error(error)
            where = f"{first.field}: " if first.field else ""
            yield source, f"{where}{first.message}"


def run_bulk(
    results: Results,
    loaded: list[tuple[str, BulkOperation | str]],
    *,
    workers: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Run the loaded operations with a progress bar; print the summary; exit 1 on a failure."""
    operations = [(source, item) for source, item in loaded if isinstance(item, BulkOperation)]
    failures = [
        BulkFailure(source=source, key=None, error=item)
        for source, item in loaded
        if isinstance(item, str)
    ]
    configuration = load_configuration()
    writer = build_writer(configuration.settings, configuration.client_options)
    with progress(as_json, "writing", total=len(operations)) as advance:

        def heard(outcome: BulkOutcome) -> None:
            advance(outcome)

        report = BulkWriter(writer, workers=workers).run(
            [operation for _, operation in operations], dry_run=dry_run, on_outcome=heard
        )
    failures += [
        BulkFailure(
            source=operations[outcome.position][0],
            key=outcome.operation.key,
            error=str(outcome.error),
        )
        for outcome in report.outcomes
        if outcome.error is not None
    ]
    summary = BulkSummary(
        operations=len(loaded),
        succeeded=len(loaded) - len(failures),
        failed=len(failures),
        dry_run=dry_run,
        failures=failures,
    )
    if as_json:
        results.json(summary.model_dump_json(indent=2))
    else:
        counts: dict[str, Any] = {
            "operations": summary.operations,
            "succeeded": summary.succeeded,
            "failed": summary.failed,
        }
        print_counts(results, "dry run (nothing written)" if dry_run else "bulk write", counts)
        for failure in failures:
            results.console.print(f"failed  {failure.source}  {failure.error}", highlight=False)
    if failures:
        raise typer.Exit(code=EXIT_ERROR)
