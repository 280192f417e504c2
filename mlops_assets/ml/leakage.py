"""Leakage scan: a single feature that predicts the label almost perfectly on its own is far more likely
to carry the label (or the future) than to be a real signal, so it stops training until a human looks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.metrics import roc_auc

SUSPICIOUS_AUC = 0.95


def single_feature_auc(
    df: pd.DataFrame, contract: FeatureSetContract, max_rows: int = 50_000
) -> dict[str, float]:
    """Each feature's ROC-AUC alone, direction-free (max(auc, 1 - auc)); categoricals by label rate."""
    if len(df) > max_rows:
        df = df.sample(max_rows, random_state=0)
    y = df[contract.label].to_numpy(dtype=float)
    scores: dict[str, float] = {}
    for feature in contract.features:
        column = df[feature.name]
        if feature.kind == "categorical":
            rates = df.groupby(column.astype("string").fillna("<null>"))[contract.label].mean()
            values = column.astype("string").fillna("<null>").map(rates).to_numpy(dtype=float)
        else:
            values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
            values = np.where(
                np.isnan(values), np.nanmedian(values) if np.isfinite(values).any() else 0.0, values
            )
        auc = roc_auc(y, values)
        scores[feature.name] = float(max(auc, 1 - auc)) if np.isfinite(auc) else 0.5
    return scores


def suspicious_features(scores: dict[str, float], threshold: float = SUSPICIOUS_AUC) -> list[str]:
    return sorted((f for f, auc in scores.items() if auc >= threshold), key=lambda f: -scores[f])
