"""Commands on the index: ``query``, ``get``, ``put`` and ``delete``."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import typer
from aws_lambda_powertools import Logger

from cachesync.cli.bulk_commands import operations_from_dir, operations_from_jsonl, run_bulk
from cachesync.cli.configuration import load_configuration
from cachesync.cli.output import EXIT_NOT_FOUND, command_output, errors, print_summaries
from cachesync.documents import AnnouncementStatus, ChangeStatus, DocumentKind
from cachesync.exceptions import DocumentNotFoundError
from cachesync.index_models import IndexQuery, QueryPage, SortOrder
from cachesync.runtime import build_reader, build_stores, build_writer

KNOWN_STATUSES: Final = {status.value for status in (*ChangeStatus, *AnnouncementStatus)}


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
    all_pages: Annotated[
        bool, typer.Option("--all", help="Walk every page (--limit per page) and list them all.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List documents by customer, status, kind and time range."""
    with command_output() as results:
        if order not in ("asc", "desc"):
            raise typer.BadParameter("--order must be asc or desc")
        if status is not None and status not in KNOWN_STATUSES:
            raise typer.BadParameter(
                f"--status must be one of: {', '.join(sorted(KNOWN_STATUSES))}"
            )
        sort_order: SortOrder = "asc" if order == "asc" else "desc"
        configuration = load_configuration()
        store, _ = build_stores(configuration.settings, configuration.client_options)
        query = IndexQuery(
            customer=customer,
            status=status,
            kind=type_,
            since=since,
            until=until,
            limit=limit,
            order=sort_order,
            next_token=next_token,
        )
        page = store.query(query)
        if all_pages:
            # Result concatenation: one page holding every item, in order, and no token.
            items = list(page.items)
            while page.next_token:
                page = store.query(query.model_copy(update={"next_token": page.next_token}))
                items += page.items
            page = QueryPage(items=items, next_token=None)
        if as_json:
            results.json(page.model_dump_json(indent=2))
            return
        print_summaries(results, page.items)
        if page.next_token:
            results.console.print(
                f"next page: --next-token {page.next_token}", highlight=False, soft_wrap=True
            )


def get(
    key: Annotated[str, typer.Argument(help="The document's S3 key.")],
    consistent: Annotated[bool, typer.Option(help="Strongly consistent index read.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Read one document: from the index, or from S3 when the index cannot answer."""
    with command_output() as results:
        configuration = load_configuration()
        reader = build_reader(
            configuration.settings,
            # The reader's warnings (index down, breaker open) are logs: stderr.
            logger=Logger(service="cachesync", stream=sys.stderr),
            client_options=configuration.client_options,
        )
        try:
            result = reader.get_document(key, consistent=consistent)
        except DocumentNotFoundError as error:
            errors().print(str(error), highlight=False)
            raise typer.Exit(code=EXIT_NOT_FOUND) from None
        if as_json:
            results.json(result.model_dump_json(indent=2))
            return
        where = result.source.value
        if result.miss_reason is not None:
            backfill = ", backfilled" if result.backfilled else ""
            if result.expired:
                backfill = ", past its TTL: not backfilled"
            where = f"{where} (index: {result.miss_reason.value}{backfill})"
        results.console.print(
            f"s3://{result.bucket}/{result.key}  etag {result.etag}  from {where}"
        )
        results.console.print_json(result.body)


def put(
    key: Annotated[
        str | None, typer.Argument(help="The document's S3 key (not with --from-dir/--from-jsonl).")
    ] = None,
    file: Annotated[
        Path | None, typer.Argument(help="A JSON document; '-' reads standard input.")
    ] = None,
    idempotency_key: Annotated[
        str | None, typer.Option(help="Replays return the first result.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and report; write nothing.")] = False,
    from_dir: Annotated[
        Path | None,
        typer.Option(help="Put every *.json file under this folder (key: --prefix + its path)."),
    ] = None,
    from_jsonl: Annotated[
        Path | None,
        typer.Option(
            help="Run a JSON Lines file: one {operation, key, document, idempotency_key} a line."
        ),
    ] = None,
    prefix: Annotated[str, typer.Option(help="With --from-dir: prepended to every key.")] = "",
    workers: Annotated[
        int, typer.Option(min=1, max=32, help="With --from-dir/--from-jsonl: writes at once.")
    ] = 8,
    as_json: Annotated[
        bool, typer.Option("--json", help="With --from-dir/--from-jsonl: a JSON summary.")
    ] = False,
) -> None:
    """Write a document: index intent, S3, commit (rolled back if S3 fails). With --from-dir or
    --from-jsonl, many: each its own write, a failed one never undoes another (exit 1 if any
    failed)."""
    with command_output() as results:
        if from_dir is not None or from_jsonl is not None:
            if key is not None or file is not None or idempotency_key is not None:
                raise typer.BadParameter(
                    "KEY, FILE and --idempotency-key go without --from-dir/--from-jsonl"
                )
            if from_dir is not None and from_jsonl is not None:
                raise typer.BadParameter("give --from-dir or --from-jsonl, not both")
            if from_dir is not None:
                loaded = list(operations_from_dir(from_dir, prefix))
            elif from_jsonl is not None:
                loaded = list(operations_from_jsonl(from_jsonl))
            run_bulk(results, loaded, workers=workers, dry_run=dry_run, as_json=as_json)
            return
        if key is None or file is None:
            raise typer.BadParameter("give KEY and FILE (or --from-dir / --from-jsonl)")
        try:
            body = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
        except OSError as error:
            raise typer.BadParameter(f"{file}: {error.strerror}") from error
        configuration = load_configuration()
        writer = build_writer(configuration.settings, configuration.client_options)
        receipt = writer.write_document(key, body, idempotency_key=idempotency_key, dry_run=dry_run)
        results.json(receipt.model_dump_json(indent=2))


def delete(
    key: Annotated[str, typer.Argument(help="The document's S3 key.")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Replays return the first result.")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="Report; delete nothing.")] = False,
) -> None:
    """Delete a document: index intent, S3, commit a tombstone."""
    with command_output() as results:
        configuration = load_configuration()
        writer = build_writer(configuration.settings, configuration.client_options)
        receipt = writer.delete_document(key, idempotency_key=idempotency_key, dry_run=dry_run)
        results.json(receipt.model_dump_json(indent=2))
