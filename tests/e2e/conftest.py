"""End-to-end fixtures: a local stack of its own, with the event pump feeding the handlers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cachesync.local import LocalStack
from cachesync.local.event_pump import EventPump
from cachesync.local.pipeline import (
    LOCAL_FUNCTION_ENVIRONMENT,
    LOCAL_WEBHOOK_ENVIRONMENT,
    build_event_pump,
)
from cachesync.local.provision import LocalResources
from tests.e2e.make_run import RunningStack, make_run

# `make run`'s stacks load fewer demo documents than its 300 unless a module says otherwise.
MAKE_RUN_DEMO_COUNT = 60

_HERE = Path(__file__).parent

# Failed messages come back after 1 s and reach the DLQ on their second receive, so a test can
# watch the whole redrive path in seconds.
# moto keeps one state per process: names must differ from the integration stack's.
E2E_RESOURCES = LocalResources(
    bucket_name="e2e-documents",
    table_name="e2e-index",
    created_queue_name="e2e-object-created",
    removed_queue_name="e2e-object-removed",
    visibility_timeout_seconds=1,
    max_receive_count=2,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_stack() -> Iterator[LocalStack]:
    """A provisioned stack whose bucket notifies the queues, as `cachesync local up` runs it."""
    with LocalStack(E2E_RESOURCES) as stack:
        yield stack


@pytest.fixture(scope="session")
def pump(e2e_stack: LocalStack) -> Iterator[EventPump]:
    """The event pump wired to the real handlers; the process environment is restored after."""
    with pytest.MonkeyPatch.context() as patch:
        local = {
            **e2e_stack.environment(),
            **LOCAL_FUNCTION_ENVIRONMENT,
            **LOCAL_WEBHOOK_ENVIRONMENT,
        }
        for name, value in local.items():
            patch.setenv(name, value)  # records the old values; build_event_pump sets the same
        yield build_event_pump(e2e_stack, wait_seconds=0)


@pytest.fixture(scope="module")
def make_run_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """``cachesync local up`` in a fresh folder, one per test module, with the module's
    ``DEMO_COUNT`` demo documents indexed."""
    demo_count = getattr(request.module, "DEMO_COUNT", MAKE_RUN_DEMO_COUNT)
    with make_run(tmp_path_factory.mktemp("make-run"), demo_count) as stack:
        yield stack
