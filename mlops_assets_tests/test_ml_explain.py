"""Per-feature contributions (the model's own, through ``explain.Explainable``), the top reasons per row, and the
report's explanation and error-analysis sections, on a real LightGBM model trained on a synthetic frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.evaluation import MISSING_GROUP, SECTIONS, evaluate
from mlops_assets.ml.explain import (
    Contributions,
    Explainable,
    dependence,
    global_importance,
    reason_columns,
    top_reasons,
)
from mlops_assets.ml.splits import temporal_split
from mlops_assets.ml.training import ChurnModel, tune_and_train
from mlops_assets_tests.test_ml_training import CONTRACT, make_frame

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def model_and_test() -> tuple[ChurnModel, pd.DataFrame]:
    split = temporal_split(make_frame(n=2000, seed=3), "as_of_date")
    result = tune_and_train(split.train, split.valid, CONTRACT, n_trials=2, seed=5)
    return result.to_model(0.3), split.test


def test_contributions_sum_to_the_margin_for_every_row(model_and_test) -> None:
    model, test = model_and_test
    assert isinstance(model, Explainable)
    c = model.contributions(test)
    assert c.values.shape == (len(test), len(CONTRACT.feature_names))
    assert np.allclose(c.margin(), model.margin(test))
    # ... and the margin is what the probabilities are the sigmoid of.
    assert np.allclose(1 / (1 + np.exp(-model.margin(test))), model.predict_proba(test))
    # Rows with missing values and unseen categories are explained too.
    odd = test.head(20).copy()
    odd["minutes_trend"] = np.nan
    odd["plan"] = "never-seen"
    assert np.allclose(model.contributions(odd).margin(), model.margin(odd))


def test_top_reasons_are_the_three_largest_absolute_contributions() -> None:
    values = np.array([[0.1, -0.9, 0.3, 0.05], [0.0, 0.2, -0.2, 0.5], [1.0, 1.0, -1.0, 0.0]])
    c = Contributions(("a", "b", "c", "d"), values, np.zeros(3))
    names, signed = top_reasons(c)
    assert names.tolist() == [["b", "c", "a"], ["d", "b", "c"], ["a", "b", "c"]]  # ties: feature order
    assert signed.tolist() == [[-0.9, 0.3, 0.1], [0.5, 0.2, -0.2], [1.0, 1.0, -1.0]]
    columns = reason_columns(c)
    assert list(columns) == [
        "reason_1",
        "reason_1_contribution",
        "reason_2",
        "reason_2_contribution",
        "reason_3",
        "reason_3_contribution",
    ]
    # Fewer features than reasons: the missing ones are null, not invented.
    short_names, short_values = top_reasons(Contributions(("a",), np.array([[0.4]]), np.zeros(1)))
    assert short_names.tolist() == [["a", None, None]] and np.isnan(short_values[0, 1:]).all()
    with pytest.raises(ValueError, match="do not match"):
        Contributions(("a",), values, np.zeros(3))


def test_top_reasons_of_a_real_model_match_its_contributions(model_and_test) -> None:
    model, test = model_and_test
    c = model.contributions(test)
    names, signed = top_reasons(c)
    magnitudes = np.sort(np.abs(c.values), axis=1)[:, ::-1][:, :3]
    assert np.allclose(np.abs(signed), magnitudes)
    for i in range(0, len(test), 97):
        for name, value in zip(names[i], signed[i], strict=True):
            assert c.values[i, c.feature_names.index(name)] == value


def test_global_importance_ranks_the_features_that_drive_the_label(model_and_test) -> None:
    model, test = model_and_test
    importance = global_importance(model.contributions(test))
    assert [i.mean_abs for i in importance] == sorted((i.mean_abs for i in importance), reverse=True)
    # The synthetic label is driven by minutes_trend and payment failures; the device is pure noise.
    top = [i.feature for i in importance[:3]]
    assert "minutes_trend" in top and "payment_failures_30d" in top
    assert importance[-1].mean_abs < importance[0].mean_abs / 5
    assert next(i for i in importance if i.feature == "minutes_trend").mean != 0


def test_report_has_importance_dependence_and_error_analysis(model_and_test) -> None:
    model, test = model_and_test
    report = evaluate(
        model.predict_proba,
        test,
        CONTRACT,
        threshold=model.threshold,
        n_bootstrap=20,
        latency_calls=0,
        top_features=[],
        explain=model.contributions,
    )
    assert {"Explanations", "Error analysis"} <= set(SECTIONS)
    md = report.to_markdown()
    assert "## Explanations" in md and "| Feature | Mean abs. contribution | Mean contribution |" in md
    assert f"| {report.importance[0].feature} | " in md
    figures = report.figures()
    assert {"importance.png", "dependence.png"} <= set(figures)
    assert all(figures[f].startswith(PNG_MAGIC) for f in ("importance.png", "dependence.png"))
    assert [d.feature for d in report.dependence] == [i.feature for i in report.importance[:3]]

    # Error analysis: the 50 largest log losses, worst first, each with the model's reasons.
    assert "## Error analysis" in md and "worst-predicted test rows (largest log loss)" in md
    assert len(report.worst_rows) == 50
    y = test[CONTRACT.label].to_numpy()
    p = np.clip(model.predict_proba(test), 1e-15, 1 - 1e-15)
    losses = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert [w.log_loss for w in report.worst_rows] == pytest.approx(np.sort(losses)[::-1][:50])
    assert all(len(w.reasons) == 3 for w in report.worst_rows)
    worst = report.worst_rows[0]
    assert str(test[CONTRACT.entity_key].iloc[int(np.argmax(losses))]) == worst.entity
    assert f"| {worst.entity} | {worst.as_of} |" in md
    # The slices (the contract's region) by calibration error, largest first.
    assert "Slices with the largest calibration error" in md
    eces = [s.ece for s in report.slice_calibration]
    assert eces == sorted(eces, reverse=True) and {s.column for s in report.slice_calibration} == {"region"}
    assert all(s.n >= 30 for s in report.slice_calibration)
    # The report stays strict JSON, with the new parts and without the plot points.
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert d["importance"][0]["feature"] == report.importance[0].feature
    assert len(d["worst_rows"]) == 50 and "dependence" not in d


def test_a_categorical_dependence_plot_shows_its_levels(model_and_test) -> None:
    model, test = model_and_test
    frame = test.copy()
    frame.loc[frame.index[:5], "plan"] = None
    (points,) = dependence(model.contributions(frame), frame, ["plan"], set(CONTRACT.categorical))
    assert points.categorical and set(points.values) == {"basic", "standard", "premium", MISSING_GROUP}
    assert len(points.contributions) == len(frame)
    report = evaluate(
        model.predict_proba,
        frame,
        CONTRACT,
        threshold=model.threshold,
        n_bootstrap=5,
        latency_calls=0,
        top_features=[],
        explain=model.contributions,
        n_dependence=len(CONTRACT.feature_names),  # every feature, the categorical ones too
    )
    assert {d.feature for d in report.dependence} == set(CONTRACT.feature_names)
    assert report.figures()["dependence.png"].startswith(PNG_MAGIC)
