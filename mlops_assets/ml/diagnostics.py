"""What the headline metrics hide: calibration, metrics per slice, fairness across a protected attribute,
robustness under noise and missing values, and latency."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.ml.metrics import Predict, as_float, f1_at, roc_auc


# --- calibration ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_rate: float | None


@dataclass(frozen=True)
class Calibration:
    ece: float  # count-weighted mean |observed - predicted| over equal-width bins
    max_calibration_error: float
    bins: list[ReliabilityBin]


def calibration(y_true: Any, scores: Any, n_bins: int = 10) -> Calibration:
    y, s = as_float(y_true), as_float(scores)
    idx = np.minimum((s * n_bins).astype(int), n_bins - 1)
    bins, ece, mce = [], 0.0, 0.0
    for b in range(n_bins):
        mask = idx == b
        count = int(mask.sum())
        if count:
            mp, obs = float(s[mask].mean()), float(y[mask].mean())
            gap = abs(obs - mp)
            ece += count / len(y) * gap
            mce = max(mce, gap)
            bins.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, count, mp, obs))
        else:
            bins.append(ReliabilityBin(b / n_bins, (b + 1) / n_bins, 0, None, None))
    return Calibration(float(ece), float(mce), bins)


# --- slices and fairness -------------------------------------------------------------------------------------
MISSING_GROUP = "(missing)"  # not "<missing>": Markdown renders that as an HTML tag, i.e. a blank group


def group_keys(values: pd.Series | np.ndarray) -> np.ndarray:
    series = pd.Series(np.asarray(values, dtype=object))
    return series.map(lambda v: MISSING_GROUP if pd.isna(v) or not str(v).strip() else str(v)).to_numpy()


@dataclass(frozen=True)
class SliceRow:
    column: str
    value: str
    n: int
    positives: int
    prevalence: float
    roc_auc: float | None  # None when the slice holds one class only
    f1: float
    mean_score: float


def slice_metrics(
    y_true: Any, scores: Any, values: Any, threshold: float, column: str = ""
) -> list[SliceRow]:
    y, s = as_float(y_true), as_float(scores)
    keys = group_keys(values)
    rows = []
    for key in sorted(set(keys.tolist())):
        mask = keys == key
        ys, ss = y[mask], s[mask]
        auc = roc_auc(ys, ss)
        rows.append(
            SliceRow(
                column=column,
                value=key,
                n=int(mask.sum()),
                positives=int(ys.sum()),
                prevalence=float(ys.mean()),
                roc_auc=None if math.isnan(auc) else auc,
                f1=f1_at(ys, ss, threshold),
                mean_score=float(ss.mean()),
            )
        )
    return rows


@dataclass(frozen=True)
class GroupRate:
    group: str
    n: int
    positives: int
    positive_rate: float  # share of the group predicted to churn
    tpr: float | None  # recall among the group's actual churners; None without churners


@dataclass(frozen=True)
class FairnessResult:
    attribute: str
    groups: list[GroupRate]
    demographic_parity_ratio: float | None  # min/max positive-prediction rate; 1 = parity
    equal_opportunity_difference: float | None  # max - min TPR; 0 = parity
    excluded_groups: list[str] = field(default_factory=list)  # too small to compare


def group_fairness(
    y_true: Any, y_pred: Any, groups: Any, *, attribute: str = "", min_group_size: int = 0
) -> FairnessResult:
    """Demographic parity ratio and equal opportunity difference over the groups of one attribute.

    Groups with fewer than ``min_group_size`` rows are listed but left out of the two summary numbers: a
    handful of rows would otherwise decide the gate by noise.
    """
    y, pred = as_float(y_true), as_float(y_pred)
    keys = group_keys(groups)
    rates, excluded = [], []
    for key in sorted(set(keys.tolist())):
        mask = keys == key
        yg, pg = y[mask], pred[mask]
        pos = yg == 1
        rates.append(
            GroupRate(
                group=key,
                n=int(mask.sum()),
                positives=int(pos.sum()),
                positive_rate=float(pg.mean()),
                tpr=float(pg[pos].mean()) if pos.any() else None,
            )
        )
        if mask.sum() < min_group_size:
            excluded.append(key)
    eligible = [g for g in rates if g.group not in excluded]
    dp = None
    if len(eligible) >= 2:
        hi = max(g.positive_rate for g in eligible)
        dp = 1.0 if hi == 0 else min(g.positive_rate for g in eligible) / hi
    tprs = [g.tpr for g in eligible if g.tpr is not None]
    eod = max(tprs) - min(tprs) if len(tprs) >= 2 else None
    return FairnessResult(attribute, rates, dp, eod, excluded)


# --- robustness and latency ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class RobustnessRow:
    perturbation: str  # "gaussian_noise" or "missing"
    level: float  # noise std in units of each feature's std, or share of values set missing
    features: list[str]
    roc_auc: float
    drop: float  # clean ROC-AUC minus perturbed ROC-AUC (positive = worse)


def perturb(
    df: pd.DataFrame, features: Sequence[str], categorical: set[str], kind: str, level: float, rng: Any
) -> pd.DataFrame:
    """Noise scaled to each numerical feature's std (categoricals: value resampled with prob. ``level``),
    or a ``level`` share of each feature's values set missing."""
    out = df.copy()
    n = len(out)
    for c in features:
        col = out[c]
        if kind == "missing":
            out[c] = col.mask(rng.random(n) < level)
        elif c in categorical:
            observed = col.dropna().to_numpy()
            if len(observed):
                swap = rng.random(n) < level
                replacement = pd.Series(rng.choice(observed, size=n), index=col.index)
                out[c] = col.astype(object).where(~swap, replacement)
        else:
            values = pd.to_numeric(col).astype("float64")
            std = float(np.nanstd(values.to_numpy()))
            if std > 0:
                out[c] = values + rng.normal(0.0, level * std, n)
    return out


@dataclass(frozen=True)
class Latency:
    single_row_p50_ms: float
    single_row_p95_ms: float
    single_row_p99_ms: float
    n_calls: int
    batch_rows: int
    batch_seconds: float
    batch_rows_per_s: float


def measure_latency(predict: Predict, df: pd.DataFrame, *, n_calls: int = 200, seed: int = 0) -> Latency:
    """Single-row predict latency percentiles (what an online scorer sees) and batch throughput."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(df), size=n_calls)
    for i in rows[:3]:  # warm-up: lazy model loading, first-call allocations
        predict(df.iloc[[int(i)]])
    timings = []
    for i in rows:
        one = df.iloc[[int(i)]]
        t0 = time.perf_counter()
        predict(one)
        timings.append((time.perf_counter() - t0) * 1000.0)
    batch = []
    for _ in range(3):
        t0 = time.perf_counter()
        predict(df)
        batch.append(time.perf_counter() - t0)
    p50, p95, p99 = np.percentile(timings, [50, 95, 99])
    best = max(min(batch), 1e-9)
    return Latency(float(p50), float(p95), float(p99), n_calls, len(df), best, len(df) / best)
