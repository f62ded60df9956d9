"""Chaos experiments (``make chaos``): one report for the session, written at its end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.chaos.report import REPORT_DIR, ChaosReport


@pytest.fixture(scope="session")
def chaos_report() -> Iterator[ChaosReport]:
    """The session's report; written to build/chaos/ when the session ends, failures included."""
    report = ChaosReport()
    yield report
    report.write()
    print(f"\nchaos report: {REPORT_DIR / 'report.md'}")
