"""The online scorer (numpy, no pandas) against each family's batch ``predict_proba``: the same scores, including
missing values and categories the model never saw."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.families import fit_constant, fit_logistic, known_categories
from mlops_assets.ml.splits import temporal_split
from mlops_assets.ml.training import tune_and_train
from mlops_assets.serving.scorer import record_scorer
from mlops_assets_tests.test_ml_training import CONTRACT, make_frame


@pytest.fixture(scope="module")
def models_and_rows():
    split = temporal_split(make_frame(n=2000, seed=3), "as_of_date")
    y = split.train["churned_30d"].to_numpy()
    models = {
        "lightgbm": tune_and_train(split.train, split.valid, CONTRACT, n_trials=2, seed=5).to_model(0.3),
        "logistic": fit_logistic(split.train, y, CONTRACT, c=0.5),
        "baseline": fit_constant(y, CONTRACT.feature_names),
    }
    rows = make_frame(n=1200, seed=11)[CONTRACT.feature_names].astype(object)
    rows.iloc[::7, 0] = None  # missing numericals
    rows.iloc[::5, CONTRACT.feature_names.index("plan")] = None  # missing categories
    rows.iloc[::9, CONTRACT.feature_names.index("device")] = "never-seen"  # unseen categories
    return models, rows


@pytest.mark.parametrize("family", ["lightgbm", "logistic", "baseline"])
def test_online_scores_equal_the_batch_scores_of_every_family(models_and_rows, family) -> None:
    models, rows = models_and_rows
    model = models[family]
    records = [
        {k: (None if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]
    online = record_scorer(model).scores(records)
    batch = model.predict_proba(pd.DataFrame(rows))
    assert online.shape == (1200,)
    np.testing.assert_allclose(online, batch, rtol=0, atol=1e-12)
    assert len(np.unique(online.round(9))) > (1 if family != "baseline" else 0)


def test_the_service_accepts_the_categories_the_model_was_trained_on(models_and_rows) -> None:
    models, _ = models_and_rows
    assert known_categories(models["lightgbm"]) == {
        "plan": ["basic", "premium", "standard"],
        "device": ["desktop", "mobile", "tablet", "tv"],
    }
    assert known_categories(models["logistic"])["plan"] == ["basic", "premium", "standard"]
    assert known_categories(models["baseline"]) == {}
