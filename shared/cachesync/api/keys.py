"""API keys: their format, how a secret is hashed and checked, and what a key may do.

A key reads ``csk_<key id>_<secret>``: the key id (public, 12 hex digits) finds the stored
record in one read, the secret (256 random bits) proves possession. The store keeps a salted
SHA-256 of the secret, never the secret; a slow password hash buys nothing for 256 random bits.
Secrets are compared in constant time, and a key never appears in a log or an error message.

Each API process keeps the records it read for a few seconds (:class:`KeyRecordCache`): a
revocation therefore takes effect within that TTL (``CACHESYNC_API_KEY_CACHE_TTL_SECONDS``), not
at once. The secret is still hashed and compared on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from cachetools import TTLCache
from pydantic import BaseModel, ConfigDict

from cachesync.clock import utc_now
from cachesync.documents import normalise_customers
from cachesync.exceptions import CacheSyncError, InvalidRequestError

KEY_PREFIX: Final = "csk_"
KEY_ID_LENGTH: Final = 12
ALL_CUSTOMERS: Final = "*"
# The counters' caps (api/request_limits.py LimitPolicy): one key's requests update one item.
MAX_RATE_PER_MINUTE: Final = 60_000
MAX_RATE_BURST: Final = 1_000
# Compared against when the key id is unknown, so that an unknown id costs the same as a
# wrong secret.
_DUMMY_SALT: Final = "00" * 16
_DUMMY_HASH: Final = "00" * 32


class Scope(StrEnum):
    """What a key may do."""

    READ = "read"
    """Query the index and read documents."""
    WRITE = "write"
    """Write and delete documents."""
    ADMIN = "admin"
    """Manage API keys (reserved for the key management routes)."""


class InvalidApiKeyError(CacheSyncError):
    """A presented API key is malformed, unknown, revoked or wrong (never says which key)."""


class ApiKeyRecord(BaseModel):
    """A stored API key: who it is, what it may do, and the hash of its secret."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    salt: str
    secret_hash: str
    customers: tuple[str, ...]
    """Customer codes the key may see; ``("*",)`` for every customer."""
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None = None
    rotated_at: datetime | None = None
    previous_salt: str | None = None
    previous_secret_hash: str | None = None
    previous_valid_until: datetime | None = None
    """After a rotation, the previous secret works until then (its grace period)."""
    allowed_cidrs: tuple[str, ...] = ()
    """Networks (IPv4 and IPv6 CIDRs) the key may be used from; empty: any address."""
    requires_signing: bool = False
    """Every request must be signed (``api/request_signing.py``); unsigned ones are refused."""
    rate_per_minute: int | None = None
    """The key's own limit per minute; ``None``: the API's default."""
    rate_burst: int | None = None
    """The key's own limit per second; ``None``: the API's default."""

    def signing_salts(self, now: datetime) -> tuple[str, ...]:
        """The salts whose signing secrets this key accepts at ``now``: the current one, and
        the previous one during a rotation's grace period."""
        until = self.previous_valid_until
        if self.previous_salt and until is not None and now < until:
            return (self.salt, self.previous_salt)
        return (self.salt,)


class Principal(BaseModel):
    """The caller of a request, once its key is verified."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    scopes: frozenset[Scope]
    customers: tuple[str, ...] | None
    """The customers the caller may see; ``None``: every customer."""

    def may_see(self, customers: Iterable[str]) -> bool:
        """Whether a document naming ``customers`` is visible to this caller."""
        if self.customers is None:
            return True
        return any(customer in self.customers for customer in customers)


class NewApiKey(BaseModel):
    """A key just created: its record to store and the full key, shown to its owner once."""

    model_config = ConfigDict(frozen=True)

    record: ApiKeyRecord
    key: str


def parse_cidrs(cidrs: Iterable[str]) -> tuple[str, ...]:
    """``cidrs`` in their normal form (``10.1.2.3/8`` is refused: host bits set), each once;
    :class:`InvalidRequestError` naming the first that is not an IPv4 or IPv6 network."""
    networks: list[str] = []
    for text in cidrs:
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as error:
            raise InvalidRequestError(
                f"{text.strip()!r} is not an IPv4 or IPv6 network in CIDR form ({error})",
                "allowed_cidrs",
            ) from error
        networks.append(str(network))
    return tuple(dict.fromkeys(networks))


def address_allowed(record: ApiKeyRecord, source_ip: str | None) -> bool:
    """Whether a request from ``source_ip`` may use the key (always, without an allowlist).

    An IPv4 address seen through an IPv6 socket (``::ffff:10.0.0.1``) counts as the IPv4 one;
    an unknown or unparsable address is refused by an allowlist.
    """
    if not record.allowed_cidrs:
        return True
    if not source_ip:
        return False
    try:
        address = ipaddress.ip_address(source_ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(cidr) for cidr in record.allowed_cidrs)


def hash_secret(salt: str, secret: str) -> str:
    """The stored form of ``secret``: SHA-256 over the key's salt and the secret, hex."""
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode()).hexdigest()


def new_api_key(
    name: str,
    customers: Iterable[str],
    scopes: Iterable[Scope],
    now: datetime,
    *,
    allowed_cidrs: Iterable[str] = (),
    requires_signing: bool = False,
    rate_per_minute: int | None = None,
    rate_burst: int | None = None,
) -> NewApiKey:
    """A fresh key for ``name``: random key id, secret and salt; optionally pinned to networks,
    signing required, and its own rate limits (``None``: the API's defaults)."""
    networks = parse_cidrs(allowed_cidrs)
    for value, field_name, most in (
        (rate_per_minute, "rate_per_minute", MAX_RATE_PER_MINUTE),
        (rate_burst, "rate_burst", MAX_RATE_BURST),
    ):
        if value is not None and not 1 <= value <= most:
            raise InvalidRequestError(f"{field_name} must be 1 to {most}", field_name)
    listed = list(customers)
    codes = (ALL_CUSTOMERS,) if ALL_CUSTOMERS in listed else tuple(normalise_customers(listed))
    if not codes:
        raise InvalidRequestError("a key needs at least one customer, or '*' for all", "customers")
    wanted = tuple(dict.fromkeys(scopes))
    if not wanted:
        raise InvalidRequestError("a key needs at least one scope", "scopes")
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    record = ApiKeyRecord(
        key_id=key_id,
        name=name,
        salt=salt,
        secret_hash=hash_secret(salt, secret),
        customers=codes,
        scopes=wanted,
        created_at=now,
        allowed_cidrs=networks,
        requires_signing=requires_signing,
        rate_per_minute=rate_per_minute,
        rate_burst=rate_burst,
    )
    return NewApiKey(record=record, key=f"{KEY_PREFIX}{key_id}_{secret}")


def rotated_api_key(record: ApiKeyRecord, now: datetime, grace: timedelta) -> NewApiKey:
    """``record`` with a new secret (same key id, customers and scopes); its current secret
    keeps working for ``grace``. A secret still in an earlier grace period stops at once."""
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    rotated = record.model_copy(
        update={
            "salt": salt,
            "secret_hash": hash_secret(salt, secret),
            "rotated_at": now,
            "previous_salt": record.salt,
            "previous_secret_hash": record.secret_hash,
            "previous_valid_until": now + grace,
        }
    )
    return NewApiKey(record=rotated, key=f"{KEY_PREFIX}{record.key_id}_{secret}")


def split_key(key: str) -> tuple[str, str]:
    """The key id and secret of a presented key; :class:`InvalidApiKeyError` if malformed."""
    key_id = key[len(KEY_PREFIX) : len(KEY_PREFIX) + KEY_ID_LENGTH]
    separator = len(KEY_PREFIX) + KEY_ID_LENGTH
    secret = key[separator + 1 :]
    well_formed = (
        key.startswith(KEY_PREFIX)
        and len(key) > separator + 1
        and key[separator] == "_"
        and all(c in "0123456789abcdef" for c in key_id)
    )
    if not well_formed:
        raise InvalidApiKeyError("the API key is malformed")
    return key_id, secret


def verify(record: ApiKeyRecord | None, secret: str, now: datetime | None = None) -> Principal:
    """The principal of a key whose stored record is ``record`` and presented secret ``secret``.

    Raises :class:`InvalidApiKeyError` for an unknown (``None``), revoked or wrong key, or for a
    rotated-away secret past its grace period; hash comparisons run in constant time, and run
    even for an unknown key.
    """
    salt, expected = (record.salt, record.secret_hash) if record else (_DUMMY_SALT, _DUMMY_HASH)
    current = hmac.compare_digest(hash_secret(salt, secret), expected)
    previous = False
    if record is not None and record.previous_salt and record.previous_secret_hash:
        previous = hmac.compare_digest(
            hash_secret(record.previous_salt, secret), record.previous_secret_hash
        )
    if record is None or not (current or previous):
        raise InvalidApiKeyError("the API key is not valid")
    if record.revoked_at is not None:
        raise InvalidApiKeyError("the API key has been revoked")
    until = record.previous_valid_until
    if not current and (until is None or (now or utc_now()) >= until):
        rotated = f" at {record.rotated_at:%Y-%m-%dT%H:%M:%SZ}" if record.rotated_at else ""
        ended = f"{until:%Y-%m-%dT%H:%M:%SZ}" if until else "at once"
        raise InvalidApiKeyError(
            f"this secret of the API key was rotated{rotated}; it stopped working {ended}: "
            "use the new one"
        )
    return Principal(
        key_id=record.key_id,
        name=record.name,
        scopes=frozenset(record.scopes),
        customers=None if ALL_CUSTOMERS in record.customers else record.customers,
    )


class KeyRecordCache:
    """Key records recently read, per process, for ``ttl_seconds`` (0: every lookup reads).

    Without it every authenticated request costs one consistent ``GetItem``, the largest part
    of a cached answer's time. Only records found are kept: a key created a moment ago works at
    once, and unknown key ids cannot push real ones out. A revoked record is kept like any other
    (it is refused on every hit); a key revoked *after* it was read here is accepted until its
    entry expires, so revocation takes effect within the TTL. Bounded (least recently used out),
    behind a lock (cachetools is not thread-safe).
    """

    def __init__(
        self,
        lookup: Callable[[str], ApiKeyRecord | None],
        *,
        ttl_seconds: float,
        max_entries: int = 4096,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._enabled = ttl_seconds > 0
        self._records: TTLCache[str, ApiKeyRecord] = TTLCache(
            maxsize=max(1, max_entries), ttl=max(ttl_seconds, 0.001), timer=timer
        )
        self._lock = threading.Lock()

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record of ``key_id``: from memory within the TTL, else from ``lookup``."""
        if not self._enabled:
            return self._lookup(key_id)
        with self._lock:
            record = self._records.get(key_id)
        if record is None:
            # Read outside the lock: a slow read must not hold up other keys' hits.
            record = self._lookup(key_id)
            if record is not None:
                with self._lock:
                    self._records[key_id] = record
        return record
