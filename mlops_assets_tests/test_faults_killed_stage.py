"""`kill -9` of a real lakehouse run while dbt writes gold: the run is failed (run monitoring's sweep), its
pool slot freed, no dbt child left writing, Derby's metastore usable again, and the re-run gives gold tables
identical to the clean build.

The run is the real `daily_lakehouse` job executed in process by a child Python (as the CLI does) on a
persistent instance with the project's dagster.yaml, over the suite's lakehouse.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest

from mlops_assets.lakehouse.tables import TableRef
from mlops_assets.runs.launcher import sweep_dead_runs
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.conftest import TEST_END
from mlops_assets_tests.servers import dbt_builds, process_alive, wait_until

pytestmark = pytest.mark.faults

GOLD = [
    TableRef("gold", n)
    for n in ("customer_history", "dim_customers", "fct_usage_daily", "fct_billing_events")
]

RUN = textwrap.dedent(
    f"""
    import dagster as dg
    from mlops_assets.definitions import build_defs
    from mlops_assets_tests.small_lakehouse import small_resources

    defs = build_defs(small_resources())
    defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key="{TEST_END.isoformat()}", instance=dg.DagsterInstance.get(), raise_on_error=False
    )
    """
)


def _rows(lakehouse, ref: TableRef) -> list[tuple]:
    df = lakehouse.read(ref)
    df = df.drop(*[c for c in df.columns if c == "_ingested_at"])
    return sorted(map(tuple, df.collect()), key=repr)


def test_a_run_killed_while_dbt_writes_gold_is_failed_and_its_rerun_equals_the_clean_build(
    foundation_run, test_defs, lakehouse, tmp_path, monkeypatch
):
    assert foundation_run.success
    clean = {str(t): _rows(lakehouse, t) for t in GOLD}
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    worker = subprocess.Popen([sys.executable, "-c", RUN], env=env, cwd=PROJECT_ROOT)
    try:
        dbt = wait_until(lambda: dbt_builds(worker.pid), 600, "the run's dbt build to start")[0]
        time.sleep(8)  # mid-build: dbt's Spark session is up, models are being written
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        wait_until(lambda: not process_alive(dbt), 30, "the orphaned dbt to die with its run")
    finally:
        if worker.poll() is None:
            worker.kill()

    monkeypatch.setenv("DAGSTER_HOME", str(home))
    instance = dg.DagsterInstance.get()
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED, "killed: nobody recorded an end"
    assert instance.event_log_storage.get_concurrency_run_ids() == {run.run_id}, "it holds the dbt slot"
    assert [r for r, _ in sweep_dead_runs(instance)] == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_run_ids() == set()

    rerun = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=TEST_END.isoformat(), instance=instance, raise_on_error=False
    )
    assert rerun.success, "the re-run's dbt opened Derby's metastore again"
    assert {str(t): _rows(lakehouse, t) for t in GOLD} == clean
