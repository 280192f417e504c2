"""Evaluation report: metric correctness, bootstrap CIs, calibration, fairness, robustness, paired comparison,
and the Markdown / PNG / JSON renderings. Models are plain functions of the frame, so no training is needed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.evaluation import (
    METRICS,
    SECTIONS,
    average_precision,
    bootstrap_ci,
    calibration,
    compute_metrics,
    evaluate,
    group_fairness,
    model_card,
    paired_bootstrap,
    roc_auc,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONTRACT = FeatureSetContract.from_dict(
    {
        "name": "churn_features",
        "version": "3",
        "entity_key": "customer_id",
        "as_of": "as_of_date",
        "label": "churned_30d",
        "features": [
            {"name": "x_signal", "kind": "numerical", "description": "drives churn"},
            {"name": "x_noise", "kind": "numerical", "description": "unrelated to churn"},
            {"name": "plan", "kind": "categorical"},
        ],
        "slices": ["region"],
        "protected_attributes": ["age_band"],
    }
)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def true_probability(df: pd.DataFrame) -> np.ndarray:
    """The data-generating churn probability: a perfectly calibrated model. Missing values count as 0."""
    x = pd.to_numeric(df["x_signal"]).fillna(0).to_numpy()
    return _sigmoid(-1.0 + 2.0 * x + 0.5 * (df["plan"] == "basic").to_numpy())


def weaker_model(df: pd.DataFrame) -> np.ndarray:
    """Sees the signal through heavy, fixed noise: clearly worse ranking than ``true_probability``."""
    noise = np.random.default_rng(123).normal(0, 2.0, len(df))
    return _sigmoid(-1.0 + 2.0 * (df["x_signal"].to_numpy() + noise) * 0.5)


def make_eval_frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "as_of_date": pd.Timestamp("2026-02-20"),
            "x_signal": rng.normal(0, 1, n),
            "x_noise": rng.normal(0, 1, n),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "region": rng.choice(["NA", "EU", "APAC"], n),
            "age_band": rng.choice(["18-29", "30-49", "50+"], n),
        }
    )
    df["churned_30d"] = (rng.random(n) < true_probability(df)).astype(int)
    return df


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return make_eval_frame()


@pytest.fixture(scope="module")
def report_with_champion(frame):
    return evaluate(
        true_probability,
        frame,
        CONTRACT,
        threshold=0.4,
        champion_predict=weaker_model,
        top_features=["x_signal", "plan"],
        n_bootstrap=100,
        latency_calls=20,
        baseline_prevalence=0.3,
    )


# --- metrics -------------------------------------------------------------------------------------------------
def test_metrics_match_scikit_learn_including_ties() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    s = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1).round(1)  # heavy ties
    m = compute_metrics(y, s, threshold=0.5)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, s))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, s))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, s))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, s))
    assert m["f1"] == pytest.approx(skm.f1_score(y, s >= 0.5))
    assert np.isnan(roc_auc(np.ones(5), np.linspace(0, 1, 5)))
    assert np.isnan(average_precision(np.zeros(5), np.linspace(0, 1, 5)))


def test_bootstrap_ci_contains_point_and_narrows_with_more_rows() -> None:
    widths = {}
    for n in (400, 4000):
        df = make_eval_frame(n, seed=1)
        cis = bootstrap_ci(df["churned_30d"], true_probability(df), 0.4, n_bootstrap=200, seed=0)
        assert set(cis) == set(METRICS)
        for m, ci in cis.items():
            assert ci.ci_low <= ci.value <= ci.ci_high, m
        widths[n] = cis["roc_auc"].ci_high - cis["roc_auc"].ci_low
    assert widths[4000] < 0.6 * widths[400], widths
    # Seeded: the same call gives the same interval.
    df = make_eval_frame(400, seed=1)
    a = bootstrap_ci(df["churned_30d"], true_probability(df), 0.4, n_bootstrap=50, seed=9)
    b = bootstrap_ci(df["churned_30d"], true_probability(df), 0.4, n_bootstrap=50, seed=9)
    assert a == b


# --- calibration ---------------------------------------------------------------------------------------------
def test_ece_small_for_calibrated_and_large_for_distorted_scores() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(20000)
    y = (rng.random(20000) < p).astype(float)
    calibrated = calibration(y, p)
    distorted = calibration(y, p**3)  # systematically under-predicts
    assert calibrated.ece < 0.02
    assert distorted.ece > 0.15
    assert sum(b.count for b in calibrated.bins) == 20000 and len(calibrated.bins) == 10


def test_ece_hand_computed() -> None:
    # Bin [0.1, 0.2): scores 0.1, 0.1 with labels 0, 1 -> gap |0.5 - 0.1| = 0.4, weight 2/4.
    # Bin [0.9, 1.0]: scores 0.9, 1.0 with labels 1, 1 -> gap |1 - 0.95| = 0.05, weight 2/4.
    cal = calibration([0, 1, 1, 1], [0.1, 0.1, 0.9, 1.0])
    assert cal.ece == pytest.approx(0.5 * 0.4 + 0.5 * 0.05)
    assert cal.max_calibration_error == pytest.approx(0.4)
    assert cal.bins[9].count == 2 and cal.bins[9].observed_rate == 1.0
    assert cal.bins[5].count == 0 and cal.bins[5].mean_predicted is None


# --- fairness ------------------------------------------------------------------------------------------------
def test_fairness_metrics_equal_hand_computed_values() -> None:
    groups = ["a"] * 4 + ["b"] * 4
    y_true = [1, 1, 0, 0, 1, 1, 0, 0]
    y_pred = [1, 1, 1, 0, 1, 0, 0, 0]
    # a: predicted-positive rate 3/4, TPR 2/2; b: rate 1/4, TPR 1/2.
    f = group_fairness(y_true, y_pred, groups, attribute="g")
    assert f.demographic_parity_ratio == pytest.approx((1 / 4) / (3 / 4))
    assert f.equal_opportunity_difference == pytest.approx(1.0 - 0.5)
    assert [(g.group, g.n, g.positives) for g in f.groups] == [("a", 4, 2), ("b", 4, 2)]
    # A third, tiny group is listed but excluded from the summary numbers.
    f2 = group_fairness([*y_true, 1], [*y_pred, 0], [*groups, "c"], min_group_size=2)
    assert f2.excluded_groups == ["c"]
    assert f2.demographic_parity_ratio == pytest.approx(1 / 3)
    assert group_fairness(y_true, y_pred, groups, min_group_size=2).equal_opportunity_difference == 0.5


# --- paired comparison ---------------------------------------------------------------------------------------
def test_paired_bootstrap_detects_better_model_not_identical(frame) -> None:
    y = frame["churned_30d"]
    better = paired_bootstrap(y, true_probability(frame), weaker_model(frame), 0.4, n_bootstrap=200)
    auc = better["roc_auc"]
    assert auc.diff > 0 and auc.ci_low > 0
    assert auc.p_value < 0.05
    same = paired_bootstrap(y, true_probability(frame), true_probability(frame), 0.4, n_bootstrap=200)
    assert same["roc_auc"].diff == 0 and same["roc_auc"].p_value > 0.5
    reverse = paired_bootstrap(y, weaker_model(frame), true_probability(frame), 0.4, n_bootstrap=200)
    assert reverse["roc_auc"].p_value > 0.95
    # Lower-is-better metrics: the better model has negative log-loss difference and a small p-value.
    assert better["log_loss"].diff < 0 and better["log_loss"].p_value < 0.05


# --- the full report -----------------------------------------------------------------------------------------
def test_report_numbers(report_with_champion, frame) -> None:
    r = report_with_champion
    y = frame["churned_30d"].to_numpy()
    assert r.metrics["roc_auc"].value == pytest.approx(skm.roc_auc_score(y, true_probability(frame)))
    assert r.baseline["roc_auc"] == 0.5
    assert r.baseline["brier"] == pytest.approx(np.mean((0.3 - y) ** 2))
    assert r.champion is not None and r.champion["roc_auc"].value < r.metrics["roc_auc"].value - 0.05
    assert r.paired is not None and r.paired["roc_auc"].p_value < 0.05
    assert r.calibration.ece < 0.05  # the true probability is calibrated
    assert sum(s.n for s in r.slices["region"]) == len(frame)
    assert {s.value for s in r.slices["region"]} == {"NA", "EU", "APAC"}
    fair = r.fairness["age_band"]
    pred = true_probability(frame) >= 0.4
    rates = frame.assign(pred=pred).groupby("age_band")["pred"].mean()
    assert fair.demographic_parity_ratio == pytest.approx(rates.min() / rates.max())
    lat = r.latency
    assert lat is not None and 0 < lat.single_row_p50_ms <= lat.single_row_p95_ms <= lat.single_row_p99_ms
    assert lat.batch_rows == len(frame) and lat.batch_rows_per_s > 0


def test_robustness_drop_only_when_noise_hits_an_informative_feature(frame) -> None:
    common = dict(
        threshold=0.4, n_bootstrap=10, latency_calls=0, noise_levels=(0.5, 1.0), missing_rates=(0.5,)
    )
    hit = evaluate(true_probability, frame, CONTRACT, top_features=["x_signal"], **common)
    miss = evaluate(true_probability, frame, CONTRACT, top_features=["x_noise"], **common)
    noisy = {(x.perturbation, x.level): x.drop for x in hit.robustness}
    assert noisy[("gaussian_noise", 1.0)] > 0.05
    assert noisy[("gaussian_noise", 1.0)] > noisy[("gaussian_noise", 0.5)] > 0
    assert noisy[("missing", 0.5)] > 0.05
    assert all(x.drop == pytest.approx(0.0, abs=1e-12) for x in miss.robustness)


def test_slice_with_one_class_has_no_auc(frame) -> None:
    df = frame.copy()
    df.loc[df["region"] == "EU", "churned_30d"] = 0
    r = evaluate(
        true_probability, df, CONTRACT, threshold=0.4, n_bootstrap=10, latency_calls=0, top_features=[]
    )
    eu = next(s for s in r.slices["region"] if s.value == "EU")
    assert eu.roc_auc is None and eu.positives == 0
    assert r.robustness == []


def test_markdown_figures_and_dict(report_with_champion) -> None:
    r = report_with_champion
    md = r.to_markdown()
    for section in SECTIONS:
        assert f"\n## {section}\n" in md
    assert "Champion" in md and "Paired bootstrap" in md
    figs = r.figures()
    assert set(figs) == {"roc_curve.png", "reliability.png"}
    for png in figs.values():
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert d["metrics"]["roc_auc"]["value"] == pytest.approx(r.metrics["roc_auc"].value)
    assert len(d["calibration"]["bins"]) == 10
    head = r.headline()
    json.dumps(head, allow_nan=False)
    assert head["roc_auc"] == r.metrics["roc_auc"].value
    assert head["min_demographic_parity_ratio"] == r.fairness["age_band"].demographic_parity_ratio
    assert head["roc_auc_diff_p_value"] == r.paired["roc_auc"].p_value
    assert r.champion_headline()["roc_auc"] == r.champion["roc_auc"].value
    assert r.baseline_headline()["roc_auc"] == 0.5


def test_model_card_sections(report_with_champion) -> None:
    card = model_card(
        report_with_champion,
        model_name="churn_lgbm",
        version="7",
        contract=CONTRACT,
        training={"n_trials": 20, "best_params": {"num_leaves": 31}},
        lineage={"mlflow_run_id": "run-123", "feature_table_version": 42},
    )
    for header in (
        "Intended use",
        "Data",
        "Features",
        "Training",
        "Metrics",
        "Slices",
        "Fairness",
        "Calibration",
        "Limitations",
        "Lineage",
    ):
        assert f"\n## {header}\n" in card
    assert "# Model card: churn_lgbm v7" in card
    assert CONTRACT.fingerprint() in card and "run-123" in card and "unrelated to churn" in card
    ci = report_with_champion.metrics["roc_auc"]
    assert f"{ci.value:.3f} [{ci.ci_low:.3f}, {ci.ci_high:.3f}]" in card


def test_evaluate_rejects_bad_scores(frame) -> None:
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        evaluate(lambda d: np.full(len(d), 1.5), frame, CONTRACT, threshold=0.5, latency_calls=0)
    with pytest.raises(ValueError, match="returned 3 scores"):
        evaluate(lambda d: np.zeros(3), frame, CONTRACT, threshold=0.5, latency_calls=0)
