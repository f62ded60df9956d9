"""Signed requests (HMAC-SHA256): a request that cannot be forged, altered or replayed.

A key created with ``--require-signing`` gets a signing secret besides its API key. The client
signs each request's method, path, sorted query, a timestamp, a nonce and the body's SHA-256
(:func:`canonical_request`) and sends three headers::

    X-Cachesync-Timestamp: 1780000000                 (Unix seconds)
    X-Cachesync-Nonce: 3f2b8c1d9e7a4b6f                (16-64 of A-Z a-z 0-9 _ -)
    X-Cachesync-Signature: v1=<hex HMAC-SHA256(signing secret, canonical request)>

The server refuses (401) a missing or wrong signature, a timestamp more than five minutes off
its clock, and a nonce it has seen in that window (nonces are kept, with a TTL, in the API usage
table). Signing secrets are not stored: each is derived from the server's signing master secret
(itself derived from the token secret: :func:`signing_master_secret`), the key id and the key's
current salt (:func:`signing_secret`), so a key's signing secret is shown once, at creation or
rotation; a rotation changes it, the previous one working during the grace period.
docs/API.md has a worked example.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol
from urllib.parse import quote, unquote

from cachesync.exceptions import CacheSyncError

ALGORITHM: Final = "CACHESYNC-HMAC-SHA256"
TIMESTAMP_HEADER: Final = "X-Cachesync-Timestamp"
NONCE_HEADER: Final = "X-Cachesync-Nonce"
SIGNATURE_HEADER: Final = "X-Cachesync-Signature"
SIGNATURE_VERSION: Final = "v1"
ALLOWED_SKEW_SECONDS: Final = 300
NONCE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# ASCII digits only ("²" is a digit to str.isdigit), and few enough for int() to take.
TIMESTAMP_PATTERN: Final = re.compile(r"^[0-9]{1,12}$")
# A "%" must start an escape: decoding a malformed one would differ between clients.
_MALFORMED_ESCAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
_UNRESERVED: Final = "-_.~"


class SignatureError(CacheSyncError):
    """A signed request failed verification (401); the message says which rule."""


class NonceStore(Protocol):
    """Remembers nonces for a while (``DynamoDBApiUsageStore``)."""

    def remember(self, key_id: str, nonce: str, expires_at: int) -> bool:
        """Record ``nonce`` of ``key_id`` until ``expires_at``; ``False`` if already seen."""
        ...


def canonical_path(path: str) -> str:
    """``path`` decoded, then each segment percent-encoded the one canonical way."""
    return "/".join(quote(unquote(segment), safe=_UNRESERVED) for segment in path.split("/"))


def canonical_query(parameters: Iterable[tuple[str, str]]) -> str:
    """Decoded name/value pairs, sorted by name then value, encoded, joined by ``&``."""
    encoded = sorted(
        (quote(name, safe=_UNRESERVED), quote(value, safe=_UNRESERVED))
        for name, value in parameters
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def canonical_request(
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    timestamp: str,
    nonce: str,
    body: bytes,
) -> str:
    """The text a request's signature covers: seven lines, no trailing newline."""
    return "\n".join(
        (
            ALGORITHM,
            method.upper(),
            canonical_path(path),
            canonical_query(query),
            timestamp,
            nonce,
            hashlib.sha256(body).hexdigest(),
        )
    )


def signature(secret: str, canonical: str) -> str:
    """The ``X-Cachesync-Signature`` value of ``canonical`` under ``secret``."""
    digest = hmac.new(secret.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signing_master_secret(token_secret: bytes) -> bytes:
    """The signing master secret, derived from the API's token secret
    (``CACHESYNC_API_TOKEN_SECRET`` or the Secrets Manager secret ``..._SECRET_ID`` names).

    Domain-separated (its own label), so a signing secret and a pagination token never share an
    HMAC key: no new secret to provision, and whoever can mint signing secrets (the API, and the
    CLI that creates keys) already holds the token secret.
    """
    return hmac.new(token_secret, b"cachesync-signing-master-v1", hashlib.sha256).digest()


def signing_secret(master_secret: bytes, key_id: str, salt: str = "") -> str:
    """The signing secret of ``key_id`` whose current salt is ``salt``.

    The salt changes with every rotation of the key: a rotation gives a new signing secret too,
    and the previous one is accepted while the previous API key secret is (its grace period).
    """
    label = f"cachesync-signing:{key_id}:{salt}" if salt else f"cachesync-signing:{key_id}"
    derived = hmac.new(master_secret, label.encode(), hashlib.sha256)
    return f"css_{derived.hexdigest()}"


def sign_headers(
    secret: str,
    method: str,
    path: str,
    query: Iterable[tuple[str, str]],
    body: bytes,
    *,
    timestamp: int,
    nonce: str,
) -> dict[str, str]:
    """The three headers that sign a request (for clients)."""
    canonical = canonical_request(method, path, query, str(timestamp), nonce, body)
    return {
        TIMESTAMP_HEADER: str(timestamp),
        NONCE_HEADER: nonce,
        SIGNATURE_HEADER: signature(secret, canonical),
    }


class SignatureVerifier:
    """Checks signed requests against the keys' derived secrets and the nonces seen."""

    def __init__(
        self, master_secret: bytes, nonces: NonceStore, *, clock: Callable[[], float]
    ) -> None:
        self._master = master_secret
        self._nonces = nonces
        self._clock = clock

    def verify(
        self,
        key_id: str,
        method: str,
        path: str,
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
        *,
        salts: Sequence[str] = ("",),
    ) -> None:
        """Return if the request is signed by ``key_id``'s secret, fresh and not replayed;
        raise :class:`SignatureError` saying why not. ``path``: as sent, still percent-encoded
        (API Gateway's ``path``, gunicorn's ``RAW_URI``); ``headers``: names in lower case;
        ``salts``: the key's salts whose signing secrets are valid now (see
        :meth:`ApiKeyRecord.signing_salts`)."""
        timestamp = headers.get(TIMESTAMP_HEADER.lower())
        nonce = headers.get(NONCE_HEADER.lower())
        sent = headers.get(SIGNATURE_HEADER.lower())
        if not (timestamp and nonce and sent):
            raise SignatureError(
                f"this API key requires signed requests: send {TIMESTAMP_HEADER}, "
                f"{NONCE_HEADER} and {SIGNATURE_HEADER}"
            )
        if not TIMESTAMP_PATTERN.match(timestamp):
            raise SignatureError(f"{TIMESTAMP_HEADER} must be Unix seconds")
        if abs(self._clock() - int(timestamp)) > ALLOWED_SKEW_SECONDS:
            raise SignatureError(
                f"{TIMESTAMP_HEADER} is more than {ALLOWED_SKEW_SECONDS} s from the server's clock"
            )
        if not NONCE_PATTERN.match(nonce):
            raise SignatureError(f"{NONCE_HEADER} must be 16-64 of A-Z a-z 0-9 _ -")
        if _MALFORMED_ESCAPE.search(path):
            raise SignatureError("the path has a '%' that starts no escape")
        canonical = canonical_request(method, path, query, timestamp, nonce, body)
        # Every candidate is compared (constant time each): which one matched is not timed.
        matches = [
            hmac.compare_digest(
                signature(signing_secret(self._master, key_id, salt), canonical).encode(),
                sent.encode(),
            )
            for salt in salts
        ]
        if not any(matches):
            raise SignatureError("the signature does not match the request")
        # Checked last: only a request that passed everything else uses up its nonce.
        if not self._nonces.remember(key_id, nonce, int(timestamp) + 2 * ALLOWED_SKEW_SECONDS):
            raise SignatureError(f"{NONCE_HEADER} was already used: a replayed request")
