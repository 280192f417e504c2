"""Evaluation report for a binary churn model: metrics with bootstrap CIs, calibration, slices, fairness,
robustness, latency and the baseline/champion comparison, computed by ``evaluate`` into one report object.
The pieces live by idea: ``metrics``, ``bootstrap``, ``diagnostics``, and ``render`` (Markdown, PNG, model card).

Why a single report object: the promotion gate, the MLflow logging in the asset layer and the model card all
read the same numbers, so they are computed once, here, and returned as plain values (``to_dict`` is
JSON-serialisable). The model is passed as a ``predict(df) -> scores`` callable, so a fresh training result,
a registered ``ChurnModel`` and the current champion are evaluated the same way on the same rows.

Metrics are implemented with numpy (AUC via ranks, average precision like scikit-learn's step-wise sum)
because the bootstrap recomputes them a few hundred times per model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.ml import render
from mlops_assets.ml.bootstrap import (
    MetricCI,
    PairedDiff,
    bootstrap_ci,
    metric_ci,
    paired_bootstrap,
    paired_diff,
    resample_metrics,
)
from mlops_assets.ml.contract import ContractError, FeatureSetContract
from mlops_assets.ml.diagnostics import (
    MISSING_GROUP,
    Calibration,
    FairnessResult,
    Latency,
    RobustnessRow,
    SliceRow,
    calibration,
    group_fairness,
    measure_latency,
    perturb,
    slice_metrics,
)
from mlops_assets.ml.error_analysis import SliceCalibration, WorstRow, slice_calibration, worst_rows
from mlops_assets.ml.explain import (
    Contributions,
    Dependence,
    FeatureImportance,
    dependence,
    global_importance,
)
from mlops_assets.ml.metrics import (
    HIGHER_IS_BETTER,
    METRIC_LABELS,
    METRICS,
    Predict,
    average_precision,
    compute_metrics,
    roc_auc,
)
from mlops_assets.ml.render import SECTIONS, model_card


# --- the report ----------------------------------------------------------------------------------------------
@dataclass
class EvaluationReport:
    contract_name: str
    contract_version: str
    contract_fingerprint: str
    label: str
    n_rows: int
    n_positives: int
    prevalence: float
    threshold: float
    n_bootstrap: int
    seed: int
    metrics: dict[str, MetricCI]
    calibration: Calibration
    slices: dict[str, list[SliceRow]]
    fairness: dict[str, FairnessResult]
    robustness: list[RobustnessRow]
    latency: Latency | None
    baseline_prevalence: float
    baseline: dict[str, float]
    champion: dict[str, MetricCI] | None = None
    champion_calibration: Calibration | None = None
    paired: dict[str, PairedDiff] | None = None
    importance: list[FeatureImportance] = field(
        default_factory=list
    )  # empty: the model gave no contributions
    worst_rows: list[WorstRow] = field(default_factory=list)
    slice_calibration: list[SliceCalibration] = field(default_factory=list)
    dependence: list[Dependence] = field(default_factory=list, repr=False)  # plot points, not serialized
    y_true: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    scores: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    champion_scores: np.ndarray | None = field(default=None, repr=False)

    # --- flat views for the gate and for MLflow metrics ---
    def headline(self) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        for m, ci in self.metrics.items():
            out[m] = ci.value
            out[f"{m}_ci_low"] = ci.ci_low
            out[f"{m}_ci_high"] = ci.ci_high
        out["ece"] = self.calibration.ece
        dps = [
            f.demographic_parity_ratio
            for f in self.fairness.values()
            if f.demographic_parity_ratio is not None
        ]
        eods = [
            f.equal_opportunity_difference
            for f in self.fairness.values()
            if f.equal_opportunity_difference is not None
        ]
        out["min_demographic_parity_ratio"] = min(dps) if dps else None
        out["max_equal_opportunity_difference"] = max(eods) if eods else None
        if self.robustness:
            out["max_robustness_drop"] = max(r.drop for r in self.robustness)
        out["n_rows"] = float(self.n_rows)
        out["prevalence"] = self.prevalence
        out["threshold"] = self.threshold
        if self.paired:
            for m, d in self.paired.items():
                out[f"{m}_diff_vs_champion"] = d.diff
                out[f"{m}_diff_ci_low"] = d.ci_low
                out[f"{m}_diff_ci_high"] = d.ci_high
                out[f"{m}_diff_p_value"] = d.p_value
        return _clean(out)

    def baseline_headline(self) -> dict[str, float]:
        """The trivial prevalence predictor's numbers, shaped like ``headline`` (for the promotion gate)."""
        return {**self.baseline, "ece": abs(self.prevalence - self.baseline_prevalence)}

    def champion_headline(self) -> dict[str, float] | None:
        """The champion's numbers on the same rows, shaped like ``headline``; None without a champion."""
        if self.champion is None:
            return None
        out = {m: ci.value for m, ci in self.champion.items()}
        if self.champion_calibration is not None:
            out["ece"] = self.champion_calibration.ece
        return _clean(out)

    def to_dict(self) -> dict[str, Any]:
        arrays = {"y_true", "scores", "champion_scores", "dependence"}
        d = {k: v for k, v in self.__dict__.items() if k not in arrays}
        return _clean(_plain(d))

    # --- rendering ---
    def to_markdown(self) -> str:
        return render.to_markdown(self)

    def figures(self) -> dict[str, bytes]:
        """ROC curve, reliability diagram and (with contributions) importance and dependence plots as PNG
        bytes (Agg canvas; pyplot's global state untouched)."""
        return render.figures(self)


# --- evaluate ------------------------------------------------------------------------------------------------
def _scores_of(predict: Predict, df: pd.DataFrame, who: str) -> np.ndarray:
    s = np.asarray(predict(df), dtype=np.float64).reshape(-1)
    if len(s) != len(df):
        raise ValueError(f"{who} returned {len(s)} scores for {len(df)} rows")
    if not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1:
        raise ValueError(f"{who} must return probabilities in [0, 1] (got NaN/inf or out-of-range values)")
    return s


def evaluate(
    model_predict: Predict,
    test_df: pd.DataFrame,
    contract: FeatureSetContract,
    *,
    threshold: float,
    champion_predict: Predict | None = None,
    top_features: Sequence[str] | None = None,
    n_bootstrap: int = 200,
    seed: int = 0,
    noise_levels: Sequence[float] = (0.1, 0.3),
    missing_rates: Sequence[float] = (0.2, 0.5),
    latency_calls: int = 200,
    baseline_prevalence: float | None = None,
    fairness_min_group_size: int = 30,
    n_bins: int = 10,
    explain: Callable[[pd.DataFrame], Contributions] | None = None,
    n_dependence: int = 3,
) -> EvaluationReport:
    """Evaluate ``model_predict`` on ``test_df`` (and the champion on the same rows, paired).

    ``top_features`` are perturbed for the robustness table (default: every contract feature).
    ``baseline_prevalence`` should be the training prevalence; without it the test prevalence is used.
    ``latency_calls=0`` skips the latency measurement (e.g. when timing is meaningless on shared CPUs).
    ``explain`` (a model's ``contributions``, see ``explain.Explainable``) adds global importance, dependence
    plots of the ``n_dependence`` top features and the reasons beside the worst-predicted rows.
    """
    needed = [contract.label, *contract.slices, *contract.protected_attributes]
    missing = [c for c in dict.fromkeys(needed) if c not in test_df.columns]
    if missing:
        raise ContractError([f"column '{c}' is missing from the test frame" for c in missing])
    if len(test_df) == 0:
        raise ValueError("the test frame is empty")
    contract.validate_label_values(test_df[contract.label].to_numpy())
    y = test_df[contract.label].to_numpy().astype(np.float64)
    scores = _scores_of(model_predict, test_df, "model_predict")
    point = compute_metrics(y, scores, threshold)

    champion_scores = None
    if champion_predict is not None:
        champion_scores = _scores_of(champion_predict, test_df, "champion_predict")
        boot = resample_metrics(y, [scores, champion_scores], threshold, n_bootstrap, seed)
    else:
        boot = resample_metrics(y, [scores], threshold, n_bootstrap, seed)
    metrics = {m: metric_ci(point[m], boot[0, :, j]) for j, m in enumerate(METRICS)}
    champion = paired = champion_cal = None
    if champion_scores is not None:
        cpoint = compute_metrics(y, champion_scores, threshold)
        champion = {m: metric_ci(cpoint[m], boot[1, :, j]) for j, m in enumerate(METRICS)}
        paired = {
            m: paired_diff(point[m], cpoint[m], boot[0, :, j], boot[1, :, j], m)
            for j, m in enumerate(METRICS)
        }
        champion_cal = calibration(y, champion_scores, n_bins)

    pred = (scores >= threshold).astype(np.float64)
    slices = {c: slice_metrics(y, scores, test_df[c], threshold, c) for c in contract.slices}
    fairness = {
        a: group_fairness(y, pred, test_df[a], attribute=a, min_group_size=fairness_min_group_size)
        for a in contract.protected_attributes
    }

    features = list(top_features) if top_features is not None else contract.feature_names
    unknown = [f for f in features if f not in contract.feature_names]
    if unknown:
        raise ValueError(f"top_features not in the contract: {unknown}")
    rng = np.random.default_rng([seed, 1])
    robustness = []
    scenarios = [("gaussian_noise", lvl) for lvl in noise_levels] + [("missing", r) for r in missing_rates]
    if not features:
        scenarios = []
    for kind, level in scenarios:
        perturbed = perturb(test_df, features, set(contract.categorical), kind, level, rng)
        auc = roc_auc(y, _scores_of(model_predict, perturbed, "model_predict"))
        robustness.append(RobustnessRow(kind, float(level), list(features), auc, point["roc_auc"] - auc))

    latency = (
        measure_latency(model_predict, test_df, n_calls=latency_calls, seed=seed) if latency_calls else None
    )

    contributions = explain(test_df) if explain is not None else None
    importance = global_importance(contributions) if contributions is not None else []
    plotted = [i.feature for i in importance[:n_dependence]]
    dependence_points = (
        dependence(contributions, test_df, plotted, set(contract.categorical))
        if contributions is not None
        else []
    )
    worst = worst_rows(test_df, contract.entity_key, contract.as_of, y, scores, contributions)
    slice_cal = slice_calibration(y, scores, test_df, contract.slices, n_bins, fairness_min_group_size)

    prevalence = float(y.mean())
    base_p = prevalence if baseline_prevalence is None else float(baseline_prevalence)
    baseline = compute_metrics(y, np.full(len(y), base_p), threshold)
    return EvaluationReport(
        contract_name=contract.name,
        contract_version=contract.version,
        contract_fingerprint=contract.fingerprint(),
        label=contract.label,
        n_rows=len(y),
        n_positives=int(y.sum()),
        prevalence=prevalence,
        threshold=float(threshold),
        n_bootstrap=n_bootstrap,
        seed=seed,
        metrics=metrics,
        calibration=calibration(y, scores, n_bins),
        slices=slices,
        fairness=fairness,
        robustness=robustness,
        latency=latency,
        baseline_prevalence=base_p,
        baseline=baseline,
        champion=champion,
        champion_calibration=champion_cal,
        paired=paired,
        importance=importance,
        worst_rows=worst,
        slice_calibration=slice_cal,
        dependence=dependence_points,
        y_true=y,
        scores=scores,
        champion_scores=champion_scores,
    )


def _plain(x: Any) -> Any:
    """Dataclasses, numpy scalars and tuples to JSON-friendly builtins."""
    if is_dataclass(x) and not isinstance(x, type):
        return _plain(asdict(x))
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_plain(v) for v in x.tolist()]
    if isinstance(x, np.generic):
        return x.item()
    return x


def _clean(x: Any) -> Any:
    """NaN and inf become None so the result is strict JSON."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


# What callers import from here (the report's parts live in their own modules).
__all__ = [
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_LABELS",
    "MISSING_GROUP",
    "SECTIONS",
    "Calibration",
    "EvaluationReport",
    "FairnessResult",
    "Latency",
    "MetricCI",
    "PairedDiff",
    "RobustnessRow",
    "SliceRow",
    "average_precision",
    "bootstrap_ci",
    "calibration",
    "compute_metrics",
    "evaluate",
    "group_fairness",
    "model_card",
    "paired_bootstrap",
    "roc_auc",
]
