"""Commands on the query API: ``api serve``."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from cachesync.api.access_log import ACCESS_LOG_FILE
from cachesync.cli.output import command_output, errors
from cachesync.local.env_file import cli_environment
from cachesync.settings import ApiSettings, load_settings, variable_name


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    workers: Annotated[
        int,
        typer.Option(min=1, max=64, help="Worker processes (each serves one request at a time)."),
    ] = 4,
    access_log: Annotated[
        Path,
        typer.Option(
            envvar="CACHESYNC_API_ACCESS_LOG",
            help="Append one JSON line per request here (read by `keys usage`).",
        ),
    ] = ACCESS_LOG_FILE,
) -> None:
    """Serve the query API over HTTP (gunicorn) against the configured stack."""
    with command_output():
        # The API needs gunicorn, the local extras: imported here so other commands do not.
        from cachesync.api.wiring import build_api
        from cachesync.local.api_server import serve as serve_api

        environment = cli_environment()
        values = dict(environment.values)
        secret_variable = variable_name("api_token_secret")
        secret_id_variable = variable_name("api_token_secret_id")
        if secret_variable not in values and secret_id_variable not in values:
            # Every worker must sign with the same secret: draw it here, before the fork.
            values[secret_variable] = secrets.token_urlsafe(48)
            errors().print(
                f"{secret_variable} is not set: signing pagination tokens with a random secret "
                "(tokens end with this server)",
                highlight=False,
            )
        settings = load_settings(ApiSettings, values)
        options = {service: environment.client_options(service) for service in ("dynamodb", "s3")}
        errors().print(
            f"cachesync API on http://{host}:{port}/v1 (docs: http://{host}:{port}/v1/docs)",
            highlight=False,
        )

        serve_api(
            lambda: build_api(settings, client_options=options, access_log_file=access_log),
            host=host,
            port=port,
            workers=workers,
        )
