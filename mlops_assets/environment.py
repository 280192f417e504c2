"""Binds the environment's resources in one place: asset code never asks which environment it is in."""

from __future__ import annotations

from dagster_dbt import DbtCliResource

from mlops_assets.defs.evaluation import PromotionPolicyConfig
from mlops_assets.defs.gold import dbt_project
from mlops_assets.defs.monitoring import MonitoringConfig, RetrainGuardrails
from mlops_assets.resources import (
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    QualityThresholds,
    SparkResource,
    SyntheticSourceResource,
)
from mlops_assets.runs.dbt_child import dbt_executable
from mlops_assets.settings import Settings, load_settings


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    settings = settings or load_settings()
    spark = SparkResource()
    return {
        "spark": spark,
        "lakehouse": LakehouseResource(root=settings.lakehouse_root, catalog=settings.catalog, spark=spark),
        "source": SyntheticSourceResource(),
        "quality": QualityThresholds(),
        "feature_set": FeatureSetResource(),
        "mlflow_tracking": MlflowTrackingResource(tracking_uri=settings.mlflow_tracking_uri),
        "promotion_policy": PromotionPolicyConfig(),
        "monitoring": MonitoringConfig(),
        "retrain_guardrails": RetrainGuardrails(**settings.retrain_guardrail_overrides()),
        "dbt": DbtCliResource(
            project_dir=dbt_project,
            # The dbt of this interpreter's environment, whether or not the venv is on PATH, through a launcher
            # that makes it die with the run's worker (a killed run leaves no orphaned dbt behind).
            dbt_executable=dbt_executable(),
            target="databricks" if settings.env == "databricks" else "local",
        ),
    }
