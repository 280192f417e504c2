"""Drift statistics, profiles and decisions on plain numpy/pandas data (no Spark: fast)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from mlops_assets.monitoring import drift_stats as ds
from mlops_assets.monitoring.drift_stats import (
    PSI_EPSILON,
    chi_square,
    column_drift_numpy,
    dataset_drift_numpy,
    js_distance,
    ks_binned,
    psi,
)
from mlops_assets.monitoring.profile import (
    OTHER,
    ReferenceProfile,
    build_profile_pandas,
    category_key,
    numerical_bin_index,
    numerical_profile_from_values,
    quantile_edges,
)
from mlops_assets.monitoring.render import histogram_png, render_markdown
from mlops_assets.monitoring.severity import (
    ACTION_MATRIX,
    Action,
    DriftThresholds,
    Level,
    PerformanceThresholds,
    Severity,
    assess_column,
    build_report,
    dataset_level,
    performance_drop_level,
    recommend_action,
    summarize_dataset,
)

N = 20_000


def make_frame(
    seed: int, n: int = N, shift: float = 0.0, cat_weights: list[float] | None = None
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    weights = cat_weights or [0.5, 0.3, 0.15, 0.05]
    return pd.DataFrame(
        {
            "x_normal": rng.normal(0.0 + shift, 1.0, n),
            "x_lognormal": rng.lognormal(0.0, 0.5, n),
            "x_discrete": rng.integers(0, 4, n).astype(float),  # heavy ties: deduplicated edges
            "score": rng.beta(2, 5, n),
            "plan": rng.choice(["basic", "plus", "pro", "team"], n, p=weights),
            "country": rng.choice([f"c{i:02d}" for i in range(40)], n),  # more than top-K: an other bucket
        }
    )


NUMERICAL = ["x_normal", "x_lognormal", "x_discrete", "score"]
CATEGORICAL = ["plan", "country"]


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_frame(seed=1)


@pytest.fixture(scope="module")
def profile(reference: pd.DataFrame) -> ReferenceProfile:
    return build_profile_pandas(reference, NUMERICAL, CATEGORICAL)


# --- statistics --------------------------------------------------------------------------------------------


def test_identical_distributions_have_zero_distance() -> None:
    counts = [10, 20, 30, 40]
    assert psi(counts, counts) == pytest.approx(0.0)
    assert js_distance(counts, [2 * c for c in counts]) == pytest.approx(0.0, abs=1e-7)
    assert ks_binned(counts, counts) == 0.0
    assert chi_square(counts, counts) == (pytest.approx(0.0), pytest.approx(1.0))


def test_psi_matches_hand_computation_and_uses_epsilon_for_empty_bins() -> None:
    r, c = np.array([0.5, 0.5, 0.0]), np.array([0.25, 0.5, 0.25])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.25 - PSI_EPSILON) * math.log(0.25 / PSI_EPSILON)
    assert psi([50, 50, 0], [25, 50, 25]) == pytest.approx(expected)
    assert math.isfinite(psi(r * 100, c * 100))


def test_js_distance_is_base_2_and_bounded() -> None:
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a, b = rng.integers(0, 100, 8), rng.integers(0, 100, 8)
        if a.sum() and b.sum():
            assert 0.0 <= js_distance(a, b) <= 1.0
    scipy_distance = pytest.importorskip("scipy.spatial.distance")
    a, b = [5, 10, 20, 1], [8, 8, 8, 8]
    assert js_distance(a, b) == pytest.approx(scipy_distance.jensenshannon(a, b, base=2))


def test_ks_binned_is_max_cdf_difference() -> None:
    assert ks_binned([1, 1, 0, 0], [0, 0, 1, 1]) == pytest.approx(1.0)
    assert ks_binned([2, 1, 1], [1, 1, 2]) == pytest.approx(0.25)


def test_chi_square_matches_scipy_contingency() -> None:
    stats = pytest.importorskip("scipy.stats")
    ref, cur = [120, 80, 40, 0], [100, 70, 60, 15]
    statistic, p_value = chi_square(ref, cur)
    expected = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)


# --- profile ------------------------------------------------------------------------------------------------


def test_bins_are_left_closed_and_missing_is_minus_one() -> None:
    edges = quantile_edges([1.0, 2.0, 2.0, None, float("nan")])
    assert edges == (-math.inf, 1.0, 2.0, math.inf)
    idx = numerical_bin_index(np.array([0.5, 1.0, 1.5, 2.0, np.inf, -np.inf, np.nan]), edges)
    assert idx.tolist() == [0, 1, 1, 2, 2, 0, -1]


def test_profile_shape(profile: ReferenceProfile, reference: pd.DataFrame) -> None:
    x = profile["x_normal"]
    assert x.edges[0] == -math.inf and x.edges[-1] == math.inf
    assert x.n_bins == 10 and sum(x.counts) == N
    assert x.min == pytest.approx(reference.x_normal.min()) and x.valid_max == pytest.approx(
        reference.x_normal.max()
    )
    assert x.std == pytest.approx(reference.x_normal.std())
    # Tied quantiles deduplicated: 4 distinct values give 4 inner edges (the first bin, below the minimum,
    # stays empty in the reference) instead of 9.
    assert profile["x_discrete"].inner_edges == (0.0, 1.0, 2.0, 3.0)
    country = profile["country"]
    assert len(country.vocabulary) == 20 and country.bin_labels()[-1] == OTHER
    assert sum(country.counts) == N and country.counts[-1] > 0


def test_profile_round_trips_through_strict_json_and_is_small() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    frame = pd.DataFrame({f"num_{i:02d}": rng.normal(size=n) for i in range(20)})
    for j in range(5):
        frame[f"cat_{j}"] = rng.choice([f"a_rather_long_category_name_{k:03d}" for k in range(200)], n)
    frame.loc[::7, "num_03"] = np.nan
    profile = build_profile_pandas(frame, [f"num_{i:02d}" for i in range(20)], [f"cat_{j}" for j in range(5)])
    text = profile.to_json()
    assert "Infinity" not in text and "NaN" not in text
    assert len(text.encode()) < 64 * 1024
    assert ReferenceProfile.from_json(text) == profile
    assert ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile


def test_all_null_numerical_column_profiles_without_error() -> None:
    frame = pd.DataFrame({"x": [np.nan] * 10, "c": [None] * 10})
    profile = build_profile_pandas(frame, ["x"], ["c"])
    assert profile["x"].null_count == 10 and profile["x"].n_bins == 1 and profile["x"].min is None
    assert profile["c"].vocabulary == () and profile["c"].null_count == 10
    result = column_drift_numpy(profile["x"], np.array([1.0, 2.0]))
    assert result.psi is None and result.null_rate_change == pytest.approx(-1.0)
    assert ReferenceProfile.from_json(profile.to_json()) == profile


def test_sampled_edges_move_the_bins_a_little_but_the_counts_stay_exact() -> None:
    values = np.random.default_rng(3).lognormal(0.0, 0.7, 200_000)
    values[::97] = np.nan
    exact = numerical_profile_from_values("x", values)
    sampled = numerical_profile_from_values("x", values, quantile_sample_rows=5_000)
    assert sampled.edges != exact.edges
    assert sum(sampled.counts) == sum(exact.counts) == int(np.count_nonzero(~np.isnan(values)))
    inner = np.array(sampled.inner_edges)
    valid = values[~np.isnan(values)]
    assert list(sampled.counts) == np.bincount(np.searchsorted(inner, valid, side="right")).tolist()
    assert max(sampled.counts) / min(sampled.counts) < 1.3  # decile edges from the sample still split evenly
    assert (sampled.min, sampled.max, sampled.null_count) == (exact.min, exact.max, exact.null_count)


def test_category_key_spells_values_like_spark() -> None:
    assert category_key(pd.Series([True, False])).tolist() == ["true", "false"]
    assert category_key(pd.Series([1, 2])).tolist() == ["1", "2"]
    keys = category_key(pd.Series(["a", None, np.nan]))
    assert keys.tolist()[0] == "a" and keys.isna().tolist() == [False, True, True]


# --- drift on data ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [11, 12, 13, 14, 15])
def test_same_distribution_raises_no_critical_and_no_warning(profile: ReferenceProfile, seed: int) -> None:
    results = dataset_drift_numpy(profile, make_frame(seed))
    summary = summarize_dataset(results.values())
    assert not summary.critical_columns
    assert not summary.drifted_columns
    assert summary.level is Level.NONE
    assert all(r.psi < 0.02 for r in results.values())


def test_drifted_columns_flagged_and_only_those(profile: ReferenceProfile) -> None:
    current = make_frame(21, shift=0.6, cat_weights=[0.1, 0.2, 0.3, 0.4])
    summary = summarize_dataset(dataset_drift_numpy(profile, current).values())
    assert set(summary.drifted_columns) == {"x_normal", "plan"}
    assert set(summary.critical_columns) == {"x_normal", "plan"}
    assert summary.columns[0].severity is Severity.CRITICAL  # sorted most severe first


def test_null_spike_is_caught_even_when_values_do_not_move(profile: ReferenceProfile) -> None:
    current = make_frame(22)
    current.loc[current.index[:3000], "score"] = np.nan  # 15 % nulls, remaining values same distribution
    result = column_drift_numpy(profile["score"], current["score"])
    assert result.psi < 0.1
    assert result.null_rate_change == pytest.approx(0.15)
    assessed = assess_column(result)
    assert assessed.severity is Severity.CRITICAL
    assert any(r.startswith("null_rate_change") for r in assessed.reasons)


def test_out_of_range_values_are_detected(profile: ReferenceProfile) -> None:
    current = make_frame(23)
    current.loc[current.index[:400], "score"] = 1.5  # beyond the reference max (beta < 1): 2 %
    result = column_drift_numpy(profile["score"], current["score"])
    assert result.out_of_range_rate == pytest.approx(0.02, abs=5e-4)  # plus the odd value beyond the max
    assert 400 <= result.current_out_of_range_count < 410
    assert assess_column(result).severity is Severity.WARN


def test_unseen_categories_land_in_other_and_are_flagged(profile: ReferenceProfile) -> None:
    current = make_frame(24)
    current.loc[current.index[:2000], "plan"] = "enterprise"  # never seen in the reference
    result = column_drift_numpy(profile["plan"], current["plan"])
    assert result.current_counts[-1] == 2000  # __other__
    assert result.chi2_p_value < 1e-6
    assert assess_column(result).severity is Severity.CRITICAL


# --- decisions -----------------------------------------------------------------------------------------------


def test_action_matrix_is_complete_and_monotonic() -> None:
    order = [Level.NONE, Level.MODERATE, Level.SIGNIFICANT]
    rank = list(Action)
    assert set(ACTION_MATRIX) == {(d, p) for d in order for p in [*order, Level.PENDING]}
    for i, d in enumerate(order):
        for j, p in enumerate(order):
            if i + 1 < 3:
                assert rank.index(ACTION_MATRIX[(order[i + 1], p)]) >= rank.index(ACTION_MATRIX[(d, p)])
            if j + 1 < 3:
                assert rank.index(ACTION_MATRIX[(d, order[j + 1])]) >= rank.index(ACTION_MATRIX[(d, p)])


@pytest.mark.parametrize(
    ("data", "performance", "action"),
    [
        ("none", "none", Action.NO_ACTION),
        ("moderate", "none", Action.MONITOR),
        ("significant", "none", Action.INVESTIGATE),
        ("none", "moderate", Action.INVESTIGATE),
        ("moderate", "moderate", Action.RETRAIN),
        ("significant", "moderate", Action.RETRAIN),
        ("none", "significant", Action.RETRAIN),
        ("moderate", "significant", Action.RETRAIN),
        ("significant", "significant", Action.RETRAIN_URGENT),
        ("none", "pending", Action.NO_ACTION),
        ("moderate", "pending", Action.MONITOR),
        ("significant", "pending", Action.RETRAIN),
    ],
)
def test_action_matrix_cells(data: str, performance: str, action: Action) -> None:
    assert recommend_action(Level(data), Level(performance)) is action


def test_performance_drop_levels() -> None:
    assert performance_drop_level(0.80, 0.79) is Level.NONE
    assert performance_drop_level(0.80, 0.77) is Level.MODERATE
    assert performance_drop_level(0.80, 0.74) is Level.SIGNIFICANT
    assert performance_drop_level(0.80, None) is Level.PENDING  # labels not there yet
    assert performance_drop_level(None, 0.80) is Level.PENDING
    loss = PerformanceThresholds(
        moderate_margin=0.05, significant_margin=0.2, higher_is_better=False, relative=True
    )
    assert performance_drop_level(0.50, 0.52, loss) is Level.NONE
    assert performance_drop_level(0.50, 0.55, loss) is Level.MODERATE
    assert performance_drop_level(0.50, 0.40, loss) is Level.NONE  # an improvement
    assert performance_drop_level(0.50, 0.61, loss) is Level.SIGNIFICANT


def test_dataset_level_rules() -> None:
    t = DriftThresholds()
    assert dataset_level(25, 0, 0, t) is Level.NONE
    assert dataset_level(25, 1, 0, t) is Level.NONE  # one warning in 25 columns
    assert dataset_level(25, 1, 1, t) is Level.MODERATE  # any critical column
    assert dataset_level(25, 3, 0, t) is Level.MODERATE  # 12 % drifted
    assert dataset_level(25, 3, 3, t) is Level.SIGNIFICANT
    assert dataset_level(10, 3, 0, t) is Level.SIGNIFICANT  # 30 % drifted
    assert dataset_level(25, 1, 1, t, critical_key_column=True) is Level.SIGNIFICANT


def test_thresholds_reject_warn_above_critical() -> None:
    with pytest.raises(ValueError, match="psi"):
        DriftThresholds(psi_warn=0.3, psi_critical=0.2)


def test_report_markdown_sorted_by_severity_and_histogram_png(profile: ReferenceProfile) -> None:
    current = make_frame(25, shift=0.3)
    results = dataset_drift_numpy(profile, current)
    report = build_report(summarize_dataset(results.values()), 0.81, 0.74, metric_name="auc")
    assert report.performance_level is Level.SIGNIFICANT and report.action in {
        Action.RETRAIN,
        Action.RETRAIN_URGENT,
    }
    text = render_markdown(report)
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| column")]
    severities = [row.split("|")[3].strip() for row in rows]
    ranks = [Severity(s).rank for s in severities]
    assert ranks == sorted(ranks, reverse=True) and len(rows) == len(profile.columns)
    assert rows[0].startswith("| x_normal |")
    png = histogram_png(profile["x_normal"], results["x_normal"].current_counts)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert histogram_png(
        profile["plan"], ds.current_counts_numpy(profile["plan"], current["plan"])
    ).startswith(b"\x89PNG")
    json.dumps(report.to_dict())  # serialisable for logging


def test_pending_labels_leave_the_action_to_data_drift(profile: ReferenceProfile) -> None:
    results = dataset_drift_numpy(profile, make_frame(25, shift=1.0))
    summary = summarize_dataset(results.values(), key_columns=["x_normal"])
    assert summary.level is Level.SIGNIFICANT
    pending = build_report(summary, 0.81, None, metric_name="auc")
    assert pending.performance_level is Level.PENDING and pending.action is Action.RETRAIN
    assert "labels have not arrived" in render_markdown(pending)
    # Once labels show the model held up, the same drift is only investigated.
    held_up = build_report(summary, 0.81, 0.80, metric_name="auc")
    assert held_up.performance_level is Level.NONE and held_up.action is Action.INVESTIGATE
