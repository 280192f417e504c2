"""Classification metrics in numpy: ROC-AUC via ranks, average precision like scikit-learn's step-wise sum,
log loss, Brier, F1 at a threshold. numpy because the bootstrap recomputes them a few hundred times per model;
``HIGHER_IS_BETTER`` is the one statement of each metric's direction (the promotion rules read it too)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

Predict = Callable[[pd.DataFrame], np.ndarray]

METRICS: tuple[str, ...] = ("roc_auc", "pr_auc", "log_loss", "brier", "f1")
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "pr_auc": True,
    "log_loss": False,
    "brier": False,
    "f1": True,
}
METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "Log loss",
    "brier": "Brier",
    "f1": "F1@threshold",
}

_EPS = 1e-15


def _by_distinct_threshold(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted high to low, the index of the last row of each run of equal scores, and the true positives
    counted down to it: predicting positive at score >= each distinct threshold flags ``last + 1`` rows, ``tp`` of
    them right. One pass that the curve metrics and the threshold choice share."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    return s_sorted, last, np.cumsum(y_sorted)[last]


# --- metrics ------------------------------------------------------------------------------------------------
def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties; NaN when only one class is present."""
    pos = y == 1
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """Area under the precision-recall curve as sum of (R_k - R_{k-1}) * P_k over distinct thresholds."""
    n_pos = float(y.sum())
    if n_pos == 0:
        return math.nan
    _, last, tp = _by_distinct_threshold(y, s)
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def row_log_loss(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Each row's log loss (the error analysis ranks rows by it)."""
    p = np.clip(s, _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def log_loss(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean(row_log_loss(y, s)))


def brier(y: np.ndarray, s: np.ndarray) -> float:
    return float(np.mean((s - y) ** 2))


def f1_at(y: np.ndarray, s: np.ndarray, threshold: float) -> float:
    pred = s >= threshold
    tp = float(np.sum(pred & (y == 1)))
    denom = float(pred.sum() + y.sum())
    return 2 * tp / denom if denom else 0.0


def compute_metrics(y: np.ndarray, s: np.ndarray, threshold: float) -> dict[str, float]:
    return {
        "roc_auc": roc_auc(y, s),
        "pr_auc": average_precision(y, s),
        "log_loss": log_loss(y, s),
        "brier": brier(y, s),
        "f1": f1_at(y, s, threshold),
    }


def metric_matrix(y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    m = compute_metrics(y, s, threshold)
    return np.array([m[k] for k in METRICS])


def as_float(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def roc_curve_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y, s = as_float(y_true), as_float(scores)
    _, last, tp = _by_distinct_threshold(y, s)
    fp = last + 1 - tp
    n_pos, n_neg = max(y.sum(), 1), max(len(y) - y.sum(), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def choose_threshold(y_true: Any, scores: Any) -> float:
    """The score cut-off (predict churn when score >= it) that maximises F1 on the given (validation) rows.

    F1 because retention outreach cares about both missed churners and wasted contacts; ties go to the
    higher threshold, i.e. fewer contacts for the same F1.
    """
    y = np.asarray(y_true, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("y_true and scores must be 1-d arrays of the same length")
    n_pos = y.sum()
    if n_pos == 0:
        raise ValueError("choose_threshold needs at least one positive label")
    s_sorted, last_of_run, tp = _by_distinct_threshold(y, s)
    predicted = last_of_run + 1
    f1 = 2 * tp / (predicted + n_pos)
    return float(s_sorted[last_of_run[int(np.argmax(f1))]])
