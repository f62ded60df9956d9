"""Fuzzing the query API's request parsing (hypothesis): any method, path, query, headers and
body, through the WSGI adapter and the resolver in process, never answers a 5xx, and every 4xx is
an RFC 9457 problem body.

The stores are in-memory fakes that answer as an empty index would (no document, no page) and
validate writes as the write-through does, so a request the API admits goes as deep as parsing
reaches. The analytics and webhook routes have no store here: their 503 ("not configured") is
the one 5xx allowed. Bounded here (``EXAMPLES``); ``CACHESYNC_SOAK=1`` (``make soak``) runs ten
times as many. A crash found becomes a corpus case (tests/corpus/cases/api/) and a fix.
"""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import quote, urlencode

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cachesync.api.app import ApiDependencies, create_app
from cachesync.api.keys import ApiKeyRecord, Scope, new_api_key
from cachesync.api.problems import PROBLEM_CONTENT_TYPE, TYPE_PREFIX
from cachesync.documents import parse_document
from cachesync.exceptions import DocumentNotFoundError
from cachesync.index_models import IndexQuery, QueryPage, StoredState
from cachesync.local.api_server import ResolverWsgiApp
from cachesync.s3_keys import validate_key
from cachesync.stores.page_tokens import PageTokens, query_fingerprint
from cachesync.write_through import IndexCommit, WriteOperation, WriteReceipt, document_text
from tests.support.scale import scaled

EXAMPLES = scaled(200, 2_000)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("CACHESYNC_SOAK") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TOKEN_SECRET = b"f" * 40
# Routes whose store this in-process API has none of: they answer 503 by design.
UNCONFIGURED_PREFIXES = ("/v1/analytics", "/v1/webhooks")


class Keys:
    """The key store: one key that reads and writes, for every customer."""

    def __init__(self) -> None:
        created = new_api_key("fuzz", ["*"], (Scope.READ, Scope.WRITE), datetime.now(UTC))
        self.key = created.key
        self.record = created.record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        return self.record if key_id == self.record.key_id else None


class EmptyIndex:
    """An index holding nothing; page tokens are opened as the real store opens them."""

    def __init__(self, tokens: PageTokens) -> None:
        self._tokens = tokens

    def query(self, query: IndexQuery) -> QueryPage:
        if query.next_token:
            self._tokens.open(query.next_token, query_fingerprint(query))
        return QueryPage(items=[], next_token=None)

    def get_state(self, bucket: str, key: str) -> StoredState | None:  # noqa: ARG002
        return None


class NoDocuments:
    """The fallback reader of an empty bucket."""

    def get_document(self, key: str, *, consistent: bool = False) -> Any:  # noqa: ARG002
        raise DocumentNotFoundError("docs", key)


class ValidatingWriter:
    """Validates as the write-through does (key, document), then writes nowhere."""

    def register_lambda_context(self, context: Any) -> None:
        """Nothing to register outside Lambda."""

    def write_document(self, key: str, document: Any, **_: Any) -> WriteReceipt:
        body = document_text(key, document)
        parse_document(validate_key(key), body, s3_last_modified=datetime.now(UTC))
        return self._receipt(WriteOperation.PUT, key)

    def delete_document(self, key: str, **_: Any) -> WriteReceipt:
        return self._receipt(WriteOperation.DELETE, validate_key(key))

    @staticmethod
    def _receipt(operation: WriteOperation, key: str) -> WriteReceipt:
        return WriteReceipt(
            operation=operation, bucket="docs", key=key, index=IndexCommit.COMMITTED
        )


KEYS = Keys()
APP = create_app(
    ApiDependencies(
        index_store_for=cast(Any, EmptyIndex),
        bucket="docs",
        reader=cast(Any, NoDocuments()),
        writer=cast(Any, ValidatingWriter()),
        keys=cast(Any, KEYS),
        token_secret=TOKEN_SECRET,
        token_lifetime=timedelta(hours=1),
        retention=timedelta(days=90),
        version="fuzz",
    )
)

# ---------------------------------------------------------------------- strategies

TEXT = st.text(max_size=40)
KEY_TEXT = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["changes/a.json", "../../etc/passwd", "a\x00b", "%E2%28%A1", "x" * 1100]),
)
# The API's own routes most of the time (with a fuzzed key or id), anything else otherwise.
ROUTES = [
    ("GET", "/v1/documents"),
    ("GET", "/v1/documents/{}"),
    ("PUT", "/v1/documents/{}"),
    ("DELETE", "/v1/documents/{}"),
    ("POST", "/v1/documents/bulk"),
    ("GET", "/v1/health"),
    ("POST", "/v1/api-keys/{}/rotate"),
]
ROUTED = st.tuples(st.sampled_from(ROUTES), KEY_TEXT).map(
    lambda chosen: (chosen[0][0], chosen[0][1].replace("{}", chosen[1]))
)
ANYTHING = st.tuples(
    st.one_of(
        st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]),
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),
    ),
    st.one_of(
        st.sampled_from(
            ["/v1/openapi.json", "/v1/docs", "/console", "/v1/analytics/volume", "/v1/webhooks"]
        ),
        TEXT.map(lambda text: "/" + text),
    ),
)
REQUEST_LINES = st.one_of(ROUTED, ROUTED, ROUTED, ANYTHING)
QUERY_NAMES = st.sampled_from(
    ["customer", "status", "kind", "since", "until", "order", "limit", "fields", "next_token"]
)
QUERY = st.lists(
    st.tuples(st.one_of(QUERY_NAMES, TEXT), st.one_of(TEXT, st.integers().map(str))), max_size=5
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.one_of(
                st.sampled_from(
                    [
                        "object_type",
                        "change_id",
                        "title",
                        "customers",
                        "status",
                        "items",
                        "op",
                        "key",
                    ]
                ),
                st.text(max_size=10),
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=15,
)
DOCUMENT = st.fixed_dictionaries(
    {
        "object_type": st.sampled_from(["change", "announcement", "memo"]),
        "change_id": st.text(max_size=12),
        "title": st.text(max_size=20),
        "customers": st.one_of(st.lists(st.text(max_size=8), max_size=3), JSON),
        "status": st.sampled_from(["approved", "draft", "maybe"]),
    }
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    JSON.map(lambda value: json.dumps(value).encode()),
    DOCUMENT.map(lambda value: json.dumps(value).encode()),
    st.lists(
        st.fixed_dictionaries({"op": st.sampled_from(["put", "delete", "x"]), "key": KEY_TEXT}),
        max_size=3,
    ).map(lambda items: json.dumps({"items": items}).encode()),
)
# The valid key most of the time: a request refused at the door tests little parsing.
AUTHORIZATION = st.one_of(
    st.just(f"Bearer {KEYS.key}"),
    st.just(f"Bearer {KEYS.key}"),
    st.just(f"Bearer {KEYS.key}"),
    st.none(),
    st.text(max_size=40).map(lambda text: f"Bearer {text}"),
    st.text(max_size=40),
)
HEADERS = st.fixed_dictionaries(
    {},
    optional={
        "CONTENT_TYPE": st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "a/b+json"]
        ),
        "HTTP_IF_NONE_MATCH": TEXT,
        "HTTP_IDEMPOTENCY_KEY": TEXT,
        "HTTP_X_API_KEY": TEXT,
        "HTTP_ORIGIN": TEXT,
        "HTTP_X_SIGNATURE": TEXT,
    },
)


def _latin1(text: str) -> str:
    """A WSGI string (PEP 3333): the UTF-8 bytes of ``text`` as latin-1 characters."""
    return text.encode("utf-8", "surrogatepass").decode("latin-1")


def call(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    authorization: str | None,
    body: bytes | None,
) -> tuple[int, dict[str, str], bytes]:
    """One request through the WSGI adapter into the resolver, as the local server runs it."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": _latin1(path),
        "RAW_URI": quote(path, safe="/%") + ("?" + urlencode(query) if query else ""),
        "QUERY_STRING": urlencode(query),
        "wsgi.input": io.BytesIO(body or b""),
        "REMOTE_ADDR": "127.0.0.1",
        **{name: _latin1(value) for name, value in headers.items()},
    }
    if body is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = _latin1(authorization)
    seen: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(response_headers)

    payload = b"".join(ResolverWsgiApp(APP)(environ, start_response))  # type: ignore[arg-type]
    return int(seen["status"].split()[0]), seen["headers"], payload


@FUZZ
@given(
    line=REQUEST_LINES,
    query=QUERY,
    headers=HEADERS,
    authorization=AUTHORIZATION,
    body=BODIES,
)
# A valid key and a document nested deeper than the json module recurses (was a 500).
@example(
    line=("PUT", "/v1/documents/changes/deep.json"),
    query=[],
    headers={"CONTENT_TYPE": "application/json"},
    authorization=f"Bearer {KEYS.key}",
    body=b'{"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
)
def test_any_request_gets_an_answer_below_500_and_every_4xx_is_a_problem(
    line: tuple[str, str],
    query: list[tuple[str, str]],
    headers: dict[str, str],
    authorization: str | None,
    body: bytes | None,
) -> None:
    # Given any request / When the API answers it
    method, path = line
    status, response_headers, payload = call(method, path, query, headers, authorization, body)
    # Then never a 5xx (but the 503 of a route this API has no store for)
    if path.startswith(UNCONFIGURED_PREFIXES) and status == 503:
        return
    assert status < 500, (status, payload[:300])
    # And every refusal is a problem body naming its type, with the status it was sent with
    if status >= 400:
        assert response_headers["Content-Type"] == PROBLEM_CONTENT_TYPE, response_headers
        problem = json.loads(payload)
        assert problem["status"] == status
        assert problem["type"].startswith(TYPE_PREFIX)
        assert problem["title"]
