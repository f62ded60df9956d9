"""Standard Webhooks signatures, made by the ``standardwebhooks`` package itself."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from standardwebhooks.webhooks import Webhook

from cachesync.webhooks.models import DeliveryMessage, SigningSecrets

ID_HEADER: Final = "webhook-id"
TIMESTAMP_HEADER: Final = "webhook-timestamp"
SIGNATURE_HEADER: Final = "webhook-signature"


def signed_headers(
    message: DeliveryMessage, secrets: SigningSecrets, now: datetime
) -> dict[str, str]:
    """The three Standard Webhooks headers of ``message`` sent at ``now``.

    During a rotation's grace both secrets sign, space separated (the spec's list of
    signatures): a receiver still holding the old secret verifies, so does one with the new.
    """
    # Whole seconds: the header carries them, and the signed content must say the same.
    moment = now.astimezone(UTC).replace(microsecond=0)
    body = message.body()
    signatures = [
        Webhook(secret).sign(message.webhook_id, moment, body) for secret in secrets.signing(now)
    ]
    return {
        ID_HEADER: message.webhook_id,
        TIMESTAMP_HEADER: str(int(moment.timestamp())),
        SIGNATURE_HEADER: " ".join(signatures),
    }
