"""`kill -9` of a real run while each stage writes: bronze, silver, gold (dbt), features, and the model's MLflow
run. Each time the run is failed (run monitoring's sweep), nothing half-written is visible, no lock, child
process or open MLflow run is left, and the re-run gives tables identical to the clean build.

Each run is a real job executed in process by a child Python (as the CLI does) on a persistent instance with
the project's dagster.yaml, over the suite's lakehouse; it is SIGKILLed the moment its stage's first data file
lands in the table's folder (Delta has not committed it yet) or, for dbt and training, once the stage is busy.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
from mlflow import MlflowClient

from mlops_assets.defs.mlflow_runs import end_mlflow_runs_of_failed_runs
from mlops_assets.lakehouse import catalog
from mlops_assets.lakehouse.tables import TableRef
from mlops_assets.ml.mlflow_runs import DAGSTER_RUN_TAG, PARENT_RUN_TAG
from mlops_assets.runs.launcher import sweep_dead_runs
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.comparable import table_rows
from mlops_assets_tests.conftest import TEST_END
from mlops_assets_tests.servers import dbt_builds, process_alive, wait_until

pytestmark = pytest.mark.faults

DAY = TEST_END.isoformat()
GOLD = tuple(catalog.GOLD.values())

# The child: one job of the suite's definitions, in process, on the instance at $DAGSTER_HOME.
CHILD = textwrap.dedent(
    """
    import json, sys
    import dagster as dg
    from mlops_assets.definitions import build_defs
    from mlops_assets_tests.small_lakehouse import small_resources

    job, partition, selection, run_config = sys.argv[1], sys.argv[2] or None, sys.argv[3], sys.argv[4]
    build_defs(small_resources()).resolve_job_def(job).execute_in_process(
        partition_key=partition,
        asset_selection=[dg.AssetKey.from_user_string(k) for k in selection.split(",")] if selection else None,
        run_config=json.loads(run_config),
        instance=dg.DagsterInstance.get(),
        raise_on_error=False,
    )
    """
)


@dataclass(frozen=True)
class Stage:
    name: str
    tables: tuple[TableRef, ...]  # what the killed run and its re-run write (day TEST_END), compared after
    written: TableRef  # killed as soon as a new data file of this table lands


BRONZE = tuple(catalog.BRONZE.values())
SILVER = (*catalog.SILVER.values(), *catalog.QUARANTINE.values())
FEATURES = (catalog.FEATURES,)
# Each stage runs alone over the day's existing inputs (as a user re-materializes one stage): the kill lands in
# that stage's write, and the test pays for no other stage.
STAGES = [
    Stage("bronze", BRONZE, catalog.BRONZE["usage_events"]),
    Stage("silver", SILVER, catalog.SILVER["usage_events"]),
    Stage("features", FEATURES, FEATURES[0]),
]


def _commits(table: Path) -> int:
    return len(list((table / "_delta_log").glob("*.json")))


def _data_files(table: Path) -> set[Path]:
    return set(table.rglob("*.parquet")) - set((table / "_delta_log").rglob("*.parquet"))


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A persistent instance with the project's dagster.yaml, this test's own."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def _start(
    home: Path, job: str, tables: tuple[TableRef, ...] = (), run_config=None, partition: str | None = DAY
):
    keys = ",".join("/".join(ref.asset_key_path) for ref in tables)
    args = [sys.executable, "-c", CHILD, job, partition or "", keys, json.dumps(run_config or {})]
    return subprocess.Popen(args, env={**os.environ, "DAGSTER_HOME": str(home)}, cwd=PROJECT_ROOT)


def _kill(worker: subprocess.Popen) -> None:
    worker.send_signal(signal.SIGKILL)
    assert worker.wait(timeout=30) == -signal.SIGKILL


def _swept(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """The killed run: left STARTED (nobody recorded its end), then failed by the sweep, its slots freed."""
    (run,) = instance.get_runs()
    assert run.status == dg.DagsterRunStatus.STARTED, "killed: nobody recorded an end"
    assert [r for r, _ in sweep_dead_runs(instance)] == [run.run_id]
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    assert instance.event_log_storage.get_concurrency_run_ids() == set()
    return run


@pytest.mark.parametrize("stage", STAGES, ids=[s.name for s in STAGES])
def test_a_run_killed_while_a_stage_writes_is_failed_and_its_rerun_equals_the_clean_build(
    stage, foundation_run, test_defs, lakehouse, home
):
    assert foundation_run.success
    clean = {str(t): table_rows(lakehouse, t) for t in stage.tables}
    table = Path(lakehouse.locator.path(stage.written))
    files_before, commits_before = _data_files(table), _commits(table)
    worker = _start(home, "daily_lakehouse", stage.tables)
    try:
        wait_until(lambda: _data_files(table) - files_before, 300, f"{stage.written} to be written", 0.02)
        _kill(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    # Killed between the data files and the commit: the files are there, no reader sees them.
    assert _commits(table) == commits_before, "killed before Delta committed"
    assert {str(t): table_rows(lakehouse, t) for t in stage.tables} == clean

    instance = dg.DagsterInstance.get()
    _swept(instance)
    rerun = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=DAY,
        asset_selection=[dg.AssetKey(ref.asset_key_path) for ref in stage.tables],
        instance=instance,
        raise_on_error=False,
    )
    assert rerun.success
    assert {str(t): table_rows(lakehouse, t) for t in stage.tables} == clean


def test_a_run_killed_while_dbt_writes_gold_is_failed_and_its_rerun_equals_the_clean_build(
    foundation_run, test_defs, lakehouse, home
):
    assert foundation_run.success
    clean = {str(t): table_rows(lakehouse, t) for t in GOLD}
    worker = _start(home, "daily_lakehouse", GOLD)
    try:
        dbt = wait_until(lambda: dbt_builds(worker.pid), 600, "the run's dbt build to start")[0]
        time.sleep(8)  # mid-build: dbt's Spark session is up, models are being written
        _kill(worker)
        wait_until(lambda: not process_alive(dbt), 30, "the orphaned dbt to die with its run")
    finally:
        if worker.poll() is None:
            worker.kill()

    instance = dg.DagsterInstance.get()
    _swept(instance)
    rerun = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=DAY,
        asset_selection=[dg.AssetKey(ref.asset_key_path) for ref in GOLD],
        instance=instance,
        raise_on_error=False,
    )
    assert rerun.success, "the re-run's dbt opened Derby's metastore again"
    assert {str(t): table_rows(lakehouse, t) for t in GOLD} == clean


def _mlflow_runs(client: MlflowClient, dagster_run_id: str) -> dict[str, str]:
    """Status of every MLflow run of a Dagster run: its parent run and the nested trial runs under it."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    parents = client.search_runs(experiments, f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'")
    runs = {p.info.run_id: p.info.status for p in parents}
    for parent in parents:
        children = client.search_runs(experiments, f"tags.`{PARENT_RUN_TAG}` = '{parent.info.run_id}'")
        runs |= {c.info.run_id: c.info.status for c in children}
    return runs


def test_a_training_run_killed_mid_search_leaves_no_mlflow_run_open(foundation_run, test_resources, home):
    """Killed while Optuna's trials run: its MLflow parent and trial runs stay RUNNING until the run is failed;
    then the failure sensor ends them as KILLED. No model version is registered by the dead run."""
    assert foundation_run.success
    tracking = test_resources["mlflow_tracking"]
    tracking.configure()
    client = MlflowClient(tracking.tracking_uri)
    versions_before = len(client.search_model_versions(f"name = '{tracking.model_name}'"))
    long_search = {"ops": {"ml__churn_model": {"config": {"n_trials": 200, "timeout_s": 600}}}}
    worker = _start(home, "train_evaluate_promote", run_config=long_search, partition=None)
    instance = dg.DagsterInstance.get()
    try:
        run_id = wait_until(lambda: next(iter(instance.get_runs()), None), 120, "the run").run_id

        def trials_logged():
            runs = _mlflow_runs(client, run_id)
            return len(runs) >= 3 and "RUNNING" in runs.values()

        wait_until(trials_logged, 300, "the search's first trials in MLflow", 0.5)
        _kill(worker)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "RUNNING" in _mlflow_runs(client, run_id).values(), "a killed worker ends no MLflow run"

    run = _swept(instance)
    (failure,) = [
        e.dagster_event
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
    ]
    context = dg.build_run_status_sensor_context(
        sensor_name=end_mlflow_runs_of_failed_runs.name,
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id),
        resources={"mlflow_tracking": tracking},
    ).for_run_failure()
    end_mlflow_runs_of_failed_runs(context)
    statuses = _mlflow_runs(client, run.run_id)
    assert "RUNNING" not in statuses.values() and "KILLED" in statuses.values(), statuses
    assert len(client.search_model_versions(f"name = '{tracking.model_name}'")) == versions_before
    # A second pass finds nothing left to end.
    assert tracking.end_open_runs(run.run_id) == []


def test_a_killed_landing_writer_leaves_no_temp_file_after_the_rerun(tmp_path):
    """Landing files are written to a temp file and renamed; a writer SIGKILLed before its rename leaves the
    temp file behind. The next write of that day removes it; a live writer's temp file is left alone."""
    from mlops_assets.synthetic.source import LANDING_FILES, SourceConfig, SyntheticSource

    source = SyntheticSource(SourceConfig(initial_customers=20, daily_signups=1))
    day = source.config.start_date
    folder = tmp_path / day.isoformat()
    folder.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    orphan = folder / f".usage_events.jsonl.{dead.pid}.k9x2.tmp"
    orphan.write_bytes(b'{"half": "a line')
    live = folder / f".usage_events.jsonl.{os.getpid()}.a1b2.tmp"
    live.write_bytes(b"")
    written = source.write_landing(tmp_path, [day])
    assert not orphan.exists()
    assert live.exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted([live.name, *LANDING_FILES.values()])
    assert set(written[day].values()) == {folder / name for name in LANDING_FILES.values()}
