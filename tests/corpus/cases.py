"""The bad-input corpus: case files, their expectations, and the few directives that keep big
inputs out of the files.

A case is ``cases/<entry_point>/<name>.json``::

    {"description": "...", "kinds": ["truncated-json"], "input": {...}, "expect": {...}}

``input`` is entry-point specific (see README.md); in it, these directives are expanded before
the case runs (a dict with one ``$`` key):

* ``{"$repeat": "ab", "times": N}`` (optional ``prefix``/``suffix``): a long string;
* ``{"$json": value}``: ``value`` expanded, then serialised (a JSON text inside JSON);
* ``{"$concat": [part, ...]}``: the parts expanded and joined;
* ``{"$deep_json": N}``: the text of N nested arrays (too deep to write out);
* ``{"$b64": "..."}``: raw bytes (invalid UTF-8, a BOM, binary garbage);
* ``{"$float": "nan"}``: a float JSON cannot hold (``nan``, ``inf``, ``-inf``);
* ``{"$deep": N}``: N nested lists as a Python value (for inputs that are not JSON texts).

and the placeholders ``{bucket}``, ``{key}``, ``{key_enc}``, ``{etag}``, ``{size}``, ``{now}``
(and whatever else a runner binds) are replaced inside every string.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

CASES_DIR: Final = Path(__file__).parent / "cases"
ENTRY_POINTS: Final = (
    "s3_direct",
    "s3_sqs",
    "s3_sns_sqs",
    "s3_eventbridge",
    "write_through",
    "fallback_read",
    "backfill_request",
    "backfill_batch_operations",
    "change_feed",
    "api",
    "cli",
)
"""Every entry point that takes outside input (a folder of cases each)."""
REQUIRED_KINDS: Final = frozenset(
    {
        # Every kind of bad input issue 13 lists, by its tag in the case files.
        "truncated-json",
        "non-json",
        "wrong-type",
        "missing-field",
        "long-key",
        "percent-escape",
        "invalid-utf8",
        "control-characters",
        "path-traversal",
        "sequencer",
        "sqs-256kb",
        "sns-bad-message",
        "eventbridge-detail-type",
        "nan-infinity",
        "duplicate-keys",
        "bom",
        "deep-nesting",
        "400kb-body",
        "enormous-string",
        "oversized-header",
        "oversized-body",
        "bad-token",
        "unexpected-method",
    }
)
OUTCOMES: Final = frozenset(
    {
        "failed_item",  # a failed batch item (SQS / stream / Batch Operations) with its reason
        "raises",  # the invocation fails with a named cachesync error
        "problem",  # an HTTP 4xx with an RFC 9457 problem body
        "refused",  # an HTTP 4xx from the HTTP server itself, before the API (no problem body)
        "cli_error",  # a non-zero exit and one error line, no traceback
        "applied",  # not an error: the product accepts it (the expectation says why)
    }
)


@dataclass(frozen=True)
class Case:
    """One corpus case."""

    entry_point: str
    name: str
    path: Path
    description: str
    kinds: tuple[str, ...]
    input: dict[str, Any]
    expect: dict[str, Any]

    @property
    def id(self) -> str:
        """The pytest id: ``<entry_point>/<name>``."""
        return f"{self.entry_point}/{self.name}"


def load_case(path: Path) -> Case:
    """Read one case file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    return Case(
        entry_point=path.parent.name,
        name=path.stem,
        path=path,
        description=raw.get("description", ""),
        kinds=tuple(raw.get("kinds", ())),
        input=raw.get("input", {}),
        expect=raw.get("expect", {}),
    )


def all_cases() -> list[Case]:
    """Every case, by entry point then name."""
    return [load_case(path) for path in sorted(CASES_DIR.glob("*/*.json"))]


def expand(value: Any, bindings: dict[str, str]) -> Any:
    """``value`` with its directives expanded and its placeholders bound."""
    if isinstance(value, str):
        for name, bound in bindings.items():
            value = value.replace("{" + name + "}", bound)
        return value
    if isinstance(value, list):
        return [expand(item, bindings) for item in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        text = expand(value["$repeat"], bindings) * int(value["times"])
        return (
            expand(value.get("prefix", ""), bindings)
            + text
            + expand(value.get("suffix", ""), bindings)
        )
    if "$json" in value:
        return json.dumps(expand(value["$json"], bindings))
    if "$concat" in value:
        parts = [expand(part, bindings) for part in value["$concat"]]
        if any(isinstance(part, bytes) for part in parts):
            return b"".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)
        return "".join(str(part) for part in parts)
    if "$deep_json" in value:
        depth = int(value["$deep_json"])
        return "[" * depth + "]" * depth
    if "$b64" in value:
        return base64.b64decode(value["$b64"])
    if "$float" in value:
        return float(value["$float"])
    if "$deep" in value:
        nested: list[Any] = []
        for _ in range(int(value["$deep"]) - 1):
            nested = [nested]
        return nested
    return {key: expand(item, bindings) for key, item in value.items()}
