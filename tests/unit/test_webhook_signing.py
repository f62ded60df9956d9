"""Signatures made for deliveries verify with the standardwebhooks library, and only as sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from cachesync.webhooks.models import DeliveryMessage, SigningSecrets, new_signing_secret
from cachesync.webhooks.signing import signed_headers

SUBSCRIPTION = "sub_" + "1" * 24


def sent(secrets: SigningSecrets, now: datetime | None = None) -> tuple[str, dict[str, str]]:
    moment = now or datetime.now(UTC)
    message = DeliveryMessage.ping(SUBSCRIPTION, moment)
    return message.body(), signed_headers(message, secrets, moment)


def test_a_delivery_verifies_with_the_library() -> None:
    # Given a subscription's secret
    secret = new_signing_secret()
    # When a message is signed for it
    body, headers = sent(SigningSecrets(current=secret))
    # Then standardwebhooks' Webhook.verify accepts it and returns the payload
    payload = Webhook(secret).verify(body, headers)
    assert payload["type"] == "webhook.ping"
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    assert headers["webhook-signature"].startswith("v1,")


@pytest.mark.parametrize("alteration", ["body", "timestamp", "secret", "id"])
def test_an_altered_delivery_fails_verification(alteration: str) -> None:
    # Given a signed delivery
    secret = new_signing_secret()
    body, headers = sent(SigningSecrets(current=secret))
    verifier = Webhook(secret)
    # When one part of it is altered
    if alteration == "body":
        body = body.replace("webhook.ping", "webhook.pong")
    elif alteration == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    elif alteration == "secret":
        verifier = Webhook(new_signing_secret())
    else:
        headers["webhook-id"] = "msg_" + "f" * 32
    # Then verification fails
    with pytest.raises(WebhookVerificationError):
        verifier.verify(body, headers)


def test_during_rotation_both_secrets_sign_and_either_verifies() -> None:
    # Given secrets rotated an hour ago with a day's grace
    now = datetime.now(UTC)
    secrets = SigningSecrets(
        current=new_signing_secret(),
        previous=new_signing_secret(),
        previous_valid_until=now + timedelta(hours=23),
    )
    assert secrets.previous is not None
    # When a delivery is signed
    body, headers = sent(secrets, now)
    # Then it carries two signatures, and a receiver with either secret verifies it
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(secrets.current).verify(body, headers)
    Webhook(secrets.previous).verify(body, headers)


def test_after_the_grace_the_old_secret_no_longer_verifies() -> None:
    # Given secrets whose grace ended
    now = datetime.now(UTC)
    secrets = SigningSecrets(
        current=new_signing_secret(),
        previous=new_signing_secret(),
        previous_valid_until=now - timedelta(seconds=1),
    )
    assert secrets.previous is not None
    # When a delivery is signed
    body, headers = sent(secrets, now)
    # Then only the new secret verifies it
    Webhook(secrets.current).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secrets.previous).verify(body, headers)
