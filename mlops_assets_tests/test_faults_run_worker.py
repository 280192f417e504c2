"""A killed run worker: the run must end FAILED, free its pool slot, and leave no child behind.

Real processes throughout: a run executed in process by a child Python (as the CLI does) on a persistent
instance with the project's ``dagster.yaml``, SIGKILLed mid-step while it holds a ``dbt`` pool slot; the
project's run launcher judges the worker dead, and the sweep (what the daemon's run monitoring does with that
launcher) marks the run failed and releases the slot. And the dbt launcher's kernel flag: its process dies
with its parent.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.runs.dbt_child import dbt_executable
from mlops_assets.runs.health import worker_verdict
from mlops_assets.runs.launcher import LocalProcessRunLauncher, run_worker_verdict, sweep_dead_runs
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.servers import process_alive, wait_until

pytestmark = pytest.mark.faults

WORKER = textwrap.dedent(
    """
    import time, dagster as dg

    @dg.asset(pool="dbt")
    def slow_gold():
        time.sleep(120)

    job = dg.define_asset_job("slow", selection=[slow_gold])
    defs = dg.Definitions(assets=[slow_gold], jobs=[job])
    defs.resolve_job_def("slow").execute_in_process(instance=dg.DagsterInstance.get())
    """
)


@pytest.fixture
def instance_home(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def test_a_sigkilled_in_process_run_is_failed_and_frees_its_pool_slot(instance_home, monkeypatch):
    env = {**os.environ, "DAGSTER_HOME": str(instance_home)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=instance_home)
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(instance_home))
        instance = dg.DagsterInstance.get()
        assert isinstance(instance.run_launcher, LocalProcessRunLauncher), "dagster.yaml binds the launcher"

        def started_step():
            runs = instance.get_runs()
            if not runs:
                return None
            steps = instance.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_START)
            return runs[0] if steps else None

        run = wait_until(started_step, 90, "the worker's step to start")
        run_id = run.run_id
        assert instance.event_log_storage.get_concurrency_run_ids() == {run_id}, "the step holds a dbt slot"
        assert run_worker_verdict(instance, run).alive
        assert sweep_dead_runs(instance) == [], "a live worker is never failed"

        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.STARTED, "nothing else notices the dead worker"
        health = instance.run_launcher.check_run_worker_health(run)
        assert health.status.value == "FAILED" and str(worker.pid) in health.msg

        swept = sweep_dead_runs(instance)
        assert [r for r, _ in swept] == [run_id]
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        assert instance.event_log_storage.get_concurrency_run_ids() == set(), "the dbt slot is released"
        assert sweep_dead_runs(instance) == [], "a second sweep changes nothing"
    finally:
        if worker.poll() is None:
            worker.kill()


def test_worker_verdict_tells_a_reused_pid_from_the_run_worker():
    me = os.getpid()
    long_ago = worker_verdict(me, run_started_at=0).alive
    assert long_ago is False, "a process started after the run cannot be its worker (pid reused)"
    assert worker_verdict(me, run_started_at=time.time()).alive is True
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    verdict = worker_verdict(gone.pid, time.time())
    assert not verdict.alive and str(gone.pid) in verdict.reason


def test_the_dbt_launcher_dies_with_its_parent(tmp_path):
    assert Path(dbt_executable()).name == "dbt-with-parent", "the console script is installed beside dbt"
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c",
            "from mlops_assets.runs.dbt_child import die_with_parent; import time; die_with_parent(); time.sleep(120)"])
        open({str(pid_file)!r}, "w").write(str(child.pid))
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        child_pid = int(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the child pid"))
        time.sleep(1.0)  # the child has set its flag
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)

        wait_until(lambda: not process_alive(child_pid), 10, "the orphaned child to die")
    finally:
        if parent.poll() is None:
            parent.kill()


HUNG_WORKER = textwrap.dedent(
    """
    import time, dagster as dg

    @dg.asset
    def hung_step():
        time.sleep(600)

    job = dg.define_asset_job("hung", selection=[hung_step], tags={"dagster/max_runtime": "5"})
    defs = dg.Definitions(assets=[hung_step], jobs=[job])
    defs.resolve_job_def("hung").execute_in_process(instance=dg.DagsterInstance.get())
    """
)


def test_a_hung_run_is_stopped_at_its_max_runtime_by_the_real_daemon(instance_home, tmp_path, monkeypatch):
    """A step that never returns, in a run executed in process (as the CLI does): the daemon's run monitoring
    cancels it at ``dagster/max_runtime``, the project's launcher stops the worker, the run ends FAILED."""
    config = (instance_home / "dagster.yaml").read_text()
    (instance_home / "dagster.yaml").write_text(
        config.replace("poll_interval_seconds: 30", "poll_interval_seconds: 1")
    )
    (tmp_path / "empty_defs.py").write_text("import dagster as dg\n\ndefs = dg.Definitions()\n")
    env = {**os.environ, "DAGSTER_HOME": str(instance_home)}
    worker = subprocess.Popen([sys.executable, "-c", HUNG_WORKER], env=env, cwd=instance_home)
    daemon_bin = str(Path(sys.executable).parent / "dagster-daemon")
    daemon = subprocess.Popen(
        [daemon_bin, "run", "-f", str(tmp_path / "empty_defs.py")],
        env=env,
        cwd=tmp_path,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        monkeypatch.setenv("DAGSTER_HOME", str(instance_home))
        instance = dg.DagsterInstance.get()
        run = wait_until(lambda: next(iter(instance.get_runs()), None), 90, "the hung run to start")
        run_id = run.run_id

        def finished():
            current = instance.get_run_by_id(run_id)
            return current if current.is_finished else None

        ended = wait_until(finished, 180, "run monitoring to stop the run")
        assert ended.status == dg.DagsterRunStatus.FAILURE
        assert worker.wait(timeout=30) != 0, "the worker was stopped, not left running"
        messages = " ".join(e.message or "" for e in instance.all_logs(run_id))
        assert "maximum runtime of 5 seconds" in messages and "SIGTERM" in messages
    finally:
        if worker.poll() is None:
            worker.kill()
        os.killpg(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)


def test_every_job_bounds_its_runtime(test_defs):
    """Each job carries the max runtime the daemon enforces (as above); the instance bounds any other run."""
    jobs = [job for job in test_defs.resolve_all_job_defs() if not job.name.startswith("__")]
    assert len(jobs) >= 6
    for job in jobs:
        assert 0 < int(job.tags["dagster/max_runtime"]) <= 6 * 3600, job.name
    assert "max_runtime_seconds: 21600" in (PROJECT_ROOT / "dagster.yaml").read_text()
