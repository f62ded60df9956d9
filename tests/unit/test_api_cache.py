"""The API's memory cache: TTL, LRU bound, counters, invalidation, off when TTL is 0."""

from __future__ import annotations

from cachesync.api.cache import ApiCaches, MemoryCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_is_served_until_its_ttl_then_missed() -> None:
    # Given a cache with a 5 s TTL holding one entry
    clock = Clock()
    cache: MemoryCache[str] = MemoryCache(max_entries=10, ttl_seconds=5, timer=clock)
    cache.put("k", "v")
    # When it is read at 4.9 s and at 5 s
    clock.now = 4.9
    early = cache.get("k")
    clock.now = 5.0
    late = cache.get("k")
    # Then the first is a hit, the second a miss
    assert early == "v"
    assert late is None
    assert (cache.stats().hits, cache.stats().misses) == (1, 1)
    assert cache.stats().hit_ratio == 0.5


def test_the_least_recently_used_entry_goes_past_the_bound() -> None:
    # Given a cache of two entries, the first one read again
    cache: MemoryCache[int] = MemoryCache(max_entries=2, ttl_seconds=60)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.get("a")
    # When a third entry comes in
    cache.put("c", 3)
    # Then the least recently used one is gone
    assert cache.get("b") is None
    assert cache.get("a") == 1
    assert cache.get("c") == 3


def test_a_ttl_of_zero_caches_nothing() -> None:
    # Given / When an entry is put in a disabled cache / Then it is never served
    cache: MemoryCache[int] = MemoryCache(max_entries=10, ttl_seconds=0)
    cache.put("a", 1)
    assert cache.get("a") is None
    assert cache.stats().hit_ratio is None


def test_a_write_evicts_its_document_and_every_query_page() -> None:
    # Given cached documents and query pages
    caches = ApiCaches.create(max_entries=10, ttl_seconds=60)
    caches.documents.put("a.json", object())  # type: ignore[arg-type]
    caches.documents.put("b.json", object())  # type: ignore[arg-type]
    caches.queries.put(("k1", None, "{}", ()), object())  # type: ignore[arg-type]
    # When a.json is written through this process
    caches.written("a.json")
    # Then a.json and the pages are gone, b.json stays
    assert caches.documents.get("a.json") is None
    assert caches.documents.get("b.json") is not None
    assert caches.queries.get(("k1", None, "{}", ())) is None
