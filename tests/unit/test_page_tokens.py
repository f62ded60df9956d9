"""Continuation tokens: issued and opened without a server, refused for another query."""

from __future__ import annotations

import base64
import json

import pytest

from cachesync.exceptions import InvalidQueryError
from cachesync.index_models import IndexQuery
from cachesync.stores.page_tokens import LANE_DONE, PageCursor, PageTokens, query_fingerprint

CURSOR = PageCursor(
    fingerprint=query_fingerprint(IndexQuery(customer="acme")),
    position=2,
    lanes=({"pk": "docs/a.json", "sk": "doc"},),
    window=("2026-01-01T00:00:00.000000Z", "2026-02-01T00:00:00.000000Z"),
)


class ReversingSealer:
    """A stand-in for a signing sealer: visibly transforms the payload, refuses other bytes."""

    def seal(self, payload: bytes) -> bytes:
        return b"sealed:" + payload[::-1]

    def unseal(self, sealed: bytes) -> bytes:
        if not sealed.startswith(b"sealed:"):
            raise InvalidQueryError("next_token is not sealed by this index")
        return sealed.removeprefix(b"sealed:")[::-1]


def test_a_token_opens_to_the_cursor_it_was_issued_for() -> None:
    # Given a token issued for a cursor
    tokens = PageTokens()
    token = tokens.issue(CURSOR)
    # When it is opened by the same query
    # Then it is the same cursor
    assert tokens.open(token, CURSOR.fingerprint) == CURSOR


def test_the_fingerprint_ignores_page_size_and_position() -> None:
    # Given / When / Then two pages of one query share a fingerprint; another query does not
    assert query_fingerprint(IndexQuery(customer="acme", limit=5)) == query_fingerprint(
        IndexQuery(customer="acme", limit=50, next_token="x")
    )
    assert query_fingerprint(IndexQuery(customer="acme")) != query_fingerprint(
        IndexQuery(customer="globex")
    )


def test_a_token_of_another_query_is_refused() -> None:
    # Given a token of a customer query
    tokens = PageTokens()
    token = tokens.issue(CURSOR)
    # When another query presents it
    # Then it is refused as belonging to another query
    with pytest.raises(InvalidQueryError, match="another query"):
        tokens.open(token, query_fingerprint(IndexQuery(customer="globex")))


@pytest.mark.parametrize(
    "token",
    [
        "not base64!",
        base64.urlsafe_b64encode(b"[1, 2]").decode(),
        base64.urlsafe_b64encode(json.dumps({"v": 1, "b": 0}).encode()).decode(),
        base64.urlsafe_b64encode(
            json.dumps(
                {"v": 2, "f": CURSOR.fingerprint, "p": -1, "k": None, "w": ["a", "b"]}
            ).encode()
        ).decode(),
        base64.urlsafe_b64encode(
            json.dumps(
                {"v": 2, "f": CURSOR.fingerprint, "p": 0, "k": "key", "w": ["a", "b"]}
            ).encode()
        ).decode(),
    ],
    ids=["garbage", "not-an-object", "old-version", "negative-position", "key-not-a-map"],
)
def test_a_token_the_index_did_not_issue_is_refused(token: str) -> None:
    # Given a token that is not one of ours
    # When it is opened
    # Then it is refused as not issued by this index
    with pytest.raises(InvalidQueryError, match="not a token this index issued"):
        PageTokens().open(token, CURSOR.fingerprint)


def test_a_sealer_sees_every_token_both_ways() -> None:
    # Given tokens sealed by a sealer
    sealed = PageTokens(ReversingSealer())
    token = sealed.issue(CURSOR)
    # When one is opened through the same sealer, and a plain token is presented to it
    opened = sealed.open(token, CURSOR.fingerprint)
    # Then the sealed token opens, its bytes are the sealer's, and the plain one is refused
    assert opened == CURSOR
    assert base64.urlsafe_b64decode(token).startswith(b"sealed:")
    with pytest.raises(InvalidQueryError, match="not sealed"):
        sealed.open(PageTokens().issue(CURSOR), CURSOR.fingerprint)


def test_a_token_carries_where_each_lane_resumes() -> None:
    # Given a cursor of a merged query: one lane mid-way, one at its start, one exhausted
    cursor = PageCursor(
        fingerprint=CURSOR.fingerprint,
        position=0,
        lanes=({"pk": "docs/b.json", "sk": "doc"}, None, LANE_DONE),
        window=CURSOR.window,
    )
    tokens = PageTokens()
    # When it is issued and opened / Then every lane's resume point survives
    assert tokens.open(tokens.issue(cursor), cursor.fingerprint) == cursor


@pytest.mark.parametrize("lanes", [[], [7], ["later"], [None, ["pk"]]])
def test_a_token_with_a_lane_that_is_no_resume_point_is_refused(lanes: list[object]) -> None:
    # Given a plain token whose lanes were edited into something no query issues
    payload = json.loads(base64.urlsafe_b64decode(PageTokens().issue(CURSOR)))
    payload["k"] = lanes
    token = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()
    # When it is opened / Then it is refused
    with pytest.raises(InvalidQueryError, match="not a token"):
        PageTokens().open(token, CURSOR.fingerprint)
