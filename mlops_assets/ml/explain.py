"""Per-feature contributions to a model's margin, and what is built from them: global importance, the top
reasons per prediction, and the points of a dependence plot.

Why an interface: every model type explains itself (LightGBM's ``pred_contrib=True`` gives exact TreeSHAP
values, a linear model has coefficient x centred value), and everything downstream — the evaluation report,
the reasons stored beside each score — only reads a ``Contributions``. A new model type implements
``Explainable`` and nothing here changes. Contributions are in margin units (log-odds for a binary model):
``values.sum(axis=1) + base`` is the model's raw score for each row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from mlops_assets.ml.diagnostics import group_keys

N_REASONS = 3
# The reasons stored beside each score in ml/predictions (Spark DDL; see ``reason_columns``).
REASON_SCHEMA = ", ".join(
    f"reason_{i} string, reason_{i}_contribution double" for i in range(1, N_REASONS + 1)
)


@dataclass(frozen=True)
class Contributions:
    """``values[i, j]``: how much feature j moved row i's margin away from ``base[i]`` (the expected margin)."""

    feature_names: tuple[str, ...]
    values: np.ndarray  # (rows, features)
    base: np.ndarray  # (rows,)

    def __post_init__(self) -> None:
        if self.values.ndim != 2 or self.values.shape[1] != len(self.feature_names):
            raise ValueError(
                f"contributions of shape {self.values.shape} do not match {len(self.feature_names)} features"
            )
        if self.base.shape != (self.values.shape[0],):
            raise ValueError(f"base of shape {self.base.shape} for {self.values.shape[0]} rows")

    def margin(self) -> np.ndarray:
        """The raw score the contributions add up to (for a check against the model's own)."""
        return self.values.sum(axis=1) + self.base


@runtime_checkable
class Explainable(Protocol):
    """A model that can say why: its raw margin and the per-feature contributions that sum to it."""

    def margin(self, df: pd.DataFrame) -> np.ndarray: ...

    def contributions(self, df: pd.DataFrame) -> Contributions: ...


@dataclass(frozen=True)
class FeatureImportance:
    """Global importance: mean |contribution| over the rows (and the mean signed one, for direction)."""

    feature: str
    mean_abs: float
    mean: float

    def to_dict(self) -> dict[str, Any]:
        return {"feature": self.feature, "mean_abs": self.mean_abs, "mean": self.mean}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureImportance:
        return cls(str(d["feature"]), float(d["mean_abs"]), float(d["mean"]))


def global_importance(c: Contributions) -> list[FeatureImportance]:
    """Every feature by mean |contribution|, largest first (ties by name, so the order is stable)."""
    mean_abs = np.abs(c.values).mean(axis=0) if len(c.values) else np.zeros(len(c.feature_names))
    mean = c.values.mean(axis=0) if len(c.values) else np.zeros(len(c.feature_names))
    rows = [
        FeatureImportance(f, float(a), float(m))
        for f, a, m in zip(c.feature_names, mean_abs, mean, strict=True)
    ]
    return sorted(rows, key=lambda r: (-r.mean_abs, r.feature))


def top_reasons(c: Contributions, k: int = N_REASONS) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` features with the largest |contribution| per row, largest first: (names, signed values),
    both of shape (rows, k). With fewer than ``k`` features, or fewer that moved the score, the missing
    reasons are None / NaN."""
    n, width = c.values.shape
    names = np.full((n, k), None, dtype=object)
    values = np.full((n, k), np.nan)
    take = min(k, width)
    if not n or not take:
        return names, values
    # Stable sort on -|value|: ties keep feature order, so a row's reasons do not depend on the batch.
    order = np.argsort(-np.abs(c.values), axis=1, kind="stable")[:, :take]
    names[:, :take] = np.asarray(c.feature_names, dtype=object)[order]
    values[:, :take] = np.take_along_axis(c.values, order, axis=1)
    # A feature that did not move the score is no reason (a constant baseline has none at all).
    silent = values == 0
    names[silent], values[silent] = None, np.nan
    return names, values


def reason_columns(c: Contributions, k: int = N_REASONS) -> dict[str, Any]:
    """The reasons as flat columns ``reason_1`` (feature name), ``reason_1_contribution`` (signed, log-odds),
    ... ``reason_k``: filterable and readable in SQL without exploding an array."""
    names, values = top_reasons(c, k)
    out: dict[str, Any] = {}
    for i in range(k):
        out[f"reason_{i + 1}"] = names[:, i]
        out[f"reason_{i + 1}_contribution"] = values[:, i]
    return out


def reasons_text(names: np.ndarray, values: np.ndarray) -> list[str]:
    """One row's reasons for a report table, e.g. ``tenure_days -0.81, plan +0.40``."""
    return [f"{n} {v:+.2f}" for n, v in zip(names, values, strict=True) if n is not None]


@dataclass(frozen=True)
class Dependence:
    """A dependence plot's points for one feature: its value and its contribution on each row."""

    feature: str
    values: np.ndarray
    contributions: np.ndarray
    categorical: bool


def dependence(
    c: Contributions, df: pd.DataFrame, features: list[str], categorical: set[str]
) -> list[Dependence]:
    """Points for the dependence plots of ``features`` (values as in ``df``, before any encoding)."""
    out = []
    for f in features:
        j = c.feature_names.index(f)
        is_cat = f in categorical
        values = group_keys(df[f]) if is_cat else pd.to_numeric(df[f], errors="coerce").to_numpy()
        out.append(Dependence(f, values, c.values[:, j].copy(), is_cat))
    return out
