"""The request guard: what a keyed request passes after its key is verified, before its route.

In order (``RequiresScope`` in ``app.py`` runs it):

1. authentication (``app.py``: the key in ``Authorization: Bearer`` or ``X-Api-Key``), 401;
2. the key's IP allowlist, against the address API Gateway saw (``requestContext.identity.
   sourceIp``, or ``requestContext.http.sourceIp``), never ``X-Forwarded-For``, 403;
3. the request's signature: required by a key created with ``--require-signing`` (401 when
   missing or wrong); verified when sent by any other key (a client that signs expects the
   protection: a wrong secret must not pass unnoticed until the key starts requiring it);
4. the key's rate limit (429, or 503 when the counters are down and the limiter fails closed);
5. the route's scope (403), in ``app.py``.

Limits come before the scope: every authenticated request of a key spends its budget, a 403
included, so a key cannot hammer routes it may not use for free. Allowlist and signature
failures spend nothing: they cost no counter write, and a leaked key used from elsewhere (or
without its signing secret) cannot exhaust its owner's budget.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cachesync.api.keys import ApiKeyRecord, address_allowed
from cachesync.api.problems import ApiProblemError, Problem, forbidden, unauthorized
from cachesync.api.request_limits import LimitPolicy, LimitVerdict, RequestLimiter
from cachesync.api.request_signing import SIGNATURE_HEADER, SignatureError, SignatureVerifier
from cachesync.exceptions import (
    RateLimiterUnavailableError,
    RateLimitExceededError,
    UsageStoreError,
)

RAW_PATH_CONTEXT_FIELD: Final = "cachesyncRawPath"
"""The path as sent (percent-encoded), where the local WSGI adapter puts it in
``requestContext``; absent in API Gateway's events, whose ``path`` is used."""


@dataclass(frozen=True)
class RequestFacts:
    """What the guard reads of one request (from the API Gateway REST event, payload 1.0)."""

    method: str
    path: str
    """As sent, still percent-encoded."""
    query: tuple[tuple[str, str], ...]
    headers: dict[str, str]
    """Names in lower case."""
    body: bytes
    source_ip: str | None

    @classmethod
    def of(cls, event: dict[str, Any]) -> RequestFacts:
        """The facts of ``event``; a body that is not valid base64 reads as its text."""
        context = event.get("requestContext") or {}
        identity = context.get("identity") or {}
        http = context.get("http") or {}
        # Payload 1.0 has both forms; the multi-value one keeps repeated names.
        multi = event.get("multiValueQueryStringParameters") or {
            name: [value] for name, value in (event.get("queryStringParameters") or {}).items()
        }
        query = tuple(
            (str(name), str(value)) for name, values in multi.items() for value in values or ()
        )
        text = event.get("body") or ""
        body = text.encode()
        if event.get("isBase64Encoded") and text:
            try:
                body = base64.b64decode(text, validate=True)
            except binascii.Error:
                body = text.encode()
        return cls(
            method=str(event.get("httpMethod") or ""),
            path=str(context.get(RAW_PATH_CONTEXT_FIELD) or event.get("path") or "/"),
            query=query,
            headers={str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()},
            body=body,
            source_ip=identity.get("sourceIp") or http.get("sourceIp"),
        )


class RequestGuard:
    """Allowlist, signature and rate limit of an authenticated key (see the module's doc)."""

    def __init__(
        self,
        *,
        signatures: SignatureVerifier | None,
        limiter: RequestLimiter | None,
        default_limits: LimitPolicy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``signatures``: ``None`` when no signing master secret is known (signing keys are
        then refused); ``limiter``: ``None`` when rate limits are off."""
        self._signatures = signatures
        self._limiter = limiter
        self._default_limits = default_limits
        self._clock = clock

    def policy_of(self, record: ApiKeyRecord) -> LimitPolicy:
        """The key's limits: its own where set, the API's defaults otherwise."""
        return LimitPolicy(
            per_minute=record.rate_per_minute or self._default_limits.per_minute,
            burst=record.rate_burst or self._default_limits.burst,
        )

    def check(
        self,
        record: ApiKeyRecord,
        facts: RequestFacts,
        on_limit: Callable[[dict[str, str]], None],
    ) -> None:
        """Return if the request may go on to its scope check; raise the 401/403/429/503
        problem otherwise. ``on_limit`` receives the rate-limit headers once a limit was
        evaluated (the answer carries them, whatever it is)."""
        if not address_allowed(record, facts.source_ip):
            # The caller's own address helps it see why; the allowlist itself is not shown.
            raise forbidden(
                f"this API key may not be used from {facts.source_ip or 'an unknown address'}"
            )
        if record.requires_signing or SIGNATURE_HEADER.lower() in facts.headers:
            self._check_signature(record, facts)
        if self._limiter is not None:
            on_limit(self._check_limit(record, on_limit).headers())

    def _check_signature(self, record: ApiKeyRecord, facts: RequestFacts) -> None:
        if self._signatures is None:
            raise unauthorized("this API cannot verify signed requests (no signing secret)")
        try:
            self._signatures.verify(
                record.key_id,
                facts.method,
                facts.path,
                facts.query,
                facts.headers,
                facts.body,
                salts=record.signing_salts(self._clock()),
            )
        except SignatureError as error:
            raise unauthorized(str(error)) from error
        except UsageStoreError as error:
            # Replay protection cannot be given without the nonces: refused whatever the
            # limiter's failure mode (a key that signs opted into that protection).
            raise ApiProblemError(
                Problem(
                    503,
                    "unavailable",
                    "Service Unavailable",
                    "signed requests cannot be checked for replays right now",
                    {"Retry-After": "1"},
                )
            ) from error

    def _check_limit(
        self, record: ApiKeyRecord, on_limit: Callable[[dict[str, str]], None]
    ) -> LimitVerdict:
        assert self._limiter is not None
        try:
            return self._limiter.check(record.key_id, self.policy_of(record))
        except RateLimitExceededError as error:
            on_limit(error.headers)
            raise ApiProblemError(
                Problem(
                    429,
                    "rate-limited",
                    "Too Many Requests",
                    f"this API key is over its {error.limit}: retry in {error.retry_after} s",
                    {**error.headers, "Retry-After": str(error.retry_after)},
                )
            ) from error
        except RateLimiterUnavailableError as error:
            raise ApiProblemError(
                Problem(
                    503,
                    "rate-limiter-unavailable",
                    "Service Unavailable",
                    "the rate limiter cannot reach its counters",
                    {"Retry-After": "1"},
                )
            ) from error
