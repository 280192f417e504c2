"""The drift report again once a day's churn labels have closed: now with its measured performance drop."""

from datetime import timedelta

import dagster as dg

from mlops_assets.defs.common import max_runtime
from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY
from mlops_assets.lakehouse.features import LABEL_HORIZON_DAYS
from mlops_assets.partitions import daily_partitions

labelled_drift_job = dg.define_asset_job(
    "drift_report_with_labels",
    selection=dg.AssetSelection.assets(DRIFT_REPORT_KEY),
    partitions_def=daily_partitions,
    tags=max_runtime(hours=1),
    description="Recompute one day's drift report once its churn labels have closed, adding performance drift.",
)


@dg.schedule(
    job=labelled_drift_job,
    cron_schedule="0 5 * * *",
    execution_timezone="UTC",
    description=f"Daily, after the lakehouse load: the drift report of the day whose {LABEL_HORIZON_DAYS}-day "
    "label window just closed is recomputed with its measured performance drop.",
)
def labelled_drift_schedule(context: dg.ScheduleEvaluationContext):
    # The 01:00 load of day D+31 brings data through D+30: the labels of day D are complete.
    day = (context.scheduled_execution_time.date() - timedelta(days=LABEL_HORIZON_DAYS + 1)).isoformat()
    scored = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_REPORT_KEY, asset_partitions=[day]), limit=1
    ).records
    if not scored:
        return dg.SkipReason(f"{day} has no drift report yet (never scored); nothing to complete with labels")
    return dg.RunRequest(run_key=f"labelled-{day}", partition_key=day)


defs = dg.Definitions(jobs=[labelled_drift_job], schedules=[labelled_drift_schedule])
