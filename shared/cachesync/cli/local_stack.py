"""Commands of the embedded local stack: ``cachesync local up`` and ``cachesync invoke``."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from cachesync.cli.output import command_output
from cachesync.exceptions import LocalStackError
from cachesync.local.api_process import (
    DEFAULT_WORKERS,
    LocalApiServer,
    api_export_lines,
    api_server_environment,
    create_demo_keys,
    draw_token_secret,
)
from cachesync.local.env_file import (
    LOCAL_ENV_FILE,
    LOCAL_STACK_PID_VARIABLE,
    cli_environment,
    export_to_process_environment,
    find_local_env_file,
    local_stack_pid,
    read_env_file,
)
from cachesync.settings import CliSettings, load_settings, variable_name
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore

FUNCTION_LOG_FILE: Final = LOCAL_ENV_FILE.parent / "functions.log"
API_LOG_FILE: Final = LOCAL_ENV_FILE.parent / "api.log"
# The port the printed webhook example listens on.
LISTEN_PORT_EXAMPLE: Final = 8787


def local_up(
    dynamodb_port: Annotated[int, typer.Option(help="DynamoDB Local port (0: a free one).")] = 0,
    moto_port: Annotated[int, typer.Option(help="moto server port for S3 and SQS (0: free).")] = 0,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep DynamoDB Local's data in this folder.")
    ] = None,
    demo: Annotated[bool, typer.Option(help="Load the demo documents.")] = True,
    demo_count: Annotated[int, typer.Option(help="How many demo documents.")] = 300,
    api_port: Annotated[
        int, typer.Option(min=0, max=65535, help="Query API port (0: a free one).")
    ] = 0,
    api_workers: Annotated[
        int, typer.Option(min=1, max=16, help="Query API worker processes.")
    ] = DEFAULT_WORKERS,
) -> None:
    """Start DynamoDB Local and moto (S3, SQS), provision them, pump S3 events to the
    handlers and the index's stream to the change feed and webhooks, serve the query API and the
    console with three demo keys, and run until Ctrl-C."""
    from cachesync.local import LocalStack
    from cachesync.local.pipeline import (
        LOCAL_FUNCTION_ENVIRONMENT,
        LOCAL_WEBHOOK_ENVIRONMENT,
        build_local_pipeline,
    )

    # The stack's own screen is its result: it keeps the real stdout (no command_output()).
    with command_output():
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
        command_output(),
        FUNCTION_LOG_FILE.open("a", encoding="utf-8") as function_log,
        contextlib.redirect_stdout(function_log),
        LocalStack(dynamodb_port=dynamodb_port, moto_port=moto_port, data_dir=data_dir) as stack,
    ):
        pipeline = build_local_pipeline(stack)
        keys = create_demo_keys(
            DynamoDBApiKeyStore(stack.client("dynamodb"), stack.resources.api_keys_table_name),
            datetime.now(UTC),
        )
        token_secret = draw_token_secret()
        api = LocalApiServer(
            api_server_environment(
                {**stack.environment(), **LOCAL_FUNCTION_ENVIRONMENT, **LOCAL_WEBHOOK_ENVIRONMENT},
                api_keys_table_name=stack.resources.api_keys_table_name,
                token_secret=token_secret,
            ),
            log_path=API_LOG_FILE,
            port=api_port,
            workers=api_workers,
        )
        try:
            api.start()
            if not api.wait_until_ready(stop=stop):
                return  # Ctrl-C while the API was starting
            _print_stack(screen, stack, api)
            pipeline.start()
            if demo:
                _load_demo(screen, stack, pipeline.events, demo_count, stop)
            if stop.is_set():
                return  # Ctrl-C while the demo documents were loading
            # Written once the demo documents are indexed: whoever sources the file (or copies
            # the exports) from then on queries a complete index.
            exports = [*stack.export_lines(), *api_export_lines(api.base_url, keys)]
            lines = [
                *exports,
                # In the file only (not shown): `cachesync keys create --require-signing`
                # derives signing secrets from it, as this stack's API does.
                f"export {variable_name('api_token_secret')}={shlex.quote(token_secret)}",
                f"export {LOCAL_STACK_PID_VARIABLE}={os.getpid()}",
            ]
            LOCAL_ENV_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
            _print_next_steps(screen, exports, api.console_url)
            stop.wait()
        finally:
            stop.set()
            pipeline.stop()
            api.stop()
            LOCAL_ENV_FILE.unlink(missing_ok=True)
    screen.print("stopped")


def _print_stack(screen: Console, stack: Any, api: LocalApiServer) -> None:
    """What runs where."""
    resources = stack.resources
    screen.print("[bold green]cachesync local stack is up[/bold green]")
    screen.print(f"  DynamoDB Local  {stack.dynamodb_endpoint}")
    screen.print(f"  moto (S3, SQS)  {stack.moto_endpoint}")
    screen.print(
        f"  event pump      {resources.created_queue_name}, {resources.removed_queue_name} "
        f"-> functions/ (their logs: {FUNCTION_LOG_FILE})",
        highlight=False,
        soft_wrap=True,
    )
    screen.print(
        f"  change feed     {resources.table_name} stream -> change_feed -> "
        f"{resources.webhook_delivery_queue_name} -> webhook_delivery",
        highlight=False,
        soft_wrap=True,
    )
    screen.print(
        f"  query API       {api.base_url}/v1  (Swagger UI: {api.docs_url}; "
        f"its log: {API_LOG_FILE})",
        highlight=False,
        soft_wrap=True,
    )
    screen.print(
        f"  web console     {api.console_url}  (sign in with $CACHESYNC_ADMIN_API_KEY)",
        highlight=False,
        soft_wrap=True,
    )


def _print_next_steps(screen: Console, exports: list[str], console_url: str) -> None:
    """The variables, and how to query, open the console and receive webhooks."""
    screen.print(
        f"\nIn another shell inside this checkout, `cachesync` finds the stack through "
        f"{LOCAL_ENV_FILE}; other tools need these variables (curl examples: README.md, "
        f"'Query API'):"
    )
    for line in exports:
        screen.print(f"  {line}", highlight=False, soft_wrap=True)
    screen.print(
        "\nTry: .venv/bin/cachesync query --customer acme   (Ctrl-C stops the stack)\n"
        f'  or: source {LOCAL_ENV_FILE} && curl -H "Authorization: Bearer '
        '$CACHESYNC_API_KEY" "$CACHESYNC_API_URL/v1/documents?customer=acme&limit=2"\n'
        f"\nConsole: {console_url}  (sign in with $CACHESYNC_ADMIN_API_KEY)\n"
        "\nWebhooks: subscribe a local receiver, then put a document to S3:\n"
        f"  .venv/bin/cachesync webhooks add --url http://127.0.0.1:{LISTEN_PORT_EXAMPLE}/\n"
        "      (prints the subscription id and its whsec_ secret)\n"
        f"  .venv/bin/cachesync webhooks listen --port {LISTEN_PORT_EXAMPLE} "
        "--secret whsec_...   (in a second shell)",
        highlight=False,
        soft_wrap=True,
    )


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


def invoke(
    function: Annotated[
        str, typer.Argument(help="A folder of functions/, e.g. s3_object_created.")
    ],
    event_file: Annotated[Path, typer.Argument(help="A JSON event, e.g. events/s3_put.json.")],
) -> None:
    """Run a Lambda handler locally on a JSON event, as the console's test button does."""
    from cachesync.local.lambda_functions import LocalLambdaContext, load_handler

    # The handler's logs and metrics go to stderr: stdout is the response alone (for jq).
    with command_output() as results:
        try:
            event = json.loads(event_file.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as error:
            # ValueError: not UTF-8 or not JSON; RecursionError: nested deeper than json recurses.
            raise typer.BadParameter(f"{event_file}: {error}") from error
        environment = cli_environment()
        load_settings(CliSettings, environment.values)
        export_to_process_environment(environment.values)
        handler = load_handler(function)
        response = handler(event, LocalLambdaContext(function_name=function))
        results.json(json.dumps(response, indent=2, default=str))
