"""The code location: every lifecycle stage's assets, checks, schedules and sensors, bound to the
resources of the environment chosen in ``mlops_assets.settings``."""

import warnings

import dagster as dg

# Deliberate choices that Dagster flags: single-run backfills (beta), partitioned asset checks (preview),
# and freshness *checks* (superseded by FreshnessPolicy, which cannot fail a check or gate a run). Silenced
# here, where the code location is built, before the defs modules (whose decorators raise them) are imported.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)

from mlops_assets.defs import (  # noqa: E402 (after the filters, on purpose)
    alerts,
    automation,
    evaluation,
    features,
    gold,
    ingestion,
    monitoring,
    registry,
    scoring,
    silver,
    training,
)
from mlops_assets.environment import build_resources  # noqa: E402


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
        ],
        resources=resources if resources is not None else build_resources(),
        # All steps of a run share one process, hence one Spark session and one JVM start per run.
        executor=dg.in_process_executor,
    )


defs = build_defs()
