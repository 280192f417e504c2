"""One day's drift verdict: its row and metadata forms, the one level rule the report and the
``drift_severity`` check share, and the model score as a key column of the report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring.drift_stats import dataset_drift_numpy
from mlops_assets.monitoring.profile import build_profile_pandas
from mlops_assets.monitoring.severity import (
    KEY_COLUMNS,
    SCORE_COLUMN,
    Action,
    DriftThresholds,
    Level,
    PerformanceThresholds,
    build_report,
    summarize_dataset,
)
from mlops_assets.monitoring.verdict import ROW_SCHEMA, DayVerdict, overall_level

DAY = date(2026, 5, 7)
FEATURES = ["sessions", "minutes_used", "support_tickets", "monthly_fee"]
N = 5000


def _frame(seed: int, shifted: str | None = None) -> pd.DataFrame:
    """Four features and the score; ``shifted`` moves one column far enough to be critical (PSI >> 0.25)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({c: rng.normal(10.0, 2.0, N) for c in FEATURES})
    frame[SCORE_COLUMN] = rng.beta(2, 5, N)
    if shifted == SCORE_COLUMN:
        frame[SCORE_COLUMN] = rng.beta(5, 2, N)
    elif shifted is not None:
        frame[shifted] = frame[shifted] + 4.0
    return frame


def _profile():
    return build_profile_pandas(_frame(0), [*FEATURES, SCORE_COLUMN], [])


def _verdict(report, data_version: str = "1:2026-05-08T03:00:00:pending") -> DayVerdict:
    return DayVerdict.of(DAY, "churn_model", "1", report, data_version)


def _one_critical_day(shifted: str, key_columns=KEY_COLUMNS):
    results = dataset_drift_numpy(_profile(), _frame(1, shifted=shifted))
    return build_report(summarize_dataset(results.values(), key_columns=key_columns), 0.8, None, "roc_auc")


def test_metadata_is_json_and_round_trips():
    verdict = _verdict(_one_critical_day("minutes_used"))
    metadata = verdict.to_metadata()
    assert json.loads(json.dumps(metadata)) == metadata
    assert DayVerdict.from_metadata(metadata) == verdict
    assert dg.MetadataValue.json(metadata).value == metadata


def test_metadata_written_before_the_day_was_in_it_reads_with_its_partition():
    verdict = _verdict(_one_critical_day("minutes_used"))
    legacy = {
        k: v
        for k, v in verdict.to_metadata().items()
        if k not in {"day", "model_name", "baseline_roc_auc", "current_roc_auc"}
    }
    read = DayVerdict.from_metadata(legacy, DAY.isoformat())
    assert read.day == DAY and read.action == verdict.action and read.model_name is None
    with pytest.raises(ValueError, match="without a day"):
        DayVerdict.from_metadata(legacy)


def test_overall_level_is_the_worst_days_level_as_graded():
    def day(level: Level) -> DayVerdict:
        return DayVerdict(DAY, "m", "1", Action.NO_ACTION, level, Level.PENDING, (), (), None, None, "v")

    assert overall_level([]) is Level.NONE
    assert overall_level([day(Level.NONE), day(Level.MODERATE)]) is Level.MODERATE
    assert overall_level([day(Level.SIGNIFICANT), day(Level.MODERATE)]) is Level.SIGNIFICANT


def test_a_day_with_exactly_one_critical_column_is_moderate_for_report_and_check_alike():
    report = _one_critical_day("minutes_used")
    summary = report.summary
    assert summary.critical_columns == ("minutes_used",)
    assert summary.drifted_columns == ("minutes_used",)  # one of five: below every share bound
    assert summary.level is Level.MODERATE
    assert report.action is Action.MONITOR
    # The check grades the days with overall_level: the same level, hence WARN, not ERROR.
    assert overall_level([_verdict(report)]) is Level.MODERATE


def test_the_score_going_critical_alone_makes_the_day_significant():
    report = _one_critical_day(SCORE_COLUMN)
    assert report.summary.critical_columns == (SCORE_COLUMN,)
    assert report.summary.level is Level.SIGNIFICANT
    assert report.action is Action.RETRAIN  # labels pending: a significant shift retrains
    # Without the score as a key column the same day would be graded moderate (one column of five).
    assert _one_critical_day(SCORE_COLUMN, key_columns=()).summary.level is Level.MODERATE


def test_the_spark_report_of_a_day_treats_the_score_as_key_and_its_rows_read_back(spark, tmp_path):
    """The path the drift_report asset takes (``day_report_spark``), and the row the check reads."""
    from mlops_assets.monitoring.spark_drift import day_report_spark

    current = _frame(1, shifted=SCORE_COLUMN)
    current.to_parquet(tmp_path / "current.parquet")
    df = spark.read.parquet(str(tmp_path / "current.parquet"))
    report = day_report_spark(_profile(), df, DriftThresholds(), PerformanceThresholds(), 0.8, None)
    assert report.summary.critical_columns == (SCORE_COLUMN,)
    assert report.summary.level is Level.SIGNIFICANT and report.action is Action.RETRAIN
    verdict = _verdict(report)
    row = spark.createDataFrame([verdict.to_row("{}", datetime.now(UTC))], ROW_SCHEMA).first()
    assert DayVerdict.from_row(row) == verdict
    assert overall_level([DayVerdict.from_row(row)]) is report.summary.level


def test_the_drift_severity_check_warns_on_a_day_with_one_critical_column(spark, tmp_path):
    """The real check, over a real drift_reports table holding one day graded moderate by its report."""
    from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY, drift_severity
    from mlops_assets.lakehouse.catalog import DRIFT_REPORTS
    from mlops_assets.partitions import daily_partitions
    from mlops_assets.resources import LakehouseResource, SparkResource

    lakehouse = LakehouseResource(root=str(tmp_path / "lakehouse"), spark=SparkResource())
    verdict = _verdict(_one_critical_day("minutes_used"))
    delta = lakehouse.delta()
    rows = delta.spark.createDataFrame([verdict.to_row("{}", datetime.now(UTC))], ROW_SCHEMA)
    delta.replace_partitions(rows, DRIFT_REPORTS, DAY, DAY)
    defs = dg.Definitions(
        assets=[dg.AssetSpec(DRIFT_REPORT_KEY, partitions_def=daily_partitions)],
        asset_checks=[drift_severity],
        jobs=[
            dg.define_asset_job(
                "check_only",
                selection=dg.AssetSelection.checks(drift_severity),
                partitions_def=daily_partitions,
            )
        ],
        resources={"lakehouse": lakehouse},
    )
    result = defs.resolve_job_def("check_only").execute_in_process(
        tags={"dagster/partition": DAY.isoformat()}
    )
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity is dg.AssetCheckSeverity.WARN
    assert evaluation.metadata["level"].value == str(verdict.data_drift_level) == "moderate"
    assert evaluation.metadata["critical_columns"].value == ["minutes_used"]
