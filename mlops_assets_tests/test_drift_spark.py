"""The Spark drift path against the numpy reference implementation, on the same data.

Data reaches Spark through Parquet written by pyarrow, so NaN and null stay distinct on the Spark side
(pandas would merge them) and both paths see exactly the same values.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from mlops_assets.monitoring.drift_stats import column_drift_numpy, compute_drift, current_counts_numpy
from mlops_assets.monitoring.profile import ReferenceProfile, build_profile_pandas
from mlops_assets.monitoring.severity import DriftThresholds, PerformanceThresholds, Severity
from mlops_assets.monitoring.spark_drift import (
    binned_auc,
    binned_auc_by,
    compute_drift_spark,
    count_pass,
    count_query,
    day_report_spark,
    day_reports_spark,
)
from mlops_assets.monitoring.spark_profile import build_profile_spark
from mlops_assets_tests.comparable import report_figures

NUMERICAL = ["amount", "tenure days", "score"]  # a space: names must be quoted in Spark
CATEGORICAL = ["plan", "country", "is_active"]
N = 20_000
PLANS = ["basic", "it's plus", "pro\\max", "équipe"]  # quotes, backslash, non-ASCII: literal-safe SQL


def make_columns(seed: int, n: int = N, drift: bool = False, dirty: bool = False) -> dict[str, pa.Array]:
    """Columns as Arrow arrays; ``dirty`` adds NaN, nulls, infinities, out-of-range and unseen values."""
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3.0, 0.7, n) * (1.5 if drift else 1.0)
    tenure = rng.normal(400.0, 120.0, n)
    score = rng.beta(2, 5, n)
    plan = rng.choice(PLANS, n, p=[0.1, 0.2, 0.3, 0.4] if drift else [0.4, 0.3, 0.2, 0.1]).astype(object)
    country = rng.choice([f"c{i:02d}" for i in range(30)], n).astype(object)
    active = rng.random(n) < 0.7
    amount_null = rng.random(n) < 0.02
    plan_null = rng.random(n) < 0.01
    if dirty:
        amount[:50] = np.nan  # NaN (not null) counts as missing too
        tenure[50:60] = np.inf
        tenure[60:70] = -np.inf
        tenure[70:470] = 5_000.0  # far beyond the reference max: 2 % out of range
        score[470:2470] = np.nan  # null spike: +10 points
        plan[2470:3470] = "enterprise"  # unseen category
        country[3470:3500] = "zz"
    return {
        "amount": pa.array(amount, mask=amount_null),
        "tenure days": pa.array(tenure),
        "score": pa.array(score),
        "plan": pa.array(plan, type=pa.string(), mask=plan_null),
        "country": pa.array(country, type=pa.string()),
        "is_active": pa.array(active),
    }


def as_pandas(columns: dict[str, pa.Array]) -> pd.DataFrame:
    return pa.table(columns).to_pandas()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drift_spark")


def write(data_dir: Path, name: str, columns: dict[str, pa.Array]) -> str:
    path = data_dir / f"{name}.parquet"
    pq.write_table(pa.table(columns), path)
    return str(path)


@pytest.fixture(scope="module")
def reference_columns() -> dict[str, pa.Array]:
    return make_columns(seed=1)


@pytest.fixture(scope="module")
def spark_profile(spark, data_dir: Path, reference_columns: dict[str, pa.Array]) -> ReferenceProfile:
    df = spark.read.parquet(write(data_dir, "reference", reference_columns))
    return build_profile_spark(df, NUMERICAL, CATEGORICAL)


def test_spark_counts_and_statistics_equal_numpy_reference(spark, data_dir: Path, reference_columns) -> None:
    profile = build_profile_pandas(as_pandas(reference_columns), NUMERICAL, CATEGORICAL)
    current = make_columns(seed=2, drift=True, dirty=True)
    spark_counts = count_pass(profile, spark.read.parquet(write(data_dir, "dirty", current)), moments=True)
    spark_results = {name: compute_drift(col, spark_counts[name]) for name, col in profile.columns.items()}
    current_pd = as_pandas(current)
    for name, col in profile.columns.items():
        expected = current_counts_numpy(col, current_pd[name])
        got = spark_counts[name]
        assert got.counts == expected.counts, name
        assert (got.null_count, got.total, got.out_of_range_count) == (
            expected.null_count,
            expected.total,
            expected.out_of_range_count,
        ), name
        ours, ref = spark_results[name], column_drift_numpy(col, current_pd[name])
        assert ours.psi == pytest.approx(ref.psi, abs=1e-3)
        assert ours.js_distance == pytest.approx(ref.js_distance, abs=1e-3)
        if col.kind == "numerical":
            for stat in ("mean", "std", "min", "max"):  # None where infinities make them undefined
                want = getattr(expected, stat)
                assert getattr(got, stat) == (None if want is None else pytest.approx(want, rel=1e-9)), stat
            one_bin = max(col.counts) / sum(col.counts)
            assert abs(ours.ks_statistic - ref.ks_statistic) <= one_bin
        else:
            assert ours.chi2_p_value == pytest.approx(ref.chi2_p_value, abs=1e-6)
    # The dirty rows are where they should be.
    assert spark_counts["amount"].null_count > current["amount"].null_count  # NaN is missing too
    assert spark_counts["tenure days"].out_of_range_count >= 420
    assert 950 < spark_counts["plan"].counts[-1] <= 1000  # "enterprise" (less the 1 % nulls) in __other__
    assert spark_results["score"].null_rate_change == pytest.approx(0.1)


def test_spark_profile_matches_pandas_profile(spark_profile: ReferenceProfile, reference_columns) -> None:
    pandas_profile = build_profile_pandas(as_pandas(reference_columns), NUMERICAL, CATEGORICAL)
    assert spark_profile.row_count == pandas_profile.row_count == N
    for name in NUMERICAL:
        s, p = spark_profile[name], pandas_profile[name]
        assert (s.null_count, s.total, sum(s.counts)) == (p.null_count, p.total, sum(p.counts))
        assert (s.min, s.max) == (p.min, p.max)
        assert s.mean == pytest.approx(p.mean, rel=1e-9) and s.std == pytest.approx(p.std, rel=1e-9)
        # Approximate quantiles: every bin holds about a tenth of the values.
        assert len(s.counts) == 10
        assert max(abs(c / sum(s.counts) - 0.1) for c in s.counts) < 0.005
    for name in CATEGORICAL:
        assert spark_profile[name] == pandas_profile[name]  # exact: same vocabulary, counts, nulls


def test_spark_drift_flags_drifted_columns_and_only_those(spark, data_dir: Path, spark_profile) -> None:
    current = make_columns(seed=3, drift=True)
    outcome = compute_drift_spark(spark_profile, spark.read.parquet(write(data_dir, "drifted", current)))
    assert set(outcome.summary.drifted_columns) == {"amount", "plan"}
    assert set(outcome.summary.critical_columns) == {"amount", "plan"}
    current_pd = as_pandas(current)
    for name, result in outcome.results.items():
        assert result.psi == pytest.approx(
            column_drift_numpy(spark_profile[name], current_pd[name]).psi, abs=1e-3
        )


@pytest.mark.parametrize("seed", [4, 5, 6])
def test_spark_same_distribution_raises_no_critical(spark, data_dir: Path, spark_profile, seed: int) -> None:
    df = spark.read.parquet(write(data_dir, f"same_{seed}", make_columns(seed=seed)))
    summary = compute_drift_spark(spark_profile, df).summary
    assert not summary.critical_columns and not summary.drifted_columns
    assert all(a.result.psi < 0.02 for a in summary.columns)


def test_spark_null_spike_out_of_range_and_unseen_categories(spark, data_dir: Path, spark_profile) -> None:
    df = spark.read.parquet(write(data_dir, "dirty_same", make_columns(seed=7, dirty=True)))
    summary = compute_drift_spark(spark_profile, df).summary
    by_name = {a.column: a for a in summary.columns}
    assert by_name["score"].severity is Severity.CRITICAL
    assert any(r.startswith("null_rate_change") for r in by_name["score"].reasons)
    assert by_name["tenure days"].severity in {Severity.WARN, Severity.CRITICAL}
    assert any(r.startswith("out_of_range") for r in by_name["tenure days"].reasons)
    assert by_name["plan"].severity is Severity.CRITICAL  # 5 % unseen "enterprise"
    assert by_name["is_active"].severity is Severity.NONE


def test_count_query_scans_the_data_once_without_python(spark, data_dir: Path, spark_profile) -> None:
    df = spark.read.parquet(write(data_dir, "plan", make_columns(seed=8, n=100)))
    plan = count_query(spark_profile, df)._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan") == 1, plan
    assert "EvalPython" not in plan and "PythonUDF" not in plan


def _days_of_data(data_dir: Path) -> tuple[list[date], str]:
    """Five days unlike each other: quiet, drifted, dirty, tiny (150 rows), drifted and dirty; with a label that
    follows a probability column, so each day also has an AUC."""
    days = [date(2026, 5, d) for d in range(1, 6)]
    shapes = [
        (N, False, False),
        (5_000, True, False),
        (4_000, False, True),
        (150, False, False),
        (N, True, True),
    ]
    tables = []
    for i, (day, (n, drift, dirty)) in enumerate(zip(days, shapes, strict=True)):
        columns = make_columns(seed=20 + i, n=n, drift=drift, dirty=dirty)
        rng = np.random.default_rng(40 + i)
        p = rng.random(n)
        columns |= {
            "day": pa.array([day] * n),
            "p": pa.array(p),
            "y": pa.array((rng.random(n) < p).astype("int32")),
        }
        tables.append(pa.table(columns))
    path = data_dir / "days.parquet"
    pq.write_table(pa.concat_tables(tables), path)
    return days, str(path)


def test_one_pass_over_many_days_grades_each_day_as_the_per_day_loop(
    spark, data_dir: Path, spark_profile
) -> None:
    """A backfill's one aggregation grouped by day gives every day the report, verdict and AUC the day alone gets
    (the loop the drift report ran before), from one scan of the data."""
    days, path = _days_of_data(data_dir)
    df = spark.read.parquet(path)
    drift, performance = DriftThresholds(), PerformanceThresholds()
    aucs = binned_auc_by(df, "y", "day", score="p")
    one_pass = day_reports_spark(spark_profile, df, "day", drift, performance, 0.8, aucs)
    assert sorted(one_pass) == days
    for day in days:
        alone = df.where(F.col("day") == F.lit(day))
        auc = binned_auc(alone, "y", score="p")
        assert aucs[day] == pytest.approx(auc, abs=1e-12)
        ours, loop = (
            one_pass[day].to_dict(),
            day_report_spark(spark_profile, alone, drift, performance, 0.8, auc),
        )
        loop = loop.to_dict()
        verdict = ("action", "data_drift_level", "performance_level")
        assert [ours[k] for k in verdict] == [loop[k] for k in verdict], day
        assert ours["summary"]["drifted_columns"] == loop["summary"]["drifted_columns"], day
        assert ours["summary"]["critical_columns"] == loop["summary"]["critical_columns"], day
        assert report_figures(ours) == pytest.approx(report_figures(loop), abs=1e-9, nan_ok=True), day
    # A requested day without rows is graded as the loop grades an empty frame.
    empty_day = date(2026, 6, 1)
    with_empty = day_reports_spark(spark_profile, df, "day", drift, performance, 0.8, {}, days=[empty_day])
    alone_empty = day_report_spark(spark_profile, df.limit(0), drift, performance, 0.8, None)
    assert with_empty[empty_day].to_dict() == alone_empty.to_dict()
    levels = {str(one_pass[d].summary.level) for d in days}
    assert len(levels) > 1, levels  # the days really differ: quiet and drifted ones
    plan = count_query(spark_profile, df, by="day")._jdf.queryExecution().executedPlan().toString()
    assert plan.count("FileScan") == 1, plan


def test_spark_profile_round_trips_and_is_small_for_25_columns(spark, data_dir: Path) -> None:
    rng = np.random.default_rng(9)
    n = 30_000
    cols: dict[str, pa.Array] = {f"num_{i:02d}": pa.array(rng.normal(i, 1.0 + i, n)) for i in range(20)}
    for j in range(5):
        labels = np.array([f"a_fairly_long_category_label_{k:04d}" for k in range(500)], dtype=object)
        cols[f"cat_{j}"] = pa.array(labels[rng.integers(0, 500, n)], type=pa.string())
    df = spark.read.parquet(write(data_dir, "wide", cols))
    profile = build_profile_spark(df, [f"num_{i:02d}" for i in range(20)], [f"cat_{j}" for j in range(5)])
    text = profile.to_json()
    assert len(text.encode()) < 64 * 1024
    assert ReferenceProfile.from_json(text) == profile
    assert all(len(c.vocabulary) == 20 for c in profile.categorical)


def test_empty_current_and_all_null_reference_column(spark, data_dir: Path) -> None:
    reference = {"x": pa.array([None] * 100, type=pa.float64()), "y": pa.array(np.arange(100.0))}
    profile = build_profile_spark(spark.read.parquet(write(data_dir, "nulls", reference)), ["x", "y"], [])
    assert profile["x"].null_count == 100 and profile["x"].n_bins == 1
    assert profile["y"].min == 0.0 and profile["y"].max == 99.0
    current = {"x": pa.array([1.0, None, math.nan]), "y": pa.array([1.0, 2.0, 500.0])}
    outcome = compute_drift_spark(profile, spark.read.parquet(write(data_dir, "after_nulls", current)))
    assert outcome.results["x"].current_counts == (1,)
    assert outcome.results["x"].null_rate_change == pytest.approx(2 / 3 - 1)
    assert outcome.results["y"].current_out_of_range_count == 1
    empty = spark.read.parquet(write(data_dir, "after_nulls", current)).limit(0)
    results = compute_drift_spark(profile, empty).results
    assert (
        results["y"].current_rows == 0 and results["y"].psi is None and results["y"].null_rate_change is None
    )


def test_a_day_is_measured_once_every_label_it_scored_is_known(spark) -> None:
    """The labels an external contract names: a day with one label still open (or none) stays pending; the
    label table joins on entity and as-of even when its as-of is a timestamp."""
    from mlops_assets.ml.contract import FeatureSetContract
    from mlops_assets.ml.labels import LabelSource

    d1, d2, d3 = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)
    doc = {
        "name": "mine",
        "version": "1",
        "entity_key": "id",
        "as_of": "as_of",
        "label": "y",
        "features": [{"name": "x", "kind": "numerical"}],
        "source": {"format": "parquet", "path": "/unused"},
    }
    rows = spark.createDataFrame(
        [(1, d1, 0.5), (2, d1, 0.1), (1, d2, 0.4), (2, d2, 0.2), (1, d3, 0.3)], "id int, as_of date, x double"
    )
    known, late = date(2026, 6, 1), date(2026, 9, 1)
    labels = [(1, d1, 1, known), (2, d1, 0, known), (1, d2, 1, known), (2, d2, 0, late)]  # d3: no label row
    own = FeatureSetContract.from_dict({**doc, "labels": {"available": "known"}})
    own_rows = rows.join(
        spark.createDataFrame(labels, "id int, as_of date, y int, known date"), ["id", "as_of"], "left"
    )
    table = FeatureSetContract.from_dict(
        {**doc, "labels": {"available": "known", "source": {"format": "parquet", "path": "/labels"}}}
    )
    table_rows = spark.createDataFrame(labels, "id int, as_of date, y int, known date").withColumn(
        "as_of", F.col("as_of").cast("timestamp")
    )
    for source, features in (
        (LabelSource(own, date(2026, 7, 1)), own_rows),
        (LabelSource(table, date(2026, 7, 1), table=table_rows), rows),
    ):
        attached = source.attach(features)
        assert attached.count() == rows.count()  # a join, never a fan-out or a loss of scored rows
        assert source.labelled_days(attached, [d1, d2, d3]) == [d1]
        assert attached.where(source.known()).count() == 3
    # Once the late label is known, its day is measured too.
    later = LabelSource(table, late, table=table_rows)
    assert later.labelled_days(later.attach(rows), [d1, d2, d3]) == [d1, d2]
