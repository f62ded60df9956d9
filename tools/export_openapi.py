"""Write the query API's OpenAPI document (generated from the routes and models) to a file.

``make openapi`` writes clients/typescript/openapi.json, from which the TypeScript client's types
are generated; tests/unit/test_openapi_export.py fails when the committed copy is stale.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Final, cast

from cachesync.api.app import ApiDependencies, create_app, openapi_json

ROOT: Final = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT: Final = ROOT / "clients" / "typescript" / "openapi.json"
# The document's info.version: the API's version, not the package's (which changes per release).
API_VERSION: Final = "1"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the query API's routes (no store is reached to build it)."""
    absent = cast(Any, None)
    app = create_app(
        ApiDependencies(
            index_store_for=absent,
            bucket="documents",
            reader=absent,
            writer=absent,
            keys=absent,
            token_secret=b"x" * 32,
            token_lifetime=timedelta(hours=1),
            retention=timedelta(days=90),
            version=API_VERSION,
        )
    )
    document: dict[str, Any] = json.loads(openapi_json(app, API_VERSION))
    return document


def render(document: dict[str, Any]) -> str:
    """The file's text: stable key order, two-space indent, final newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the document to ``--output`` (default: the TypeScript client's copy)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    arguments = parser.parse_args(argv)
    arguments.output.write_text(render(openapi_document()), encoding="utf-8")
    print(f"wrote {arguments.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
