"""Schedules, jobs and freshness: when the lakehouse materializes, and how staleness shows."""

from datetime import timedelta

import dagster as dg

from mlops_assets.defs.common import max_runtime
from mlops_assets.defs.evaluation import evaluation_report
from mlops_assets.defs.features import churn_features
from mlops_assets.defs.gold import gold_dbt_models
from mlops_assets.defs.ingestion import LANDING_KEY, bronze_assets
from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY
from mlops_assets.defs.monitoring.reference_profile import REFERENCE_PROFILE_KEY
from mlops_assets.defs.registry import champion
from mlops_assets.defs.scoring import predictions
from mlops_assets.defs.silver import SILVER_KEYS, silver_assets
from mlops_assets.defs.training import churn_model, training_set
from mlops_assets.partitions import daily_partitions

daily_lakehouse_job = dg.define_asset_job(
    name="daily_lakehouse",
    selection=dg.AssetSelection.assets(
        LANDING_KEY, *bronze_assets, *silver_assets, gold_dbt_models, churn_features
    ),
    partitions_def=daily_partitions,
    tags=max_runtime(hours=3),
    description="Landing -> bronze -> silver -> gold -> features for one day, or for a backfilled range in "
    "one run. Blocking checks stop everything downstream of a failed gate within the run.",
)

training_job = dg.define_asset_job(
    name="train_evaluate_promote",
    selection=dg.AssetSelection.assets(
        training_set, churn_model, evaluation_report, champion, REFERENCE_PROFILE_KEY
    ),
    tags=max_runtime(hours=2),
    description="Training set -> LightGBM/Optuna -> evaluation report -> gated promotion of @champion -> the "
    "champion's reference profile.",
)

scoring_job = dg.define_asset_job(
    name="daily_scoring",
    selection=dg.AssetSelection.assets(predictions, DRIFT_REPORT_KEY),
    partitions_def=daily_partitions,
    tags=max_runtime(hours=1),
    description="Score the day's features with @champion (and @challenger in shadow), then its drift report.",
)

# Each day at 01:00 UTC, materialize the day that just ended.
daily_lakehouse_schedule = dg.build_schedule_from_partitioned_job(daily_lakehouse_job, hour_of_day=1)
# Scoring at 03:00, after the lakehouse run has produced the day's features.
daily_scoring_schedule = dg.build_schedule_from_partitioned_job(scoring_job, hour_of_day=3)
weekly_training_schedule = dg.ScheduleDefinition(
    job=training_job, cron_schedule="0 4 * * 1", execution_timezone="UTC", name="weekly_training_schedule"
)

# A day's silver partition is late when it is missing at 09:00 UTC the next morning (the load runs at 01:00).
SILVER_FRESHNESS_DEADLINE_CRON = "0 9 * * *"
silver_freshness_checks = dg.build_time_partition_freshness_checks(
    assets=SILVER_KEYS, deadline_cron=SILVER_FRESHNESS_DEADLINE_CRON, timezone="UTC"
)
gold_freshness_checks = dg.build_last_update_freshness_checks(
    assets=[gold_dbt_models], lower_bound_delta=timedelta(hours=26)
)
freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=[*silver_freshness_checks, *gold_freshness_checks]
)

defs = dg.Definitions(
    asset_checks=[*silver_freshness_checks, *gold_freshness_checks],
    jobs=[daily_lakehouse_job, training_job, scoring_job],
    schedules=[daily_lakehouse_schedule, daily_scoring_schedule, weekly_training_schedule],
    sensors=[freshness_sensor],
)
