"""``cachesync keys usage KEY_ID``: a key's requests, errors, throttling and latency."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Final

import typer
from rich import box
from rich.table import Table

from cachesync.api.access_log import ACCESS_LOG_FILE
from cachesync.api.usage_report import UsageFigures, read_access_log, summarize
from cachesync.cli.output import command_output

_KEY_ID: Final = re.compile(r"^[0-9a-f]{12}$")


def usage(
    key_id: Annotated[str, typer.Argument(help="The key id (the 12 hex digits after csk_).")],
    log: Annotated[
        Path,
        typer.Option(help="The access log `cachesync api serve` appends to (--access-log)."),
    ] = ACCESS_LOG_FILE,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """A key's usage over the last hour and the last day, per route, from the local API's access
    log (in AWS: the CloudWatch metrics and Logs Insights queries of docs/RUNBOOK.md)."""
    if not _KEY_ID.match(key_id):
        raise typer.BadParameter("a key id is 12 hex digits (csk_<key id>_<secret>)")
    if not log.is_file():
        raise typer.BadParameter(
            f"{log}: no access log (the API started by `make run` or `cachesync api serve` "
            "writes one)",
            param_hint="--log",
        )
    with command_output() as results:
        records, skipped = read_access_log(log)
        report = summarize(records, key_id, datetime.now(UTC), skipped)
        if as_json:
            results.json(report.model_dump_json(indent=2))
            return
        for window in report.windows:
            table = Table(
                title=f"key {key_id}: {window.window} (since {window.since:%Y-%m-%d %H:%M}Z)",
                box=box.SIMPLE_HEAD,
            )
            for column in (
                "route",
                "requests",
                "errors",
                "throttled",
                "p50 ms",
                "p95 ms",
                "p99 ms",
            ):
                table.add_column(column, justify="left" if column == "route" else "right")
            for route in window.routes:
                table.add_row(route.route, *_cells(route))
            table.add_row("all routes", *_cells(window.total), style="bold")
            results.console.print(table)


def _cells(figures: UsageFigures) -> list[str]:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    return [
        str(figures.requests),
        str(figures.errors),
        str(figures.throttled),
        ms(figures.p50_ms),
        ms(figures.p95_ms),
        ms(figures.p99_ms),
    ]
