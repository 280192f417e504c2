"""The champion's scores mapped to churn probabilities, fit on the validation split and recorded with the model.

Why: a label-free performance estimate (``monitoring/cbpe.py``) reads each score as "this customer churns
with probability p"; that only holds for calibrated scores. LightGBM's are close but not exact, and a
model family swapped in later may be far off, so the map is fit per model on rows it did not train on.

Platt scaling (a logistic regression on the score's logit) rather than isotonic regression: validation
splits here hold a few hundred rows, where isotonic steps overfit and put blocks at exactly 0 or 1 -- a
certainty CBPE would then propagate into a too-narrow interval. Two parameters cannot overfit, and keep the
map monotone, so ranking metrics are unchanged by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from mlops_assets.ml.diagnostics import calibration as reliability

# Where the map is recorded in the model version's MLflow run.
CALIBRATION_ARTIFACT = "calibration.json"
# Scores are clipped away from 0 and 1 before the logit, so a hard 0/1 score maps to a finite value.
_EPS = 1e-6


def _logit(scores: Any) -> np.ndarray:
    s = np.clip(np.asarray(scores, dtype="float64"), _EPS, 1 - _EPS)
    return np.log(s / (1 - s))


@dataclass(frozen=True)
class CalibrationMap:
    """``p = sigmoid(slope * logit(score) + intercept)``, with how well it fit on the rows it came from."""

    slope: float
    intercept: float
    n: int
    positives: int
    ece_before: float  # of the raw scores on the calibration rows
    ece_after: float  # of the calibrated probabilities on the same rows (in-sample)
    method: str = "platt"

    def apply(self, scores: Any) -> np.ndarray:
        """Calibrated churn probabilities of raw model scores."""
        return 1.0 / (1.0 + np.exp(-(self.slope * _logit(scores) + self.intercept)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CalibrationMap:
        return cls(**data)


def fit_calibration(y_true: Any, scores: Any) -> CalibrationMap:
    """Platt scaling of ``scores`` against the labels ``y_true`` (both classes needed)."""
    from sklearn.linear_model import LogisticRegression

    y = np.asarray(y_true, dtype="int64")
    s = np.asarray(scores, dtype="float64")
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("y_true and scores must be 1-d arrays of the same length")
    if len(np.unique(y)) < 2:
        raise ValueError("calibration needs both classes among the validation labels")
    # C large: plain maximum likelihood; the two parameters need no regularization.
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(_logit(s).reshape(-1, 1), y)
    fitted_map = CalibrationMap(
        slope=float(platt.coef_[0][0]),
        intercept=float(platt.intercept_[0]),
        n=len(y),
        positives=int(y.sum()),
        ece_before=reliability(y, s).ece,
        ece_after=0.0,
    )
    return replace(fitted_map, ece_after=reliability(y, fitted_map.apply(s)).ece)
