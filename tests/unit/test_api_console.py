"""The web console's static routes in process: pages, assets, headers, refusals.

The console in a real browser is tests/integration/test_console_browser.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Final

import pytest

from cachesync.api.app import SECURITY_HEADERS, create_app, openapi_json
from cachesync.api.console import CONSOLE_ASSETS, CONSOLE_CSP
from cachesync.local.api_server import event_from_environ
from cachesync.local.lambda_functions import LocalLambdaContext
from tests.unit.test_api_app import call, dependencies, environ

ROOT: Final = Path(__file__).resolve().parents[2]
CONSOLE_DIR: Final = ROOT / "shared" / "cachesync" / "api" / "console"
EXPECTED_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(dependencies())


def test_the_console_page_is_served_without_a_key_with_its_strict_csp(app: Any) -> None:
    # Given no API key / When the console page is asked for
    status, headers, body = call(app, environ("/console"))
    # Then the page, as HTML, with the console's CSP, revalidated on each load
    assert status == "200 OK"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert headers["Content-Security-Policy"] == EXPECTED_CSP == CONSOLE_CSP
    assert headers["Cache-Control"] == "no-cache"
    assert re.fullmatch(r'"[0-9a-f]{32}"', headers["ETag"])
    assert b"<title>cachesync console</title>" in body
    # And the other security headers are still there
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize(
    ("path", "location"), [("/console/", "../console"), ("/console//", "../../console")]
)
def test_a_trailing_slash_is_redirected_to_the_page(app: Any, path: str, location: str) -> None:
    # Given the page's address with trailing slashes (its relative URLs would break there)
    # When it is asked for
    status, headers, body = call(app, environ(path))
    # Then a permanent redirect to the slash-less address, relative to the one asked for
    assert status == "308 Permanent Redirect"
    assert headers["Location"] == location
    assert body == b""


def test_the_page_needs_no_inline_script_nor_style(app: Any) -> None:
    # Given the console page
    _, _, body = call(app, environ("/console"))
    page = body.decode()
    # When its scripts, styles and attributes are listed
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.DOTALL)
    # Then every script comes from a file, and nothing is styled inline
    assert scripts
    assert all('src="console/' in attributes and not text.strip() for attributes, text in scripts)
    assert "<style" not in page
    assert not re.search(r"\sstyle=", page)
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers either


def test_every_file_the_page_and_scripts_load_is_a_served_asset(app: Any) -> None:
    # Given the page and its modules
    _, _, body = call(app, environ("/console"))
    referenced = set(re.findall(r'(?:href|src)="console/([^"]+)"', body.decode()))
    for name in CONSOLE_ASSETS:
        if name.endswith(".js"):
            text = (CONSOLE_DIR / name).read_text(encoding="utf-8")
            referenced |= set(re.findall(r'from "\./([^"]+)"', text))
    # When / Then each one is served
    assert referenced >= {"console.css", "console.js"}
    for name in referenced:
        status, _, _ = call(app, environ(f"/console/{name}"))
        assert status == "200 OK", name


@pytest.mark.parametrize(
    ("asset", "content_type"),
    [
        ("console.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("charts.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
        ("index.html", "text/html; charset=utf-8"),
    ],
)
def test_assets_are_served_with_their_content_type(app: Any, asset: str, content_type: str) -> None:
    # Given / When an asset is asked for
    status, headers, body = call(app, environ(f"/console/{asset}"))
    # Then it is the file, with its content type, the CSP and no-cache
    assert status == "200 OK"
    assert headers["Content-Type"] == content_type
    assert headers["Content-Security-Policy"] == CONSOLE_CSP
    assert headers["Cache-Control"] == "no-cache"
    assert body == (CONSOLE_DIR / asset).read_bytes()


@pytest.mark.parametrize(
    "path", ["/console", "/console/console.js", "/v1/docs/swagger-ui-bundle.min.js"]
)
def test_answers_are_text_never_base64_even_to_a_gzip_client(app: Any, path: str) -> None:
    # Given a browser's request, accepting gzip, as API Gateway hands it to Lambda
    event = event_from_environ(environ(path, **{"Accept-Encoding": "gzip, deflate, br"}))  # type: ignore[arg-type]
    # When the resolver answers it
    answer = app.resolve(event, LocalLambdaContext("query_api"))
    # Then the body is the file's text: API Gateway would pass a base64 body through as is
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is False
    assert "Content-Encoding" not in answer["multiValueHeaders"]


def test_a_known_etag_gets_304_without_a_body(app: Any) -> None:
    # Given the ETag of console.js
    _, first, _ = call(app, environ("/console/console.js"))
    # When it is asked for again with it (among others), and with another
    status, headers, body = call(
        app, environ("/console/console.js", **{"If-None-Match": f'"x", {first["ETag"]}'})
    )
    other, _, _ = call(app, environ("/console/console.js", **{"If-None-Match": '"x"'}))
    # Then 304 without a body, then 200
    assert status == "304 Not Modified"
    assert body == b""
    assert headers["ETag"] == first["ETag"]
    assert other == "200 OK"


@pytest.mark.parametrize(
    "path",
    [
        "/console/nope.js",
        "/console/routes.py",  # the modules next to the assets
        "/console/__init__.py",
        "/console/..",
        "/console/../app.py",
        "/console/..%2Fapp.py",
        "/console/%2e%2e%2fapp.py",
        "/console/console/console.js",
        "/console/CONSOLE.JS",
        "/console/.%2Fconsole.js",
    ],
)
def test_unknown_assets_and_traversals_are_404_problems(app: Any, path: str) -> None:
    # Given / When a name that is not a console asset is asked for
    status, headers, body = call(app, environ(path))
    # Then a 404 problem, with the API's default headers (nothing of the package is served)
    assert status == "404 Not Found"
    assert headers["Content-Type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == 404
    assert headers["Content-Security-Policy"] == SECURITY_HEADERS["Content-Security-Policy"]


def test_the_console_is_not_part_of_the_openapi_document(app: Any) -> None:
    # Given / When the OpenAPI document is generated
    document = json.loads(openapi_json(app, "1.2.3"))
    # Then no console route is documented
    assert not [path for path in document["paths"] if path.startswith("/console")]


def test_the_asset_list_and_the_folder_hold_the_same_files() -> None:
    # Given the files in the console folder / When compared with the served names
    on_disk = {path.name for path in CONSOLE_DIR.iterdir() if path.is_file()}
    # Then every file but the Python modules is served, and every served name exists
    assert {name for name in on_disk if not name.endswith(".py")} == set(CONSOLE_ASSETS)


def test_the_console_files_are_package_data() -> None:
    # Given the package data patterns of pyproject.toml
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["cachesync"]
    # When / Then each console file matches one (a wheel without them would serve 500s)
    for name in CONSOLE_ASSETS:
        assert any(fnmatch.fnmatch(f"api/console/{name}", pattern) for pattern in patterns), name


def test_the_scripts_never_write_markup_nor_inline_styles() -> None:
    # Given the console's scripts / When searched for what the CSP forbids or what turns
    # text into markup
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\.style\b|"
        r"setAttribute\(\s*[\"']style|\beval\(|new Function|localStorage|document\.cookie"
    )
    # Then none is used
    for name in CONSOLE_ASSETS:
        if name.endswith(".js"):
            text = (CONSOLE_DIR / name).read_text(encoding="utf-8")
            assert not forbidden.search(text), (name, forbidden.search(text))
