"""Alert sensors: an operator hears about a failed run or a failed check without watching the UI.

A blocking check that fails at ERROR (``promotion_gate``, ``quarantine_rate``, ``pandera_schema``, ...) fails
its step and so its run: ``run_failure_alert`` reports it with the checks that failed. Checks that do not fail
their run (freshness, ``drift_severity``, WARN results) are reported by ``check_failure_alert``. Both post
through the ``alerts`` resource (``MLOPS_ALERT_WEBHOOK_URL``); when it is unset they only log a skip.
"""

from __future__ import annotations

import time

import dagster as dg

from mlops_assets.alerting import FailedCheck, check_failure_alert, needs_own_alert, run_failure_alert
from mlops_assets.resources import AlertWebhookResource

ALERTS_OFF = "alerts are off: MLOPS_ALERT_WEBHOOK_URL is not set"


def _partition(run: dg.DagsterRun) -> str | None:
    start = run.tags.get("dagster/asset_partition_range_start")
    end = run.tags.get("dagster/asset_partition_range_end")
    if start and end and start != end:
        return f"{start}..{end}"
    return run.tags.get("dagster/partition") or start


def _failed_check(evaluation: dg.AssetCheckEvaluation) -> FailedCheck:
    return FailedCheck(
        asset=evaluation.asset_key.to_user_string(),
        check=evaluation.check_name,
        severity=evaluation.severity.value,
        blocking=bool(evaluation.blocking),
        partition=evaluation.partition,
        description=evaluation.description,
    )


def _failed_checks_of_run(instance: dg.DagsterInstance, run_id: str) -> list[FailedCheck]:
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    evaluations = [e.dagster_event.event_specific_data for e in entries if e.dagster_event]
    return [_failed_check(e) for e in evaluations if not e.passed]


@dg.run_failure_sensor(
    name="run_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Posts every failed run (job, partition, failed steps and checks, error, link, next step) to "
    "the alert webhook (MLOPS_ALERT_WEBHOOK_URL).",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alerts: AlertWebhookResource):
    run = context.dagster_run
    if not alerts.enabled:
        return dg.SkipReason(ALERTS_OFF)
    step_failures = context.get_step_failure_events()
    error = None
    if step_failures and step_failures[0].event_specific_data.error:
        error = step_failures[0].event_specific_data.error.message
    alert = run_failure_alert(
        job=run.job_name,
        run_id=run.run_id,
        partition=_partition(run),
        failed_steps=[e.step_key for e in step_failures if e.step_key],
        failed_checks=_failed_checks_of_run(context.instance, run.run_id),
        error=error or context.failure_event.message,
        ui_base_url=alerts.ui_base_url,
    )
    alerts.send(alert)
    context.log.info(f"alert sent: {alert.title}")
    return None


@dg.sensor(
    name="check_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Posts failed asset checks that did not fail their run (freshness, drift_severity, WARN "
    "results) to the alert webhook; blocking ERROR failures are in run_failure_alert.",
)
def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertWebhookResource):
    if not alerts.enabled:
        return dg.SkipReason(ALERTS_OFF)
    if context.cursor:
        records_filter = dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=int(context.cursor)
        )
    else:  # First tick: recent failures only, not the instance's whole history.
        records_filter = dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION,
            after_timestamp=time.time() - alerts.first_tick_lookback_hours * 3600,
        )
    records = context.instance.get_event_records(records_filter, limit=200, ascending=True)
    if not records:
        return dg.SkipReason("no new check evaluations")
    sent = []
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        if evaluation.passed or not needs_own_alert(bool(evaluation.blocking), evaluation.severity.value):
            continue
        run = context.instance.get_run_by_id(record.run_id)
        alert = check_failure_alert(
            _failed_check(evaluation), run.job_name if run else "?", record.run_id, alerts.ui_base_url
        )
        alerts.send(alert)
        sent.append(alert.title)
        context.log.info(f"alert sent: {alert.title}")
    cursor = str(max(r.storage_id for r in records))
    skip = None if sent else f"{len(records)} check evaluation(s), none failed outside a failed run"
    return dg.SensorResult(cursor=cursor, skip_reason=skip)


alert_sensors = [run_failure_alert_sensor, check_failure_alert_sensor]

defs = dg.Definitions(sensors=alert_sensors)
