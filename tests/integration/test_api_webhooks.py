"""/v1/webhooks over real HTTP: subscriptions in DynamoDB Local, pings to a real receiver."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from cachesync.api.keys import Scope
from cachesync.cli import app
from tests.integration.api_http import ApiWorld, api_world
from tests.support.webhook_receiver import ScriptedReceiver, scripted_receiver

__all__ = ["api_world"]  # the module's server fixture

ADMIN = (Scope.READ, Scope.ADMIN)


@pytest.fixture
def receiver() -> Any:
    with scripted_receiver([200]) as running:
        yield running


def subscribe(world: ApiWorld, key: str, url: str, **body: Any) -> Any:
    return world.request("POST", "/v1/webhooks", key=key, body={"url": url, **body})


def test_an_admin_subscribes_tests_and_sees_the_delivery(
    api_world: ApiWorld, receiver: ScriptedReceiver
) -> None:
    # Given an admin key for every customer
    admin = api_world.key(scopes=ADMIN)
    # When it subscribes the receiver, sends a test ping and lists the deliveries
    created = subscribe(api_world, admin, receiver.url, event_types=["document.created"])
    body = created.json()
    sub_id = body["subscription"]["id"]
    tested = api_world.request("POST", f"/v1/webhooks/{sub_id}/test", key=admin)
    deliveries = api_world.get(f"/v1/webhooks/{sub_id}/deliveries", admin)
    listed = api_world.get("/v1/webhooks", admin)
    # Then the subscription exists with its secret shown once, and the ping arrived signed
    assert created.status == 201, created.body
    assert body["secret"].startswith("whsec_")
    assert tested.status == 200
    assert tested.json()["delivered"] is True
    (request,) = receiver.received
    ping = Webhook(body["secret"]).verify(request.body, request.headers)
    assert ping["type"] == "webhook.ping"
    assert request.headers["webhook-id"] == tested.json()["webhook_id"]
    # And the attempt is recorded, and no listing shows a secret
    (attempt,) = deliveries.json()["items"]
    assert attempt["status_code"] == 200
    assert sub_id in [item["id"] for item in listed.json()["items"]]
    assert "whsec_" not in listed.body.decode()


def test_rotation_signs_with_both_secrets_during_the_grace(
    api_world: ApiWorld, receiver: ScriptedReceiver
) -> None:
    # Given a subscription and its first secret
    admin = api_world.key(scopes=ADMIN)
    created = subscribe(api_world, admin, receiver.url).json()
    sub_id, old_secret = created["subscription"]["id"], created["secret"]
    # When its secret is rotated with an hour's grace and a ping is sent
    rotated = api_world.request(
        "POST", f"/v1/webhooks/{sub_id}/rotate-secret?grace_seconds=3600", key=admin
    )
    api_world.request("POST", f"/v1/webhooks/{sub_id}/test", key=admin)
    # Then the new secret differs, and the ping verifies with the old secret and the new one
    new_secret = rotated.json()["secret"]
    assert rotated.status == 200
    assert new_secret != old_secret
    assert rotated.json()["previous_secret_valid_until"] is not None
    request = receiver.received[-1]
    assert Webhook(old_secret).verify(request.body, request.headers)["type"] == "webhook.ping"
    assert Webhook(new_secret).verify(request.body, request.headers)["type"] == "webhook.ping"


def test_a_restricted_admin_manages_only_its_customers_subscriptions(
    api_world: ApiWorld, receiver: ScriptedReceiver
) -> None:
    # Given an admin key for acme only, and one for everybody with a subscription of its own
    acme = api_world.key(("acme",), scopes=ADMIN)
    everybody = api_world.key(scopes=ADMIN)
    others = subscribe(api_world, everybody, receiver.url).json()["subscription"]["id"]
    # When acme subscribes to globex, then to acme, and lists and reads subscriptions
    refused = subscribe(api_world, acme, receiver.url, filters={"customers": ["globex"]})
    own = subscribe(api_world, acme, receiver.url, filters={"customers": ["acme"]})
    listed = [item["id"] for item in api_world.get("/v1/webhooks", acme).json()["items"]]
    hidden = api_world.get(f"/v1/webhooks/{others}", acme)
    # Then globex is refused (403), acme's own is listed, and the other's is not found
    assert refused.status == 403
    assert own.status == 201
    assert listed == [own.json()["subscription"]["id"]]
    assert hidden.status == 404


def test_patch_disable_delete_and_refusals(api_world: ApiWorld, receiver: ScriptedReceiver) -> None:
    admin = api_world.key(scopes=ADMIN)
    sub_id = subscribe(api_world, admin, receiver.url).json()["subscription"]["id"]
    # A subscription is paused, then removed
    paused = api_world.request(
        "PATCH", f"/v1/webhooks/{sub_id}", key=admin, body={"status": "disabled"}
    )
    removed = api_world.request("DELETE", f"/v1/webhooks/{sub_id}", key=admin)
    gone = api_world.get(f"/v1/webhooks/{sub_id}", admin)
    assert paused.json()["status"] == "disabled"
    assert removed.status == 204
    assert gone.status == 404
    # A private address is refused by the SSRF guard, a read key and no key are refused
    private = subscribe(api_world, admin, "http://10.1.2.3/hook")
    reader = subscribe(api_world, api_world.key(), receiver.url)
    anonymous = api_world.request("GET", "/v1/webhooks")
    assert private.status == 422
    assert "10.1.2.3" in private.json()["detail"]
    assert reader.status == 403
    assert anonymous.status == 401


def test_revoking_a_key_disables_the_subscriptions_it_made(
    api_world: ApiWorld, receiver: ScriptedReceiver, tmp_path: Path
) -> None:
    # Given an admin key with a subscription, and another admin's subscription
    leaving = api_world.key(scopes=ADMIN)
    staying = api_world.key(scopes=ADMIN)
    own = subscribe(api_world, leaving, receiver.url).json()["subscription"]["id"]
    other = subscribe(api_world, staying, receiver.url).json()["subscription"]["id"]
    # When the first key is revoked from the command line
    with contextlib.chdir(tmp_path):
        revoked = CliRunner().invoke(
            app, ["keys", "revoke", api_world.created_keys[leaving]], env=api_world.environment
        )
    # Then its subscription is disabled (nothing more is delivered to it), the other is not
    assert revoked.exit_code == 0, revoked.output
    assert own in revoked.output
    assert api_world.get(f"/v1/webhooks/{own}", staying).json()["status"] == "disabled"
    assert api_world.get(f"/v1/webhooks/{other}", staying).json()["status"] == "active"
