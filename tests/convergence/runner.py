"""Run many histories on worker processes (each with its own local stack) and write a report.

``python -m tests.convergence --histories N --workers W --first-seed S`` runs seeds S .. S+N-1
(worker ``i`` takes the seeds congruent to ``i`` modulo W), writes ``build/soak/report.json``
and ``build/soak/report.md``, prints the one command that replays each failing seed, and exits
non-zero on any divergence. ``--replay SEED`` runs one history verbosely: its operations, what
S3 did, every delivery, and the checks that failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from tests.convergence.checker import Divergence
from tests.convergence.executor import Outcome, run_history
from tests.convergence.history import generate
from tests.convergence.world import World

REPORT_DIR: Final = Path("build/soak")
PROGRESS_EVERY_SECONDS: Final = 30.0


def replay_command(seed: int) -> str:
    """The one command that replays ``seed``."""
    return f"make soak-replay SEED={seed}"


def _exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C: ``World`` stops its servers (DynamoDB Local's JVM too)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def _worker(seeds: list[int], results: Any) -> None:
    _exit_on_sigterm()
    try:
        with World() as world:
            results.put(("ready", None))
            for seed in seeds:
                outcome = run_history(world, generate(seed))
                results.put(("outcome", _portable(outcome)))
    except BaseException as error:
        results.put(("error", f"{type(error).__name__}: {error}"))
        raise
    finally:
        results.put(("done", None))


def _portable(outcome: Outcome) -> dict[str, Any]:
    return {
        "seed": outcome.seed,
        "divergences": [d.to_json() for d in outcome.divergences],
        "stats": dict(outcome.stats),
        "seconds": outcome.seconds,
    }


class Tally:
    """The running totals of a soak."""

    def __init__(self, histories: int, workers: int, first_seed: int) -> None:
        self.planned, self.workers, self.first_seed = histories, workers, first_seed
        self.started = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.commit = _commit()
        self.ready_at: float | None = None
        self.done = 0
        self.stats: Counter[str] = Counter()
        self.divergences: list[dict[str, Any]] = []
        self.failing_seeds: list[int] = []
        self.slowest: list[tuple[float, int]] = []
        self.worker_errors: list[str] = []

    def add(self, outcome: dict[str, Any]) -> None:
        self.done += 1
        self.stats.update(outcome["stats"])
        if outcome["divergences"]:
            self.failing_seeds.append(outcome["seed"])
            self.divergences.extend(outcome["divergences"])
        self.slowest = sorted([*self.slowest, (outcome["seconds"], outcome["seed"])])[-5:]

    def report(self, *, finished: bool) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        running = wall - ((self.ready_at or self.started) - self.started)
        return {
            "finished": finished,
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "commit": self.commit,
            "histories_planned": self.planned,
            "histories_run": self.done,
            "first_seed": self.first_seed,
            "workers": self.workers,
            "wall_seconds": round(wall, 1),
            "startup_seconds": round((self.ready_at or self.started) - self.started, 1),
            "histories_per_second": round(self.done / running, 2) if running > 0 else 0.0,
            "divergences": len(self.divergences),
            "failing_seeds": sorted(self.failing_seeds),
            "divergence_list": self.divergences[:200],
            "replay": {str(s): replay_command(s) for s in sorted(self.failing_seeds)[:50]},
            "operations": _section(self.stats, "op:"),
            "faults": _section(self.stats, "fault:"),
            "saga": _section(self.stats, "saga:"),
            "errors": _section(self.stats, "error:"),
            "api": _section(self.stats, "api:"),
            "deliveries_by_shape": _section(self.stats, "shape:"),
            "deliveries": _section(self.stats, "delivery:"),
            "verify_drift_repaired": _section(self.stats, "verify:"),
            "checks": self.stats.get("checks", 0),
            "slowest_histories": [{"seed": s, "seconds": round(t, 2)} for t, s in self.slowest],
            "worker_errors": self.worker_errors,
        }


def _section(stats: Counter[str], prefix: str) -> dict[str, int]:
    return {k.removeprefix(prefix): v for k, v in sorted(stats.items()) if k.startswith(prefix)}


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report(report: dict[str, Any], directory: Path = REPORT_DIR) -> None:
    """``report.json`` and ``report.md`` in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")


def markdown(report: dict[str, Any]) -> str:
    """The report as Markdown tables."""
    state = "finished" if report["finished"] else "INTERRUPTED / in progress"
    lines = [
        "# Convergence soak report",
        "",
        f"- {state}; started {report['started_at']} at commit {report['commit']}",
        f"- histories run: {report['histories_run']} of {report['histories_planned']} "
        f"(seeds from {report['first_seed']}), {report['workers']} worker(s)",
        f"- wall time: {report['wall_seconds']} s (server start-up {report['startup_seconds']} s);"
        f" {report['histories_per_second']} histories/s",
        f"- checks made (reads, query items, keys at quiescence): {report['checks']}",
        f"- **divergences: {report['divergences']}**",
        "",
    ]
    for title, section in (
        ("Operations", "operations"),
        ("Faults injected", "faults"),
        ("Write-through outcomes", "saga"),
        ("Errors raised to the caller (named cachesync errors)", "errors"),
        ("API answers (route:status)", "api"),
        ("Deliveries by shape", "deliveries_by_shape"),
        ("Deliveries", "deliveries"),
        ("Drift found (and repaired) by the final verify", "verify_drift_repaired"),
    ):
        lines += [f"## {title}", "", "| kind | count |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in report[section].items()]
        lines.append("")
    if report["divergences"]:
        lines += ["## Divergences", "", "| seed | property | step | detail |", "|---|---|---|---|"]
        for d in report["divergence_list"]:
            detail = d["detail"].replace("|", "\\|")
            lines.append(f"| {d['seed']} | {d['property']} | {d['step']} | {detail} |")
        lines += ["", "Replay: " + ", ".join(f"`{c}`" for c in report["replay"].values()), ""]
    return "\n".join(lines)


def soak(histories: int, workers: int, first_seed: int, directory: Path = REPORT_DIR) -> int:
    """Run the histories; write the report; the number of divergences."""
    seeds = list(range(first_seed, first_seed + histories))
    workers = max(1, min(workers, histories))
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(seeds[i::workers], results), daemon=True)
        for i in range(workers)
    ]
    tally = Tally(histories, workers, first_seed)
    _exit_on_sigterm()
    for process in processes:
        process.start()
    try:
        return _collect(processes, results, tally, directory)
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker stops its servers
        for process in processes:
            process.join(timeout=30)


def _collect(processes: list[Any], results: Any, tally: Tally, directory: Path) -> int:
    running = tally.workers
    try:
        running = _drain(processes, results, tally, directory, running)
    except (KeyboardInterrupt, SystemExit):
        write_report(tally.report(finished=False), directory)
        print(f"interrupted after {tally.done} histories; report in {directory}", flush=True)
        raise
    finished = tally.done == tally.planned and not tally.worker_errors
    report = tally.report(finished=finished)
    write_report(report, directory)
    print(markdown(report))
    if tally.failing_seeds:
        print("Replay each failing seed with:")
        for seed in sorted(tally.failing_seeds):
            print(f"  {replay_command(seed)}")
    return len(tally.divergences) + (0 if finished else 1)


def _drain(processes: list[Any], results: Any, tally: Tally, directory: Path, running: int) -> int:
    """Collect outcomes until every worker is done; progress and an interim report every 30 s."""
    histories, workers = tally.planned, tally.workers
    ready = 0
    last_progress = time.monotonic()
    while running:
        try:
            kind, payload = results.get(timeout=5)
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                break
            continue
        if kind == "outcome":
            tally.add(payload)
            for d in payload["divergences"]:
                print(
                    f"DIVERGENCE seed {d['seed']} [{d['property']}] step {d['step']}: "
                    f"{d['detail']}",
                    flush=True,
                )
                print(f"  replay: {replay_command(d['seed'])}", flush=True)
        elif kind == "ready":
            ready += 1
            if ready == workers:
                tally.ready_at = time.monotonic()
        elif kind == "error":
            tally.worker_errors.append(payload)
            print(f"worker failed: {payload}", file=sys.stderr, flush=True)
        elif kind == "done":
            running -= 1
        if time.monotonic() - last_progress > PROGRESS_EVERY_SECONDS:
            last_progress = time.monotonic()
            report = tally.report(finished=False)
            write_report(report, directory)
            print(
                f"{tally.done}/{histories} histories, {report['histories_per_second']}/s, "
                f"{report['divergences']} divergences",
                flush=True,
            )
    return running


def replay(seed: int) -> int:
    """Run one history verbosely; the number of divergences."""
    history = generate(seed)
    print(history.describe())
    with World() as world:
        outcome = run_history(world, history, log=print)
    print(f"\n{len(outcome.divergences)} divergence(s) in {outcome.seconds:.2f} s")
    for divergence in outcome.divergences:
        print(f"  [{divergence.property}] step {divergence.step}: {divergence.detail}")
    return len(outcome.divergences)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.convergence", description=__doc__)
    parser.add_argument("--histories", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=REPORT_DIR)
    parser.add_argument("--replay", type=int, metavar="SEED", help="run one history verbosely")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return 1 if replay(args.replay) else 0
    failures = soak(args.histories, args.workers, args.first_seed, args.report_dir)
    return 1 if failures else 0


__all__ = ["Divergence", "main", "replay", "soak"]
