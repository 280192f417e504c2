"""Schedules, jobs and freshness: when the lakehouse materializes, and how staleness shows."""

from datetime import timedelta

import dagster as dg

from mlops_assets.defs.gold import gold_dbt_models
from mlops_assets.defs.ingestion import LANDING_FILES, bronze_assets
from mlops_assets.defs.silver import SILVER_KEYS, silver_assets
from mlops_assets.partitions import daily_partitions

daily_lakehouse_job = dg.define_asset_job(
    name="daily_lakehouse",
    selection=dg.AssetSelection.assets(LANDING_FILES, *bronze_assets, *silver_assets, gold_dbt_models),
    partitions_def=daily_partitions,
    description="Landing -> bronze -> silver -> gold for one day, or for a backfilled range in one run. "
    "Silver's blocking checks stop gold within the run.",
)

# Each day at 01:00 UTC, materialize the day that just ended.
daily_lakehouse_schedule = dg.build_schedule_from_partitioned_job(daily_lakehouse_job, hour_of_day=1)

silver_freshness_checks = dg.build_time_partition_freshness_checks(
    assets=SILVER_KEYS, deadline_cron="0 9 * * *", timezone="UTC"
)
gold_freshness_checks = dg.build_last_update_freshness_checks(
    assets=[gold_dbt_models], lower_bound_delta=timedelta(hours=26)
)
freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=[*silver_freshness_checks, *gold_freshness_checks]
)
