"""Swagger UI at ``/v1/docs``, served entirely by the API (no CDN: the local stack is offline).

The Swagger UI bundle and stylesheet are the ones Powertools ships in its wheel; the page and its
small initializer are ours, so the page needs no inline script and its CSP allows scripts from
the API's own origin only. URLs are relative, so the page works under an API Gateway stage too.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Final

import aws_lambda_powertools.event_handler.openapi.swagger_ui as swagger_ui_package

_SWAGGER_DIR: Final = Path(swagger_ui_package.__file__).parent

DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

# The empty icon keeps browsers from asking for /favicon.ico (a 404 in their console).
# The page lives at /v1/docs: "docs/<asset>" resolves to /v1/docs/<asset>, "openapi.json" to
# /v1/openapi.json.
DOCS_PAGE: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cachesync query API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="docs/swagger-ui.min.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.min.js"></script>
<script src="docs/swagger-initializer.js"></script>
</body>
</html>
"""

_INITIALIZER: Final = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: new URL("openapi.json", window.location.href).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false
  });
});
"""

# name -> (file in Powertools' swagger_ui folder or None for ours, content type)
_ASSETS: Final = {
    "swagger-ui-bundle.min.js": ("swagger-ui-bundle.min.js", "text/javascript"),
    "swagger-ui.min.css": ("swagger-ui.min.css", "text/css"),
    "swagger-initializer.js": (None, "text/javascript"),
}


@cache
def docs_asset(name: str) -> tuple[str, str] | None:
    """The text and content type of the docs asset ``name``; ``None`` for an unknown name."""
    if name not in _ASSETS:
        return None
    file, content_type = _ASSETS[name]
    text = _INITIALIZER if file is None else (_SWAGGER_DIR / file).read_text(encoding="utf-8")
    return text, content_type
