"""Commands on API keys: ``keys create``, ``list``, ``rotate`` and ``revoke``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cachesync import aws_clients
from cachesync.api.keys import ApiKeyRecord, Scope, new_api_key, rotated_api_key
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
        "rotated_at": record.rotated_at.isoformat() if record.rotated_at else None,
        "previous_secret_valid_until": (
            record.previous_valid_until.isoformat() if record.previous_valid_until else None
        ),
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
    now = datetime.now(UTC)
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
        until = record.previous_valid_until
        if not record.revoked_at and until is not None and until > now:
            state += f" (previous secret until {until:%Y-%m-%d %H:%M}Z)"
        results.console.print(
            f"{record.key_id}  {record.name}  customers={','.join(record.customers)}  "
            f"scopes={','.join(s.value for s in record.scopes)}  {state}",
            highlight=False,
            soft_wrap=True,
        )


def rotate(
    key_id: Annotated[str, typer.Argument(help="The key id (the 12 hex digits after csk_).")],
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps working: e.g. 24h, 90m, 7d, 0s.")
    ] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Give an API key a new secret, printed once; the old one works until the grace ends."""
    with command_output() as results:
        period = _duration(grace)
        store = _store()
        record = store.get(key_id)
        if record is None or record.revoked_at is not None:
            raise typer.BadParameter(f"no active API key {key_id}")
        rotated = rotated_api_key(record, datetime.now(UTC), period)
        if not store.rotate(record, rotated.record):
            raise typer.BadParameter(f"API key {key_id} changed meanwhile: look and try again")
        if as_json:
            results.json(json.dumps({**_described(rotated.record), "key": rotated.key}))
            return
        results.console.print(rotated.key, highlight=False, soft_wrap=True)
        errors().print(
            f"key {key_id} rotated: store the new key now, it is not shown again; the old one "
            f"works until {rotated.record.previous_valid_until:%Y-%m-%d %H:%M}Z",
            highlight=False,
        )


def _duration(text: str) -> timedelta:
    """``24h``, ``90m``, ``7d``, ``30s`` as a duration (at most 30 days)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = text[:-1], text[-1:]
    if unit not in units or not number.isdigit():
        raise typer.BadParameter("--grace takes a whole number and s, m, h or d: e.g. 24h")
    period = timedelta(seconds=int(number) * units[unit])
    if period > timedelta(days=30):
        raise typer.BadParameter("--grace is at most 30d")
    return period


def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the 12 hex digits after csk_).")],
) -> None:
    """Revoke an API key: it is refused from now on."""
    with command_output() as results:
        _store().revoke(key_id, datetime.now(UTC))
        results.console.print(f"revoked {key_id}", highlight=False)
