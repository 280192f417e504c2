"""The code location: every lifecycle stage's assets, checks, schedules and sensors, bound to the
resources of the environment chosen in ``mlops_assets.settings``."""

import dagster as dg

from mlops_assets.defs import (
    alerts,
    automation,
    evaluation,
    features,
    gold,
    ingestion,
    mlflow_runs,
    monitoring,
    registry,
    scoring,
    silver,
    training,
)
from mlops_assets.environment import build_resources


def build_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            ingestion.landing_daily_files,
            *ingestion.bronze_assets,
            *silver.silver_assets,
            gold.gold_dbt_models,
            features.churn_features,
            training.training_set,
            training.churn_model,
            evaluation.evaluation_report,
            registry.champion,
            scoring.predictions,
            monitoring.reference_profile,
            monitoring.drift_report,
        ],
        asset_checks=[
            *silver.silver_checks,
            *automation.silver_freshness_checks,
            *automation.gold_freshness_checks,
            features.point_in_time,
            training.no_single_feature_leak,
            evaluation.promotion_gate,
            monitoring.drift_severity,
        ],
        jobs=[
            automation.daily_lakehouse_job,
            automation.training_job,
            automation.scoring_job,
            registry.rollback_champion,
            monitoring.retrain_job,
            monitoring.rescore_job,
            monitoring.labelled_drift_job,
        ],
        schedules=[
            automation.daily_lakehouse_schedule,
            automation.daily_scoring_schedule,
            automation.weekly_training_schedule,
            monitoring.labelled_drift_schedule,
        ],
        sensors=[
            automation.freshness_sensor,
            monitoring.drift_retraining_sensor,
            monitoring.rescore_after_retrain,
            *alerts.alert_sensors,
            mlflow_runs.end_mlflow_runs_of_failed_runs,
        ],
        resources=resources if resources is not None else build_resources(),
        # All steps of a run share one process, hence one Spark session and one JVM start per run.
        executor=dg.in_process_executor,
    )


defs = build_defs()
