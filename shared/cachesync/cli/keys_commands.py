"""Commands on API keys: ``keys create``, ``list``, ``rotate`` and ``revoke``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from cachesync import aws_clients
from cachesync.api.keys import (
    MAX_RATE_BURST,
    MAX_RATE_PER_MINUTE,
    ApiKeyRecord,
    Scope,
    new_api_key,
    parse_cidrs,
    rotated_api_key,
)
from cachesync.api.request_signing import signing_master_secret, signing_secret
from cachesync.cli.output import Results, command_output, errors
from cachesync.exceptions import InvalidRequestError
from cachesync.local.env_file import cli_environment
from cachesync.settings import ApiKeysCliSettings, load_settings, variable_name
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore
from cachesync.stores.dynamodb_webhooks import DynamoDBWebhookStore

# A create retries on a key id collision (48 random bits: practically never).
_CREATE_ATTEMPTS = 3


def _store() -> DynamoDBApiKeyStore:
    environment = cli_environment()
    settings = load_settings(ApiKeysCliSettings, environment.values)
    client = aws_clients.client("dynamodb", **environment.client_options("dynamodb"))
    return DynamoDBApiKeyStore(client, settings.api_keys_table_name)


def _signing_master() -> bytes:
    """The API's signing master secret: derived from its token secret, which the CLI reads
    from the same variables as the API (``CACHESYNC_API_TOKEN_SECRET`` or ``..._SECRET_ID``)."""
    # Imported here: the wiring pulls in the API's dependencies, needed by this path only.
    from cachesync.api.wiring import token_secret

    environment = cli_environment()
    settings = load_settings(ApiKeysCliSettings, environment.values)
    if settings.api_token_secret is None and settings.api_token_secret_id is None:
        raise typer.BadParameter(
            f"signing secrets derive from the API's token secret: set "
            f"{variable_name('api_token_secret')} or {variable_name('api_token_secret_id')} "
            "as the API has it"
        )
    # A secret id is read from Secrets Manager with the SDK's defaults (the local stack sets
    # the secret itself).
    return signing_master_secret(token_secret(settings))


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
        "allowed_cidrs": list(record.allowed_cidrs),
        "requires_signing": record.requires_signing,
        "rate_per_minute": record.rate_per_minute,
        "rate_burst": record.rate_burst,
    }


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def create(
    name: Annotated[str, typer.Option(help="Who or what the key is for.")],
    customers: Annotated[
        str, typer.Option(help="Comma list of customer codes the key may see, or '*' for all.")
    ],
    scopes: Annotated[str, typer.Option(help="Comma list of: read, write, admin.")] = "read",
    allow_cidr: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-cidr",
            help="A network the key may be used from (IPv4 or IPv6 CIDR); repeatable. "
            "None: any address.",
        ),
    ] = None,
    require_signing: Annotated[
        bool,
        typer.Option(
            "--require-signing",
            help="Every request must be signed; prints the key's signing secret once.",
        ),
    ] = False,
    rate_per_minute: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_RATE_PER_MINUTE, help="The key's own limit per minute (default: API's)."
        ),
    ] = None,
    burst: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_RATE_BURST, help="The key's own limit per second (default: API's)."
        ),
    ] = None,
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
        try:
            networks = parse_cidrs(allow_cidr or ())
        except InvalidRequestError as error:
            raise typer.BadParameter(f"--allow-cidr: {error.reason}") from error
        # Before the key exists: a missing token secret must not leave a key nobody can sign for.
        master = _signing_master() if require_signing else None
        store = _store()
        for _ in range(_CREATE_ATTEMPTS):
            created = new_api_key(
                name,
                _split(customers),
                wanted,
                datetime.now(UTC),
                allowed_cidrs=networks,
                requires_signing=require_signing,
                rate_per_minute=rate_per_minute,
                rate_burst=burst,
            )
            if store.create(created.record):
                break
        else:
            raise typer.BadParameter("could not draw a free key id; try again")
        record = created.record
        signing = signing_secret(master, record.key_id, record.salt) if master is not None else None
        if as_json:
            shown = {**_described(record), "key": created.key}
            if signing is not None:
                shown["signing_secret"] = signing
            results.json(json.dumps(shown))
            return
        results.console.print(created.key, highlight=False, soft_wrap=True)
        if signing is not None:
            results.console.print(signing, highlight=False, soft_wrap=True)
        errors().print(
            f"key {record.key_id} ({name}) created: store it now"
            + (" with its signing secret (second line)" if signing else "")
            + ", it is not shown again",
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
        options = "".join(
            (
                f"  cidrs={','.join(record.allowed_cidrs)}" if record.allowed_cidrs else "",
                "  signed" if record.requires_signing else "",
                f"  rate={record.rate_per_minute}/min" if record.rate_per_minute else "",
                f"  burst={record.rate_burst}/s" if record.rate_burst else "",
            )
        )
        results.console.print(
            f"{record.key_id}  {record.name}  customers={','.join(record.customers)}  "
            f"scopes={','.join(s.value for s in record.scopes)}{options}  {state}",
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
        master = _signing_master() if record.requires_signing else None
        rotated = rotated_api_key(record, datetime.now(UTC), period)
        if not store.rotate(record, rotated.record):
            raise typer.BadParameter(f"API key {key_id} changed meanwhile: look and try again")
        # The signing secret follows the key's salt: a rotation changes it too.
        signing = (
            signing_secret(master, key_id, rotated.record.salt) if master is not None else None
        )
        if as_json:
            shown = {**_described(rotated.record), "key": rotated.key}
            if signing is not None:
                shown["signing_secret"] = signing
            results.json(json.dumps(shown))
            return
        results.console.print(rotated.key, highlight=False, soft_wrap=True)
        if signing is not None:
            results.console.print(signing, highlight=False, soft_wrap=True)
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
    """Revoke an API key: it is refused from now on, and the webhook subscriptions it made are
    disabled (they would otherwise keep delivering its customers' changes)."""
    with command_output() as results:
        _store().revoke(key_id, datetime.now(UTC))
        results.console.print(f"revoked {key_id}", highlight=False)
        disabled = _webhooks().disable_owned_by(key_id)
        if disabled:
            results.console.print(
                f"disabled {len(disabled)} webhook subscription(s) of {key_id}: "
                + " ".join(disabled),
                highlight=False,
                soft_wrap=True,
            )


def _webhooks() -> DynamoDBWebhookStore:
    environment = cli_environment()
    settings = load_settings(ApiKeysCliSettings, environment.values)
    client = aws_clients.client("dynamodb", **environment.client_options("dynamodb"))
    return DynamoDBWebhookStore(
        client, settings.webhooks_table_name, settings.webhook_deliveries_table_name
    )
