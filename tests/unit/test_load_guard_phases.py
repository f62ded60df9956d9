"""The load test's request-guard phases: ratios to the baseline, and features reported absent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from cachesync.api import keys as api_keys
from tests.load import guard_phases


def run(workload: str, variant: str, rps: float, p95: float, failures: int = 0) -> dict[str, Any]:
    return {
        "workload": workload,
        "variant": variant,
        "total": {"rps": rps, "p95_ms": p95, "requests": 100, "failures": failures},
        "load_before": [1.0, 1.0, 1.0],
    }


def test_each_variant_is_a_ratio_to_the_baseline_of_its_workload_over_the_rounds() -> None:
    # Given two rounds of two workloads, the baseline and rate limits in each
    runs = [
        run("cached", "baseline", 800, 100),
        run("cached", "rate_limits", 380, 260),
        run("cached", "baseline", 1000, 140),
        run("cached", "rate_limits", 520, 220, failures=2),
        run("reads", "baseline", 50, 3000),
        run("reads", "rate_limits", 40, 3600),
    ]
    # When they are summarised
    summary = guard_phases.summarise(runs, {"signed": "absent"})
    # Then each variant's means are divided by its own workload's baseline means
    cached = summary["workloads"]["cached"]
    assert cached["baseline"]["rps"] == 900
    assert cached["rate_limits"]["rps"] == 450
    assert cached["rate_limits"]["rps_ratio"] == pytest.approx(0.5)
    assert cached["rate_limits"]["p95_ratio"] == pytest.approx(240 / 120)
    assert cached["rate_limits"]["failures"] == 2
    assert cached["baseline"]["rps_ratio"] == 1
    reads = summary["workloads"]["reads"]
    assert reads["rate_limits"]["rps_ratio"] == pytest.approx(0.8)
    assert reads["rate_limits"]["p95_ratio"] == pytest.approx(1.2)
    # And the absent features are carried, and printed, with their reason
    assert summary["unavailable"] == {"signed": "absent"}
    lines = guard_phases.report_lines(summary, rounds=2, seconds=15)
    assert any("signed" in line and "not available: absent" in line for line in lines)
    assert any("rate_limits" in line and "rps x0.50" in line for line in lines)


def test_a_key_option_the_code_does_not_take_makes_its_variant_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a new_api_key without the guard's options (the code before them)
    def older_new_api_key(
        name: str, customers: list[str], scopes: tuple[api_keys.Scope, ...], now: datetime
    ) -> None:
        raise AssertionError("not called")

    monkeypatch.setattr(api_keys, "new_api_key", older_new_api_key)
    # When each variant's options are asked for
    # Then signing and allowlists are unavailable, saying which option is missing
    with pytest.raises(guard_phases.FeatureUnavailableError, match="requires_signing"):
        guard_phases._key_options("signed")
    with pytest.raises(guard_phases.FeatureUnavailableError, match="allowed_cidrs"):
        guard_phases._key_options("allowlist")
    # And the baseline and rate limits still run (the server's limits alone are high enough)
    assert guard_phases._key_options("baseline") == {}
    assert guard_phases._key_options("rate_limits") == {}


def test_the_allowlist_walks_foreign_networks_before_the_loopback_ones() -> None:
    # Given the allowlist variant's networks
    networks = guard_phases.ALLOWED_NETWORKS
    # Then the loopback networks (where the load comes from) come last, after every foreign one
    assert networks[-2:] == ("127.0.0.0/8", "::1/128")
    assert set(networks[:-2]) == set(guard_phases.FOREIGN_NETWORKS)
    assert not [n for n in guard_phases.FOREIGN_NETWORKS if n.startswith(("127.", "::1"))]
