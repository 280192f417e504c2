"""Cost against history, and cost against size, of the real ``daily_lakehouse`` job, each run in a fresh process.

- ``growth-bench``: one daily run after 7 days of history (day 8) against one after 89 (day 90), 10,000
  customers. The history before each timed day is built by one backfill run (not timed). With incremental gold
  and window-pruned features the two should cost the same; the ratio is the figure.
- ``scale-bench``: a 30-day backfill in one run at 10,000 and 100,000 customers: rows landed per second of the
  whole run, and the peak resident memory of its JVMs (Spark's and dbt's), sampled from ``/proc``.

Each line carries the step that took longest, so a reader sees where the time goes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from bench.drift_bench import rss_gb
from mlops_assets.settings import PROJECT_ROOT

START = date(2026, 1, 1)
GROWTH_CUSTOMERS = 10_000
GROWTH_DAYS = (8, 90)
SCALE_CUSTOMERS = (10_000, 100_000)
SCALE_DAYS = 30
LANDING_STEP = "landing__daily_files"  # the synthetic source generating and writing the files


@dataclass
class RunFigures:
    """What one child run cost: wall seconds (JVM starts included), step seconds, rows landed, JVM peak RSS."""

    wall_s: float
    steps: dict[str, float]
    landing_rows: int
    jvm_peak_mb: float
    python_peak_mb: float

    def slowest(self) -> str:
        step, seconds = max(self.steps.items(), key=lambda kv: kv[1])
        return f"{step}:{seconds:.0f}s"


def _command(pid: int) -> str:
    """A process' command name (``java`` for a JVM); empty when it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass
class JvmWatch:
    """Samples the high-water resident memory (VmHWM) of every java process under a pid, and of that pid (the
    run's Python process: the synthetic source generates there), until stopped."""

    root_pid: int
    peak_gb: dict[int, float] = field(default_factory=dict)
    python_peak_gb: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def _sample(self) -> None:
        for pid in self._descendants():
            high_water = rss_gb(pid, "VmHWM")
            if pid == self.root_pid:
                self.python_peak_gb = max(self.python_peak_gb, high_water)
            elif _command(pid) == "java":
                self.peak_gb[pid] = max(self.peak_gb.get(pid, 0.0), high_water)

    def run(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    def peak_mb(self) -> float:
        return max(self.peak_gb.values(), default=0.0) * 1024


def run_lakehouse(root: Path, start: date, end: date, customers: int) -> RunFigures:
    """``bench.lakehouse_run`` for start..end in a fresh process on the lakehouse at ``root``."""
    (root / "dagster_home").mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "LAKEHOUSE_ROOT": str(root / "lakehouse"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "DAGSTER_HOME": str(root / "dagster_home"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    command = [
        sys.executable,
        "-m",
        "bench.lakehouse_run",
        start.isoformat(),
        end.isoformat(),
        str(customers),
    ]
    began = time.monotonic()
    child = subprocess.Popen(
        command, env=environ, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    watch = JvmWatch(child.pid)
    sampler = threading.Thread(target=watch.run, daemon=True)
    sampler.start()
    out, err = child.communicate(timeout=4 * 3600)
    wall = time.monotonic() - began
    watch.stop.set()
    sampler.join()
    if child.returncode != 0:
        raise RuntimeError(f"daily_lakehouse {start}..{end} ({customers} customers) failed:\n{err[-3000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    return RunFigures(
        wall, summary["steps"], summary["landing_rows"], watch.peak_mb(), watch.python_peak_gb * 1024
    )


def growth(customers: int = GROWTH_CUSTOMERS) -> None:
    early, late = GROWTH_DAYS
    keep = "BENCH_KEEP" in os.environ  # leave the lakehouse behind, to look into it
    folder = nullcontext(tempfile.mkdtemp(prefix="growth_bench_")) if keep else tempfile.TemporaryDirectory()
    with folder as tmp:
        root = Path(tmp)
        print(f"# growth-bench: lakehouse in {root}", flush=True)
        day = {d: START + timedelta(days=d - 1) for d in (1, early, late)}
        print(
            f"# growth-bench: {customers} customers, history to day {early - 1} (one backfill run)",
            flush=True,
        )
        run_lakehouse(root, day[1], day[early] - timedelta(days=1), customers)
        first = run_lakehouse(root, day[early], day[early], customers)
        print(f"# growth-bench: history to day {late - 1} (one backfill run)", flush=True)
        run_lakehouse(root, day[early] + timedelta(days=1), day[late] - timedelta(days=1), customers)
        second = run_lakehouse(root, day[late], day[late], customers)
    for step in sorted(set(first.steps) | set(second.steps), key=lambda k: -second.steps.get(k, 0.0))[:8]:
        print(
            f"# {step}: day {early} {first.steps.get(step, 0):.1f} s, day {late} {second.steps.get(step, 0):.1f} s"
        )
    print(
        f"growth-bench customers={customers} day={early} day_s={first.wall_s:.1f} day={late} "
        f"day_s={second.wall_s:.1f} ratio={second.wall_s / first.wall_s:.2f} "
        f"slowest_step_day{early}={first.slowest()} slowest_step_day{late}={second.slowest()}",
        flush=True,
    )


def scale(sizes: tuple[int, ...] = SCALE_CUSTOMERS, days: int = SCALE_DAYS) -> None:
    for customers in sizes:
        with tempfile.TemporaryDirectory(prefix="scale_bench_") as tmp:
            run = run_lakehouse(Path(tmp), START, START + timedelta(days=days - 1), customers)
        print(
            f"scale-bench customers={customers} days={days} landing_rows={run.landing_rows} "
            f"total_s={run.wall_s:.1f} rows_per_s={run.landing_rows / run.wall_s:.0f} "
            f"jvm_peak_mb={run.jvm_peak_mb:.0f} landing_s={run.steps.get(LANDING_STEP, 0.0):.1f} "
            f"python_peak_mb={run.python_peak_mb:.0f} slowest_step={run.slowest()}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench growth|scale")
    parser.add_argument("which", choices=["growth", "scale", "both"], nargs="?", default="both")
    parser.add_argument("--customers", type=int, nargs="*", help="override the customer counts")
    args = parser.parse_args(argv)
    if args.which in ("growth", "both"):
        growth(args.customers[0] if args.customers else GROWTH_CUSTOMERS)
    if args.which in ("scale", "both"):
        scale(tuple(args.customers) if args.customers else SCALE_CUSTOMERS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
