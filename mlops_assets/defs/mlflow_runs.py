"""MLflow runs left open by a dead run: when Dagster marks a run failed (its step raised, or run monitoring found
its worker killed), the MLflow runs it still had RUNNING are ended as KILLED, so the MLflow UI never shows a
training that is long dead as running. The CLI, which runs without a daemon, does the same after its sweep."""

from __future__ import annotations

import dagster as dg

from mlops_assets.resources import MlflowTrackingResource


@dg.run_failure_sensor(
    name="end_mlflow_runs_of_failed_runs",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Ends as KILLED the MLflow runs a failed Dagster run left RUNNING (a killed worker never ends "
    "its MLflow run).",
)
def end_mlflow_runs_of_failed_runs(
    context: dg.RunFailureSensorContext, mlflow_tracking: MlflowTrackingResource
) -> dg.SkipReason | None:
    run_id = context.dagster_run.run_id
    ended = mlflow_tracking.end_open_runs(run_id)
    if not ended:
        return dg.SkipReason(f"run {run_id} left no MLflow run open")
    context.log.info(f"run {run_id} left {len(ended)} MLflow run(s) RUNNING; ended as KILLED: {ended}")
    return None


defs = dg.Definitions(sensors=[end_mlflow_runs_of_failed_runs])
