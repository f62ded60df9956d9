"""The ``cachesync`` application: every command registered, and the script's entry point."""

from __future__ import annotations

import sys
import warnings

import typer

from cachesync.cli import (
    api_commands,
    index_commands,
    jobs,
    keys_commands,
    local_stack,
    usage_commands,
    webhooks_commands,
)
from cachesync.cli.output import EXIT_ERROR, show_usage_error

app = typer.Typer(
    name="cachesync",
    help="Keep a DynamoDB index in step with JSON documents in S3.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
local_app = typer.Typer(help="The embedded local AWS stack.", no_args_is_help=True)
app.add_typer(local_app, name="local")
api_app = typer.Typer(help="The query API over HTTP.", no_args_is_help=True)
app.add_typer(api_app, name="api")
keys_app = typer.Typer(help="API keys of the query API.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(help="Webhook subscriptions and a local receiver.", no_args_is_help=True)
app.add_typer(webhooks_app, name="webhooks")

local_app.command("up")(local_stack.local_up)
app.command()(local_stack.invoke)
app.command()(index_commands.query)
app.command()(index_commands.get)
app.command()(index_commands.put)
app.command()(index_commands.delete)
app.command()(jobs.backfill)
app.command()(jobs.verify)
api_app.command("serve")(api_commands.serve)
keys_app.command("create")(keys_commands.create)
keys_app.command("list")(keys_commands.list_keys)
keys_app.command("rotate")(keys_commands.rotate)
keys_app.command("revoke")(keys_commands.revoke)
keys_app.command("usage")(usage_commands.usage)
webhooks_app.command("add")(webhooks_commands.add)
webhooks_app.command("list")(webhooks_commands.list_subscriptions)
webhooks_app.command("remove")(webhooks_commands.remove)
webhooks_app.command("rotate-secret")(webhooks_commands.rotate_secret)
webhooks_app.command("test")(webhooks_commands.send_test)
webhooks_app.command("listen")(webhooks_commands.listen)


def main() -> None:
    """Entry point of the ``cachesync`` script."""
    # Powertools warns outside Lambda: no remaining time to read (idempotency), no metric
    # recorded by an invocation (invoke). Neither is the user's business on a command line.
    warnings.filterwarnings("ignore", message="Couldn't determine the remaining time left")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    # Not standalone: usage errors come back here, to be printed on one line on a pipe.
    try:
        code = app(standalone_mode=False)
    except typer.TyperException as error:
        show_usage_error(error)
        code = error.exit_code
    except typer.Abort:
        sys.stderr.write("aborted\n")
        code = EXIT_ERROR
    sys.exit(code if isinstance(code, int) else 0)
