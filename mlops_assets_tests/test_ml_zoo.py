"""The model zoo: the logistic and baseline families (scores, contributions that sum to the margin, JSON round
trip), every family read back by ``model_from_dict``, the selection policy, and the zoo trained and compared
on the same splits."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from mlops_assets.ml.families import (
    BASELINE,
    LIGHTGBM,
    LOGISTIC,
    ConstantChurnModel,
    LinearChurnModel,
    fit_constant,
    fit_logistic,
    model_from_dict,
)
from mlops_assets.ml.metrics import roc_auc
from mlops_assets.ml.scoring import score_partition
from mlops_assets.ml.splits import temporal_split
from mlops_assets.ml.training import ChurnModel
from mlops_assets.ml.zoo import Candidate, Selection, SelectionPolicy, select_challenger, train_zoo
from mlops_assets.ml.zoo_report import ZooComparison, compare_zoo
from mlops_assets_tests.test_ml_training import CONTRACT, make_frame


@pytest.fixture(scope="module")
def split():
    return temporal_split(make_frame(), "as_of_date")


@pytest.fixture(scope="module")
def zoo(split):
    return train_zoo(split.train, split.valid, CONTRACT, n_trials=6, timeout_s=None, seed=3, num_threads=1)


def _y(df):
    return df[CONTRACT.label].to_numpy()


def test_logistic_contributions_sum_to_its_margin_and_it_round_trips(split):
    model = fit_logistic(split.train, _y(split.train), CONTRACT, c=1.0)
    test = split.test.copy()
    test.loc[test.index[:5], "plan"] = "never-seen"  # unseen category: all its one-hot columns zero
    test.loc[test.index[5:10], "minutes_7d"] = np.nan  # missing numerical: the training median
    contributions = model.contributions(test)
    np.testing.assert_allclose(contributions.margin(), model.margin(test), atol=1e-9)
    np.testing.assert_allclose(model.predict_proba(test), 1 / (1 + np.exp(-model.margin(test))))
    assert contributions.values.shape == (len(test), len(CONTRACT.feature_names))
    assert np.all(np.isfinite(model.predict_proba(test)))
    # the trend drives churn in the data: its contribution is the largest in mean absolute size
    importance = np.abs(contributions.values).mean(axis=0)
    assert CONTRACT.feature_names[int(np.argmax(importance))] == "minutes_trend"
    back = model_from_dict(json.loads(json.dumps(model.to_dict())))
    assert isinstance(back, LinearChurnModel)
    np.testing.assert_allclose(back.predict_proba(test), model.predict_proba(test))
    assert roc_auc(_y(split.test), model.predict_proba(split.test)) > 0.7


def test_the_baseline_scores_the_training_rate_and_explains_nothing(split):
    model = fit_constant(_y(split.train), CONTRACT.feature_names)
    assert model.rate == pytest.approx(_y(split.train).mean(), abs=1e-3)
    contributions = model.contributions(split.test)
    assert not contributions.values.any()
    np.testing.assert_allclose(1 / (1 + np.exp(-contributions.margin())), model.predict_proba(split.test))
    assert isinstance(model_from_dict(model.to_dict()), ConstantChurnModel)


def test_every_family_is_read_back_and_a_pre_zoo_lightgbm_version_still_loads(zoo, split):
    candidates, _ = zoo
    lightgbm = next(c.model for c in candidates if c.family == LIGHTGBM)
    legacy = {k: v for k, v in lightgbm.to_dict().items() if k != "family"}  # registered before the zoo
    assert isinstance(model_from_dict(legacy), ChurnModel)
    for candidate in candidates:
        back = model_from_dict(json.loads(json.dumps(candidate.model.to_dict())))
        np.testing.assert_allclose(back.predict_proba(split.test), candidate.model.predict_proba(split.test))
        np.testing.assert_allclose(
            back.contributions(split.test).margin(), back.margin(split.test), atol=1e-6
        )
    with pytest.raises(ValueError, match="unknown model family 'svm'"):
        model_from_dict({"family": "svm"})


def _candidate(family: str, auc: float) -> Candidate:
    return Candidate(family, ConstantChurnModel(("x",), 0.3), auc, 1, 0.1)


def test_the_policy_prefers_the_simpler_model_within_the_margin_and_never_the_baseline():
    policy = SelectionPolicy(margin=0.01)
    close = select_challenger(
        [_candidate(BASELINE, 0.5), _candidate(LOGISTIC, 0.805), _candidate(LIGHTGBM, 0.81)], policy
    )
    assert close.chosen == LOGISTIC and "within the margin 0.01" in close.reason
    assert close.ranking[0] == (LIGHTGBM, 0.81)
    far = select_challenger(
        [_candidate(BASELINE, 0.5), _candidate(LOGISTIC, 0.78), _candidate(LIGHTGBM, 0.81)], policy
    )
    assert far.chosen == LIGHTGBM and "more than the margin" in far.reason
    # the baseline is the yardstick: even when it "wins" it is not a challenger
    assert (
        select_challenger([_candidate(BASELINE, 0.9), _candidate(LIGHTGBM, 0.6)], policy).chosen == LIGHTGBM
    )
    assert Selection.from_dict(json.loads(json.dumps(far.to_dict()))) == far
    with pytest.raises(ValueError, match="eligible"):
        select_challenger([_candidate(BASELINE, 0.5)], policy)
    with pytest.raises(ValueError, match="margin"):
        SelectionPolicy(margin=-0.1)


def test_the_zoo_trains_every_family_on_the_same_splits_and_compares_them_on_test(zoo, split):
    candidates, lightgbm_result = zoo
    by_family = {c.family: c for c in candidates}
    assert set(by_family) == {BASELINE, LOGISTIC, LIGHTGBM}
    assert by_family[BASELINE].valid_auc == pytest.approx(0.5)
    assert by_family[LOGISTIC].valid_auc > 0.7 and by_family[LIGHTGBM].valid_auc > 0.7
    assert by_family[LOGISTIC].n_trials == by_family[LIGHTGBM].n_trials == 6  # the same Optuna budget
    assert lightgbm_result.n_valid == len(split.valid)
    selection = select_challenger(candidates)
    models = {c.family: replace(c.model, threshold=0.3) for c in candidates}
    comparison = compare_zoo(
        models,
        {c.family: c.valid_auc for c in candidates},
        selection,
        split.test,
        _y(split.test),
        n_bootstrap=50,
    )
    assert [r.family for r in comparison.rows] == [BASELINE, LOGISTIC, LIGHTGBM]
    assert [r.chosen for r in comparison.rows].count(True) == 1
    logistic = comparison.rows[1]
    assert logistic.roc_auc.ci_low <= logistic.roc_auc.value <= logistic.roc_auc.ci_high
    assert logistic.size_bytes < comparison.rows[2].size_bytes  # a few coefficients vs a forest
    markdown = comparison.to_markdown()
    assert "| logistic |" in markdown and "Selection (on validation):" in markdown and "**yes**" in markdown
    assert ZooComparison.from_dict(json.loads(json.dumps(comparison.to_dict()))) == comparison


def test_batch_scoring_works_whichever_family_wins(zoo, split, spark):
    """ml/predictions' Spark path with the logistic and the baseline champion: scores as the model gives them,
    reasons from the family's own contributions (the baseline explains nothing, so it gives no reasons)."""
    candidates, _ = zoo
    rows = split.test.head(200).copy()
    rows["customer_id"] = rows["customer_id"].astype(str)
    rows["as_of_date"] = rows["as_of_date"].dt.date
    frame = spark.createDataFrame(rows[[CONTRACT.entity_key, CONTRACT.as_of, *CONTRACT.feature_names]])
    for family in (LOGISTIC, BASELINE):
        model = next(c.model for c in candidates if c.family == family)
        scored = (
            score_partition(frame, CONTRACT, "churn", model.to_dict(), "7", None, None)
            .toPandas()
            .set_index("entity")
        )
        expected = model.predict_proba(rows).round(12)
        np.testing.assert_allclose(scored.loc[rows["customer_id"], "score"].round(12), expected)
        if family == LOGISTIC:
            contributions = model.contributions(rows)
            top = np.asarray(CONTRACT.feature_names)[np.argmax(np.abs(contributions.values), axis=1)]
            assert list(scored.loc[rows["customer_id"], "reason_1"]) == list(top)
        else:
            assert scored["reason_1"].isna().all() and scored["reason_1_contribution"].isna().all()
