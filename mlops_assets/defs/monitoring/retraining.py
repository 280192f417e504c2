"""Drift-triggered retraining: the job, the sensor that launches it for reports recommending RETRAIN (the rules
are ``monitoring/retrain_policy.py``), and the re-score of the drifted day after it succeeds."""

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from mlops_assets.defs.automation import scoring_job, training_job
from mlops_assets.defs.common import max_runtime
from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY, drift_verdicts
from mlops_assets.lakehouse.catalog import FEATURES
from mlops_assets.monitoring.retrain_policy import (
    RetrainDecision,
    RetrainHistory,
    RetrainLimits,
    decide_retrains,
)
from mlops_assets.partitions import daily_partitions
from mlops_assets.resources import RetrainGuardrails

retrain_job = dg.define_asset_job(
    name="retrain_on_drift",
    selection=training_job.selection,  # what the weekly training runs, so the two cannot drift apart
    tags=max_runtime(hours=2),
    description="Refresh the training set (all labelled data, including the new days) -> train -> evaluate -> "
    "gated promotion -> reference profile of the champion. The sensor then re-scores the drifted day.",
)

DATA_VERSION_TAG = "mlops/data_version"
PARTITION_TAG = "mlops/drift_partition"
TRAINING_DATA_TAG = "mlops/training_data_version"
FEATURES_KEY = dg.AssetKey(FEATURES.asset_key_path)


def retrain_requests(
    decisions: list[RetrainDecision], training_data_version: str | None
) -> list[dg.RunRequest]:
    """The launches as run requests: tagged with the report they answer, so the next tick knows."""
    requests = []
    for d in (d for d in decisions if d.launch):
        tags = {
            PARTITION_TAG: d.day,
            DATA_VERSION_TAG: d.verdict.data_version,
            "mlops/drift_action": str(d.verdict.action),
        }
        if training_data_version is not None:
            tags[TRAINING_DATA_TAG] = training_data_version
        requests.append(dg.RunRequest(run_key=d.run_key, tags=tags))
    return requests


def retrain_history(
    recent_runs: Sequence[dg.DagsterRun], window_runs: Sequence[dg.DagsterRun]
) -> RetrainHistory:
    """What the guardrails need from the retrain runs of the cooldown and of the window (newest first)."""
    return RetrainHistory(
        in_cooldown=bool(recent_runs),
        window_count=len(window_runs),
        window_data_versions=frozenset(r.tags.get(DATA_VERSION_TAG) for r in window_runs),
        last_training_data=window_runs[0].tags.get(TRAINING_DATA_TAG) if window_runs else None,
    )


def latest_storage_id(instance: dg.DagsterInstance, key: dg.AssetKey) -> str | None:
    records = instance.fetch_materializations(key, limit=1).records
    return str(records[0].storage_id) if records else None


@dg.sensor(
    job=retrain_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Launches retrain_on_drift once per drift report that recommends RETRAIN / RETRAIN_URGENT, "
    "with a cooldown, a cap per window, and no retrain on unchanged training data. Every decision is in the "
    "tick log.",
)
def drift_retraining_sensor(context: dg.SensorEvaluationContext, retrain_guardrails: RetrainGuardrails):
    cursor = int(context.cursor or 0)
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=DRIFT_REPORT_KEY, after_storage_id=cursor), limit=200, ascending=True
    ).records
    if not records:
        return dg.SkipReason("no new drift report")
    reports = drift_verdicts(records)
    now = datetime.now(UTC)

    def retrain_runs(since: datetime) -> list[dg.DagsterRun]:
        return list(
            context.instance.get_runs(filters=dg.RunsFilter(job_name=retrain_job.name, created_after=since))
        )

    guardrails = retrain_guardrails
    history = retrain_history(
        retrain_runs(now - timedelta(hours=guardrails.cooldown_hours)) if guardrails.cooldown_hours else [],
        retrain_runs(now - timedelta(days=guardrails.window_days)),
    )
    limits = RetrainLimits(guardrails.cooldown_hours, guardrails.max_retrains, guardrails.window_days)
    training_data = latest_storage_id(context.instance, FEATURES_KEY)
    decisions = decide_retrains(reports.items(), history, limits, training_data)
    for decision in decisions:
        context.log.info(decision.explanation)
    requests = retrain_requests(decisions, training_data)
    cursor = max(r.storage_id for r in records)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(d.explanation for d in decisions), cursor=str(cursor))
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))


rescore_job = dg.define_asset_job(
    "rescore_after_retrain",
    selection=scoring_job.selection,  # what the daily scoring runs
    partitions_def=daily_partitions,
    tags=max_runtime(hours=1),
    description="Re-score one day and recompute its drift report (requested after a drift-triggered retrain).",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[retrain_job],
    request_job=rescore_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="After a drift-triggered retrain succeeds, re-score the drifted day with the (possibly new) "
    "champion and recompute its drift report.",
)
def rescore_after_retrain(context: dg.RunStatusSensorContext):
    day = context.dagster_run.tags.get(PARTITION_TAG)
    if day is None:
        return dg.SkipReason("retrain run has no drift partition tag")
    date.fromisoformat(day)
    return dg.RunRequest(run_key=f"rescore-{context.dagster_run.run_id}", partition_key=day)


defs = dg.Definitions(
    jobs=[retrain_job, rescore_job], sensors=[drift_retraining_sensor, rescore_after_retrain]
)
