"""Both clients' server tests follow one scenario list (clients/scenarios.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "clients" / "scenarios.json"
SUITES = {
    "python": (ROOT / "tests" / "integration" / "test_client.py", "#"),
    "typescript": (ROOT / "clients" / "typescript" / "test" / "server.test.ts", "//"),
}


def named_scenarios(path: Path, comment: str) -> list[str]:
    return re.findall(
        rf"^\s*{re.escape(comment)} Scenario: ([a-z0-9-]+)\s*$", path.read_text(), re.M
    )


def test_each_client_suite_names_every_scenario_once_and_no_other() -> None:
    # Given the shared scenario list
    expected = sorted(s["id"] for s in json.loads(SCENARIOS.read_text())["scenarios"])
    assert len(set(expected)) == len(expected)
    # When each suite's scenario comments are read / Then each names exactly the list, once each
    for name, (path, comment) in SUITES.items():
        assert sorted(named_scenarios(path, comment)) == expected, name
