"""Commands on webhook subscriptions: ``webhooks add``, ``list``, ``remove``,
``rotate-secret``, ``test``, and ``listen`` (a local receiver that verifies signatures)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any, Final

import typer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cachesync.change_events import EventType

# The same --grace syntax as `keys rotate` (24h, 90m, 7d, 0s; at most 30d).
from cachesync.cli.keys_commands import _duration
from cachesync.cli.output import Results, command_output, errors
from cachesync.local.env_file import cli_environment
from cachesync.settings import WebhookDeliverySettings, load_settings
from cachesync.webhooks.models import (
    Subscription,
    SubscriptionFilters,
)
from cachesync.webhooks.subscriptions import Owner, SubscriptionManager
from cachesync.webhooks.wiring import build_webhooks

# Subscriptions made from the command line belong to the operator (AWS credentials), who sees
# every customer; the API records the admin key's id and customers instead.
CLI_OWNER: Final = "cli"
# A receiver reads at most this much of a request: deliveries are small JSON documents.
_MAX_BODY_BYTES: Final = 1_048_576
_ALL_EVENTS: Final = ",".join(event_type.value for event_type in EventType)


# The operator (AWS credentials) sees every customer.
OPERATOR: Final = Owner(key_id=CLI_OWNER, customers=None)


def _manager() -> SubscriptionManager:
    environment = cli_environment()
    settings = load_settings(WebhookDeliverySettings, environment.values)
    components = build_webhooks(settings, environment.client_options("dynamodb"))
    return SubscriptionManager(
        components.store, components.deliverer, allow_loopback=settings.webhook_allow_loopback
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _described(subscription: Subscription) -> dict[str, Any]:
    described = subscription.model_dump(mode="json", exclude={"secrets"})
    described["previous_secret_valid_until"] = (
        subscription.secrets.previous_valid_until.isoformat()
        if subscription.secrets.previous_valid_until
        else None
    )
    return described


def add(
    url: Annotated[
        str, typer.Option(help="Where deliveries are POSTed (https outside the local stack).")
    ],
    events: Annotated[str, typer.Option(help="Comma list of event types.")] = _ALL_EVENTS,
    customers: Annotated[str, typer.Option(help="Comma list: only these customers.")] = "",
    kinds: Annotated[str, typer.Option(help="Comma list: only these kinds.")] = "",
    statuses: Annotated[str, typer.Option(help="Comma list: only these statuses.")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Subscribe a URL to document events; prints its signing secret, once."""
    with command_output() as results:
        try:
            event_types = tuple(EventType(name) for name in _split(events))
        except ValueError as error:
            raise typer.BadParameter(
                f"--events takes a comma list of: {', '.join(t.value for t in EventType)}"
            ) from error
        if not event_types:
            raise typer.BadParameter("--events names no event type")
        filters = SubscriptionFilters(
            customers=_split(customers), kinds=_split(kinds), statuses=_split(statuses)
        )
        created = _manager().create(OPERATOR, url, event_types, filters)
        subscription = created.subscription
        secret = subscription.secrets.current
        if as_json:
            results.json(json.dumps({**_described(subscription), "secret": secret}))
            return
        results.console.print(f"{subscription.id} {secret}", highlight=False, soft_wrap=True)
        errors().print(
            f"subscription {subscription.id} created: store its secret now, it is not shown again",
            highlight=False,
        )


def list_subscriptions(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List webhook subscriptions (never their secrets)."""
    with command_output() as results:
        found = _manager().list_for(OPERATOR)
        if as_json:
            results.json(json.dumps([_described(s) for s in found], indent=2))
            return
        _print_table(results, found)


def _print_table(results: Results, subscriptions: list[Subscription]) -> None:
    for subscription in subscriptions:
        filters = subscription.filters
        wanted = " ".join(
            f"{name}={','.join(values)}"
            for name, values in (
                ("customers", filters.customers),
                ("kinds", filters.kinds),
                ("statuses", filters.statuses),
            )
            if values
        )
        results.console.print(
            f"{subscription.id}  {subscription.url}  "
            f"events={','.join(t.value for t in subscription.event_types)}  "
            f"{subscription.status.value} (failures {subscription.consecutive_failures})"
            + (f"  {wanted}" if wanted else ""),
            highlight=False,
            soft_wrap=True,
        )


def remove(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...).")],
) -> None:
    """Delete a subscription: nothing more is delivered to it."""
    with command_output() as results:
        _manager().delete(OPERATOR, subscription_id)
        results.console.print(f"removed {subscription_id}", highlight=False)


def rotate_secret(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...).")],
    grace: Annotated[
        str, typer.Option(help="How long the old secret keeps signing too: e.g. 24h, 0s.")
    ] = "24h",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Give a subscription a new secret, printed once; both sign until the grace ends."""
    with command_output() as results:
        period = _duration(grace)
        new = _manager().rotate_secret(OPERATOR, subscription_id, period)
        rotated, secret = new.subscription, new.secret
        if as_json:
            results.json(json.dumps({**_described(rotated), "secret": secret}))
            return
        results.console.print(secret, highlight=False, soft_wrap=True)
        until = rotated.secrets.previous_valid_until
        errors().print(
            f"subscription {subscription_id}: new secret, store it now; the old one also signs "
            f"until {until:%Y-%m-%d %H:%M:%S}Z",
            highlight=False,
        )


def send_test(
    subscription_id: Annotated[str, typer.Argument(help="The subscription id (sub_...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Send a signed webhook.ping now and print what the receiver answered."""
    with command_output() as results:
        manager = _manager()
        subscription = manager.get(OPERATOR, subscription_id)
        attempt = manager.test(OPERATOR, subscription_id)
        if as_json:
            results.json(attempt.model_dump_json())
        else:
            answer = (
                f"HTTP {attempt.status_code}" if attempt.status_code is not None else attempt.error
            )
            verdict = "delivered" if attempt.delivered else "failed"
            results.console.print(
                f"{verdict} {attempt.webhook_id} to {subscription.url}: {answer} "
                f"in {attempt.latency_ms} ms",
                highlight=False,
                soft_wrap=True,
            )
        if not attempt.delivered:
            raise typer.Exit(1)


def listen(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")],
    secret: Annotated[
        list[str],
        typer.Option(help="A whsec_ secret to verify with (repeat it during a rotation)."),
    ],
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
) -> None:
    """Receive webhooks locally: print each verified delivery, refuse a bad signature (400)."""
    verifiers = [Webhook(value) for value in secret]
    server = ThreadingHTTPServer((host, port), _receiver(verifiers))
    errors().print(f"listening on http://{host}:{server.server_port}/", highlight=False)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _receiver(verifiers: list[Webhook]) -> type[BaseHTTPRequestHandler]:
    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_BODY_BYTES:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large")
                return
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            payload = _verified(verifiers, body, headers)
            if payload is None:
                sys.stderr.write(
                    f"rejected {headers.get('webhook-id', '-')}: signature does not verify\n"
                )
                sys.stderr.flush()
                self._answer(HTTPStatus.BAD_REQUEST, "invalid signature")
                return
            sys.stdout.write(_line(headers["webhook-id"], payload) + "\n")
            sys.stdout.flush()
            self._answer(HTTPStatus.OK, "ok")

        def _answer(self, status: HTTPStatus, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the one line per delivery is the output."""

    return Receiver


def _verified(verifiers: list[Webhook], body: bytes, headers: dict[str, str]) -> Any:
    for verifier in verifiers:
        try:
            return verifier.verify(body, headers)
        except WebhookVerificationError:
            continue
    return None


def _line(webhook_id: str, payload: Any) -> str:
    data = payload.get("data", {}) if isinstance(payload, dict) else {}
    document = data.get("document") or data.get("previous") or {}
    where = f"s3://{data['bucket']}/{data['key']}" if "bucket" in data else ""
    status = document.get("status", "")
    changed = ",".join(data.get("changed", ()))
    parts = [
        datetime.now(UTC).strftime("%H:%M:%S"),
        webhook_id,
        str(payload.get("type", "?")),
        where,
        f"status={status}" if status else "",
        f"changed={changed}" if changed else "",
    ]
    return " ".join(part for part in parts if part)
