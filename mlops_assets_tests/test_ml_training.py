"""Temporal split, categorical encoding, Optuna+LightGBM tuning (determinism, pruning) and the model wrapper."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from mlops_assets.ml.contract import ContractError, FeatureSetContract
from mlops_assets.ml.metrics import choose_threshold
from mlops_assets.ml.splits import temporal_split
from mlops_assets.ml.training import (
    CategoryEncoder,
    ChurnModel,
    TrainingResult,
    TrialResult,
    predict_proba,
    prepare_matrix,
    tune_and_train,
)

NUMERICAL = [
    "tenure_days",
    "minutes_7d",
    "minutes_trend",
    "payment_failures_30d",
    "tickets_30d",
    "monthly_fee",
]
CONTRACT = FeatureSetContract.from_dict(
    {
        "name": "churn_features",
        "version": "1",
        "entity_key": "customer_id",
        "as_of": "as_of_date",
        "label": "churned_30d",
        "features": [{"name": n, "kind": "numerical"} for n in NUMERICAL]
        + [{"name": "plan", "kind": "categorical"}, {"name": "device", "kind": "categorical"}],
        "slices": ["region"],
        "protected_attributes": ["age_band"],
    }
)


def make_frame(n: int = 3000, seed: int = 0, *, informative: bool = True, days: int = 60) -> pd.DataFrame:
    """Customer snapshots over ``days`` as-of dates; churn driven by usage trend, payment failures, tenure,
    plan and tickets (or a constant rate when not informative)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "as_of_date": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, days, n), unit="D"),
            "tenure_days": rng.integers(1, 1500, n),
            "minutes_7d": rng.gamma(2.0, 60.0, n),
            "minutes_trend": rng.normal(0, 1, n),
            "payment_failures_30d": rng.poisson(0.3, n),
            "tickets_30d": rng.poisson(0.5, n),
            "monthly_fee": rng.choice([9.99, 15.99, 22.99], n),
            "plan": rng.choice(["basic", "standard", "premium"], n),
            "device": rng.choice(["mobile", "desktop", "tv", "tablet"], n),
            "region": rng.choice(["NA", "EU", "APAC", "LATAM"], n),
            "age_band": rng.choice(["18-29", "30-49", "50+"], n),
        }
    )
    logit = (
        -1.2
        - 1.3 * df.minutes_trend
        + 0.9 * df.payment_failures_30d
        - 0.0012 * df.tenure_days
        + 0.6 * (df.plan == "basic")
        + 0.3 * df.tickets_30d
    )
    p = 1 / (1 + np.exp(-logit)) if informative else np.full(n, 0.3)
    df["churned_30d"] = (rng.random(n) < p).astype(int)
    return df


@pytest.fixture(scope="module")
def split():
    return temporal_split(make_frame(), "as_of_date")


@pytest.fixture(scope="module")
def trained(split) -> tuple[TrainingResult, list[TrialResult]]:
    seen: list[TrialResult] = []
    result = tune_and_train(split.train, split.valid, CONTRACT, n_trials=12, seed=7, on_trial=seen.append)
    return result, seen


# --- split ---------------------------------------------------------------------------------------------------
def test_temporal_split_orders_blocks_without_overlap() -> None:
    df = make_frame(n=1200, seed=1)
    s = temporal_split(df, "as_of_date", valid_fraction=0.2, test_fraction=0.1)
    train_d, valid_d, test_d = (set(part["as_of_date"]) for part in (s.train, s.valid, s.test))
    assert not (train_d & valid_d) and not (valid_d & test_d) and not (train_d & test_d)
    assert max(train_d) < min(valid_d) and max(valid_d) < min(test_d)
    assert len(s.train) + len(s.valid) + len(s.test) == len(df)
    assert (len(valid_d), len(test_d)) == (12, 6)  # 60 distinct dates * fractions
    assert s.boundaries["train_end"] == max(train_d).date().isoformat()
    assert s.boundaries["test_start"] == min(test_d).date().isoformat()


def test_temporal_split_embargo_and_errors() -> None:
    df = make_frame(n=1200, seed=1)
    s = temporal_split(df, "as_of_date", embargo_days=5)
    gap_train = pd.Timestamp(s.boundaries["valid_start"]) - pd.Timestamp(s.boundaries["train_end"])
    gap_valid = pd.Timestamp(s.boundaries["test_start"]) - pd.Timestamp(s.boundaries["valid_end"])
    assert gap_train.days > 5 and gap_valid.days > 5
    assert len(s.train) + len(s.valid) + len(s.test) < len(df)
    two_dates = df.assign(as_of_date=np.where(df.index % 2, "2026-01-01", "2026-01-02"))
    with pytest.raises(ValueError, match="at least 3 distinct"):
        temporal_split(two_dates, "as_of_date")


# --- encoding ------------------------------------------------------------------------------------------------
def test_category_encoder_fixes_categories_and_maps_unseen_to_nan() -> None:
    train = pd.DataFrame({"plan": ["basic", "premium", "basic", None], "code": [3, 1, 3, 2]})
    enc = CategoryEncoder.fit(train, ["plan", "code"])
    assert enc.categories == {"plan": ["basic", "premium"], "code": ["1", "2", "3"]}
    serving = pd.DataFrame({"plan": ["premium", "enterprise"], "code": [2.0, np.nan]})
    out = enc.transform(serving)
    assert list(out["plan"].cat.categories) == ["basic", "premium"]
    assert out["plan"].tolist()[0] == "premium" and pd.isna(out["plan"].tolist()[1])
    assert out["code"].cat.codes.tolist() == [1, -1]  # int 2 and float 2.0 are the same category
    assert CategoryEncoder.from_dict(json.loads(json.dumps(enc.to_dict()))) == enc


def test_prepare_matrix_order_and_dtypes(split) -> None:
    enc = CategoryEncoder.fit(split.train, CONTRACT.categorical)
    x = prepare_matrix(split.valid, CONTRACT, enc)
    assert list(x.columns) == CONTRACT.feature_names
    assert all(x[c].dtype == "float64" for c in CONTRACT.numerical)
    assert all(isinstance(x[c].dtype, pd.CategoricalDtype) for c in CONTRACT.categorical)
    with pytest.raises(ContractError, match="feature 'device' is missing"):
        prepare_matrix(split.valid.drop(columns=["device"]), CONTRACT, enc)


# --- tuning --------------------------------------------------------------------------------------------------
def test_callback_sees_every_trial_and_pruning_prunes(trained, split) -> None:
    result, seen = trained
    assert [t.number for t in seen] == list(range(12))
    assert seen == result.trials
    states = {t.state for t in seen}
    assert states <= {"COMPLETE", "PRUNED"}
    pruned = [t for t in seen if t.state == "PRUNED"]
    assert pruned, "the median pruner should stop at least one of 12 trials"
    # Every trial reported validation AUC per boosting round through the LightGBM callback.
    assert all(t.intermediate_values for t in seen)
    assert all(t.value is None and t.best_iteration is None for t in pruned)
    complete = [t for t in seen if t.state == "COMPLETE"]
    assert result.best_value == max(t.value for t in complete)
    best = max(complete, key=lambda t: t.value)
    assert best.params == result.best_params
    assert {"num_leaves", "learning_rate", "min_child_samples", "lambda_l1"} <= set(best.params)
    assert result.params["deterministic"] and result.params["num_threads"] == 1
    assert (result.n_train, result.n_valid) == (len(split.train), len(split.valid))
    summary = result.summary()
    assert summary["n_pruned"] == len(pruned) and summary["n_complete"] + len(pruned) == 12
    json.dumps(summary)


def test_training_is_deterministic_for_a_seed(split) -> None:
    runs = [tune_and_train(split.train, split.valid, CONTRACT, n_trials=6, seed=3) for _ in range(2)]
    assert runs[0].best_value == runs[1].best_value
    assert runs[0].best_params == runs[1].best_params
    assert [t.state for t in runs[0].trials] == [t.state for t in runs[1].trials]
    np.testing.assert_array_equal(predict_proba(runs[0], split.test), predict_proba(runs[1], split.test))


def test_model_beats_baseline_on_informative_label(trained, split) -> None:
    result, _ = trained
    y = split.test["churned_30d"]
    auc = roc_auc_score(y, predict_proba(result, split.test))
    assert auc > 0.7, auc  # a constant (prevalence) predictor scores 0.5
    # The refit reproduces the best trial on the validation rows.
    assert roc_auc_score(split.valid["churned_30d"], predict_proba(result, split.valid)) == pytest.approx(
        result.best_value, abs=1e-9
    )


def test_model_is_near_chance_on_random_label() -> None:
    s = temporal_split(make_frame(seed=11, informative=False), "as_of_date")
    result = tune_and_train(s.train, s.valid, CONTRACT, n_trials=4, seed=1)
    auc = roc_auc_score(s.test["churned_30d"], predict_proba(result, s.test))
    assert abs(auc - 0.5) < 0.1, auc


def test_training_rejects_non_binary_labels(split) -> None:
    bad = split.train.assign(churned_30d=split.train["churned_30d"] * 2)
    with pytest.raises(ContractError, match="must be binary 0/1"):
        tune_and_train(bad, split.valid, CONTRACT, n_trials=1)


# --- model wrapper and threshold -----------------------------------------------------------------------------
def test_churn_model_round_trips(trained, split) -> None:
    result, _ = trained
    model = result.to_model(threshold=0.3, metadata={"contract": CONTRACT.fingerprint()})
    expected = predict_proba(result, split.test)
    np.testing.assert_allclose(model.predict_proba(split.test), expected, rtol=0, atol=1e-12)
    restored = ChurnModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(predict_proba(restored, split.test), expected, rtol=0, atol=1e-12)
    unpickled = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(unpickled.predict_proba(split.test), expected, rtol=0, atol=1e-12)
    assert restored.metadata["contract"] == CONTRACT.fingerprint()
    assert restored.metadata["contract_fingerprint"] == CONTRACT.fingerprint()
    assert restored.metadata["best_params"] == result.best_params
    np.testing.assert_array_equal(model.predict(split.test), (expected >= 0.3).astype(int))
    # Serving frames may arrive with extra columns in another order; only the contract features are read.
    shuffled = split.test[list(reversed(split.test.columns))]
    np.testing.assert_allclose(model.predict_proba(shuffled), expected, rtol=0, atol=1e-12)


def test_choose_threshold_maximises_f1() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    scores = np.clip(0.35 * y + rng.normal(0.3, 0.2, 400), 0, 1).round(2)  # rounded: many ties
    t = choose_threshold(y, scores)
    best = max(f1_score(y, scores >= c) for c in np.unique(scores))
    assert f1_score(y, scores >= t) == pytest.approx(best)
    assert t in set(scores.tolist())
    with pytest.raises(ValueError, match="positive"):
        choose_threshold(np.zeros(4), np.linspace(0, 1, 4))
