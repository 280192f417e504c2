"""Binds the environment's resources in one place: asset code never asks which environment it is in."""

from __future__ import annotations

import os

import dagster as dg
from dagster_databricks import DatabricksClientResource
from dagster_dbt import DbtCliResource

from mlops_assets.resources import (
    AlertWebhookResource,
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


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or load_settings()
    spark = SparkResource()
    production = {"databricks": databricks_workspace()} if settings.env == "databricks" else {}
    return {
        **production,
        "alerts": alert_webhook(),
        "spark": spark,
        "lakehouse": LakehouseResource(root=settings.lakehouse_root, catalog=settings.catalog, spark=spark),
        "source": SyntheticSourceResource(),
        "quality": QualityThresholds(),
        "feature_set": FeatureSetResource(contract_path=settings.feature_contract)
        if settings.feature_contract
        else FeatureSetResource(),
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
            target="databricks" if settings.env == "databricks" else "local",
        ),
    }
