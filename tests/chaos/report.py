"""The chaos report: each experiment's hypothesis, fault, outcome and figures, written to
``build/chaos/report.json`` and ``build/chaos/report.md`` at the end of the session."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

REPOSITORY: Final = Path(__file__).resolve().parents[2]
REPORT_DIR: Final = REPOSITORY / "build" / "chaos"


@dataclass
class Experiment:
    """One experiment's record."""

    name: str
    hypothesis: str
    fault: str
    outcome: str = "not run to the end"
    confirmed: bool = False
    seconds: float = 0.0
    figures: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, int] = field(default_factory=dict)
    """``verify``'s drift counts per kind at the end (all zero: no drift)."""


@dataclass
class ChaosReport:
    """Every experiment of one run."""

    experiments: list[Experiment] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def add(self, experiment: Experiment) -> Experiment:
        """Register ``experiment`` (recorded even if it fails half-way)."""
        self.experiments.append(experiment)
        return experiment

    def write(self, directory: Path = REPORT_DIR) -> None:
        """Write report.json and report.md into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "started_at": self.started_at,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": _commit(),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
            },
            "experiments": [
                asdict(experiment) for experiment in sorted(self.experiments, key=lambda e: e.name)
            ],
        }
        (directory / "report.json").write_text(json.dumps(document, indent=2) + "\n")
        (directory / "report.md").write_text(_markdown(document))


def _commit() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPOSITORY,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return result.stdout.strip()


def _markdown(document: dict[str, Any]) -> str:
    lines = [
        "# Chaos report",
        "",
        f"Run {document['started_at']} to {document['finished_at']}, commit "
        f"`{document['commit']}`, {document['machine']['cpus']} CPUs, load average "
        f"{', '.join(f'{x:.1f}' for x in document['machine']['load_average'])} at the end.",
        "",
    ]
    for experiment in document["experiments"]:
        verdict = "confirmed" if experiment["confirmed"] else "NOT confirmed"
        lines += [
            f"## {experiment['name']} ({verdict}, {experiment['seconds']:.0f} s)",
            "",
            f"- **Hypothesis:** {experiment['hypothesis']}",
            f"- **Fault:** {experiment['fault']}",
            f"- **Outcome:** {experiment['outcome']}",
            f"- **verify drift:** {json.dumps(experiment['drift'])}",
            "",
            "| figure | value |",
            "|---|---|",
        ]
        lines += [
            f"| {name} | {json.dumps(value) if not isinstance(value, str) else value} |"
            for name, value in experiment["figures"].items()
        ]
        lines.append("")
    return "\n".join(lines)
