"""Evaluation report for a binary churn model: metrics with bootstrap CIs, calibration, slices, fairness,
robustness, latency, baseline/champion comparison, Markdown and PNG renderings, and a model card.

Why a single report object: the promotion gate, the MLflow logging in the asset layer and the model card all
read the same numbers, so they are computed once, here, and returned as plain values (``to_dict`` is
JSON-serialisable). The model is passed as a ``predict(df) -> scores`` callable, so a fresh training result,
a registered ``ChurnModel`` and the current champion are evaluated the same way on the same rows.

Metrics are implemented with numpy (AUC via ranks, average precision like scikit-learn's step-wise sum)
because the bootstrap recomputes them a few hundred times per model.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mlops_assets.ml.contract import ContractError, FeatureSetContract

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
SECTIONS: tuple[str, ...] = (
    "Metrics",
    "Comparison",
    "Calibration",
    "Slices",
    "Fairness",
    "Robustness",
    "Latency",
)
_EPS = 1e-15


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
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last]
    precision = tp / (last + 1)
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y: np.ndarray, s: np.ndarray) -> float:
    p = np.clip(s, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


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


def _metric_matrix(y: np.ndarray, s: np.ndarray, threshold: float) -> np.ndarray:
    m = compute_metrics(y, s, threshold)
    return np.array([m[k] for k in METRICS])


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


def _resample_metrics(
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
            out[i, b] = _metric_matrix(yb, s[idx], threshold)
    return out


def _ci(point: float, samples: np.ndarray, alpha: float = 0.05) -> MetricCI:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return MetricCI(point, math.nan, math.nan)
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return MetricCI(float(point), float(lo), float(hi))


def bootstrap_ci(
    y_true: Any, scores: Any, threshold: float, *, n_bootstrap: int = 200, seed: int = 0, alpha: float = 0.05
) -> dict[str, MetricCI]:
    """Percentile bootstrap CIs (rows resampled with replacement) for every metric in ``METRICS``."""
    y, s = _as_float(y_true), _as_float(scores)
    point = compute_metrics(y, s, threshold)
    boot = _resample_metrics(y, [s], threshold, n_bootstrap, seed)[0]
    return {m: _ci(point[m], boot[:, j], alpha) for j, m in enumerate(METRICS)}


def _paired(point_a: float, point_b: float, a: np.ndarray, b: np.ndarray, metric: str) -> PairedDiff:
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
    y, a, b = _as_float(y_true), _as_float(challenger), _as_float(champion)
    boot = _resample_metrics(y, [a, b], threshold, n_bootstrap, seed)
    pa, pb = compute_metrics(y, a, threshold), compute_metrics(y, b, threshold)
    return {m: _paired(pa[m], pb[m], boot[0, :, j], boot[1, :, j], m) for j, m in enumerate(METRICS)}


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
    y, s = _as_float(y_true), _as_float(scores)
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


def _group_keys(values: pd.Series | np.ndarray) -> np.ndarray:
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
    y, s = _as_float(y_true), _as_float(scores)
    keys = _group_keys(values)
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
    y, pred = _as_float(y_true), _as_float(y_pred)
    keys = _group_keys(groups)
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


def _perturb(
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
        d = {k: v for k, v in self.__dict__.items() if k not in {"y_true", "scores", "champion_scores"}}
        return _clean(_plain(d))

    # --- rendering ---
    def to_markdown(self) -> str:
        title = f"# Evaluation: {self.contract_name} v{self.contract_version} (`{self.contract_fingerprint}`)"
        summary = (
            f"{self.n_rows} rows, {self.n_positives} positives (prevalence {_f(self.prevalence)}), "
            f"threshold {_f(self.threshold)}, {self.n_bootstrap} bootstrap resamples, seed {self.seed}."
        )
        parts = [title, summary]
        for section in SECTIONS:
            parts.append(f"## {section}")
            parts.append(_SECTION_RENDERERS[section](self))
        return "\n\n".join(parts) + "\n"

    def figures(self) -> dict[str, bytes]:
        """ROC curve and reliability diagram as PNG bytes (Agg canvas; pyplot's global state untouched)."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        def png(fig: Figure) -> bytes:
            FigureCanvasAgg(fig)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
            return buf.getvalue()

        roc = Figure(figsize=(5, 5))
        ax = roc.add_subplot()
        fpr, tpr = roc_curve_points(self.y_true, self.scores)
        ax.plot(fpr, tpr, label=f"model (AUC {_f(self.metrics['roc_auc'].value)})", color="tab:blue")
        if self.champion_scores is not None and self.champion is not None:
            cf, ct = roc_curve_points(self.y_true, self.champion_scores)
            ax.plot(cf, ct, label=f"champion (AUC {_f(self.champion['roc_auc'].value)})", color="tab:orange")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="baseline (AUC 0.5)")
        ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve", xlim=(0, 1))
        ax.set_ylim(0, 1)
        ax.legend(loc="lower right")

        rel = Figure(figsize=(5, 6))
        top, bottom = rel.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        filled = [b for b in self.calibration.bins if b.count]
        top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
        top.plot(
            [b.mean_predicted for b in filled],
            [b.observed_rate for b in filled],
            marker="o",
            color="tab:blue",
            label=f"model (ECE {_f(self.calibration.ece)})",
        )
        top.set(ylabel="Observed churn rate", title="Reliability diagram", xlim=(0, 1))
        top.set_ylim(0, 1)
        top.legend(loc="upper left")
        width = 1 / max(len(self.calibration.bins), 1)
        bottom.bar(
            [b.lower for b in self.calibration.bins],
            [b.count for b in self.calibration.bins],
            width=width,
            align="edge",
            color="tab:blue",
            alpha=0.6,
        )
        bottom.set(xlabel="Mean predicted probability", ylabel="Rows")
        return {"roc_curve.png": png(roc), "reliability.png": png(rel)}


def roc_curve_points(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    y, s = _as_float(y_true), _as_float(scores)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s_sorted) - 1]
    tp = np.cumsum(y_sorted)[last]
    fp = last + 1 - tp
    n_pos, n_neg = max(y.sum(), 1), max(len(y) - y.sum(), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


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
) -> EvaluationReport:
    """Evaluate ``model_predict`` on ``test_df`` (and the champion on the same rows, paired).

    ``top_features`` are perturbed for the robustness table (default: every contract feature).
    ``baseline_prevalence`` should be the training prevalence; without it the test prevalence is used.
    ``latency_calls=0`` skips the latency measurement (e.g. when timing is meaningless on shared CPUs).
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
        boot = _resample_metrics(y, [scores, champion_scores], threshold, n_bootstrap, seed)
    else:
        boot = _resample_metrics(y, [scores], threshold, n_bootstrap, seed)
    metrics = {m: _ci(point[m], boot[0, :, j]) for j, m in enumerate(METRICS)}
    champion = paired = champion_cal = None
    if champion_scores is not None:
        cpoint = compute_metrics(y, champion_scores, threshold)
        champion = {m: _ci(cpoint[m], boot[1, :, j]) for j, m in enumerate(METRICS)}
        paired = {
            m: _paired(point[m], cpoint[m], boot[0, :, j], boot[1, :, j], m) for j, m in enumerate(METRICS)
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
        perturbed = _perturb(test_df, features, set(contract.categorical), kind, level, rng)
        auc = roc_auc(y, _scores_of(model_predict, perturbed, "model_predict"))
        robustness.append(RobustnessRow(kind, float(level), list(features), auc, point["roc_auc"] - auc))

    latency = (
        measure_latency(model_predict, test_df, n_calls=latency_calls, seed=seed) if latency_calls else None
    )

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
        y_true=y,
        scores=scores,
        champion_scores=champion_scores,
    )


# --- Markdown rendering --------------------------------------------------------------------------------------
def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int | np.integer):
        return str(int(x))
    if isinstance(x, float | np.floating):
        return f"{float(x):.{nd}f}"
    return str(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        return _f(v).replace("|", "\\|")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _ci_text(ci: MetricCI) -> str:
    return f"{_f(ci.value)} [{_f(ci.ci_low)}, {_f(ci.ci_high)}]"


def _md_metrics(r: EvaluationReport) -> str:
    rows = [
        [METRIC_LABELS[m], ci.value, ci.ci_low, ci.ci_high, "higher" if HIGHER_IS_BETTER[m] else "lower"]
        for m, ci in r.metrics.items()
    ]
    return _table(["Metric", "Value", "95% CI low", "95% CI high", "Better"], rows)


def _md_comparison(r: EvaluationReport) -> str:
    headers = ["Metric", "Model", f"Baseline (p={_f(r.baseline_prevalence)})"]
    if r.champion is not None:
        headers.append("Champion")
    rows = []
    for m, ci in r.metrics.items():
        row: list[Any] = [METRIC_LABELS[m], _ci_text(ci), r.baseline[m]]
        if r.champion is not None:
            row.append(_ci_text(r.champion[m]))
        rows.append(row)
    out = _table(headers, rows)
    if r.paired:
        paired_rows = [
            [METRIC_LABELS[m], d.diff, d.ci_low, d.ci_high, d.p_value, d.p_value < 0.05]
            for m, d in r.paired.items()
        ]
        out += "\n\nPaired bootstrap, model minus champion (p = one-sided P(model not better)):\n\n"
        out += _table(["Metric", "Diff", "95% CI low", "95% CI high", "p-value", "Better at 5%"], paired_rows)
    return out


def _md_calibration(r: EvaluationReport) -> str:
    head = f"ECE {_f(r.calibration.ece, 4)}, max bin gap {_f(r.calibration.max_calibration_error, 4)}.\n\n"
    rows = [
        [f"[{b.lower:.1f}, {b.upper:.1f})", b.count, b.mean_predicted, b.observed_rate]
        for b in r.calibration.bins
    ]
    return head + _table(["Bin", "Rows", "Mean predicted", "Observed rate"], rows)


def _md_slices(r: EvaluationReport) -> str:
    if not r.slices:
        return "No slice columns declared in the contract."
    rows = [
        [s.column, s.value, s.n, s.positives, s.prevalence, s.roc_auc, s.f1, s.mean_score]
        for rows_ in r.slices.values()
        for s in rows_
    ]
    return _table(["Column", "Value", "Rows", "Positives", "Prevalence", "ROC-AUC", "F1", "Mean score"], rows)


def _md_fairness(r: EvaluationReport) -> str:
    if not r.fairness:
        return "No protected attributes declared in the contract."
    summary = [
        [
            f.attribute,
            f.demographic_parity_ratio,
            f.equal_opportunity_difference,
            ", ".join(f.excluded_groups),
        ]
        for f in r.fairness.values()
    ]
    out = _table(["Attribute", "Demographic parity ratio", "Equal opportunity diff.", "Too small"], summary)
    groups = [
        [f.attribute, g.group, g.n, g.positives, g.positive_rate, g.tpr]
        for f in r.fairness.values()
        for g in f.groups
    ]
    return out + "\n\n" + _table(["Attribute", "Group", "Rows", "Positives", "Predicted rate", "TPR"], groups)


def _md_robustness(r: EvaluationReport) -> str:
    if not r.robustness:
        return "Not measured."
    head = f"Clean ROC-AUC {_f(r.metrics['roc_auc'].value)}; perturbed features: "
    head += ", ".join(f"`{f}`" for f in r.robustness[0].features) + ".\n\n"
    rows = [[x.perturbation, x.level, x.roc_auc, x.drop] for x in r.robustness]
    return head + _table(["Perturbation", "Level", "ROC-AUC", "Drop"], rows)


def _md_latency(r: EvaluationReport) -> str:
    if r.latency is None:
        return "Not measured."
    lat = r.latency
    rows = [
        ["Single row p50 (ms)", lat.single_row_p50_ms],
        ["Single row p95 (ms)", lat.single_row_p95_ms],
        ["Single row p99 (ms)", lat.single_row_p99_ms],
        [f"Batch throughput (rows/s, {lat.batch_rows} rows)", round(lat.batch_rows_per_s)],
    ]
    return _table(["Measure", "Value"], rows)


_SECTION_RENDERERS: dict[str, Callable[[EvaluationReport], str]] = {
    "Metrics": _md_metrics,
    "Comparison": _md_comparison,
    "Calibration": _md_calibration,
    "Slices": _md_slices,
    "Fairness": _md_fairness,
    "Robustness": _md_robustness,
    "Latency": _md_latency,
}


# --- model card ----------------------------------------------------------------------------------------------
def _limitations(r: EvaluationReport) -> list[str]:
    """Findings worth a reader's attention, derived from the numbers rather than written by hand."""
    out = []
    overall = r.metrics["roc_auc"].value
    for rows in r.slices.values():
        for s in rows:
            if s.roc_auc is None:
                out.append(f"ROC-AUC is undefined for {s.column}={s.value} ({s.n} rows, one class only).")
            elif s.n >= 30 and s.roc_auc < overall - 0.05:
                out.append(
                    f"Weaker ranking for {s.column}={s.value}: ROC-AUC {_f(s.roc_auc)} vs {_f(overall)} overall."
                )
    if r.calibration.ece > 0.05:
        out.append(
            f"Probabilities are not well calibrated (ECE {_f(r.calibration.ece)}); "
            "treat scores as a ranking unless recalibrated."
        )
    for f in r.fairness.values():
        if f.demographic_parity_ratio is not None and f.demographic_parity_ratio < 0.8:
            out.append(
                f"Predicted churn rates differ across {f.attribute} "
                f"(demographic parity ratio {_f(f.demographic_parity_ratio)})."
            )
        if f.excluded_groups:
            out.append(
                f"Groups of {f.attribute} too small to assess fairness: {', '.join(f.excluded_groups)}."
            )
    for x in r.robustness:
        if x.drop > 0.05:
            out.append(f"ROC-AUC drops by {_f(x.drop)} under {x.perturbation} at level {x.level:g}.")
    out.append(
        f"Evaluated on {r.n_rows} rows from a single, most recent time window; behaviour and data drift can "
        "degrade performance, so the model must be monitored and re-evaluated."
    )
    out.append("Scores are correlational: they do not say which intervention would prevent a churn.")
    return out


def model_card(
    report: EvaluationReport,
    *,
    model_name: str,
    version: str,
    contract: FeatureSetContract,
    training: Mapping[str, Any],
    lineage: Mapping[str, Any],
) -> str:
    """A Markdown model card built from the evaluation report, the contract and training/lineage facts."""
    m = report.metrics
    intended = (
        f"Scores each customer's probability of `{contract.label}` (churn within the label window after the "
        f"as-of date `{contract.as_of}`) to prioritise retention outreach. Customers with score >= "
        f"{_f(report.threshold)} are flagged. Not intended for pricing, credit or any decision with legal or "
        "similarly significant effect on an individual, nor for populations outside the training data."
    )
    data = _table(
        ["Item", "Value"],
        [
            ["Feature set", f"{contract.name} v{contract.version}"],
            ["Contract fingerprint", contract.fingerprint()],
            ["Entity key", contract.entity_key],
            ["As-of column", contract.as_of],
            ["Label", contract.label],
            ["Source", f"{contract.source.format}: {contract.source.path}" if contract.source else "n/a"],
            ["Test rows", report.n_rows],
            ["Test prevalence", report.prevalence],
        ],
    )
    features = _table(
        ["Feature", "Kind", "Description"], [[f.name, f.kind, f.description or ""] for f in contract.features]
    )
    train_rows = [[k, _short(v)] for k, v in training.items()]
    lineage_rows = [[k, _short(v)] for k, v in lineage.items()]
    headline = (
        f"ROC-AUC **{_ci_text(m['roc_auc'])}**, PR-AUC {_ci_text(m['pr_auc'])}, "
        f"F1@{_f(report.threshold)} {_ci_text(m['f1'])} (95% bootstrap CIs, {report.n_bootstrap} resamples)."
    )
    sections = [
        f"# Model card: {model_name} v{version}",
        "## Intended use",
        intended,
        "## Data",
        data,
        "## Features",
        features,
        "## Training",
        _table(["Item", "Value"], train_rows) if train_rows else "n/a",
        "## Metrics",
        headline + "\n\n" + _md_metrics(report),
        "## Comparison",
        _md_comparison(report),
        "## Slices",
        _md_slices(report),
        "## Fairness",
        _md_fairness(report),
        "## Calibration",
        _md_calibration(report),
        "## Robustness",
        _md_robustness(report),
        "## Limitations",
        "\n".join(f"- {x}" for x in _limitations(report)),
        "## Lineage",
        _table(["Item", "Value"], lineage_rows) if lineage_rows else "n/a",
    ]
    return "\n\n".join(sections) + "\n"


# --- helpers -------------------------------------------------------------------------------------------------
def _as_float(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).reshape(-1)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return _f(v, 4)
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_short(x)}" for k, x in v.items())
    return str(v)


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
