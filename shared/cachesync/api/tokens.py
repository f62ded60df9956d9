"""Signed continuation tokens: HMAC-SHA256, bound to the caller's API key, with an expiry.

:class:`SigningSealer` is a :class:`~cachesync.stores.page_tokens.TokenSealer`: the page-token
module still owns the payload (the cursor and the fingerprint of the normalised query, so a token
from another query is refused there); this sealer wraps it in an envelope naming the key it was
issued to and when it expires, and signs the whole. A client can read a token's base64 but not
change one byte of it, nor use it with another key or after its expiry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from cachesync.exceptions import ConfigurationError, InvalidQueryError

_MAC_SIZE: Final = hashlib.sha256().digest_size
# Different secrets could sign other things one day: the label keeps token MACs apart.
_LABEL: Final = b"cachesync page token v1\x00"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SigningSealer:
    """Seals page-token payloads for one caller: ``mac || envelope``.

    The envelope is JSON: ``{"a": key id, "e": expiry (epoch seconds), "p": payload}``. The MAC
    is HMAC-SHA256 over a label and the envelope, keyed by the server's token secret.
    """

    def __init__(
        self,
        secret: bytes,
        key_id: str,
        *,
        lifetime: timedelta,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if len(secret) < 32:
            raise ConfigurationError("CACHESYNC_API_TOKEN_SECRET", "needs at least 32 bytes")
        self._secret = secret
        self._key_id = key_id
        self._lifetime = lifetime
        self._clock = clock

    def _mac(self, envelope: bytes) -> bytes:
        return hmac.new(self._secret, _LABEL + envelope, hashlib.sha256).digest()

    def seal(self, payload: bytes) -> bytes:
        """``payload`` signed for this caller, expiring after the lifetime."""
        expires = int((self._clock() + self._lifetime).timestamp())
        envelope = json.dumps(
            {"a": self._key_id, "e": expires, "p": payload.decode()}, separators=(",", ":")
        ).encode()
        return self._mac(envelope) + envelope

    def unseal(self, sealed: bytes) -> bytes:
        """The payload of ``sealed``; :class:`InvalidQueryError` saying why it is refused."""
        mac, envelope = sealed[:_MAC_SIZE], sealed[_MAC_SIZE:]
        if len(mac) < _MAC_SIZE or not hmac.compare_digest(mac, self._mac(envelope)):
            raise InvalidQueryError("next_token has been altered or was not issued by this API")
        try:
            fields = json.loads(envelope)
            owner, expires, payload = str(fields["a"]), int(fields["e"]), str(fields["p"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidQueryError("next_token was not issued by this API") from error
        if not hmac.compare_digest(owner.encode(), self._key_id.encode()):
            raise InvalidQueryError("next_token was issued to another API key")
        if self._clock().timestamp() >= expires:
            raise InvalidQueryError("next_token has expired: run the query again")
        return payload.encode()
