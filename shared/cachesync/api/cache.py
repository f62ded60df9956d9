"""The API's per-process memory cache: query pages and document reads, bounded, with a TTL.

Two ``cachetools.TTLCache`` (LRU eviction past ``max_entries``, expiry after ``ttl``), each
behind a lock (gunicorn's threads share them; cachetools is not thread-safe).

Tenancy: a query page is cached under the caller's key id and customers, so one caller never
gets a page computed for another (its next_token is bound to the key anyway). A document is
cached under its S3 key with the customers it names; the caller's tenancy is checked on every
hit, exactly as on a miss.

Invalidation: a write or delete through this process evicts its document and every cached query
page (which pages hold a key is unknown without reading them); everything else expires by TTL,
so other processes' writes show after at most ``ttl``. Clients revalidate documents by ETag.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TTLCache

from cachesync.api.models import DocumentResult, QueryResult

V = TypeVar("V")


@dataclass(frozen=True)
class CacheStats:
    """Hits and misses since the process started."""

    hits: int
    misses: int

    @property
    def hit_ratio(self) -> float | None:
        """Hits over lookups; ``None`` before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else None


class MemoryCache(Generic[V]):
    """One bounded TTL cache with a lock and hit/miss counters; ``ttl`` 0 disables it."""

    def __init__(
        self,
        *,
        max_entries: int,
        ttl_seconds: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._enabled = ttl_seconds > 0 and max_entries > 0
        self._entries: TTLCache[Hashable, V] = TTLCache(
            maxsize=max(1, max_entries), ttl=max(ttl_seconds, 0.001), timer=timer
        )
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def get(self, key: Hashable) -> V | None:
        """The cached value of ``key``, counted as a hit or a miss."""
        if not self._enabled:
            return None
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self._misses += 1
            else:
                self._hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Cache ``value`` under ``key`` for the TTL."""
        if self._enabled:
            with self._lock:
                self._entries[key] = value

    def evict(self, key: Hashable) -> None:
        """Forget ``key``."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def stats(self) -> CacheStats:
        """Hits and misses so far."""
        with self._lock:
            return CacheStats(self._hits, self._misses)


@dataclass
class ApiCaches:
    """The caches of one API process."""

    queries: MemoryCache[QueryResult]
    documents: MemoryCache[DocumentResult]

    @classmethod
    def create(cls, *, max_entries: int, ttl_seconds: float) -> ApiCaches:
        """Both caches with the same bounds (``ttl_seconds`` 0: no caching)."""
        return cls(
            queries=MemoryCache(max_entries=max_entries, ttl_seconds=ttl_seconds),
            documents=MemoryCache(max_entries=max_entries, ttl_seconds=ttl_seconds),
        )

    def stats(self) -> CacheStats:
        """Both caches' hits and misses together."""
        queries, documents = self.queries.stats(), self.documents.stats()
        return CacheStats(queries.hits + documents.hits, queries.misses + documents.misses)

    def written(self, key: str) -> None:
        """A write or delete of ``key`` went through this process: drop what it may change."""
        self.documents.evict(key)
        self.queries.clear()
