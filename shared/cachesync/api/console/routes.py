"""The web console's routes: ``/console`` and its static files, served by the API (issue 12).

A single page of plain ES modules and CSS (this package's folder), no build step and no CDN:
the same files run behind API Gateway (the query_api Lambda's layer ships them as package data)
and on the local server. The page needs no key; every data call it makes carries the key the
user typed (``Authorization: Bearer``), so serving the files anonymously discloses nothing.

Only the file names listed in ``CONSOLE_ASSETS`` are served: a request names an asset, never a
path, so no request can read another file of the package (its Python modules included).
"""

from __future__ import annotations

import hashlib
from functools import cache
from importlib.resources import files
from typing import Any, Final

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from cachesync.api.problems import not_found

CONSOLE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
# Revalidated on every load (the ETag makes that a 304): file names carry no content hash, so a
# cached console.js could otherwise outlive the index.html of a new deployment.
CONSOLE_CACHE_CONTROL: Final = "no-cache"
CONSOLE_PAGE: Final = "index.html"
# Never compressed here (no compress=True): a gzipped body leaves Lambda base64-encoded, and a
# REST API without binaryMediaTypes (infra/api_gateway.tf sets none) would hand the browser that
# base64 text. The files are small (about 50 KB in all).

# name -> content type: the only files served.
CONSOLE_ASSETS: Final = {
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
    "views.js": "text/javascript; charset=utf-8",
    "dom.js": "text/javascript; charset=utf-8",
}


@cache
def console_asset(name: str) -> tuple[str, str, str] | None:
    """The text, content type and strong ETag of the console file ``name``; ``None`` if unknown."""
    content_type = CONSOLE_ASSETS.get(name)
    if content_type is None:
        return None
    text = files("cachesync.api.console").joinpath(name).read_text(encoding="utf-8")
    etag = '"' + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32] + '"'
    return text, content_type, etag


def console_router() -> Router:
    """A new router with the console's two routes (one per resolver: a router holds the state
    of the resolver it was last included in)."""
    router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves __init__ untyped

    def asset_response(name: str) -> Response[Any]:
        found = console_asset(name)
        if found is None:
            raise not_found("no such console asset")
        text, content_type, etag = found
        headers = {
            "Content-Security-Policy": CONSOLE_CSP,
            "Cache-Control": CONSOLE_CACHE_CONTROL,
            "ETag": etag,
        }
        presented = router.current_event.headers.get("If-None-Match") or ""
        if etag in (tag.strip() for tag in presented.split(",")):
            return Response(status_code=304, headers=headers, body=None)
        return Response(status_code=200, content_type=content_type, body=text, headers=headers)

    @router.get("/console", include_in_schema=False)
    def console_page() -> Response[Any]:
        # Powertools also routes "/console/" here, where the page's relative URLs would point
        # under /console/console/: send the browser to the slash-less address instead
        # (relative, so it holds under an API Gateway stage or base path too).
        path = router.current_event.path
        slashes = len(path) - len(path.rstrip("/"))
        if slashes:
            location = "../" * slashes + "console"
            return Response(status_code=308, headers={"Location": location}, body=None)
        return asset_response(CONSOLE_PAGE)

    @router.get("/console/<asset>", include_in_schema=False)
    def console_file(asset: str) -> Response[Any]:
        return asset_response(asset)

    return router
