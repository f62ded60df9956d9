"""The API resolver and its WSGI adapter in process: OpenAPI, routing, headers, early refusals.

Only what answers before any store is called is tested here (the stores are absent); the rest
runs over HTTP against DynamoDB Local in tests/integration/test_api_*.py.
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import Any, cast

import pytest
from openapi_spec_validator import validate

from cachesync.api.app import SECURITY_HEADERS, ApiDependencies, create_app, openapi_json
from cachesync.local.api_server import ResolverWsgiApp, event_from_environ

ABSENT: Any = None  # a store the requests below must never reach


def dependencies(cors_origins: tuple[str, ...] = ()) -> ApiDependencies:
    return ApiDependencies(
        index_store_for=cast(Any, ABSENT),
        bucket="docs",
        reader=ABSENT,
        writer=ABSENT,
        keys=ABSENT,
        token_secret=b"s" * 32,
        token_lifetime=timedelta(hours=1),
        retention=timedelta(days=90),
        version="1.2.3",
        cors_origins=cors_origins,
    )


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(dependencies())


def environ(path: str, query: str = "", method: str = "GET", **headers: str) -> dict[str, Any]:
    values: dict[str, Any] = {
        "REQUEST_METHOD": method,
        # PEP 3333: the decoded path's UTF-8 bytes as latin-1 characters.
        "PATH_INFO": path.encode().decode("latin-1"),
        "QUERY_STRING": query,
        "wsgi.input": io.BytesIO(b""),
        "REMOTE_ADDR": "127.0.0.1",
    }
    values.update({f"HTTP_{name.upper().replace('-', '_')}": v for name, v in headers.items()})
    return values


def call(app: Any, env: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(ResolverWsgiApp(app)(env, start_response))  # type: ignore[arg-type]
    return seen["status"], seen["headers"], body


def test_the_openapi_document_is_generated_valid_openapi_3(app: Any) -> None:
    # Given the resolver / When its OpenAPI document is generated
    document = json.loads(openapi_json(app, "1.2.3"))
    # Then it is valid, versioned, and documents problems and the query parameters
    validate(document)
    assert document["info"]["version"] == "1.2.3"
    query = document["paths"]["/v1/documents"]["get"]
    assert {p["name"] for p in query["parameters"]} == {
        "customer",
        "status",
        "kind",
        "since",
        "until",
        "order",
        "limit",
        "fields",
        "next_token",
    }
    assert "application/problem+json" in query["responses"]["401"]["content"]
    assert document["paths"]["/v1/health"]["get"]["security"] == [{}]


def test_the_adapter_builds_a_rest_event_with_decoded_path_and_repeated_parameters() -> None:
    # Given a request for a key with a slash, a space, a plus and a non-ASCII letter
    env = environ(
        "/v1/documents/changes/a b+c é.json", "status=a&status=b&kind=change", **{"X-Api-Key": "k"}
    )
    # When it becomes an event
    event = event_from_environ(env)  # type: ignore[arg-type]
    # Then the path is decoded once, and repeated parameters are kept in order
    assert event["path"] == "/v1/documents/changes/a b+c é.json"
    assert event["multiValueQueryStringParameters"]["status"] == ["a", "b"]
    assert event["queryStringParameters"]["kind"] == "change"
    assert event["headers"]["X-Api-Key"] == "k"


def test_unknown_routes_are_problems_with_the_security_headers(app: Any) -> None:
    # Given / When an unknown route is asked for
    status, headers, body = call(app, environ("/v2/anything"))
    # Then a 404 problem, with every security header
    assert status == "404 Not Found"
    assert headers["Content-Type"] == "application/problem+json"
    assert json.loads(body)["status"] == 404
    for name, value in SECURITY_HEADERS.items():
        assert headers[name] == value


def test_a_request_without_a_key_is_refused_before_any_store_is_read(app: Any) -> None:
    # Given no key / When a document is asked for
    status, headers, body = call(app, environ("/v1/documents/changes/a.json"))
    # Then 401 (a store call would have failed with a 500)
    assert status == "401 Unauthorized"
    assert json.loads(body)["type"] == "urn:cachesync:problem:unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_the_docs_page_has_its_own_strict_csp(app: Any) -> None:
    # Given / When the docs page is asked for
    status, headers, body = call(app, environ("/v1/docs"))
    # Then its CSP allows same-origin scripts only
    assert status == "200 OK"
    assert "script-src 'self';" in headers["Content-Security-Policy"]
    assert b"<script>" not in body


def test_cors_allows_only_the_configured_origins() -> None:
    # Given an API configured for one origin
    app = create_app(dependencies(cors_origins=("https://app.example",)))
    # When the docs are asked for from that origin and from another
    _, allowed, _ = call(app, environ("/v1/docs", Origin="https://app.example"))
    _, other, _ = call(app, environ("/v1/docs", Origin="https://evil.example"))
    _, default, _ = call(
        create_app(dependencies()), environ("/v1/docs", Origin="https://app.example")
    )
    # Then only the configured origin is allowed, and without configuration none is
    assert allowed["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Access-Control-Allow-Origin" not in other
    assert "Access-Control-Allow-Origin" not in default


@pytest.mark.parametrize(
    ("path", "query", "method"),
    [
        ("/v1/documents", "limit=0", "GET"),
        ("/v1/documents", "limit=abc&kind=nope&order=sideways", "GET"),
        ("/v1/documents", "customer=", "GET"),
        ("/v1/documents/changes/a.json", "", "PUT"),  # no body
        ("/v1/documents/changes/a.json", "", "DELETE"),
    ],
)
def test_an_unauthenticated_request_with_bad_parameters_is_401_not_400(
    app: Any, path: str, query: str, method: str
) -> None:
    # Given a request without a key whose parameters or body fail validation
    env = environ(path, query, method=method)
    # When it is answered
    status, headers, body = call(app, env)
    # Then the missing key is reported, not the parameters (no hint of what would be valid)
    assert status == "401 Unauthorized"
    assert json.loads(body)["type"] == "urn:cachesync:problem:unauthorized"
    assert headers["WWW-Authenticate"].startswith("Bearer")


def test_an_unauthenticated_request_with_an_invalid_bearer_and_bad_parameters_is_401(
    app: Any,
) -> None:
    # Given a malformed Authorization header and an out-of-range limit
    env = environ("/v1/documents", "limit=501", Authorization="Basic dXNlcjpwdw==")
    # When it is answered / Then 401
    status, _, body = call(app, env)
    assert status == "401 Unauthorized"
    assert "Bearer" in json.loads(body)["detail"]


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [
        ("/v1/documents", "POST", "GET"),
        ("/v1/documents", "DELETE", "GET"),
        ("/v1/health", "POST", "GET"),
        ("/v1/openapi.json", "PUT", "GET"),
        ("/v1/documents/changes/a b.json", "POST", "DELETE, GET, PUT"),
        ("/v1/documents/changes/a.json", "PATCH", "DELETE, GET, PUT"),
    ],
)
def test_a_known_path_with_another_method_is_405_with_allow(
    app: Any, path: str, method: str, allowed: str
) -> None:
    # Given a path the API serves / When it is called with a method it does not serve
    status, headers, body = call(app, environ(path, method=method))
    # Then 405 with the methods it does serve, as a problem with the security headers
    assert status == "405 Method Not Allowed"
    assert headers["Allow"] == allowed
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 405
    assert problem["type"] == "urn:cachesync:problem:method-not-allowed"
    assert method in problem["detail"]
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_an_unknown_path_is_still_404_whatever_the_method(app: Any) -> None:
    # Given / When a path the API does not serve is posted to
    status, headers, _ = call(app, environ("/v1/nothing-here", method="POST"))
    # Then 404, without an Allow header
    assert status == "404 Not Found"
    assert "Allow" not in headers


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_key_with_a_line_break_reaches_the_document_routes(app: Any, method: str) -> None:
    # Given a key holding a line break and a carriage return (schemathesis found a 404 "no such
    # route" on PUT, a status the operation does not document)
    env = environ("/v1/documents/changes/a\nb\rc.json", method=method)
    # When it is sent without a key
    status, _, body = call(app, env)
    # Then the route answers (401), not the router (404)
    assert status == "401 Unauthorized", body


def test_a_body_that_is_not_utf8_without_a_key_is_401_not_500(app: Any) -> None:
    # Given a PUT whose body is bytes that are not UTF-8 (schemathesis found a 500 with a key)
    raw = b"\xff\x1f\xd6\xb1{"
    env = environ("/v1/documents/changes/a.json", method="PUT")
    env.update(
        {
            "wsgi.input": io.BytesIO(raw),
            "CONTENT_LENGTH": str(len(raw)),
            "CONTENT_TYPE": "application/json",
        }
    )
    # When it is answered / Then the missing key is reported
    status, _, body = call(app, env)
    assert status == "401 Unauthorized", body
