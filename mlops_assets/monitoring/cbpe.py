"""A label-free estimate of the champion's performance on a day: confidence-based performance estimation.

Between a day's scoring and its labels (30 days for churn) the measured performance drop is ``pending``.
If the scores are calibrated -- a row scored p churns with probability p -- the day's score distribution
alone says what the labels will most likely show: every row counts as p of a positive and 1 - p of a
negative, and the ROC-AUC of those expected class histograms is the estimate (CBPE, as NannyML calls it).
Its interval is where the realized ROC-AUC falls in 95 % of label draws consistent with the calibrated
probabilities (each bin's positives binomial), so it widens on small days and on days with few churners.

What it cannot see: a change in who churns at a given score (concept shift). The calibration map was fit
before it, so the estimate stays where it was while the realized metric falls; only the labels show that.
Under covariate shift -- the inputs move, the relationship holds -- it tracks the realized metric.

Input is the day's score histogram over equal-width bins (the drift report's score counts), so a day of
any size costs ``bins`` numbers on the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

DEFAULT_DRAWS = 2000
INTERVAL = 0.95
LIMITATION = (
    "blind to concept shift: it assumes the validation-time relation between score and churn still holds"
)


@dataclass(frozen=True)
class PerformanceEstimate:
    """The day's expected metric from its calibrated scores, with the interval the realized metric should fall in."""

    metric: str
    estimate: float
    lower: float
    upper: float
    n: int
    expected_positive_rate: float
    expected_brier: float  # of the raw scores, were the calibrated probabilities true
    expected_ece: (
        float  # mean |raw score - calibrated probability|: the raw scores' expected calibration error
    )

    def contains(self, value: float) -> bool:
        return self.lower <= value <= self.upper

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PerformanceEstimate:
        return cls(**data)


def auc_of_class_histograms(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC-AUC of each row of (draws, bins) positive/negative histograms over ascending score bins; a
    positive beats every negative in a lower bin and ties with those in its own. NaN for a one-class row."""
    pos = np.atleast_2d(np.asarray(positives, dtype="float64"))
    neg = np.atleast_2d(np.asarray(negatives, dtype="float64"))
    below = np.cumsum(neg, axis=1) - neg
    wins = np.sum(pos * (below + neg / 2), axis=1)
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    return np.divide(wins, pairs, out=np.full(len(pairs), np.nan), where=pairs > 0)


def estimate_roc_auc(
    counts: Any,
    probabilities: Any,
    scores: Any,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> PerformanceEstimate | None:
    """CBPE of ROC-AUC from a score histogram: ``counts`` rows per ascending score bin, ``scores`` the bins'
    raw scores, ``probabilities`` their calibrated churn probabilities. None without rows."""
    n_b = np.asarray(counts, dtype="int64")
    p_b = np.clip(np.asarray(probabilities, dtype="float64"), 0.0, 1.0)
    s_b = np.asarray(scores, dtype="float64")
    if not (n_b.shape == p_b.shape == s_b.shape) or n_b.ndim != 1:
        raise ValueError("counts, probabilities and scores must be 1-d arrays of the same length")
    filled = n_b > 0
    n_b, p_b, s_b = n_b[filled], p_b[filled], s_b[filled]
    n = int(n_b.sum())
    if n == 0:
        return None
    expected_pos = n_b * p_b
    estimate = float(auc_of_class_histograms(expected_pos, n_b - expected_pos)[0])
    rng = np.random.default_rng([seed, n, len(n_b)])
    drawn_pos = rng.binomial(np.broadcast_to(n_b, (draws, len(n_b))), p_b)
    realized = auc_of_class_histograms(drawn_pos, n_b - drawn_pos)
    realized = realized[np.isfinite(realized)]
    tail = (1 - INTERVAL) / 2
    lower, upper = np.quantile(realized, [tail, 1 - tail]) if len(realized) else (np.nan, np.nan)
    return PerformanceEstimate(
        metric="roc_auc",
        estimate=estimate,
        lower=float(lower),
        upper=float(upper),
        n=n,
        expected_positive_rate=float(expected_pos.sum() / n),
        expected_brier=float(np.sum(n_b * (p_b * (1 - s_b) ** 2 + (1 - p_b) * s_b**2)) / n),
        expected_ece=float(np.sum(n_b * np.abs(s_b - p_b)) / n),
    )


def estimate_from_histogram(
    counts: Any, calibrate: Callable[[np.ndarray], np.ndarray], draws: int = DEFAULT_DRAWS
) -> PerformanceEstimate | None:
    """``estimate_roc_auc`` of a histogram over equal-width score bins of [0, 1], each bin read at its
    midpoint and mapped to a churn probability by ``calibrate`` (the model's calibration map)."""
    n_bins = len(counts)
    midpoints = (np.arange(n_bins) + 0.5) / n_bins
    return estimate_roc_auc(counts, calibrate(midpoints), midpoints, draws)
