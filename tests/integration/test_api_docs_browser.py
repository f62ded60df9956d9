"""Swagger UI at /v1/docs in a real headless browser (Debian's chromium, driven by Playwright).

The page, its scripts and styles and the OpenAPI document come from the local server itself:
the local stack is offline, so a CDN-hosted Swagger UI would not render. ``make setup`` installs
chromium (apt); Playwright's own browser download does not work offline, so it drives the
system's binary.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.integration.api_http import ApiWorld, api_world

__all__ = ["api_world"]  # the module's server fixture, shared with the other API tests

CHROMIUM = "/usr/bin/chromium"
# Headless, and quiet: without the networking flags chromium keeps trying to reach the internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
RENDER_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless chromium (the system's: ``make setup`` installs it)."""
    executable = shutil.which("chromium") or CHROMIUM
    assert shutil.which(executable), "chromium is missing: `make setup` installs it (apt)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def test_swagger_ui_renders_every_operation_from_the_api_alone(
    api_world: ApiWorld, browser: Browser
) -> None:
    # Given the docs page of the running server, every request and console message recorded
    origin = f"http://{api_world.host}:{api_world.port}"
    page = browser.new_page()
    requested: list[str] = []
    answers: list[tuple[str, int]] = []
    console: list[tuple[str, str]] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("response", lambda response: answers.append((response.url, response.status)))
    page.on("console", lambda message: console.append((message.type, message.text)))
    page.on("pageerror", lambda error: console.append(("pageerror", str(error))))
    # Any request to another origin is recorded, then refused (none may leave the server).
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(origin + "/")
            else route.abort("blockedbyclient")
        ),
    )
    # When it is loaded and Swagger UI has rendered the operations
    page.goto(f"{origin}/v1/docs", wait_until="load")
    page.get_by_text("Query documents", exact=True).wait_for(timeout=RENDER_TIMEOUT_MS)
    summaries: list[Any] = page.locator(".opblock-summary-description").all_inner_texts()
    page.close()
    # Then every operation is listed, with the API's title
    assert set(summaries) >= {
        "Query documents",
        "Read one document",
        "Write one document",
        "Delete one document",
        "Health",
    }
    # And everything came from the server itself: the page, its assets, the OpenAPI document
    assert {urlsplit(url).netloc for url in requested} == {urlsplit(origin).netloc}, requested
    paths = {urlsplit(url).path for url in requested}
    assert {"/v1/docs", "/v1/docs/swagger-ui-bundle.min.js", "/v1/openapi.json"} <= paths
    assert all(status == 200 for _, status in answers), answers
    # And the console holds no error: no CSP violation, no failed load, no script error
    errors = [(kind, text) for kind, text in console if kind in ("error", "pageerror")]
    assert errors == []
    assert not any("Content Security Policy" in text for _, text in console)
