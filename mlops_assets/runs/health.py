"""Is a run's worker process still alive? Plain process logic, no Dagster: the run launcher and the CLI's sweep
both ask it about runs the instance still shows as in progress.

A run's worker is identified by its pid and the time the run started. The pid alone is not enough: after the
worker dies the kernel may hand the same pid to an unrelated process, so a process with that pid that started
*after* the run did cannot be the run's worker.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

# Process start times come from /proc in clock ticks after boot and the boot time in whole seconds: the computed
# start can be up to a second early. A few seconds of slack keep a live worker from ever being judged reused;
# a pid reused within that window goes unnoticed (and is then caught by the run's max runtime).
START_SLACK_S = 3.0


@dataclass(frozen=True)
class WorkerVerdict:
    """Whether the worker runs, and why: the reason is shown on the failed run."""

    alive: bool
    reason: str


def _proc_start_time(pid: int, proc: Path) -> float | None:
    """Wall-clock start of ``pid`` from /proc, or None when it cannot be read (the process is gone)."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
        boot = next(
            float(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, StopIteration, ValueError):
        return None
    # Fields after the command name (which may contain spaces and parentheses): state is field 3, start 22.
    fields = stat[stat.rindex(")") + 2 :].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return boot + int(fields[19]) / ticks


def _proc_state(pid: int, proc: Path) -> str | None:
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def worker_verdict(pid: int, run_started_at: float, proc: Path = Path("/proc")) -> WorkerVerdict:
    """Whether the process ``pid`` that started the run at ``run_started_at`` (epoch seconds) still runs it.

    Dead when no such process exists, when it is a zombie (exited, not yet reaped by its parent), or when the
    process with that pid started after the run did (the pid was reused).
    """
    if pid <= 0:
        return WorkerVerdict(False, f"invalid worker pid {pid}")
    if sys.platform.startswith("linux") and proc.is_dir():
        state = _proc_state(pid, proc)
        if state is None:
            return WorkerVerdict(False, f"worker process {pid} is gone")
        if state in ("Z", "X"):
            return WorkerVerdict(False, f"worker process {pid} has exited (state {state})")
        started = _proc_start_time(pid, proc)
        if started is None:
            return WorkerVerdict(False, f"worker process {pid} is gone")
        if started > run_started_at + START_SLACK_S:
            return WorkerVerdict(
                False,
                f"worker process {pid} is gone: pid {pid} now belongs to a process started "
                f"{started - run_started_at:.0f}s after the run",
            )
        return WorkerVerdict(True, f"worker process {pid} is running")
    # Elsewhere (macOS): existence only; pid reuse is not detected.
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return WorkerVerdict(False, f"worker process {pid} is gone")
    except PermissionError:
        pass  # exists, owned by another user
    return WorkerVerdict(True, f"worker process {pid} is running")
