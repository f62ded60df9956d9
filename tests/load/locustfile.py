"""Locust users for the query API load test (run headless by ``tests/load/run_load.py``).

The runner seeds the stack, creates the keys and writes a *plan* (JSON, path in
``CACHESYNC_LOAD_PLAN``): the API keys, the seeded documents and the months they span. Each user
picks a key (most unrestricted, some limited to one customer) and then, without think time:

* :class:`MixUser`: 70% queries (six shapes of filters over customers, statuses, kinds and
  months; each user keeps one page size and projection, as an application does; a third of the
  queries walk on by following ``next_token`` for a few pages), 20% document reads (mostly of a
  few hot documents; a third of those already read revalidate with ``If-None-Match``), 10%
  writes (``PUT`` of a new document).
* :class:`ReadUser`: the same without the writes (the read mix).
* :class:`HealthUser`: ``GET /v1/health`` only (no key, one consistent ``GetItem``).
* :class:`CachedQueryUser`: one fixed query, answered from the worker's memory cache after its
  first miss per worker and TTL.

With ``CACHESYNC_LOAD_VARIANT`` set (the request guard phases, ``tests/load/guard_phases.py``),
users take their keys from that variant of the plan instead; a key that has a signing secret
signs every request (:func:`cachesync.api.request_signing.sign_headers`: a fresh timestamp and
nonce each time, as a client must).

Every answer is checked (status, and ``X-Cache`` where the API sets it); ``X-Cache`` hits and
misses are counted per request name and written, with locust's own statistics, to the result
file named by ``CACHESYNC_LOAD_RESULT`` when locust quits.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from locust import FastHttpUser, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner
from locust.stats import StatsEntry

from cachesync.api.request_signing import sign_headers

PLAN: Final = json.loads(Path(os.environ["CACHESYNC_LOAD_PLAN"]).read_text())
VARIANT: Final = os.environ.get("CACHESYNC_LOAD_VARIANT")
KEYS: Final[list[dict[str, Any]]] = PLAN["variants"][VARIANT] if VARIANT else PLAN["keys"]
PERCENTILES: Final = (0.5, 0.95, 0.99)
MAX_WALK_PAGES: Final = 5
HOT_DOCUMENTS: Final = 50
_cache_counts: Counter[tuple[str, str]] = Counter()


def _pick_key(rng: random.Random) -> dict[str, Any]:
    chosen: dict[str, Any] = rng.choices(KEYS, weights=[k["weight"] for k in KEYS])[0]
    return chosen


def _signature(secret: str, method: str, target: str) -> dict[str, str]:
    """The signature headers of a body-less request to ``target`` (path and query, as sent)."""
    parts = urlsplit(target)
    return sign_headers(
        secret,
        method,
        parts.path,
        parse_qsl(parts.query, keep_blank_values=True),
        b"",
        timestamp=int(time.time()),
        nonce=secrets.token_urlsafe(16),
    )


class _ApiUser(FastHttpUser):
    abstract = True

    def on_start(self) -> None:
        self.rng = random.Random()
        self.api_key = _pick_key(self.rng)
        self.auth = {"Authorization": f"Bearer {self.api_key['key']}"}
        customers = self.api_key["customers"]
        self.documents = [
            d
            for d in PLAN["documents"]
            if customers is None or any(c in customers for c in d["customers"])
        ]
        self.etags: dict[str, str] = {}
        # An application asks for the same page size and fields every time.
        self.limit = self.rng.choice((10, 25, 50, 50, 100))
        self.fields = "key,doc_id,status,customers,index_time" if self.rng.random() < 0.3 else None

    def _get(self, path: str, name: str, headers: dict[str, str], ok: tuple[int, ...]) -> Any:
        signing_secret = self.api_key.get("signing_secret")
        if signing_secret is not None:
            headers = headers | _signature(signing_secret, "GET", path)
        with self.client.get(path, name=name, headers=headers, catch_response=True) as response:
            if response.status_code not in ok:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                return None
            if response.status_code == 200 and name != "health":
                cache = response.headers.get("X-Cache")
                if cache not in ("hit", "miss"):
                    response.failure(f"X-Cache is {cache!r}")
                    return None
            return response


def _query_parameters(
    rng: random.Random, customers: list[str] | None, limit: int, fields: str | None
) -> dict[str, Any]:
    """One query of those clients send: one of six shapes, with filters drawn from small sets
    (applications and dashboards repeat the same few queries), now and then in ascending order."""
    months = PLAN["months"]
    own = customers or PLAN["customers"]
    shape = rng.choices(
        ("customer", "customer_status", "status", "kind", "customer_month", "latest"),
        weights=(30, 20, 15, 10, 15, 10),
    )[0]
    params: dict[str, Any] = {}
    # A limited key names its customer in half of the other queries (the API limits the rest).
    names_customer = shape in ("customer", "customer_status", "customer_month")
    if names_customer or (customers is not None and rng.random() < 0.5):
        params["customer"] = rng.choice(own)
    if shape in ("customer_status", "status"):
        statuses = ["approved", "scheduled", "in_progress", "published"]
        params["status"] = rng.sample(statuses, k=rng.choice((1, 1, 2)))
    if shape == "kind":
        params["kind"] = rng.choice(("change", "announcement"))
    if shape == "customer_month":
        start = rng.randrange(len(months) - 1)
        params["since"], params["until"] = months[start], months[start + 1]
    params["limit"] = limit
    if rng.random() < 0.2:
        params["order"] = "asc"
    if fields is not None:
        params["fields"] = fields
    return params


class MixUser(_ApiUser):
    """The realistic mix: 70% queries and page walks, 20% document reads, 10% writes."""

    @task(70)
    def query(self) -> None:
        params = _query_parameters(self.rng, self.api_key["customers"], self.limit, self.fields)
        pages = self.rng.randint(2, MAX_WALK_PAGES) if self.rng.random() < 0.33 else 1
        name = "query"
        for _ in range(pages):
            response = self._get(
                f"/v1/documents?{urlencode(params, doseq=True)}", name, self.auth, (200,)
            )
            token = response.json().get("next_token") if response is not None else None
            if not token:
                return
            params["next_token"], name = token, "query (next page)"

    @task(20)
    def read(self) -> None:
        # Four reads in five go to the documents being worked on (the first HOT_DOCUMENTS the
        # key may see), the others to any document it may see.
        hot = self.rng.random() < 0.8
        document = self.rng.choice(self.documents[:HOT_DOCUMENTS] if hot else self.documents)
        key = document["key"]
        headers = dict(self.auth)
        revalidate = key in self.etags and self.rng.random() < 0.33
        if revalidate:
            headers["If-None-Match"] = self.etags[key]
        path = f"/v1/documents/{quote(key, safe='/')}"
        name = "read (If-None-Match)" if revalidate else "read"
        response = self._get(path, name, headers, (200, 304) if revalidate else (200,))
        if response is not None and response.headers.get("ETag"):
            self.etags[key] = response.headers["ETag"]

    @task(10)
    def write(self) -> None:
        customers = self.api_key["customers"] or PLAN["customers"]
        doc_id = f"CHG-L{uuid.uuid4().hex[:10]}"
        body = {
            "object_type": "change",
            "change_id": doc_id,
            "title": f"Load test change {doc_id}",
            "customers": [self.rng.choice(customers)],
            "status": self.rng.choice(("draft", "submitted", "approved")),
            "modified_at": PLAN["write_time"],
        }
        with self.client.put(
            f"/v1/documents/load/{doc_id}.json",
            name="write",
            json=body,
            headers=self.auth,
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")


class ReadUser(_ApiUser):
    """The mix without its writes (queries and reads, 70:20)."""

    # The mix's own task functions, without the write (a task of weight 0 would still run).
    tasks = {MixUser.query: 70, MixUser.read: 20}  # noqa: RUF012 - locust's class attribute


class HealthUser(FastHttpUser):
    """The trivial route: ``GET /v1/health`` (no key; one consistent ``GetItem``)."""

    @task
    def health(self) -> None:
        with self.client.get("/v1/health", name="health", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}")


class CachedQueryUser(_ApiUser):
    """One fixed query with the plan's first key (a variant's: any of its keys): a memory-cache
    hit after each worker's miss (per key)."""

    def on_start(self) -> None:
        super().on_start()
        if VARIANT is None:
            self.api_key = PLAN["keys"][0]
        self.auth = {"Authorization": f"Bearer {self.api_key['key']}"}

    @task
    def cached_query(self) -> None:
        self._get(
            f"/v1/documents?customer={PLAN['customers'][0]}&limit=25",
            "cached query",
            self.auth,
            (200,),
        )


@events.request.add_listener
def _count_cache(name: str, response: Any = None, exception: Any = None, **_: Any) -> None:
    if exception is None and response is not None and response.status_code == 200:
        cache = response.headers.get("X-Cache")
        if cache in ("hit", "miss"):
            _cache_counts[(name, cache)] += 1


@events.report_to_master.add_listener
def _send_cache_counts(client_id: str, data: dict[str, Any]) -> None:
    data["x_cache"] = [[name, cache, count] for (name, cache), count in _cache_counts.items()]
    _cache_counts.clear()


@events.worker_report.add_listener
def _receive_cache_counts(client_id: str, data: dict[str, Any]) -> None:
    for name, cache, count in data.get("x_cache", []):
        _cache_counts[(name, cache)] += count


def _summary(entry: StatsEntry) -> dict[str, Any]:
    return {
        "requests": entry.num_requests,
        "failures": entry.num_failures,
        "rps": entry.total_rps,
        "error_rate": entry.fail_ratio,
        "mean_ms": entry.avg_response_time,
        **{f"p{round(p * 100)}_ms": entry.get_response_time_percentile(p) for p in PERCENTILES},
    }


def _merged(environment: Environment, names: list[str]) -> StatsEntry:
    stats = environment.stats
    merged = StatsEntry(stats, "+".join(names), "", use_response_times_cache=False)
    for entry in stats.entries.values():
        if entry.name in names:
            merged.extend(entry)
    return merged


@events.quitting.add_listener
def _write_result(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        return
    stats = environment.stats
    names = sorted({entry.name for entry in stats.entries.values()})
    reads = [n for n in names if n != "write"]
    hits = sum(c for (n, cache), c in _cache_counts.items() if cache == "hit")
    lookups = sum(_cache_counts.values())
    result = {
        "total": _summary(stats.total),
        "reads": _summary(_merged(environment, reads)) if "write" in names else None,
        "by_name": {name: _summary(stats.get(name, "GET")) for name in names if name != "write"}
        | ({"write": _summary(stats.get("write", "PUT"))} if "write" in names else {}),
        "x_cache": {
            "hits": hits,
            "lookups": lookups,
            "hit_ratio": hits / lookups if lookups else None,
            "by_name": {f"{n} {c}": count for (n, c), count in sorted(_cache_counts.items())},
        },
        "errors": [
            {"name": e.name, "error": str(e.error)[:300], "occurrences": e.occurrences}
            for e in sorted(stats.errors.values(), key=lambda e: -e.occurrences)[:10]
        ],
        "distributed": isinstance(environment.runner, MasterRunner),
    }
    Path(os.environ["CACHESYNC_LOAD_RESULT"]).write_text(json.dumps(result, indent=2))
