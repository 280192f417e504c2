"""Where a Spark step runs: the ``compute`` resource.

The asset hands its step (a name from ``lakehouse/steps.py`` ``STEPS`` and JSON params) to
``SparkStepRunner.run`` and yields what comes back; the same pure function does the work wherever it runs:

- ``in_process``: in the Dagster run's own Spark session (local development, the default);
- ``pipes_subprocess``: ``python -m mlops_assets.remote`` through ``dg.PipesSubprocessClient`` with its own
  JVM (``MLOPS_ENV=pipes``: the remote path, run for real on a laptop);
- ``databricks``: a one-time Databricks job run through dagster-databricks' ``PipesDatabricksClient`` (a classic
  cluster, existing or new; context and messages over DBFS) or ``PipesDatabricksServerlessClient``
  (serverless; over a Unity Catalog volume). The task is the project wheel's entry point
  ``mlops_assets.run_remote_step``.

Steps that run remotely: silver. Training, evaluation and scoring stay in the Dagster process.

A Dagster run cancelled while its Databricks run is going cancels the Databricks run (dagster-databricks does
that), and the step then fails as interrupted: the single-task ``run()`` of dagster-databricks 0.29 returns
normally after cancelling, so ``run`` checks the Databricks run's final state and raises the interruption.
"""

import json
import sys
from dataclasses import dataclass
from typing import Any, Literal

import dagster as dg
from dagster_databricks import DatabricksClientResource, PipesDatabricksClient, PipesDbfsMessageReader
from dagster_databricks.pipes import PipesDatabricksServerlessClient, PipesUnityCatalogVolumesMessageReader
from databricks.sdk import WorkspaceClient
from databricks.sdk.service import jobs
from pydantic import Field, model_validator

from mlops_assets.lakehouse.steps import PipesMetadata, StepReports, run_step, step_reports
from mlops_assets.resources import LakehouseResource
from mlops_assets.settings import PROJECT_ROOT

MODES = ("in_process", "pipes_subprocess", "databricks")
StepResult = dg.MaterializeResult | dg.AssetCheckResult
PACKAGE, ENTRY_POINT = "mlops_assets", "run_remote_step"
SERVERLESS_ENVIRONMENT = "mlops_assets"


@dataclass(frozen=True)
class StepRun:
    """What a step reported: its JSON summary and the results for Dagster (materializations, checks)."""

    summary: dict[str, Any]
    results: list[StepResult]


def _metadata(pipes: PipesMetadata) -> dict[str, Any]:
    """Pipes-typed metadata as Dagster metadata (the types ``lakehouse/steps.py`` uses), as Dagster itself
    converts what a remote step reports."""
    out: dict[str, Any] = {}
    for key, entry in pipes.items():
        raw, kind = entry["raw_value"], entry["type"]
        if kind == "table_schema":
            columns = [dg.TableColumn(c["name"], c["type"]) for c in raw["columns"]]
            out[key] = dg.MetadataValue.table_schema(dg.TableSchema(columns=columns))
        elif kind == "md":
            out[key] = dg.MetadataValue.md(raw)
        elif kind == "null":
            out[key] = dg.MetadataValue.null()
        elif kind in ("int", "text"):
            out[key] = raw
        else:
            raise ValueError(f"metadata {key!r}: unsupported Pipes type {kind!r}")
    return out


def results_from_reports(reports: StepReports) -> list[StepResult]:
    def key(path: str) -> dg.AssetKey:
        return dg.AssetKey(path.split("/"))

    return [
        *(
            dg.MaterializeResult(asset_key=key(m.asset_key), metadata=_metadata(m.metadata))
            for m in reports.materializations
        ),
        *(
            dg.AssetCheckResult(
                asset_key=key(c.asset_key),
                check_name=c.check_name,
                passed=c.passed,
                severity=dg.AssetCheckSeverity(c.severity),
                metadata=_metadata(c.metadata),
            )
            for c in reports.checks
        ),
    ]


class DatabricksJob(dg.Config):
    """The one-time job run a remote step becomes: which compute, and where the project wheel is."""

    wheel: str = Field(description="the project wheel: a workspace, volume or dbfs:/ path")
    existing_cluster_id: str | None = None
    new_cluster_json: str | None = Field(default=None, description="a new job cluster's spec (JSON)")
    serverless_volume: str | None = Field(
        default=None,
        description="serverless: the /Volumes/... path Pipes passes context and messages through",
    )
    serverless_client: str = "2"

    @model_validator(mode="after")
    def _one_compute(self) -> "DatabricksJob":
        chosen = [self.existing_cluster_id, self.new_cluster_json, self.serverless_volume]
        if sum(c is not None for c in chosen) != 1:
            raise ValueError(
                "exactly one of existing_cluster_id, new_cluster_json, serverless_volume must be set"
            )
        return self

    @property
    def pipes_io(self) -> str:
        return "volumes" if self.serverless_volume else "dbfs"

    def task(self, step: str, task_key: str) -> jobs.SubmitTask:
        task: dict[str, Any] = {
            "task_key": task_key,
            "python_wheel_task": {
                "package_name": PACKAGE,
                "entry_point": ENTRY_POINT,
                "parameters": [step, "--pipes-io", self.pipes_io],
            },
        }
        if self.serverless_volume:
            task["environment_key"] = SERVERLESS_ENVIRONMENT
        else:
            task["libraries"] = [{"whl": self.wheel}]
            if self.existing_cluster_id:
                task["existing_cluster_id"] = self.existing_cluster_id
            else:
                task["new_cluster"] = json.loads(self.new_cluster_json or "{}")
        return jobs.SubmitTask.from_dict(task)

    def submit_args(self, run_name: str) -> dict[str, Any]:
        args: dict[str, Any] = {"run_name": run_name}
        if self.serverless_volume:
            spec = {"client": self.serverless_client, "dependencies": [self.wheel]}
            args["environments"] = [
                jobs.JobEnvironment.from_dict({"environment_key": SERVERLESS_ENVIRONMENT, "spec": spec})
            ]
        return args


class _RunIdMixin:
    """Remembers the Databricks run id: dagster-databricks 0.29 polls it but keeps it to itself when the run
    fails, and the remote error text is in that run's output."""

    run_id: int | None = None

    def _poll_til_success(self, context, run_id: int) -> None:  # override of the client's poll loop
        self.run_id = run_id
        super()._poll_til_success(context, run_id)  # type: ignore[misc]


class _DatabricksClient(_RunIdMixin, PipesDatabricksClient):
    pass


class _ServerlessClient(_RunIdMixin, PipesDatabricksServerlessClient):
    pass


class SparkStepRunner(dg.ConfigurableResource):
    """Runs a Spark step in process, in a local Pipes subprocess, or as a Databricks job run (see module doc)."""

    mode: Literal["in_process", "pipes_subprocess", "databricks"] = "in_process"
    lakehouse: dg.ResourceDependency[LakehouseResource]
    databricks: DatabricksClientResource | None = None
    job: DatabricksJob | None = None
    poll_interval_s: float = Field(
        default=5, gt=0, description="how often the Databricks run's state is read"
    )
    message_interval_s: float = Field(default=10, gt=0, description="how often Pipes messages are read")

    @model_validator(mode="after")
    def _databricks_needs_a_job(self) -> "SparkStepRunner":
        if self.mode == "databricks" and (self.databricks is None or self.job is None):
            raise ValueError("mode 'databricks' needs both `databricks` (the workspace) and `job`")
        return self

    def run(self, context: dg.AssetExecutionContext, step: str, params: dict[str, Any]) -> StepRun:
        if self.mode == "in_process":
            delta = self.lakehouse.delta()
            summary = run_step(step, delta.spark, self.lakehouse.locator, params)
            return StepRun(summary, results_from_reports(step_reports(step, summary)))
        extras = {
            "params": params,
            "locator": {"root": self.lakehouse.root, "catalog": self.lakehouse.catalog},
        }
        invocation = (
            self._subprocess(context, step, extras)
            if self.mode == "pipes_subprocess"
            else self._databricks(context, step, extras)
        )
        summaries = invocation.get_custom_messages()
        if len(summaries) != 1:
            raise dg.Failure(f"step {step}: expected one summary from the remote step, got {len(summaries)}")
        return StepRun(summaries[0], list(invocation.get_results()))

    def _subprocess(self, context: dg.AssetExecutionContext, step: str, extras: dict) -> Any:
        command = [sys.executable, "-m", "mlops_assets.remote", step, "--pipes-io", "local"]
        # cwd: the checkout (or site-packages) this package was imported from, so the child runs the same code.
        return dg.PipesSubprocessClient(cwd=str(PROJECT_ROOT)).run(
            context=context, command=command, extras=extras
        )

    def _databricks(self, context: dg.AssetExecutionContext, step: str, extras: dict) -> Any:
        assert self.databricks is not None and self.job is not None  # the validator says so
        workspace: WorkspaceClient = self.databricks.get_client().workspace_client
        client: _DatabricksClient | _ServerlessClient
        if self.job.serverless_volume:
            client = _ServerlessClient(
                workspace,
                volume_path=self.job.serverless_volume,
                message_reader=PipesUnityCatalogVolumesMessageReader(
                    client=workspace, volume_path=self.job.serverless_volume, interval=self.message_interval_s
                ),
                poll_interval_seconds=self.poll_interval_s,
            )
        else:
            client = _DatabricksClient(
                workspace,
                message_reader=PipesDbfsMessageReader(client=workspace, interval=self.message_interval_s),
                poll_interval_seconds=self.poll_interval_s,
            )
        run_name = f"mlops_assets {step} {context.run.run_id[:8]}"
        try:
            invocation = client.run(
                context=context,
                extras=extras,
                task=self.job.task(step, task_key=f"mlops_assets_{step}"),
                submit_args=self.job.submit_args(run_name),
            )
        except Exception as error:  # dagster-databricks' DagsterPipesExecutionError is not public API
            if client.run_id is None or not _ended_unsuccessfully(workspace, client.run_id):
                raise
            raise dg.Failure(
                description=f"Databricks run {client.run_id} failed: {_remote_error(workspace, client.run_id)}",
                metadata={"Databricks Job Run ID": str(client.run_id)},
            ) from error
        state = workspace.jobs.get_run(client.run_id).state if client.run_id is not None else None
        if state is None or state.result_state != jobs.RunResultState.SUCCESS:
            # dagster-databricks cancelled the run on an interruption and returned as if it had succeeded.
            result = state.result_state.value if state and state.result_state else "unknown"
            raise dg.DagsterExecutionInterruptedError(
                f"Databricks run {client.run_id} ended {result} ({state.state_message if state else ''}): "
                "the Dagster step was interrupted and the Databricks run cancelled"
            )
        return invocation


def _ended_unsuccessfully(workspace: WorkspaceClient, run_id: int) -> bool:
    state = workspace.jobs.get_run(run_id).state
    return state is not None and state.result_state not in (None, jobs.RunResultState.SUCCESS)


def _remote_error(workspace: WorkspaceClient, run_id: int) -> str:
    """The failed task's error as Databricks reports it (``runs/get-output`` of the task run)."""
    run = workspace.jobs.get_run(run_id)
    message = run.state.state_message if run.state else ""
    for task in run.tasks or []:
        if task.run_id is None:
            continue
        output = workspace.jobs.get_run_output(task.run_id)
        if output.error:
            return f"{output.error}\n{output.error_trace or ''}".strip()
    return message or "no error reported"
