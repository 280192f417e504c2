"""Binds the environment's resources in one place: asset code never asks which environment it is in."""

from __future__ import annotations

import os

import dagster as dg
from dagster_databricks import DatabricksClientResource
from dagster_dbt import DbtCliResource

from mlops_assets.compute import DatabricksJob, SparkStepRunner
from mlops_assets.resources import (
    AlertWebhookResource,
    ExperimentResource,
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    MonitoringResource,
    PromotionPolicyResource,
    QualityThresholds,
    RetrainGuardrails,
    SparkResource,
    SyntheticSourceResource,
    dbt_project,
)
from mlops_assets.runs.dbt_child import dbt_executable
from mlops_assets.settings import Settings, load_settings

ALERT_WEBHOOK_VAR = "MLOPS_ALERT_WEBHOOK_URL"


def alert_webhook() -> AlertWebhookResource:
    """Alerts go to ``MLOPS_ALERT_WEBHOOK_URL`` when it is set (read at run time through ``dg.EnvVar``, so its
    value, which may carry a token, is never shown in the UI); links point at ``MLOPS_UI_BASE_URL``."""
    url = dg.EnvVar(ALERT_WEBHOOK_VAR) if os.environ.get(ALERT_WEBHOOK_VAR) else None
    return AlertWebhookResource(
        url=url, ui_base_url=os.environ.get("MLOPS_UI_BASE_URL", "http://127.0.0.1:3000")
    )


def databricks_workspace() -> DatabricksClientResource:
    """The Databricks workspace client (jobs, Pipes, files) for ``MLOPS_ENV=databricks``; the token only ever
    travels as ``dg.EnvVar("DATABRICKS_TOKEN")``."""
    return DatabricksClientResource(host=dg.EnvVar("DATABRICKS_HOST"), token=dg.EnvVar("DATABRICKS_TOKEN"))


def compute_runner(settings: Settings, lakehouse: LakehouseResource) -> SparkStepRunner:
    """Where Spark steps that can run remotely (silver) run: in process (``local``), in a local Pipes
    subprocess (``pipes``), or as Databricks job runs (``databricks``, on the compute the settings name)."""
    if settings.env == "pipes":
        return SparkStepRunner(mode="pipes_subprocess", lakehouse=lakehouse)
    if settings.env == "databricks" and settings.databricks is not None:
        remote = settings.databricks
        job = DatabricksJob(
            wheel=remote.wheel,
            existing_cluster_id=remote.cluster_id,
            new_cluster_json=remote.new_cluster_json,
            serverless_volume=remote.serverless_volume,
        )
        return SparkStepRunner(
            mode="databricks", lakehouse=lakehouse, databricks=databricks_workspace(), job=job
        )
    return SparkStepRunner(mode="in_process", lakehouse=lakehouse)


def dbt_target(settings: Settings) -> str:
    """The dbt target of the environment: Databricks' SQL warehouse, the Spark Connect server the Python steps
    use, or an embedded session of dbt's own (local and standalone-cluster engines: the same files by path)."""
    if settings.env == "databricks":
        return "databricks"
    return "connect" if settings.spark_engine.startswith("sc://") else "local"


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or load_settings()
    spark = SparkResource(engine=settings.spark_engine)
    production = {"databricks": databricks_workspace()} if settings.env == "databricks" else {}
    lakehouse = LakehouseResource(root=settings.lakehouse_root, catalog=settings.catalog, spark=spark)
    return {
        **production,
        "alerts": alert_webhook(),
        "spark": spark,
        "lakehouse": lakehouse,
        "compute": compute_runner(settings, lakehouse),
        "source": SyntheticSourceResource(),
        "quality": QualityThresholds(),
        "experiment": ExperimentResource(),
        "feature_set": FeatureSetResource(
            start_date=settings.start_date.isoformat(),
            **({"contract_path": settings.feature_contract} if settings.feature_contract else {}),
        ),
        "mlflow_tracking": MlflowTrackingResource(
            tracking_uri=settings.mlflow_tracking_uri, ui_url=settings.mlflow_ui_url
        ),
        "promotion_policy": PromotionPolicyResource(),
        "monitoring": MonitoringResource(),
        "retrain_guardrails": RetrainGuardrails(**settings.retrain_guardrail_overrides()),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            # The dbt of this interpreter's environment, whether or not the venv is on PATH, through a launcher
            # that makes it die with the run's worker (a killed run leaves no orphaned dbt behind).
            dbt_executable=dbt_executable(),
            target=dbt_target(settings),
        ),
    }
