"""Commands on API keys: ``keys create``, ``keys list`` and ``keys revoke``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from cachesync import aws_clients
from cachesync.api.keys import ApiKeyRecord, Scope, new_api_key
from cachesync.cli.output import Results, command_output, errors
from cachesync.local.env_file import cli_environment
from cachesync.settings import ApiKeysCliSettings, load_settings
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore

# A create retries on a key id collision (48 random bits: practically never).
_CREATE_ATTEMPTS = 3


def _store() -> DynamoDBApiKeyStore:
    environment = cli_environment()
    settings = load_settings(ApiKeysCliSettings, environment.values)
    client = aws_clients.client("dynamodb", **environment.client_options("dynamodb"))
    return DynamoDBApiKeyStore(client, settings.api_keys_table_name)


def _described(record: ApiKeyRecord) -> dict[str, object]:
    return {
        "key_id": record.key_id,
        "name": record.name,
        "customers": list(record.customers),
        "scopes": [scope.value for scope in record.scopes],
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
    }


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    customers: Annotated[
        str, typer.Option(help="Comma list of customer codes the key may see, or '*' for all.")
    ],
    scopes: Annotated[str, typer.Option(help="Comma list of: read, write, admin.")] = "read",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Create an API key and print it, once: only its hash is stored."""
    with command_output() as results:
        try:
            wanted = [Scope(scope) for scope in _split(scopes)]
        except ValueError as error:
            raise typer.BadParameter(
                f"--scopes takes a comma list of: {', '.join(s.value for s in Scope)}"
            ) from error
        store = _store()
        for _ in range(_CREATE_ATTEMPTS):
            created = new_api_key(name, _split(customers), wanted, datetime.now(UTC))
            if store.create(created.record):
                break
        else:
            raise typer.BadParameter("could not draw a free key id; try again")
        if as_json:
            results.json(json.dumps({**_described(created.record), "key": created.key}))
            return
        results.console.print(created.key, highlight=False, soft_wrap=True)
        errors().print(
            f"key {created.record.key_id} ({name}) created: store it now, it is not shown again",
            highlight=False,
        )


def list_keys(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List API keys (never their secrets)."""
    with command_output() as results:
        records = sorted(_store().list(), key=lambda record: record.created_at)
        if as_json:
            results.json(json.dumps([_described(record) for record in records], indent=2))
            return
        _print_table(results, records)


def _print_table(results: Results, records: list[ApiKeyRecord]) -> None:
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
        results.console.print(
            f"{record.key_id}  {record.name}  customers={','.join(record.customers)}  "
            f"scopes={','.join(s.value for s in record.scopes)}  {state}",
            highlight=False,
            soft_wrap=True,
        )


def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the 12 hex digits after csk_).")],
) -> None:
    """Revoke an API key: it is refused from now on."""
    with command_output() as results:
        _store().revoke(key_id, datetime.now(UTC))
        results.console.print(f"revoked {key_id}", highlight=False)
