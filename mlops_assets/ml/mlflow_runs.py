"""The MLflow runs of a Dagster run: its one parent run, shared by every step that logs, and the runs it left open
(a worker killed mid-step never ends its MLflow run, which then shows RUNNING forever in the MLflow UI).
No Dagster here: callers pass the Dagster run id.

Why not dagster-mlflow's ``MlFlow`` class: it is built from a resource init context (a ConfigurableResource
would have to fake one), it is beta, and it sets process-global MLflow state in its constructor. What this
project needs from it is one parent run per Dagster run, found by the same ``dagster_run_id`` tag, which is
``dagster_parent_run`` below; runs logged either way are found by both."""

from __future__ import annotations

from mlflow import MlflowClient
from mlflow.entities import RunStatus, ViewType

# The tag dagster-mlflow puts on the one parent MLflow run of a Dagster run; nested runs (Optuna trials) carry
# MLflow's own parent-run tag instead.
DAGSTER_RUN_TAG = "dagster_run_id"
PARENT_RUN_TAG = "mlflow.parentRunId"
RUNNING = RunStatus.to_string(RunStatus.RUNNING)


def _run_ids(client: MlflowClient, filter_string: str) -> list[str]:
    """Ids of the runs matching filter_string in every experiment (deleted ones included)."""
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    if not experiments:
        return []
    runs = client.search_runs(experiments, filter_string=filter_string, run_view_type=ViewType.ALL)
    return [r.info.run_id for r in runs]


def dagster_parent_run(
    client: MlflowClient, experiment_id: str, dagster_run_id: str, tags: dict[str, str]
) -> str:
    """The id of the Dagster run's parent MLflow run in the experiment: the one tagged with its id (a later step
    resumes it), else a new one created with ``tags``."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'",
        order_by=["attributes.start_time ASC"],
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    return client.create_run(experiment_id, tags={DAGSTER_RUN_TAG: dagster_run_id, **tags}).info.run_id


def end_open_runs(client: MlflowClient, dagster_run_id: str, status: str = "KILLED") -> list[str]:
    """End, with ``status``, every MLflow run of this Dagster run still RUNNING: its parent run(s) and the
    nested runs under them. Returns the ended run ids, nested ones first."""
    still_running = f"attributes.status = '{RUNNING}'"
    parents = _run_ids(client, f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}'")
    ended = [
        child
        for parent in parents
        for child in _run_ids(client, f"tags.`{PARENT_RUN_TAG}` = '{parent}' and {still_running}")
    ]
    ended += _run_ids(client, f"tags.`{DAGSTER_RUN_TAG}` = '{dagster_run_id}' and {still_running}")
    for run_id in ended:
        client.set_terminated(run_id, status=status)
    return ended
