"""Corpus fixtures: the integration fixtures (one DynamoDB Local + moto per worker) reused, and
one API server process for every API case (``api_world`` is module-scoped)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.api_http import api_world
from tests.integration.conftest import dynamodb_client, local_stack

__all__ = ["api_world", "dynamodb_client", "local_stack"]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The corpus talks to the real local servers: marked as the integration tests are.
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)
