"""Continuation tokens of index queries: where the next page starts, as an opaque string.

A token carries a :class:`PageCursor` (the period position, where each lane of that period
resumes, the window of the first page) and the fingerprint of the query that issued it; a token
is refused by any other query. The bytes of a token pass through one :class:`TokenSealer`: today's
:class:`PlainSealer` leaves them readable (and editable) base64 JSON; a signing sealer (HMAC bound
to the caller, with an expiry) plugs in there without touching the store or the query plan.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Final, Protocol

from cachesync.exceptions import InvalidQueryError
from cachesync.index_models import IndexQuery

# Version 3: "k" lists one resume point per lane (version 2 held one key; 1 called "p" "b").
TOKEN_VERSION: Final = 3
LANE_DONE: Final = "done"
"""A lane's resume point once it is exhausted in the cursor's period."""

LaneResume = dict[str, Any] | str | None
"""Where one lane resumes: ``None`` its start, a key (read after it), or :data:`LANE_DONE`."""


@dataclass(frozen=True, slots=True)
class PageCursor:
    """Where the next page of a query starts."""

    fingerprint: str
    """:func:`query_fingerprint` of the query the page belongs to."""
    position: int
    """Index of the time period in the query plan."""
    lanes: tuple[LaneResume, ...]
    """Where each lane of that period resumes (one lane unless the plan merges several)."""
    window: tuple[str, str]
    """The first page's ``since``/``until`` (formatted times)."""


class TokenSealer(Protocol):
    """Turns a token's payload into the bytes a client holds, and back."""

    def seal(self, payload: bytes) -> bytes:
        """The bytes to hand out for ``payload``."""
        ...

    def unseal(self, sealed: bytes) -> bytes:
        """The payload of ``sealed``; raises :class:`InvalidQueryError` when it is not ours."""
        ...


class PlainSealer:
    """No sealing: the payload as is (a client can read and edit it)."""

    def seal(self, payload: bytes) -> bytes:
        """``payload`` unchanged."""
        return payload

    def unseal(self, sealed: bytes) -> bytes:
        """``sealed`` unchanged."""
        return sealed


def query_fingerprint(query: IndexQuery) -> str:
    """What a token must match: the query's parameters, not its page position."""
    identity = query.model_dump(mode="json", exclude={"limit", "next_token"})
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


class PageTokens:
    """Issues and opens continuation tokens through one :class:`TokenSealer`."""

    def __init__(self, sealer: TokenSealer | None = None) -> None:
        self._sealer: TokenSealer = sealer or PlainSealer()

    def issue(self, cursor: PageCursor) -> str:
        """The token that resumes a query at ``cursor``."""
        payload = {
            "v": TOKEN_VERSION,
            "f": cursor.fingerprint,
            "p": cursor.position,
            "k": list(cursor.lanes),
            "w": list(cursor.window),
        }
        sealed = self._sealer.seal(json.dumps(payload, separators=(",", ":")).encode())
        return base64.urlsafe_b64encode(sealed).decode()

    def open(self, token: str, fingerprint: str) -> PageCursor:
        """The cursor in ``token``, which must come from the query with ``fingerprint``.

        Raises :class:`InvalidQueryError` for a token this index did not issue, or one issued for
        another query.
        """
        try:
            payload = json.loads(self._sealer.unseal(base64.urlsafe_b64decode(token.encode())))
            version = payload["v"]
        except (binascii.Error, ValueError, KeyError, TypeError) as error:
            raise InvalidQueryError("next_token is not a token this index issued") from error
        if version != TOKEN_VERSION:
            raise InvalidQueryError("next_token is not a token this index issued")
        try:
            owner, position, lanes = payload["f"], int(payload["p"]), tuple(payload["k"])
            since, until = (str(part) for part in payload["w"])
        except (ValueError, KeyError, TypeError) as error:
            raise InvalidQueryError("next_token is not a token this index issued") from error
        if owner != fingerprint:
            raise InvalidQueryError("next_token belongs to another query")
        if position < 0 or not lanes or not all(_is_resume_point(lane) for lane in lanes):
            raise InvalidQueryError("next_token is not a token this index issued")
        return PageCursor(fingerprint, position, lanes, (since, until))


def _is_resume_point(lane: object) -> bool:
    return lane is None or lane == LANE_DONE or isinstance(lane, dict)
