"""The silver step run remotely through Dagster Pipes: on "Databricks" and in a local Pipes subprocess.

Databricks' control plane cannot be reached from the tests, so ``fake_databricks.FakeDatabricks`` stands in for
it (a local HTTP server implementing the REST calls databricks-sdk makes, running submitted tasks as local
subprocesses). Everything else is real: databricks-sdk's WorkspaceClient (fake host, fake token), dagster-
databricks' PipesDatabricksClient, dagster-pipes on the remote side, and the project's entry point, which
starts its own Spark JVM (~15-20 s per remote run: few remote runs here).
"""

from __future__ import annotations

import base64
import io
import os
import signal
import threading
from datetime import date
from pathlib import Path

import dagster as dg
import pytest
from dagster_databricks import DatabricksClientResource
from databricks.sdk.errors import DatabricksError

from mlops_assets.compute import DatabricksJob, SparkStepRunner
from mlops_assets.lakehouse.catalog import BRONZE, QUARANTINE, SILVER
from mlops_assets.lakehouse.steps import ROWS_ACCOUNTED_FOR
from mlops_assets.resources import LakehouseResource, SparkResource, SyntheticSourceResource
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.comparable import comparable_rows
from mlops_assets_tests.conftest import SECRET_SENTINEL, range_tags
from mlops_assets_tests.fake_databricks import CANCELED_MESSAGE, FakeDatabricks
from mlops_assets_tests.servers import wait_until

ENTITY = "usage_events"
DAYS = [date(2026, 2, 1), date(2026, 2, 2)]
TABLES = {"silver": SILVER[ENTITY], "quarantine": QUARANTINE[ENTITY]}
CLUSTER_ID = "0101-000000-fakecl01"
WHEEL = "/Volumes/main/mlops/wheels/mlops_assets-0.1.0-py3-none-any.whl"


def silver_asset(retry_policy: dg.RetryPolicy | None = None) -> dg.AssetsDefinition:
    """The project's silver asset for usage events; without retries unless asked (a failure test pays once)."""
    from mlops_assets.defs.silver import build_silver_assets
    from mlops_assets.lakehouse.entities import ENTITIES

    return build_silver_assets(ENTITIES[ENTITY], retry_policy=retry_policy)


@pytest.fixture(scope="module")
def bronze_root(spark, tmp_path_factory) -> str:
    """A lakehouse of its own with landing and bronze usage events for DAYS (built in process)."""
    from mlops_assets.defs.ingestion import bronze_assets, landing_daily_files

    root = str(tmp_path_factory.mktemp("remote_lakehouse") / "lakehouse")
    lakehouse = LakehouseResource(root=root, spark=SparkResource())
    bronze = next(a for a in bronze_assets if dg.AssetKey(BRONZE[ENTITY].asset_key_path) in a.keys)
    resources = {
        "lakehouse": lakehouse,
        "source": SyntheticSourceResource(initial_customers=40, daily_signups=1),
    }
    for day in DAYS:
        assert dg.materialize(
            [landing_daily_files, bronze], resources=resources, partition_key=str(day)
        ).success
    return root


def materialize(
    runner: SparkStepRunner, asset: dg.AssetsDefinition | None = None
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset or silver_asset()],
        resources={"compute": runner},
        tags=range_tags(DAYS[0], DAYS[-1]),
        raise_on_error=False,
    )


def tables(spark, root: str) -> dict[str, list[tuple]]:
    """The rows of silver and quarantine for DAYS, without the load-time column a re-run rewrites."""
    lakehouse = LakehouseResource(root=root, spark=SparkResource()).delta()
    out = {}
    for name, ref in TABLES.items():
        out[name] = comparable_rows(lakehouse.read_partitions(ref, DAYS[0], DAYS[-1]))
    return out


@pytest.fixture(scope="module")
def in_process(bronze_root, spark):
    """The reference: the step run in the suite's own Spark session."""
    runner = SparkStepRunner(lakehouse=LakehouseResource(root=bronze_root, spark=SparkResource()))
    result = materialize(runner)
    assert result.success
    return result, tables(spark, bronze_root)


@pytest.fixture(scope="module")
def pat_only():
    """The suite sets every secret variable; the SDK would see DATABRICKS_CLIENT_SECRET as a second (OAuth)
    credential beside the token and refuse to choose. A workspace here is configured with a token only."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("DATABRICKS_CLIENT_SECRET", raising=False)
        yield


def fake_databricks(root: Path) -> FakeDatabricks:
    return FakeDatabricks(
        root,
        token=SECRET_SENTINEL,  # the suite's DATABRICKS_TOKEN: the client must send it, and nothing may log it
        library_path=str(PROJECT_ROOT),
        clusters={CLUSTER_ID: {"cluster_name": "mlops-tests", "spark_version": "15.4.x-scala2.12"}},
    ).start()


def databricks_runner(fake: FakeDatabricks, root: str) -> SparkStepRunner:
    return SparkStepRunner(
        mode="databricks",
        lakehouse=LakehouseResource(root=root, spark=SparkResource()),
        databricks=DatabricksClientResource(host=fake.url, token=dg.EnvVar("DATABRICKS_TOKEN")),
        job=DatabricksJob(wheel=WHEEL, existing_cluster_id=CLUSTER_ID),
        poll_interval_s=0.5,
        message_interval_s=0.5,
    )


@pytest.fixture(scope="module")
def databricks_run(in_process, bronze_root, tmp_path_factory, pat_only):
    """One silver step for DAYS through PipesDatabricksClient against the stand-in control plane."""
    fake = fake_databricks(tmp_path_factory.mktemp("fake_databricks"))
    try:
        yield materialize(databricks_runner(fake, bronze_root)), fake
    finally:
        fake.stop()


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        m.asset_key.to_user_string(): m.metadata
        for m in result.asset_materializations_for_node("silver_usage_events")
    }


def test_the_silver_step_runs_on_databricks_and_reports_back(databricks_run, in_process, bronze_root, spark):
    """Stand-in control plane (fake_databricks); real SDK, dagster-databricks client, dagster-pipes, entry point."""
    result, fake = databricks_run
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    [run] = fake.runs.values()
    assert run.life_cycle_state == "TERMINATED" and run.result_state == "SUCCESS"
    reported = materializations(result)
    assert set(reported) == {"silver/usage_events", "quarantine/usage_events"}
    silver, quarantine = reported["silver/usage_events"], reported["quarantine/usage_events"]
    assert silver["Databricks Job Run ID"].value == str(run.run_id)
    assert silver["Databricks Job Run URL"].value.startswith(fake.url)
    expected = in_process[1]
    assert silver["dagster/row_count"].value == len(expected["silver"]) > 0
    assert quarantine["dagster/row_count"].value == len(expected["quarantine"]) > 0
    assert "| rule | rows |" in quarantine["rules_broken"].value
    assert [c.name for c in silver["dagster/column_schema"].schema.columns][:2] == ["event_id", "customer_id"]
    [check] = result.get_asset_check_evaluations()
    assert check.check_name == ROWS_ACCOUNTED_FOR and check.passed
    assert check.metadata["unaccounted_rows"].value == 0
    # the tables the remote step wrote are the ones the in-process step writes
    assert tables(spark, bronze_root) == expected


def test_requests_are_what_a_workspace_would_receive_and_carry_no_secret(databricks_run):
    """Stand-in control plane (fake_databricks): its recorded requests against what Databricks would receive."""
    result, fake = databricks_run
    assert result.success
    [submit] = fake.calls("POST", "/api/2.2/jobs/runs/submit")
    [task] = submit.body["tasks"]
    assert task["existing_cluster_id"] == CLUSTER_ID and task["libraries"] == [{"whl": WHEEL}]
    wheel_task = task["python_wheel_task"]
    assert (wheel_task["package_name"], wheel_task["entry_point"]) == ("mlops_assets", "run_remote_step")
    parameters = wheel_task["parameters"]
    assert parameters[:3] == ["silver", "--pipes-io", "dbfs"]
    assert parameters[3::2] == [
        "--dagster-pipes-context",
        "--dagster-pipes-messages",
    ]  # existing cluster: CLI
    # dagster-databricks adds Pipes' invocation tags to the task dict, but SubmitTask has no tags field: the SDK
    # drops them, so a workspace never sees them. The run name says which Dagster run submitted it.
    assert "tags" not in task
    assert submit.body["run_name"] == f"mlops_assets silver {result.run_id[:8]}"
    # the SDK's calls, and nothing the stand-in does not implement
    used = {(r.method, r.path.split("/api/")[1].split("/tmp/")[0]) for r in fake.requests}
    assert not [r for r in fake.requests if r.error_code in ("ENDPOINT_NOT_FOUND", "UNAUTHENTICATED")]
    assert all(r.status in (200, 204) or r.error_code == "RESOURCE_DOES_NOT_EXIST" for r in fake.requests)
    assert {
        ("POST", "2.2/jobs/runs/submit"),
        ("GET", "2.2/jobs/runs/get"),
    } <= used
    assert {("POST", "2.0/dbfs/mkdirs"), ("POST", "2.0/dbfs/put"), ("GET", "2.0/dbfs/read")} <= used
    assert {("POST", "2.0/dbfs/delete")} <= used
    assert not any(fake.dbfs_root.joinpath("tmp").iterdir()), "Pipes' DBFS temp folders are deleted"
    # the token went only in the Authorization header (not recorded); not in any body, query, header, the
    # task's environment, or its driver logs
    agents = {r.headers.get("User-Agent", "") for r in fake.requests}
    assert all("databricks-sdk-py/0.47" in a and "auth/pat" in a for a in agents), agents
    recorded = repr([(r.path, r.query, r.body, r.headers) for r in fake.requests])
    run_logs = "".join(p.read_text(errors="replace") for p in (fake.root / "runs").rglob("std*"))
    [run] = fake.runs.values()
    assert SECRET_SENTINEL not in recorded + run_logs + repr(run.env) + repr(run.argv)
    assert "DATABRICKS_TOKEN" not in run.env


def test_a_remote_failure_fails_the_step_with_the_remote_error(tmp_path, pat_only):
    """Stand-in control plane (fake_databricks): the task raises (no bronze table where it looks); the step
    fails with the error Databricks reports for the task run (runs/get-output), not just "run failed"."""
    fake = fake_databricks(tmp_path / "fake_databricks")
    try:
        result = materialize(databricks_runner(fake, str(tmp_path / "no_lakehouse")))
    finally:
        fake.stop()
    assert not result.success
    [run] = fake.runs.values()
    assert (run.life_cycle_state, run.result_state) == ("TERMINATED", "FAILED")
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.to_string()
    assert f"Databricks run {run.run_id} failed" in message
    assert "no_lakehouse/bronze/usage_events" in message  # the remote exception's text
    assert fake.calls("GET", "/api/2.2/jobs/runs/get-output")


def test_a_cancelled_dagster_step_cancels_the_databricks_run_and_fails(
    tmp_path, pat_only, bronze_root, in_process, spark
):
    """Stand-in control plane (fake_databricks): the Dagster step is interrupted (SIGINT, what terminating a
    run sends its worker) while the Databricks run is RUNNING; the run is cancelled and the step fails
    although dagster-databricks' single-task run() swallows the interruption."""
    fake = fake_databricks(tmp_path / "fake_databricks")

    def interrupt_once_running() -> None:
        wait_until(
            lambda: any(r.life_cycle_state == "RUNNING" for r in fake.runs.values()), 120, "the run to start"
        )
        os.kill(os.getpid(), signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_once_running, daemon=True)
    interrupter.start()
    try:
        result = materialize(databricks_runner(fake, bronze_root))
    finally:
        interrupter.join(5)
        fake.stop()
    [run] = fake.runs.values()
    [cancel] = fake.calls("POST", "/api/2.2/jobs/runs/cancel")
    assert cancel.body == {"run_id": run.run_id}
    assert (run.life_cycle_state, run.result_state, run.state_message) == (
        "TERMINATED",
        "CANCELED",
        CANCELED_MESSAGE,
    )
    assert run.process is not None and run.process.poll() is not None, "the task's process was stopped"
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
    message = failure.step_failure_data.error.to_string()
    assert f"Databricks run {run.run_id} ended CANCELED" in message
    assert tables(spark, bronze_root) == in_process[1], "nothing was written"


def test_the_local_pipes_subprocess_writes_what_the_in_process_step_writes(in_process, bronze_root, spark):
    """MLOPS_ENV=pipes: the same entry point in a local subprocess (dg.PipesSubprocessClient), its own JVM."""
    reference_result, reference_tables = in_process
    runner = SparkStepRunner(
        mode="pipes_subprocess", lakehouse=LakehouseResource(root=bronze_root, spark=SparkResource())
    )
    result = materialize(runner)
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert tables(spark, bronze_root) == reference_tables
    remote, local = materializations(result), materializations(reference_result)
    assert remote.keys() == local.keys()
    for key in remote:
        assert remote[key].keys() == local[key].keys()
        assert remote[key]["dagster/row_count"] == local[key]["dagster/row_count"]
        assert remote[key]["dagster/column_schema"] == local[key]["dagster/column_schema"]
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.check_name == ROWS_ACCOUNTED_FOR


def test_the_stand_in_answers_dbfs_and_files_calls_as_the_sdk_expects(tmp_path, pat_only):
    """Stand-in control plane (fake_databricks), unit: the SDK's own DBFS and Files API calls against it, and
    the errors it raises for missing paths and a wrong token. No JVM."""
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.errors import NotFound

    fake = fake_databricks(tmp_path / "fake_databricks")
    try:
        w = WorkspaceClient(host=fake.url, token=SECRET_SENTINEL)
        w.dbfs.mkdirs("/tmp/pipes")
        w.dbfs.put("/tmp/pipes/1.json", contents=base64.b64encode(b'{"a": 1}').decode(), overwrite=True)
        assert base64.b64decode(w.dbfs.read("/tmp/pipes/1.json").data) == b'{"a": 1}'
        assert w.dbfs.get_status("/tmp/pipes").is_dir
        assert [f.path for f in w.dbfs.list("/tmp/pipes")] == ["/tmp/pipes/1.json"]
        with pytest.raises(NotFound) as missing:
            w.dbfs.get_status("/tmp/pipes/2.json")
        assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        w.dbfs.delete("/tmp/pipes", recursive=True)
        with pytest.raises(NotFound):
            w.dbfs.read("/tmp/pipes/1.json")

        folder = "/Volumes/main/mlops/pipes/tmp/abc"
        w.files.create_directory(folder)
        w.files.upload(f"{folder}/context.json", io.BytesIO(b"{}"), overwrite=True)
        assert w.files.download(f"{folder}/context.json").contents.read() == b"{}"
        assert [e.name for e in w.files.list_directory_contents(folder)] == ["context.json"]
        with pytest.raises(NotFound) as missing:
            w.files.download(f"{folder}/1.json").contents.read()
        assert missing.value.error_code == "NOT_FOUND"
        w.files.delete(f"{folder}/context.json")
        w.files.delete_directory(folder)
        with pytest.raises(NotFound):
            w.files.get_directory_metadata(folder)

        with pytest.raises(DatabricksError) as refused:
            WorkspaceClient(host=fake.url, token="not-the-token").dbfs.get_status("/tmp")
        assert refused.value.error_code == "UNAUTHENTICATED"
    finally:
        fake.stop()
