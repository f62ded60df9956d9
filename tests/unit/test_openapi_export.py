"""The OpenAPI document the TypeScript client's types come from is the one the code generates."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from openapi_spec_validator import validate

TOOL = Path(__file__).resolve().parents[2] / "tools" / "export_openapi.py"


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("export_openapi_under_test", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_committed_document_is_the_generated_one() -> None:
    # Given the routes and models as they are now
    tool = load_tool()
    generated = tool.render(tool.openapi_document())
    # When / Then the TypeScript client's copy is the same text (else: make openapi)
    committed = tool.DEFAULT_OUTPUT.read_text(encoding="utf-8")
    assert committed == generated, "clients/typescript/openapi.json is stale: run make openapi"
    validate(json.loads(committed))
