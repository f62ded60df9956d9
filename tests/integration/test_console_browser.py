"""The web console at /console in a real headless browser (Debian's chromium, Playwright).

Signs in, filters, pages and opens a document against the real API server with seeded
documents; every request must stay on the server's origin, and the page must log no error and
no CSP violation. The analytics and webhook routes do not exist yet: their views are not driven
here (no stubbed routes); the chart code is tested on its own, in the browser, with data passed
in from the test. Screenshots of the main views go to docs/images/ with `make screenshots`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote, urlsplit

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from standardwebhooks.webhooks import Webhook

from cachesync.api.keys import Scope
from cachesync.local import LocalStack
from tests.integration.api_feed import feed_the_stream
from tests.integration.api_http import ApiWorld, api_world, change
from tests.support.webhook_receiver import scripted_receiver

__all__ = ["api_world"]  # the module's server fixture, shared with the other API tests

CHROMIUM: Final = "/usr/bin/chromium"
# Headless, and quiet: without the networking flags chromium keeps trying to reach the internet.
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS: Final = 30_000
# `make screenshots` sets it to docs/images; otherwise the pictures go to the test's own folder.
SCREENSHOTS_VARIABLE: Final = "CACHESYNC_SCREENSHOTS_DIR"
# A fixed time: the screenshots stay the same from one run to the next (bucket name aside).
NOW: Final = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# 12 documents of acme (one key with a space: each path segment is percent-encoded), 4 of
# globex; with 10 a page, acme's documents fill two pages.
ACME: Final = [
    f"console/acme/CHG-{number:03d}{' draft' if number == 7 else ''}.json" for number in range(12)
]
GLOBEX: Final = [f"console/globex/CHG-{number:03d}.json" for number in range(4)]


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


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/images with `make screenshots`, else a scratch folder."""
    folder = Path(os.environ.get(SCREENSHOTS_VARIABLE) or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def seeded(api_world: ApiWorld) -> dict[str, list[str]]:
    """The documents above, written through the API (S3 and the index)."""
    writer = api_world.key(scopes=(Scope.READ, Scope.WRITE))
    for customer, keys in (("acme", ACME), ("globex", GLOBEX)):
        for number, key in enumerate(keys):
            body = change(
                f"{customer}-{number}",
                customers=(customer,),
                status=("approved", "draft", "scheduled")[number % 3],
                modified=NOW - timedelta(hours=number),
            )
            reply = api_world.request("PUT", "/v1/documents/" + quote(key), key=writer, body=body)
            assert reply.status == 200, reply.body
    return {"acme": ACME, "globex": GLOBEX}


@dataclass
class Recorded:
    """What a page asked for and logged."""

    requested: list[str] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)

    def errors(self) -> list[tuple[str, str]]:
        """Script errors, failed loads and CSP violations."""
        return [
            (kind, text)
            for kind, text in self.console
            if kind in ("error", "pageerror") or "Content Security Policy" in text
        ]


@pytest.fixture
def open_page(
    browser: Browser, api_world: ApiWorld
) -> Iterator[Callable[[], tuple[Page, Recorded]]]:
    """A new page whose requests must stay on the server's origin, everything recorded."""
    origin = f"http://{api_world.host}:{api_world.port}"
    contexts = []

    def opened() -> tuple[Page, Recorded]:
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        contexts.append(context)
        page = context.new_page()
        recorded = Recorded()
        page.on("request", lambda request: recorded.requested.append(request.url))
        page.on(
            "response", lambda response: recorded.answers.append((response.url, response.status))
        )
        page.on("console", lambda message: recorded.console.append((message.type, message.text)))
        page.on("pageerror", lambda error: recorded.console.append(("pageerror", str(error))))
        # Any request to another origin is recorded, then refused (none may leave the server).
        page.route(
            "**/*",
            lambda route: (
                route.continue_()
                if route.request.url.startswith(origin + "/")
                else route.abort("blockedbyclient")
            ),
        )
        return page, recorded

    yield opened
    for context in contexts:
        context.close()


def rows(page: Page) -> list[str]:
    """The keys of the documents table, in order."""
    keys: list[str] = page.locator("table.documents tbody tr td:first-child").all_inner_texts()
    return keys


def test_sign_in_filter_page_open_a_document_and_sign_out(
    api_world: ApiWorld,
    seeded: dict[str, list[str]],
    open_page: Callable[[], tuple[Page, Recorded]],
    shots: Path,
) -> None:
    # Given the console of the running server and a read-only key
    origin = f"http://{api_world.host}:{api_world.port}"
    key = api_world.key()
    page, recorded = open_page()
    page.set_default_timeout(TIMEOUT_MS)
    # When it is loaded: the sign-in form
    page.goto(f"{origin}/console", wait_until="load")
    page.get_by_label("API key").wait_for()
    page.screenshot(path=str(shots / "console-sign-in.png"))
    # And the key is typed in: the documents, every one of them on one page
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("table.documents").wait_for()
    assert set(rows(page)) == set(seeded["acme"]) | set(seeded["globex"])
    assert page.evaluate("sessionStorage.length") == 1
    # And filtered by customer, 10 a page
    page.get_by_label("Customer").fill("acme")
    page.get_by_label("Page size").select_option("10")
    page.get_by_role("button", name="Search").click()
    page.get_by_text("Page 1 · 10 shown").wait_for()
    first = rows(page)
    page.screenshot(path=str(shots / "console-documents.png"), full_page=True)
    # And paged forward, then back
    page.get_by_role("button", name="Next →").click()
    page.get_by_text("Page 2 · 2 shown").wait_for()
    second = rows(page)
    assert page.get_by_role("button", name="Next →").is_disabled()
    page.get_by_role("button", name="← Previous").click()
    page.get_by_text("Page 1 · 10 shown").wait_for()
    # Then the pages hold acme's documents, each once, and "previous" shows page 1 again
    assert sorted(first + second) == sorted(seeded["acme"])
    assert rows(page) == first
    assert page.get_by_role("button", name="← Previous").is_disabled()
    # When the document whose key holds a space is opened
    spaced = next(name for name in seeded["acme"] if " " in name)
    if spaced not in first:
        page.get_by_role("button", name="Next →").click()
        page.get_by_text("Page 2 · 2 shown").wait_for()
    page.get_by_role("cell", name=spaced).click()
    json_block = page.locator("pre.json")
    json_block.wait_for()
    # Then its summary and its pretty-printed JSON are shown
    assert page.locator("h1.doc-title").inner_text() == spaced
    text = json_block.inner_text()
    assert '"change_id": "acme-7"' in text
    assert '\n  "customers": [\n    "acme"\n  ]' in text
    assert "acme" in page.locator("dl.summary").inner_text()
    page.screenshot(path=str(shots / "console-document.png"), full_page=True)
    # And it was asked for with each segment percent-encoded
    assert f"{origin}/v1/documents/console/acme/CHG-007%20draft.json" in recorded.requested
    # When the user goes back to the documents, then asks for two statuses
    page.get_by_role("link", name="← Documents").click()
    page.locator("table.documents").wait_for()
    assert page.get_by_label("Customer").input_value() == "acme"
    page.get_by_label("Status").select_option(["draft", "scheduled"])
    page.get_by_role("button", name="Search").click()
    page.get_by_text("Page 1 · 8 shown").wait_for()
    # Then the filters were kept, and only acme's drafts and scheduled documents are listed
    assert set(rows(page)) == {key for n, key in enumerate(seeded["acme"]) if n % 3 != 0}
    assert f"{origin}/v1/documents?customer=acme&status=draft&status=scheduled&limit=10" in (
        recorded.requested
    )
    # When the user signs out
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").wait_for()
    # Then the key is gone from the tab, and was never kept anywhere else nor put in a URL
    assert page.evaluate("sessionStorage.length") == 0
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert not [url for url in recorded.requested if key in url or key.split("_")[-1] in url]
    # And everything came from the server itself, with no error and no CSP violation
    assert {urlsplit(url).netloc for url in recorded.requested} == {urlsplit(origin).netloc}
    assert all(status in (200, 304) for _, status in recorded.answers), recorded.answers
    assert recorded.errors() == []


def test_a_refused_key_shows_the_problem_and_stays_signed_out(
    api_world: ApiWorld, open_page: Callable[[], tuple[Page, Recorded]]
) -> None:
    # Given the console and a key that does not exist
    origin = f"http://{api_world.host}:{api_world.port}"
    page, recorded = open_page()
    page.set_default_timeout(TIMEOUT_MS)
    # (asked for with a trailing slash: redirected to the page's own address)
    page.goto(f"{origin}/console/", wait_until="load")
    assert page.url == f"{origin}/console"
    # When it is used to sign in
    page.get_by_label("API key").fill("csk_000000000000_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    alert = page.locator("#problem")
    alert.wait_for()
    # Then the problem's title and detail are shown, the form stays, nothing is kept
    assert alert.inner_text().startswith("Unauthorized")
    assert page.get_by_label("API key").is_visible()
    assert page.evaluate("sessionStorage.length") == 0
    # And the browser logged only the refused call itself (no script error, no CSP violation)
    unexpected = [(kind, text) for kind, text in recorded.errors() if "status of 401" not in text]
    assert unexpected == []


def sign_in(page: Page, origin: str, key: str) -> None:
    """Load the console and sign in with ``key``; back when the documents are shown."""
    page.goto(f"{origin}/console", wait_until="load")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.locator("table.documents, .results .empty").first.wait_for()


def test_a_revoked_key_returns_to_sign_in_and_a_refused_request_does_not(
    api_world: ApiWorld,
    seeded: dict[str, list[str]],
    open_page: Callable[[], tuple[Page, Recorded]],
) -> None:
    origin = f"http://{api_world.host}:{api_world.port}"
    # Given a user signed in with a key that is then revoked
    page, recorded = open_page()
    page.set_default_timeout(TIMEOUT_MS)
    revoked = api_world.key()
    sign_in(page, origin, revoked)
    api_world.keys.revoke(api_world.created_keys[revoked], datetime.now(UTC))
    # When the next call is made
    page.get_by_role("button", name="Search").click()
    # Then the 401's problem is shown, on the sign-in form, and the key is forgotten
    page.get_by_label("API key").wait_for()
    assert page.locator("#problem").inner_text().startswith("Unauthorized")
    assert page.evaluate("sessionStorage.length") == 0
    # Given a key limited to globex
    sign_in(page, origin, api_world.key(customers=("globex",)))
    assert set(rows(page)) == set(seeded["globex"])
    # When it asks for acme's documents
    page.get_by_label("Customer").fill("acme")
    page.get_by_role("button", name="Search").click()
    # Then the 403's detail is shown, and the user stays signed in (the key is valid; only this
    # request was refused)
    problem = page.locator("main .problem", has_text="may not query customer 'acme'")
    expect(problem).to_have_count(1)
    assert problem.inner_text().startswith("Forbidden")
    assert page.get_by_role("button", name="Search").is_visible()
    assert page.evaluate("sessionStorage.length") == 1
    # And the browser logged only the refused calls (no script error, no CSP violation)
    unexpected = [
        (kind, text)
        for kind, text in recorded.errors()
        if "status of 401" not in text and "status of 403" not in text
    ]
    assert unexpected == []


def test_analytics_show_the_change_feeds_counts_and_a_webhook_gets_its_test_ping(
    api_world: ApiWorld,
    local_stack: LocalStack,
    seeded: dict[str, list[str]],
    open_page: Callable[[], tuple[Page, Recorded]],
    shots: Path,
) -> None:
    # Given the seeded documents run through the change feed, and a user signed in with an
    # admin key
    feed_the_stream(api_world, local_stack)
    origin = f"http://{api_world.host}:{api_world.port}"
    page, recorded = open_page()
    page.set_default_timeout(TIMEOUT_MS)
    sign_in(page, origin, api_world.key(scopes=(Scope.READ, Scope.WRITE, Scope.ADMIN)))
    # When the analytics view is opened
    page.get_by_role("link", name="Analytics").click()
    cards = page.locator(".cards > .card")
    cards.first.wait_for()
    expect(page.locator(".cards")).not_to_contain_text("Loading", timeout=TIMEOUT_MS)
    # Then the volume chart draws today's creations, and the breakdown names both customers
    volume = cards.nth(0).locator("svg[role=img]")
    expect(volume).to_have_count(1)
    breakdown = cards.nth(1)
    expect(breakdown.locator("[data-category=acme]")).to_have_count(1)
    expect(breakdown.locator("[data-category=globex]")).to_have_count(1)
    assert "acme: 12" in breakdown.inner_text() or "acme: 12" in breakdown.inner_html()
    page.screenshot(path=str(shots / "console-analytics.png"), full_page=True)
    # When a webhook to a local receiver is added and tested from the webhooks view
    with scripted_receiver([200]) as receiver:
        page.get_by_role("link", name="Webhooks").click()
        page.get_by_label("Endpoint URL").fill(receiver.url)
        page.get_by_role("button", name="Add webhook").click()
        secret = page.locator(".secret-value").inner_text()
        row = page.locator("tr", has_text=receiver.url)
        row.get_by_role("button", name="Test").click()
        expect(page.locator("main")).to_contain_text("Status code")
        page.screenshot(path=str(shots / "console-webhooks.png"), full_page=True)
        row.get_by_role("button", name="Deliveries").click()
        expect(page.locator("main")).to_contain_text("Recent deliveries")
        # Then the receiver got one ping, signed with the secret the page showed once
        (request,) = receiver.received
    assert secret.startswith("whsec_")
    assert Webhook(secret).verify(request.body, request.headers)["type"] == "webhook.ping"
    assert "200" in page.locator("main").inner_text()
    # And no script error, no CSP violation, still signed in
    assert recorded.errors() == []
    assert page.evaluate("sessionStorage.length") == 1


def draw(page: Page, function: str, *arguments: Any) -> dict[str, Any]:
    """Call charts.js's ``function`` in the page with ``arguments``; what the SVG shows."""
    result: dict[str, Any] = page.evaluate(
        """async ([name, args]) => {
            const charts = await import(new URL("console/charts.js", location.href).href);
            const svg = charts[name](...args);
            document.body.append(svg);
            const texts = [...svg.querySelectorAll("text")].map((node) => node.textContent);
            return {
                tag: svg.tagName,
                role: svg.getAttribute("role"),
                label: svg.getAttribute("aria-label"),
                title: svg.querySelector(":scope > title").textContent,
                empty: svg.classList.contains("chart-empty"),
                bars: [...svg.querySelectorAll("rect[data-category]")].map((rect) => ({
                    category: rect.getAttribute("data-category"),
                    series: rect.getAttribute("data-series"),
                    height: Number(rect.getAttribute("height")),
                    width: Number(rect.getAttribute("width")),
                    fill: rect.getAttribute("fill"),
                })),
                texts,
                width: svg.getBoundingClientRect().width,
            };
        }""",
        [function, list(arguments)],
    )
    return result


def test_the_chart_code_draws_labelled_svg_from_data(
    api_world: ApiWorld, open_page: Callable[[], tuple[Page, Recorded]]
) -> None:
    # Given the console page (its CSP applies to the chart module too)
    origin = f"http://{api_world.host}:{api_world.port}"
    page, recorded = open_page()
    page.goto(f"{origin}/console", wait_until="load")
    row = {"updated": 0, "deleted": 0, "entered": 0, "left": 0}
    volume = [
        {**row, "day": "2026-11-02", "status": "approved", "created": 3},
        {**row, "day": "2026-11-02", "status": "draft", "created": 1},
        {**row, "day": "2026-11-01", "status": "approved", "created": 2},
        {**row, "day": "2026-11-04", "status": "approved", "created": 1},
    ]
    # When the volume, breakdown, lag and gauge charts are drawn, and each with no data
    stacked = draw(page, "volumeChart", volume, "created")
    breakdown = draw(
        page,
        "breakdownChart",
        "customer",
        [{"key": "acme", "net": 5}, {"key": "globex", "net": -2}],
        "net",
    )
    lag = draw(
        page,
        "syncLagChart",
        [
            {
                "day": "2026-11-01",
                "count": 4,
                "mean_ms": 900,
                "buckets": {"le_100": 1, "le_1000": 2, "le_10000": 0, "le_60000": 1, "over": 0},
            }
        ],
    )
    gauge = draw(page, "ratioGauge", {"title": "Cache hit ratio", "ratio": 0.75})
    empties = [
        draw(page, "volumeChart", [], "created"),
        draw(page, "breakdownChart", "customer", [], "net"),
        draw(page, "syncLagChart", []),
        draw(page, "ratioGauge", {"title": "Cache hit ratio", "ratio": None}),
    ]
    # Then each is an accessible SVG image with a title
    for chart in (stacked, breakdown, lag, gauge, *empties):
        assert chart["tag"] == "svg"
        assert chart["role"] == "img"
        assert chart["label"] == chart["title"] != ""
        assert chart["width"] > 0
    # And the stacked bars: one segment per day and status, days in order, heights in
    # proportion, a legend of the statuses, a labelled axis
    assert [(bar["category"], bar["series"]) for bar in stacked["bars"]] == [
        ("2026-11-01", "approved"),
        ("2026-11-02", "approved"),
        ("2026-11-02", "draft"),
        ("2026-11-04", "approved"),
    ]
    heights = [bar["height"] for bar in stacked["bars"]]
    assert heights[1] == pytest.approx(3 * heights[2]) == pytest.approx(1.5 * heights[0])
    assert stacked["bars"][1]["fill"] == stacked["bars"][0]["fill"] != stacked["bars"][2]["fill"]
    # (a day without changes keeps its place on the axis)
    assert {"approved", "draft", "2026-11-01", "2026-11-03", "created", "0"} <= set(
        stacked["texts"]
    )
    # And the breakdown: one bar per key, the negative one as wide in proportion
    assert [bar["category"] for bar in breakdown["bars"]] == ["acme", "globex"]
    assert breakdown["bars"][0]["width"] == pytest.approx(2.5 * breakdown["bars"][1]["width"])
    assert {"acme", "globex", "5", "-2"} <= set(breakdown["texts"])
    # And the lag: only non-empty buckets drawn, every bucket in the legend
    assert [bar["series"] for bar in lag["bars"]] == ["≤ 100 ms", "≤ 1 s", "≤ 60 s"]
    assert {"≤ 100 ms", "≤ 1 s", "≤ 10 s", "≤ 60 s", "> 60 s"} <= set(lag["texts"])
    # And the gauge shows the ratio as a percentage
    assert "75.0%" in gauge["texts"]
    # And without data: an empty state, no bars
    assert all(chart["empty"] and chart["bars"] == [] for chart in empties)
    assert "No data for this period" in empties[0]["texts"]
    assert "No cache reads yet" in empties[3]["texts"]
    assert recorded.errors() == []
