"""Where the model is wrong: the worst-predicted test rows and the slices whose calibration is worst.

Why in the report: headline metrics average the errors away. A reviewer deciding on a promotion wants to see
the rows the model got most confidently wrong (with the reasons it gave) and the segments where its
probabilities cannot be taken at face value, before those rows become customers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_assets.ml.diagnostics import calibration, group_keys
from mlops_assets.ml.explain import Contributions, reasons_text, top_reasons
from mlops_assets.ml.metrics import row_log_loss

N_WORST = 50


@dataclass(frozen=True)
class WorstRow:
    entity: str
    as_of: str
    label: int
    score: float
    log_loss: float
    reasons: list[
        str
    ]  # the model's top reasons for this score ("feature +0.42"), empty without contributions


def worst_rows(
    df: pd.DataFrame,
    key: str,
    as_of: str,
    y: np.ndarray,
    scores: np.ndarray,
    contributions: Contributions | None = None,
    n: int = N_WORST,
) -> list[WorstRow]:
    """The ``n`` rows with the largest log loss, worst first (ties in row order)."""
    losses = row_log_loss(y, scores)
    order = np.argsort(-losses, kind="stable")[:n]
    names = values = None
    if contributions is not None:
        names, values = top_reasons(contributions)
    entities = df[key] if key in df.columns else pd.Series(df.index, index=df.index)
    days = df[as_of] if as_of in df.columns else pd.Series(pd.NaT, index=df.index)
    return [
        WorstRow(
            entity=str(entities.iloc[i]),
            as_of="" if pd.isna(days.iloc[i]) else str(pd.Timestamp(days.iloc[i]).date()),
            label=int(y[i]),
            score=float(scores[i]),
            log_loss=float(losses[i]),
            reasons=reasons_text(names[i], values[i]) if names is not None and values is not None else [],
        )
        for i in order
    ]


@dataclass(frozen=True)
class SliceCalibration:
    column: str
    value: str
    n: int
    mean_predicted: float
    observed_rate: float
    ece: float  # within the slice, same bins as the report's calibration


def slice_calibration(
    y: np.ndarray,
    scores: np.ndarray,
    df: pd.DataFrame,
    columns: Sequence[str],
    n_bins: int = 10,
    min_rows: int = 30,
) -> list[SliceCalibration]:
    """Calibration error of every slice (``columns`` x value) with at least ``min_rows`` rows, largest ECE
    first: a small slice's ECE is mostly noise, so it is left out rather than ranked first."""
    out = []
    for column in columns:
        keys = group_keys(df[column])
        for value in sorted(set(keys.tolist())):
            mask = keys == value
            if mask.sum() < min_rows:
                continue
            ys, ss = y[mask], scores[mask]
            out.append(
                SliceCalibration(
                    column,
                    value,
                    int(mask.sum()),
                    float(ss.mean()),
                    float(ys.mean()),
                    calibration(ys, ss, n_bins).ece,
                )
            )
    return sorted(out, key=lambda r: (-r.ece, r.column, r.value))
