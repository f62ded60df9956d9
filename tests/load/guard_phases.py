"""The cost of each request-guard feature, measured side by side in one run of the load test.

Four *variants* of the same workload, each with keys of its own (five keys, every customer, read
scope; users pick one at random), alternated ``CACHESYNC_LOAD_GUARD_ROUNDS`` times for
``CACHESYNC_LOAD_GUARD_SECONDS`` each, on the same machine and stack:

* ``baseline``: plain keys on the load test's server (rate limits off);
* ``rate_limits``: plain keys on a second server with ``CACHESYNC_API_RATE_LIMITS_ENABLED=true``
  and limits so high that nothing is refused (each request still counts, through leases);
* ``signed``: keys created with ``requires_signing``; the locust users sign every request with
  :func:`cachesync.api.request_signing.sign_headers` (each request stores its nonce);
* ``allowlist``: keys with ``allowed_cidrs`` (nine networks that do not match, then loopback);
* ``all``: every feature at once, as a production key that uses them all: signing keys with the
  allowlist, on the rate-limited server.

Each is reported as a ratio to the baseline of its round (requests per second and p95), for each
workload of ``CACHESYNC_LOAD_GUARD_WORKLOADS``: ``cached`` (one query answered from memory: the
guard's cost per request, undiluted) and ``reads`` (the read mix: the issue's goals).

A feature the code does not have (yet) is reported as "not available", with the reason, and its
phases are skipped: key options that ``new_api_key`` does not take, or a server that does not
enforce them (each variant is probed before it is measured: a rate-limited response carries
``RateLimit`` headers, an unsigned request of a signing key gets 401, a key pinned to a foreign
network gets 403).
"""

from __future__ import annotations

import inspect
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from botocore.exceptions import ClientError

from cachesync.api import keys as api_keys
from cachesync.api import request_signing
from cachesync.api_usage_schema import (
    API_USAGE_TABLE_NAME_DEFAULT,
    NONCE_PREFIX,
    RATE_COUNTER_PREFIX,
    UsageAttr,
    create_api_usage_table_request,
)
from cachesync.local import LocalStack
from cachesync.local.demo_data import DEMO_CUSTOMERS
from cachesync.stores.dynamodb_api_keys import DynamoDBApiKeyStore

VARIANTS: Final = ("baseline", "rate_limits", "signed", "allowlist", "all")
LIMITED_VARIANTS: Final = frozenset({"rate_limits", "all"})
"""The variants measured on the rate-limited server."""
SIGNED_VARIANTS: Final = frozenset({"signed", "all"})
KEYS_PER_VARIANT: Final = 5
# Limits no load of this test reaches: every request is counted, none refused. At most the
# settings' bounds (ApiSettings: 60,000 a minute, 1,000 a second).
HIGH_RATE_PER_MINUTE: Final = 60_000
HIGH_RATE_BURST: Final = 1_000
RATE_LIMITED_SERVER: Final = {
    "CACHESYNC_API_RATE_LIMITS_ENABLED": "true",
    "CACHESYNC_API_RATE_LIMIT_PER_MINUTE": str(HIGH_RATE_PER_MINUTE),
    "CACHESYNC_API_RATE_LIMIT_BURST": str(HIGH_RATE_BURST),
    "CACHESYNC_API_RATE_LIMIT_FAILURE_MODE": "closed",
}
"""The second server's settings (closed: a failing counter would show as 503s, not hide)."""
UNLIMITED_SERVER: Final = {"CACHESYNC_API_RATE_LIMITS_ENABLED": "false"}
"""The load test's own server: the baseline, and the signed and allowlist variants."""
# TEST-NET and private networks (RFC 5737, 1918, 4193) no request of this test comes from; the
# loopback networks last, so that the check walks the whole list.
FOREIGN_NETWORKS: Final = (
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fd00::/8",
    "2001:db8::/32",
)
ALLOWED_NETWORKS: Final = (*FOREIGN_NETWORKS, "127.0.0.0/8", "::1/128")
RATE_LIMIT_HEADERS: Final = ("ratelimit", "x-ratelimit-limit")


class FeatureUnavailableError(Exception):
    """A guard feature this code or its server does not have; the message says which."""


def ensure_usage_table(stack: LocalStack) -> str:
    """The usage table's name, created if the local stack did not provision it."""
    name: str = getattr(stack.provisioned, "api_usage_table_name", API_USAGE_TABLE_NAME_DEFAULT)
    client = stack.client("dynamodb")
    try:
        client.create_table(**create_api_usage_table_request(name))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceInUseException":
            raise
    client.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return name


def _key_options(variant: str) -> dict[str, Any]:
    """``new_api_key``'s keyword arguments for a variant's keys; raises
    :class:`FeatureUnavailableError` when this code's ``new_api_key`` does not take them."""
    every: dict[str, dict[str, Any]] = {
        "baseline": {},
        "rate_limits": {"rate_per_minute": HIGH_RATE_PER_MINUTE, "rate_burst": HIGH_RATE_BURST},
        "signed": {"requires_signing": True},
        "allowlist": {"allowed_cidrs": list(ALLOWED_NETWORKS)},
        "all": {
            "requires_signing": True,
            "allowed_cidrs": list(ALLOWED_NETWORKS),
            "rate_per_minute": HIGH_RATE_PER_MINUTE,
            "rate_burst": HIGH_RATE_BURST,
        },
    }
    options = every[variant]
    accepted = inspect.signature(api_keys.new_api_key).parameters
    missing = [name for name in options if name not in accepted]
    # The per-key limits are a nicety (the server's are as high); the others are the feature.
    if variant == "rate_limits":
        return {name: value for name, value in options.items() if name in accepted}
    if missing:
        raise FeatureUnavailableError(f"new_api_key takes no {', '.join(missing)}")
    return options


def _signing_secret(token_secret: str, record: Any) -> str:
    """What ``cachesync keys create`` shows a signing key's owner (derived, never stored)."""
    master_of = getattr(request_signing, "signing_master_secret", None)
    if master_of is None:
        raise FeatureUnavailableError("request_signing has no signing_master_secret")
    # Looked up by name: the code measured may be older or newer than this file.
    derive: Callable[..., str] = getattr(request_signing, "signing_secret")  # noqa: B009
    return derive(master_of(token_secret.encode()), record.key_id, record.salt)


def create_variant_keys(
    stack: LocalStack, token_secret: str
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Five keys per available variant; and, per unavailable variant, why."""
    store = DynamoDBApiKeyStore(stack.client("dynamodb"), stack.resources.api_keys_table_name)
    # Looked up by name: which options it takes depends on the code measured (_key_options).
    new_api_key: Callable[..., Any] = getattr(api_keys, "new_api_key")  # noqa: B009
    keys: dict[str, list[dict[str, Any]]] = {}
    unavailable: dict[str, str] = {}
    for variant in VARIANTS:
        try:
            options = _key_options(variant)
            created = []
            for number in range(KEYS_PER_VARIANT):
                new = new_api_key(
                    f"load-{variant}-{number}",
                    ["*"],
                    (api_keys.Scope.READ,),
                    datetime.now(UTC),
                    **options,
                )
                if not store.create(new.record):
                    raise RuntimeError(f"key id collision for load-{variant}-{number}")
                entry: dict[str, Any] = {
                    "name": new.record.name,
                    "key": new.key,
                    "customers": None,
                    "weight": 1,
                }
                if variant in SIGNED_VARIANTS:
                    entry["signing_secret"] = _signing_secret(token_secret, new.record)
                created.append(entry)
            keys[variant] = created
        except FeatureUnavailableError as reason:
            unavailable[variant] = str(reason)
    if "allowlist" in keys:
        # The probe's key: pinned to networks no request of this test comes from.
        probe = new_api_key(
            "load-allowlist-probe",
            ["*"],
            (api_keys.Scope.READ,),
            datetime.now(UTC),
            allowed_cidrs=list(FOREIGN_NETWORKS),
        )
        store.create(probe.record)
        keys["allowlist_probe"] = [{"key": probe.key}]
    return keys, unavailable


# ---------------------------------------------------------------------- probes

PROBE_PATH: Final = f"/v1/documents?customer={DEMO_CUSTOMERS[0]}&limit=1"


def _request(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    """One GET; its status and headers (names in lower case)."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - a local server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def signed_headers(secret: str, method: str, target: str, body: bytes = b"") -> dict[str, str]:
    """The signature headers of one request to ``target`` (path and query, as sent)."""
    parts = urlsplit(target)
    query = parse_qsl(parts.query, keep_blank_values=True)
    return request_signing.sign_headers(
        secret,
        method,
        parts.path,
        query,
        body,
        timestamp=int(time.time()),
        nonce=secrets.token_urlsafe(16),
    )


def probe(variant: str, url: str, keys: dict[str, list[dict[str, Any]]]) -> None:
    """Return if ``url`` enforces ``variant``'s feature for its keys; else raise
    :class:`FeatureUnavailableError`."""
    key = keys[variant][0]
    auth = {"Authorization": f"Bearer {key['key']}"}
    if variant in SIGNED_VARIANTS:
        status, _ = _request(url + PROBE_PATH, auth)
        if status != 401:
            raise FeatureUnavailableError(
                f"an unsigned request of a signing key got {status}, not 401"
            )
        auth |= signed_headers(key["signing_secret"], "GET", PROBE_PATH)
    if variant == "allowlist":
        foreign = {"Authorization": f"Bearer {keys['allowlist_probe'][0]['key']}"}
        status, _ = _request(url + PROBE_PATH, foreign)
        if status != 403:
            raise FeatureUnavailableError(f"a key pinned to foreign networks got {status}, not 403")
    status, headers = _request(url + PROBE_PATH, auth)
    if status != 200:
        raise FeatureUnavailableError(f"a {variant} key's request got {status}, not 200")
    limited = any(name in headers for name in RATE_LIMIT_HEADERS)
    if limited != (variant in LIMITED_VARIANTS):
        raise FeatureUnavailableError(
            f"{'no' if not limited else 'unexpected'} RateLimit headers on the {variant} server"
        )


# ---------------------------------------------------------------------- results


def usage_writes(stack: LocalStack, usage_table: str) -> dict[str, int]:
    """What the usage table holds after the phases: the requests reserved by the rate limiter
    (``n``), the writes that reserved them (``l``: leases, ``api/request_limits.py``) and the
    nonces stored (one write per signed request)."""
    totals = {"reserved": 0, "reservations": 0, "nonces": 0}
    paginator = stack.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=usage_table):
        for item in page.get("Items", []):
            item_id = item[UsageAttr.COUNTER_ID]["S"]
            if item_id.startswith(RATE_COUNTER_PREFIX):
                totals["reserved"] += int(item.get(UsageAttr.MINUTE_COUNT, {}).get("N", 0))
                totals["reservations"] += int(item.get(UsageAttr.LEASE_COUNT, {}).get("N", 0))
            elif item_id.startswith(NONCE_PREFIX):
                totals["nonces"] += 1
    return totals


def summarise(runs: list[dict[str, Any]], unavailable: dict[str, str]) -> dict[str, Any]:
    """Per workload and variant: mean rps and p95 over the rounds, and their ratios to the
    baseline's (rps: higher is better; p95: lower is better)."""
    summary: dict[str, Any] = {"unavailable": unavailable, "workloads": {}}
    for workload in sorted({run["workload"] for run in runs}):
        figures: dict[str, Any] = {}
        for variant in VARIANTS:
            mine = [r for r in runs if r["workload"] == workload and r["variant"] == variant]
            if not mine:
                continue
            totals = [r["total"] for r in mine]
            figures[variant] = {
                "rps": sum(t["rps"] for t in totals) / len(totals),
                "p95_ms": sum(t["p95_ms"] for t in totals) / len(totals),
                "requests": sum(t["requests"] for t in totals),
                "failures": sum(t["failures"] for t in totals),
                "loads": [r["load_before"] for r in mine],
            }
        base = figures.get("baseline")
        for values in figures.values():
            values["rps_ratio"] = values["rps"] / base["rps"] if base and base["rps"] else None
            values["p95_ratio"] = (
                values["p95_ms"] / base["p95_ms"] if base and base["p95_ms"] else None
            )
        summary["workloads"][workload] = figures
    return summary


def report_lines(summary: dict[str, Any], rounds: int, seconds: int) -> list[str]:
    """The guard phases as printed: one line per workload and variant, ratios to the baseline."""
    lines = [
        f"(c) request guard cost, side by side, {rounds} round(s) of {seconds} s per variant "
        "(ratios to the baseline: rps higher is better, p95 lower is better):"
    ]
    for workload, figures in summary["workloads"].items():
        for variant, values in figures.items():
            ratio = values["rps_ratio"]
            p95_ratio = values["p95_ratio"]
            lines.append(
                f"  {workload:<7} {variant:<12} {values['rps']:8.1f} rps  "
                f"p95 {values['p95_ms']:6.0f} ms  "
                f"rps x{'-' if ratio is None else f'{ratio:.2f}'}  "
                f"p95 x{'-' if p95_ratio is None else f'{p95_ratio:.2f}'}  "
                f"errors {values['failures']}/{values['requests']}  load {values['loads']}"
            )
    for variant, reason in summary["unavailable"].items():
        lines.append(f"  {variant:<20} not available: {reason}")
    writes = summary.get("usage_writes")
    if writes:
        lines.append(
            f"  usage table: {writes['reserved']} requests reserved by the rate limiter in "
            f"{writes['reservations']} writes (leases); {writes['nonces']} nonces stored"
        )
    return lines
