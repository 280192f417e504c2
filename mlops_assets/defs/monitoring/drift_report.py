"""The daily drift report against the champion's reference profile (one Spark aggregation grouped by day for all
of a run's days: a backfill is one scan, not one per day), each day's verdict as its materialization's metadata,
and the ``drift_severity`` check on it."""

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
import mlflow
from mlflow.exceptions import MlflowException
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, partition_days, png_markdown, read_run_partitions
from mlops_assets.defs.monitoring.reference_profile import REFERENCE_PROFILE_KEY
from mlops_assets.lakehouse.catalog import DRIFT_REPORTS, PREDICTIONS
from mlops_assets.ml.calibration import CALIBRATION_ARTIFACT, CalibrationMap
from mlops_assets.monitoring.cbpe import estimate_from_histogram
from mlops_assets.monitoring.profile import ReferenceProfile
from mlops_assets.monitoring.profile_store import load_profile
from mlops_assets.monitoring.render import histogram_png, render_markdown
from mlops_assets.monitoring.severity import SCORE_COLUMN as SCORE
from mlops_assets.monitoring.severity import Level
from mlops_assets.monitoring.spark_drift import binned_auc_by, day_reports_spark, score_histograms_by
from mlops_assets.monitoring.verdict import ROW_SCHEMA, DayVerdict, overall_level
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import (
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    MonitoringResource,
)

DRIFT_REPORT_KEY = dg.AssetKey(["monitoring", "drift_report"])
HISTOGRAMS = 3
# The metadata key of one day's verdict (what the retraining sensor and the CLI read).
VERDICT = "verdict"


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
    # Built-in: billing's labels; external: the contract's ``labels`` (None: every day stays pending).
    labels = feature_set.label_source(lakehouse, today=datetime.now(UTC).date())
    days = partition_days(context)

    @functools.cache
    def run_of(version: str) -> str:
        """The MLflow run that registered the version (its metrics and artifacts), looked up once per run."""
        return mlflow_tracking.registry().version(version).run_id

    @functools.cache
    def reference(version: str) -> tuple[ReferenceProfile, float | None]:
        """The version's profile and test ROC-AUC, looked up once per run, not once per day."""
        run_id = run_of(version)
        baseline = mlflow_tracking.client().get_run(run_id).data.metrics.get("test_roc_auc")
        fix = f"materialize {REFERENCE_PROFILE_KEY.to_user_string()}"
        return load_profile(delta, name, version, fix), baseline

    @functools.cache
    def calibration(version: str) -> CalibrationMap | None:
        """The version's calibration map (fit on its validation split); None for a model trained without one."""
        try:
            return CalibrationMap.from_dict(
                mlflow.artifacts.load_dict(f"runs:/{run_of(version)}/{CALIBRATION_ARTIFACT}")
            )
        except (MlflowException, OSError):
            context.log.warning(
                f"v{version} has no {CALIBRATION_ARTIFACT}: no label-free performance estimate"
            )
            return None

    all_features = feature_set.read(lakehouse)
    predictions = delta.read_partitions(PREDICTIONS, days[0], days[-1])
    scored_by = {
        row["_partition_date"]: (row["version"], row["scored_at"])
        for row in predictions.groupBy("_partition_date")
        .agg(F.max("model_version").alias("version"), F.max("scored_at").alias("scored_at"))
        .collect()
    }
    unscored = [day.isoformat() for day in days if day not in scored_by]
    if unscored:
        raise ValueError(
            f"drift_report: no predictions for {', '.join(unscored)}; materialize {PREDICTIONS} first"
        )
    # One aggregation per champion version over all its days (a backfill of N days is one scan, not N), then
    # each day graded exactly as alone.
    reports, aucs = {}, {}
    for version in sorted({v for v, _ in scored_by.values()}):
        version_days = [day for day in days if scored_by[day][0] == version]
        profile, baseline_auc = reference(version)
        current = all_features.where(F.col(contract.as_of).isin(version_days)).join(
            predictions.where(F.col("_partition_date").isin(version_days)).select(
                F.col("entity").alias(contract.entity_key), F.col("as_of").alias(contract.as_of), SCORE
            ),
            [contract.entity_key, contract.as_of],
        )
        if labels is not None:
            with_labels = labels.attach(current)
            labelled = labels.labelled_days(with_labels, version_days)
            if labelled:
                scored = with_labels.where(F.col(contract.as_of).isin(labelled))
                aucs |= binned_auc_by(scored, contract.label, contract.as_of)
        # While labels are pending (and beside them once in): ROC-AUC estimated from calibrated scores alone.
        calibrated = calibration(version)
        estimates = (
            {
                day: estimate_from_histogram(counts, calibrated.apply)
                for day, counts in score_histograms_by(current, contract.as_of).items()
            }
            if calibrated is not None
            else {}
        )
        # A day whose scored rows have no features left is graded on no rows, as the per-day loop graded it.
        reports |= day_reports_spark(
            profile,
            current,
            contract.as_of,
            monitoring.drift_thresholds(),
            monitoring.performance_thresholds(),
            baseline_auc,
            aucs,
            days=version_days,
            estimates=estimates,
        )
    verdicts: list[DayVerdict] = []
    rows, markdowns, figures = [], [], {}
    for day in days:
        version, scored_at = scored_by[day]
        profile, _ = reference(version)
        report, current_auc = reports[day], aucs.get(day)
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


defs = dg.Definitions(assets=[drift_report], asset_checks=[drift_severity])
