"""Label-free performance estimation (CBPE): the calibration map, the estimate's interval, and on the
synthetic source's scenarios -- it tracks the realized ROC-AUC under covariate shift and, as documented,
does not see a pure concept shift."""

from __future__ import annotations

from datetime import date, timedelta

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.ml.calibration import CalibrationMap, fit_calibration
from mlops_assets.ml.diagnostics import calibration as reliability
from mlops_assets.monitoring.cbpe import (
    PerformanceEstimate,
    auc_of_class_histograms,
    estimate_from_histogram,
    estimate_roc_auc,
)
from mlops_assets.monitoring.render import render_markdown
from mlops_assets.monitoring.severity import Action, Level, build_report, recommend_action, summarize_dataset
from mlops_assets.synthetic.source import SourceConfig, SyntheticSource

BINS = 1000


def _histogram(scores: np.ndarray) -> np.ndarray:
    return np.bincount(np.minimum((scores * BINS).astype(int), BINS - 1), minlength=BINS)


def test_the_interval_holds_the_realized_auc_in_95_percent_of_label_draws_when_scores_are_calibrated():
    rng = np.random.default_rng(1)
    inside, trials = 0, 300
    for _ in range(trials):
        p = 1 / (1 + np.exp(-(2 * rng.normal(size=300) - 2)))  # calibrated by construction
        y = rng.random(300) < p
        estimate = estimate_from_histogram(_histogram(p), lambda s: s)
        inside += estimate.contains(roc_auc_score(y, p))
    assert 0.92 <= inside / trials <= 0.98, inside / trials
    assert estimate.n == 300 and 0.1 < estimate.expected_positive_rate < 0.35
    assert PerformanceEstimate.from_dict(estimate.to_dict()) == estimate


def test_the_class_histogram_auc_is_the_rank_auc_and_a_one_class_day_has_none():
    rng = np.random.default_rng(2)
    scores, y = rng.random(500), rng.random(500) < 0.3
    aucs = auc_of_class_histograms(_histogram(scores[y]), _histogram(scores[~y]))
    assert aucs[0] == pytest.approx(roc_auc_score(y, scores), abs=2e-3)  # 1000 bins: ties only within a bin
    assert np.isnan(auc_of_class_histograms(_histogram(scores), np.zeros(BINS))[0])
    assert estimate_roc_auc(np.zeros(3), np.zeros(3), np.zeros(3)) is None


def test_platt_calibration_repairs_miscalibrated_scores_without_reordering_them():
    rng = np.random.default_rng(3)
    p = rng.beta(2, 5, 4000)
    y = (rng.random(4000) < p).astype(int)
    squashed = p**2  # overconfident low, the way boosted trees can be
    fitted = fit_calibration(y, squashed)
    assert fitted.ece_after < fitted.ece_before / 2
    assert reliability(y, fitted.apply(squashed)).ece < 0.03
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(fitted.apply(grid)) >= 0)  # monotone: ROC-AUC untouched
    assert CalibrationMap.from_dict(fitted.to_dict()) == fitted
    with pytest.raises(ValueError, match="both classes"):
        fit_calibration(np.zeros(10), np.linspace(0, 1, 10))


def test_an_estimated_drop_escalates_a_pending_action_but_never_lowers_it():
    assert recommend_action(Level.NONE, Level.PENDING, Level.SIGNIFICANT) is Action.RETRAIN
    assert recommend_action(Level.MODERATE, Level.PENDING, Level.MODERATE) is Action.RETRAIN
    # no estimated drop on a significant shift: still a retrain, the estimate cannot see concept shift
    assert recommend_action(Level.SIGNIFICANT, Level.PENDING, Level.NONE) is Action.RETRAIN
    # labels in: the measured level decides, the estimate is shown beside it
    assert recommend_action(Level.SIGNIFICANT, Level.NONE, Level.SIGNIFICANT) is Action.INVESTIGATE
    summary = summarize_dataset([])
    estimate = PerformanceEstimate("roc_auc", 0.70, 0.66, 0.74, 500, 0.2, 0.15, 0.02)
    report = build_report(summary, 0.80, None, "roc_auc", estimate=estimate)
    assert (report.estimated_level, report.action) == (Level.SIGNIFICANT, Action.RETRAIN)
    assert report.figures()["estimated_roc_auc"] == 0.7 and report.to_dict()["estimate"]["lower"] == 0.66
    text = render_markdown(build_report(summary, 0.80, 0.71, "roc_auc", estimate=estimate))
    assert "**0.700** [0.660, 0.740]" in text and "realized 0.710, inside the interval" in text
    assert "blind to concept shift" in text


# --- on the synthetic source -----------------------------------------------------------------------------

START = date(2026, 1, 1)
DRIFT = START + timedelta(days=90)
FEATURES = [
    "minutes_7d",
    "sessions_7d",
    "minutes_28d",
    "sessions_28d",
    "tickets_28d",
    "active_days_28d",
    "trend",
]


def _snapshot(usage: pd.DataFrame, churn: dict, t: date) -> pd.DataFrame:
    """Each customer active at ``t``: usage features of the 7 and 28 days before, and the 30-day churn label."""
    last7 = usage[(usage.event_date > t - timedelta(days=7)) & (usage.event_date <= t)].groupby("customer_id")
    last28 = usage[(usage.event_date > t - timedelta(days=28)) & (usage.event_date <= t)].groupby(
        "customer_id"
    )
    snap = pd.DataFrame(
        {
            "minutes_7d": last7.minutes_used.sum(),
            "sessions_7d": last7.sessions.sum(),
            "minutes_28d": last28.minutes_used.sum(),
            "sessions_28d": last28.sessions.sum(),
            "tickets_28d": last28.support_tickets.sum(),
            "active_days_28d": last28.size(),
        }
    ).fillna(0)
    snap = snap[[churn.get(c, date.max) > t for c in snap.index]]
    snap["trend"] = snap.minutes_7d / (snap.minutes_28d / 4 + 1)
    snap["label"] = [int(churn.get(c, date.max) <= t + timedelta(days=30)) for c in snap.index]
    return snap


def _estimate_and_realized(scenario: str, seed: int) -> tuple[PerformanceEstimate, float]:
    """Train before the drift, calibrate on the next weeks (still before it), score day 20 of the scenario."""
    sim = SyntheticSource(
        SourceConfig(seed=seed, initial_customers=3000, scenario=scenario, drift_start=DRIFT)
    ).simulate(DRIFT + timedelta(days=50))
    churn = dict(zip(sim.churn.customer_id, sim.churn.churn_date, strict=True))
    train = pd.concat(
        [_snapshot(sim.usage, churn, DRIFT - timedelta(days=d)) for d in (80, 73, 66, 59, 52, 45)]
    )
    valid = pd.concat([_snapshot(sim.usage, churn, DRIFT - timedelta(days=d)) for d in (38, 31)])
    params = {"objective": "binary", "verbose": -1, "num_leaves": 15, "learning_rate": 0.05,
              "min_data_in_leaf": 40, "seed": 0, "num_threads": 1, "deterministic": True}  # fmt: skip
    model = lgb.train(params, lgb.Dataset(train[FEATURES], train.label), 200)
    calibrated = fit_calibration(valid.label.to_numpy(), model.predict(valid[FEATURES]))
    day = _snapshot(sim.usage, churn, DRIFT + timedelta(days=20))
    scores = model.predict(day[FEATURES])
    return estimate_from_histogram(_histogram(scores), calibrated.apply), roc_auc_score(day.label, scores)


def test_on_covariate_shift_the_estimate_tracks_the_realized_auc_within_its_interval():
    for seed in (1, 2, 3):
        before, _ = _estimate_and_realized("none", seed)
        shifted, realized = _estimate_and_realized("sudden_covariate_shift", seed)
        assert shifted.contains(realized), (seed, shifted, realized)
        assert shifted.estimate < before.estimate - 0.02, (
            seed,
            before.estimate,
            shifted.estimate,
        )  # it moved


def test_a_pure_concept_shift_is_invisible_to_the_estimate_a_known_limit():
    before, _ = _estimate_and_realized("none", 1)
    shifted, realized = _estimate_and_realized("concept_shift", 1)
    assert realized < shifted.lower - 0.2  # the labels show the model failing...
    assert abs(shifted.estimate - before.estimate) < 0.05  # ...while the scores alone look as before
