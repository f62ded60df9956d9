"""S3 object keys: decoding keys from event notifications, and what a key's path tells us."""

from __future__ import annotations

from typing import Final
from urllib.parse import unquote_plus

from cachesync.exceptions import InvalidKeyError

# S3 keys are at most 1,024 bytes of UTF-8.
MAX_KEY_BYTES: Final = 1024
CUSTOMERS_PREFIX: Final = "customers"
KIND_PREFIXES: Final = {"changes": "change", "announcements": "announcement"}


def decode_event_key(raw_key: str) -> str:
    """Decode a key as S3 notifications carry it (form-encoded: ``+`` is a space).

    This is the one place keys from S3 notifications and Batch Operations manifests are decoded;
    decoding twice would turn a literal ``%2B`` in a key into ``+`` and then into a space.
    """
    try:
        key = unquote_plus(raw_key, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as error:
        raise InvalidKeyError(raw_key, "percent escapes are not valid UTF-8") from error
    return validate_key(key)


def validate_key(key: str) -> str:
    """Return ``key`` if S3 could hold it, else raise :class:`InvalidKeyError`."""
    if not key:
        raise InvalidKeyError(key, "empty key")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidKeyError(key, f"longer than {MAX_KEY_BYTES} bytes")
    return key


def kind_from_key(key: str) -> str | None:
    """The document kind a key's path implies (``changes/...``, ``customers/x/changes/...``)."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == CUSTOMERS_PREFIX:
        parts = parts[2:]
    return KIND_PREFIXES.get(parts[0]) if len(parts) > 1 else None


def customer_from_key(key: str) -> str | None:
    """The customer code of a ``customers/<code>/...`` key, as written in the key."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == CUSTOMERS_PREFIX and parts[1].strip():
        return parts[1]
    return None
