"""Chaos experiments (``make chaos``): one report for the session, written at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cachesync.local import LocalStack
from tests.chaos.harness import reset_moto
from tests.chaos.report import REPORT_DIR, ChaosReport


@pytest.fixture(scope="session")
def chaos_report() -> Iterator[ChaosReport]:
    """The session's report; written to build/chaos/ when the session ends, failures included."""
    report = ChaosReport()
    yield report
    report.write()
    print(f"\nchaos report: {REPORT_DIR / 'report.md'}")


@pytest.fixture
def stack() -> Iterator[LocalStack]:
    """A fresh local stack (DynamoDB Local in memory, moto) for one experiment."""
    with LocalStack() as local_stack:
        try:
            yield local_stack
        finally:
            reset_moto(local_stack.moto_endpoint)
