"""Run monitoring for runs whose worker is a local process: a run launcher that can tell a dead worker from a
live one, and the same sweep for the CLI, which runs without a daemon.

Dagster's run monitoring marks a STARTED run failed only when the instance's run launcher can check its worker
(``supports_check_run_worker_health``); ``DefaultRunLauncher`` cannot, so without this a run whose process was
killed (SIGKILL, OOM) stays STARTED forever: it keeps its pool slots and counts against
``max_concurrent_runs``. Every run's RUN_START event is written by its worker and carries the worker's pid
(whether launched by the daemon, the UI or ``execute_in_process``), so that event identifies the worker.

The verdict assumes the instance's runs execute on this machine, which holds for the project's instance
(SQLite storage under ``$DAGSTER_HOME``, code servers started locally). A run launched on a code server of
another host is never judged (left to its max runtime).
"""

from __future__ import annotations

import json
import os
import signal
import socket

import dagster as dg

# Dagster exports no public name for the health-check result types its run launcher interface returns; every
# launcher that implements the check (dagster-k8s, dagster-docker, dagster-aws) imports them from here.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

from mlops_assets.runs.health import WorkerVerdict, worker_verdict

GRPC_INFO_TAG = ".dagster/grpc_info"  # set by DefaultRunLauncher: where the run's code server listens
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}


def _ran_here(run: dg.DagsterRun) -> bool:
    info = run.tags.get(GRPC_INFO_TAG)
    if info is None:
        return True  # executed in process by a client of this instance
    host = json.loads(info).get("host")
    return host is None or host in LOCAL_HOSTS or host in {socket.gethostname(), socket.getfqdn()}


def _worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> tuple[int, WorkerVerdict] | None:
    """The pid of ``run``'s worker and whether it lives, or None when this machine cannot tell (not started
    here yet, or executed on another host)."""
    if not _ran_here(run):
        return None
    starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
    if not starts or starts[-1].dagster_event is None or starts[-1].dagster_event.pid is None:
        return None
    start = starts[-1]
    return start.dagster_event.pid, worker_verdict(start.dagster_event.pid, start.timestamp)


def run_worker_verdict(instance: dg.DagsterInstance, run: dg.DagsterRun) -> WorkerVerdict | None:
    """Whether ``run``'s worker process lives, or None when this machine cannot tell."""
    worker = _worker(instance, run)
    return worker[1] if worker is not None else None


class LocalProcessRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` that lets run monitoring see a dead run worker (configured in ``dagster.yaml``)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        verdict = run_worker_verdict(self._instance, run)
        if verdict is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "worker not checkable from this host")
        status = WorkerStatus.RUNNING if verdict.alive else WorkerStatus.FAILED
        return CheckRunHealthResult(status, verdict.reason)

    def terminate(self, run_id: str) -> bool:
        """Stop a run: through its code server when one launched it (Dagster's way), else by SIGTERM to its
        worker. A run executed in process (the CLI, `make demo`) has no code server, so without this a run over
        its ``dagster/max_runtime`` would be marked failed while its worker ran on, writing tables."""
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if run.tags.get(GRPC_INFO_TAG) is not None:
            return super().terminate(run_id)
        worker = _worker(self._instance, run)
        if worker is None or not worker[1].alive:
            return False
        self._instance.report_run_canceling(
            run, message=f"Stopping run worker (pid {worker[0]}) with SIGTERM."
        )
        os.kill(worker[0], signal.SIGTERM)  # its dbt child dies with it (dbt_child's parent-death signal)
        return True


def sweep_dead_runs(instance: dg.DagsterInstance) -> list[tuple[str, str]]:
    """Mark failed every STARTED run whose worker is gone, and free the pool slots it held.

    What the daemon's run monitoring does with ``LocalProcessRunLauncher``, for callers that run without a
    daemon (the CLI). Returns (run id, reason) of each run it failed.
    """
    failed = []
    for record in instance.get_run_records(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        verdict = run_worker_verdict(instance, run)
        if verdict is None or verdict.alive:
            continue
        instance.report_run_failed(run, f"Run worker died: {verdict.reason}. Marked failed; re-run it.")
        free_run_slots(instance, run.run_id)
        failed.append((run.run_id, verdict.reason))
    return failed


def free_run_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Release the pool (concurrency) slots a finished run still holds, so the next step of the pool starts."""
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        storage.free_concurrency_slots_for_run(run_id)
