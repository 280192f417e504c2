"""The code location: every lifecycle stage's assets, checks, schedules and sensors, bound to the
resources of the environment chosen in ``mlops_assets.settings``."""

import dagster as dg

from mlops_assets.defs import automation, gold, ingestion, silver
from mlops_assets.environment import build_resources


def build_defs(resources: dict[str, object] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            ingestion.landing_daily_files,
            *ingestion.bronze_assets,
            *silver.silver_assets,
            gold.gold_dbt_models,
        ],
        asset_checks=[
            *silver.silver_checks,
            *automation.silver_freshness_checks,
            *automation.gold_freshness_checks,
        ],
        jobs=[automation.daily_lakehouse_job],
        schedules=[automation.daily_lakehouse_schedule],
        sensors=[automation.freshness_sensor],
        resources=resources if resources is not None else build_resources(),
        # All steps of a run share one process, hence one Spark session and one JVM start per run.
        executor=dg.in_process_executor,
    )


defs = build_defs()
