"""Monitoring: the champion's reference profile, daily drift reports computed in Spark, their checks, and the
sensor that launches retraining when a report recommends it."""

import functools
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import mlflow
from mlflow import MlflowClient
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime, partition_days, png_markdown, read_run_partitions
from mlops_assets.defs.training import SPLIT, read_training_set
from mlops_assets.lakehouse.catalog import BILLING, DRIFT_REPORTS, FEATURES, PREDICTIONS, REFERENCE_PROFILES
from mlops_assets.lakehouse.features import LABEL_HORIZON_DAYS, churn_labels
from mlops_assets.ml.mlflow_model import CHAMPION, load_churn_model, require_alias
from mlops_assets.monitoring.profile import ReferenceProfile, build_profile_pandas
from mlops_assets.monitoring.severity import (
    SCORE_COLUMN,
    Level,
    histogram_png,
    render_markdown,
)
from mlops_assets.monitoring.spark_drift import day_report_spark
from mlops_assets.monitoring.verdict import ROW_SCHEMA, DayVerdict, overall_level
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import (
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    MonitoringResource,
    RetrainGuardrails,
)

REFERENCE_PROFILE_KEY = dg.AssetKey(["monitoring", "reference_profile"])
DRIFT_REPORT_KEY = dg.AssetKey(["monitoring", "drift_report"])
SCORE = SCORE_COLUMN
AUC_BINS = 1000
HISTOGRAMS = 3
# The metadata key of one day's verdict (what the retraining sensor and the CLI read).
VERDICT = "verdict"


def _profile_row(lakehouse: LakehouseResource, model_name: str, version: str):
    delta = lakehouse.delta()
    if not delta.exists(REFERENCE_PROFILES):
        return None
    return (
        delta.read(REFERENCE_PROFILES)
        .where((F.col("model_name") == model_name) & (F.col("model_version") == version))
        .select("profile_json")
        .first()
    )


@dg.asset(
    key=REFERENCE_PROFILE_KEY,
    deps=[["ml", "champion"]],
    group_name=groups.MONITORING,
    kinds={"delta", "mlflow"},
    owners=[OWNER],
    description="Per champion version, computed once from its training rows: quantile bins and counts of each "
    "numerical feature and of the model score, top-K vocabularies of categoricals. Kilobytes; drift runs never "
    "re-read the reference data.",
)
def reference_profile(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
    monitoring: MonitoringResource,
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    version = require_alias(name, CHAMPION, "reference_profile")
    existing = _profile_row(lakehouse, name, version)
    if existing is not None:
        context.log.info(f"reference profile of {name} v{version} exists; not recomputed")
        profile_json = existing[0]
    else:
        contract = feature_set.contract()
        train = read_training_set(lakehouse)
        train = train[train[SPLIT] == "train"].copy()
        train[SCORE] = load_churn_model(name, version).predict_proba(train)
        numerical = [c for c in contract.numerical if c not in monitoring.exclude_columns]
        categorical = [c for c in contract.categorical if c not in monitoring.exclude_columns]
        profile = build_profile_pandas(train, [*numerical, SCORE], categorical)
        profile_json = profile.to_json()
        delta = lakehouse.delta()
        row = [(name, version, profile_json, datetime.now(UTC))]
        delta.append(
            delta.spark.createDataFrame(
                row, "model_name string, model_version string, profile_json string, created_at timestamp"
            ),
            REFERENCE_PROFILES,
        )
        run_id = MlflowClient().get_model_version(name, version).run_id
        MlflowClient().log_text(run_id, profile_json, "monitoring/reference_profile.json")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "profile_bytes": len(profile_json),
            "columns": len(json.loads(profile_json)["columns"]),
        }
    )


def load_profile(lakehouse: LakehouseResource, model_name: str, version: str) -> ReferenceProfile:
    row = _profile_row(lakehouse, model_name, version)
    if row is None:
        raise ValueError(
            f"drift_report: no reference profile for {model_name} v{version}; materialize {REFERENCE_PROFILE_KEY.to_user_string()}"
        )
    return ReferenceProfile.from_json(row[0])


def binned_auc(scored: DataFrame, label: str) -> float | None:
    """ROC-AUC from a score histogram per class: bounded driver memory (2 x AUC_BINS counts), any row count."""
    counts = (
        scored.select(
            F.least(F.floor(F.col(SCORE) * AUC_BINS), F.lit(AUC_BINS - 1)).alias("b"), F.col(label).alias("y")
        )
        .groupBy("b", "y")
        .count()
        .collect()
    )
    pos, neg = [0] * AUC_BINS, [0] * AUC_BINS
    for r in counts:
        (pos if r["y"] == 1 else neg)[int(r["b"])] += r["count"]
    n_pos, n_neg = sum(pos), sum(neg)
    if not n_pos or not n_neg:
        return None
    below, total = 0, 0.0
    for p, n in zip(pos, neg, strict=True):
        total += p * (below + n / 2)  # positives beat the negatives below them, tie with their own bin
        below += n
    return total / (n_pos * n_neg)


@dg.asset(
    key=DRIFT_REPORT_KEY,
    deps=[PREDICTIONS.asset_key_path, REFERENCE_PROFILE_KEY],
    group_name=groups.MONITORING,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"spark", "delta", "mlflow"},
    owners=[OWNER],
    description="The day's scoring inputs and scores against the champion's reference profile: PSI, JS, KS, "
    "chi-square, null-rate and out-of-range per feature in one Spark aggregation; performance drift once "
    "the day's labels are known; a severity per feature and a recommended action.",
)
def drift_report(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
    monitoring: MonitoringResource,
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    contract = feature_set.contract()
    delta = lakehouse.delta()
    billing = delta.read(BILLING) if contract.source is None else None
    labels_known_through = billing.agg(F.max("available_date")).first()[0] if billing is not None else None
    days = partition_days(context)

    @functools.cache
    def reference(version: str) -> tuple[ReferenceProfile, float | None]:
        """The version's profile and test ROC-AUC, looked up once per run, not once per day."""
        baseline = (
            MlflowClient()
            .get_run(MlflowClient().get_model_version(name, version).run_id)
            .data.metrics.get("test_roc_auc")
        )
        return load_profile(lakehouse, name, version), baseline

    all_features = feature_set.read(lakehouse)
    verdicts: list[DayVerdict] = []
    rows, markdowns, figures = [], [], {}
    for day in days:
        predictions = delta.read_partitions(PREDICTIONS, day, day)
        scored_by = predictions.agg(F.max("model_version"), F.max("scored_at"), F.count("*")).first()
        version, scored_at, n_scored = scored_by
        if not n_scored:
            raise ValueError(f"drift_report: no predictions for {day}; materialize {PREDICTIONS} first")
        profile, baseline_auc = reference(version)
        features = all_features.where(F.col(contract.as_of) == F.lit(day))
        current = features.join(
            predictions.select(
                F.col("entity").alias(contract.entity_key), F.col("as_of").alias(contract.as_of), SCORE
            ),
            [contract.entity_key, contract.as_of],
        )
        current_auc = None
        if labels_known_through is not None and (labels_known_through - day).days >= LABEL_HORIZON_DAYS:
            current_auc = binned_auc(churn_labels(current, billing), contract.label)
        report = day_report_spark(
            profile,
            current,
            monitoring.drift_thresholds(),
            monitoring.performance_thresholds(),
            baseline_auc,
            current_auc,
        )
        # What the report was computed from: a re-score, or the day's labels arriving, make it a new report.
        data_version = (
            f"{version}:{scored_at.isoformat()}:{'labelled' if current_auc is not None else 'pending'}"
        )
        summary = report.summary
        verdict = DayVerdict.of(day, name, version, report, data_version)
        verdicts.append(verdict)
        rows.append(verdict.to_row(json.dumps(report.to_dict()), datetime.now(UTC)))
        plots = [
            png_markdown(a.column, histogram_png(profile[a.column], a.result.current_counts))
            for a in summary.most_drifted(HISTOGRAMS)
            if a.drifted
        ]
        markdowns.append(f"# {day}\n\n{render_markdown(report)}\n" + "\n\n".join(plots))
        figures[day.isoformat()] = report.figures()
        context.log.info(
            f"drift {day}: {report.action} (data {summary.level}, performance {report.performance_level}; critical {list(summary.critical_columns)})"
        )
    table = delta.spark.createDataFrame(rows, ROW_SCHEMA)
    commit = delta.replace_partitions(table, DRIFT_REPORTS, days[0], days[-1])
    with mlflow_tracking.parent_run(context):
        for verdict, text in zip(verdicts, markdowns, strict=True):
            mlflow.log_text(text, f"drift/{verdict.day}.md")
        mlflow.log_dict({str(v.day): v.to_metadata() for v in verdicts}, "drift/reports.json")
        latest = verdicts[-1]
        mlflow.set_tags({"drift_action": str(latest.action), "drift_partition": str(latest.day)})
    # Each day's materialization carries its own verdict, figures and report (in a multi-day run too).
    for verdict, text in zip(verdicts, markdowns, strict=True):
        day = verdict.day.isoformat()
        metadata = {**_day_metadata(verdict, figures[day], text), "delta_version": commit.version}
        context.add_asset_metadata(metadata, partition_key=day)
    return dg.MaterializeResult()


def _day_metadata(verdict: DayVerdict, figures: dict[str, float | int], markdown: str) -> dict:
    """One day's materialization: the report first (what users read), then the figures Dagster plots."""
    return {
        "report": dg.MetadataValue.md(markdown),
        "action": str(verdict.action),
        **figures,
        VERDICT: dg.MetadataValue.json(verdict.to_metadata()),
    }


def drift_verdicts(records: Sequence[dg.EventLogRecord]) -> dict[str, DayVerdict]:
    """Each day's verdict from drift_report materializations (oldest first, so the latest per day wins)."""
    verdicts: dict[str, DayVerdict] = {}
    for record in records:
        materialization = record.asset_materialization
        if materialization is not None and VERDICT in materialization.metadata:
            value = materialization.metadata[VERDICT].value
            verdicts[materialization.partition] = DayVerdict.from_metadata(value, materialization.partition)
    return verdicts


@dg.asset_check(
    asset=DRIFT_REPORT_KEY,
    name="drift_severity",
    partitions_def=daily_partitions,
    description="WARN when data drift is moderate, ERROR when it is critical.",
)
def drift_severity(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    verdicts = [
        DayVerdict.from_row(r) for r in read_run_partitions(context, lakehouse, DRIFT_REPORTS).collect()
    ]
    # The reports' own levels, never re-graded here: the check says what the report it checks says.
    level = overall_level(verdicts)
    return dg.AssetCheckResult(
        passed=level == Level.NONE,
        severity=dg.AssetCheckSeverity.ERROR if level == Level.SIGNIFICANT else dg.AssetCheckSeverity.WARN,
        metadata={
            "level": str(level),
            "critical_columns": sorted({c for v in verdicts for c in v.critical_columns}),
        },
    )


retrain_job = dg.define_asset_job(
    name="retrain_on_drift",
    selection=dg.AssetSelection.assets(
        ["ml", "training_set"],
        ["ml", "churn_model"],
        ["ml", "evaluation_report"],
        ["ml", "champion"],
        REFERENCE_PROFILE_KEY,
    ),
    tags=max_runtime(hours=2),
    description="Refresh the training set (all labelled data, including the new days) -> train -> evaluate -> "
    "gated promotion -> reference profile of the champion. The sensor then re-scores the drifted day.",
)

DATA_VERSION_TAG = "mlops/data_version"
PARTITION_TAG = "mlops/drift_partition"
TRAINING_DATA_TAG = "mlops/training_data_version"
FEATURES_KEY = dg.AssetKey(FEATURES.asset_key_path)


def decide_retrains(
    reports: list[tuple[str, DayVerdict]],
    recent_runs: list[dg.DagsterRun],
    window_runs: list[dg.DagsterRun],
    guardrails: RetrainGuardrails,
    training_data_version: str | None = None,
) -> tuple[list[dg.RunRequest], list[str]]:
    """Which reports launch a retrain, and why the others do not; newest report first.

    One run key per report (partition + data version), so a report seen twice launches once. ``window_runs``
    are the retrain runs of the guardrail window, newest first; ``training_data_version`` identifies the data a
    retrain would learn from now (the features' latest materialization): equal to the last retrain's means
    retraining would only repeat it.
    """
    requests: list[dg.RunRequest] = []
    decisions: list[str] = []
    seen_versions = {r.tags.get(DATA_VERSION_TAG) for r in window_runs}
    last_training_data = window_runs[0].tags.get(TRAINING_DATA_TAG) if window_runs else None
    launched_for = None
    for day, report in sorted(reports, reverse=True):
        key = f"drift-{day}-{report.data_version}"
        action = str(report.action)
        if not report.recommends_retrain:
            decisions.append(f"{day}: {action} -> no retrain needed")
        elif launched_for is not None:
            decisions.append(
                f"{day}: {action} -> covered by the retrain launched for {launched_for} in this tick"
            )
        elif report.data_version in seen_versions:
            decisions.append(f"{day}: {action} -> skipped: this report already launched a retrain ({key})")
        elif training_data_version is not None and training_data_version == last_training_data:
            decisions.append(
                f"{day}: {action} -> skipped: training data unchanged since the last retrain "
                f"(features materialization {training_data_version})"
            )
        elif recent_runs:
            decisions.append(
                f"{day}: {action} -> skipped: cooldown of {guardrails.cooldown_hours} h since the last retrain"
            )
        elif len(window_runs) >= guardrails.max_retrains:
            decisions.append(
                f"{day}: {action} -> skipped: {len(window_runs)} retrains in {guardrails.window_days} days "
                f"(max {guardrails.max_retrains})"
            )
        else:
            tags = {
                PARTITION_TAG: day,
                DATA_VERSION_TAG: report.data_version,
                "mlops/drift_action": action,
            }
            if training_data_version is not None:
                tags[TRAINING_DATA_TAG] = training_data_version
            requests.append(dg.RunRequest(run_key=key, tags=tags))
            launched_for = day
            decisions.append(f"{day}: {action} -> LAUNCHED retraining (run key {key})")
    return requests, decisions


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
    requests, decisions = decide_retrains(
        list(reports.items()),
        retrain_runs(now - timedelta(hours=guardrails.cooldown_hours)) if guardrails.cooldown_hours else [],
        retrain_runs(now - timedelta(days=guardrails.window_days)),
        guardrails,
        latest_storage_id(context.instance, FEATURES_KEY),
    )
    for decision in decisions:
        context.log.info(decision)
    cursor = max(r.storage_id for r in records)
    if not requests:
        return dg.SensorResult(skip_reason="; ".join(decisions), cursor=str(cursor))
    return dg.SensorResult(run_requests=requests, cursor=str(cursor))


rescore_job = dg.define_asset_job(
    "rescore_after_retrain",
    selection=dg.AssetSelection.assets(PREDICTIONS.asset_key_path, DRIFT_REPORT_KEY),
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
