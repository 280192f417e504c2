"""Bootstrap confidence intervals of the metrics, and the paired bootstrap of challenger vs champion on the
same resampled rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_assets.ml.metrics import HIGHER_IS_BETTER, METRICS, as_float, compute_metrics, metric_matrix


# --- bootstrap -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricCI:
    value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class PairedDiff:
    """Challenger minus champion on the same resampled rows; ``p_value`` is P(challenger is not better)."""

    metric: str
    diff: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_valid: int  # resamples where the metric was defined for both models


def resample_metrics(
    y: np.ndarray, score_sets: Sequence[np.ndarray], threshold: float, n_bootstrap: int, seed: int
) -> np.ndarray:
    """Metric values per (model, resample, metric); every model sees the same resampled rows (paired)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    out = np.empty((len(score_sets), n_bootstrap, len(METRICS)))
    for b in range(n_bootstrap):
        idx = rng.integers(0, n, size=n)
        yb = y[idx]
        for i, s in enumerate(score_sets):
            out[i, b] = metric_matrix(yb, s[idx], threshold)
    return out


def metric_ci(point: float, samples: np.ndarray, alpha: float = 0.05) -> MetricCI:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return MetricCI(point, math.nan, math.nan)
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return MetricCI(float(point), float(lo), float(hi))


def bootstrap_ci(
    y_true: Any, scores: Any, threshold: float, *, n_bootstrap: int = 200, seed: int = 0, alpha: float = 0.05
) -> dict[str, MetricCI]:
    """Percentile bootstrap CIs (rows resampled with replacement) for every metric in ``METRICS``."""
    y, s = as_float(y_true), as_float(scores)
    point = compute_metrics(y, s, threshold)
    boot = resample_metrics(y, [s], threshold, n_bootstrap, seed)[0]
    return {m: metric_ci(point[m], boot[:, j], alpha) for j, m in enumerate(METRICS)}


def paired_diff(point_a: float, point_b: float, a: np.ndarray, b: np.ndarray, metric: str) -> PairedDiff:
    diffs = a - b
    diffs = diffs[np.isfinite(diffs)]
    if not len(diffs):
        return PairedDiff(metric, point_a - point_b, math.nan, math.nan, math.nan, math.nan, 0)
    not_better = diffs <= 0 if HIGHER_IS_BETTER[metric] else diffs >= 0
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return PairedDiff(
        metric=metric,
        diff=float(point_a - point_b),
        mean_diff=float(diffs.mean()),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=float((1 + not_better.sum()) / (1 + len(diffs))),
        n_valid=len(diffs),
    )


def paired_bootstrap(
    y_true: Any, challenger: Any, champion: Any, threshold: float, *, n_bootstrap: int = 200, seed: int = 0
) -> dict[str, PairedDiff]:
    """Paired bootstrap of challenger - champion for every metric (one-sided p-value, +1 smoothed)."""
    y, a, b = as_float(y_true), as_float(challenger), as_float(champion)
    boot = resample_metrics(y, [a, b], threshold, n_bootstrap, seed)
    pa, pb = compute_metrics(y, a, threshold), compute_metrics(y, b, threshold)
    return {m: paired_diff(pa[m], pb[m], boot[0, :, j], boot[1, :, j], m) for j, m in enumerate(METRICS)}
