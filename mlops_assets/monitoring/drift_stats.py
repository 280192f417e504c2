"""Drift statistics from binned counts: the plain-numpy reference implementation.

Every statistic here is a function of two count vectors over the same bins (the reference profile's bins
and the current data's counts over them), so any engine that can count -- numpy in tests, one Spark
aggregation in production -- gets identical numbers by handing its counts to ``compute_drift``.
``column_drift_numpy`` bins raw values itself and is the independent reference the Spark path is tested
against.

Statistics (all over non-null values; missing values are measured separately as the null-rate change):
- PSI, population stability index, sum((c - r) * ln(c / r)) over bin proportions; the primary signal.
- Jensen-Shannon distance, base 2, in [0, 1]; bounded, and well defined when a bin is empty on one side.
- KS statistic on the binned CDFs (numerical only): max |F_ref - F_cur| over the reference bin edges.
  It is a lower bound of the exact two-sample KS statistic, exact at the edges.
- chi-square test of homogeneity (categorical only) over vocabulary + ``__other__``, with its p-value.
- null-rate change and out-of-range rate (values outside the reference [min, max]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2

from mlops_assets.monitoring.profile import (
    CategoricalProfile,
    ColumnProfile,
    NumericalProfile,
    ReferenceProfile,
    as_float_array,
    category_key,
    finite_or_none,
    numerical_bin_index,
)

# PSI divides by and takes the log of each bin's proportion, so a bin empty on one side would make it
# infinite. Empty proportions are replaced by PSI_EPSILON (the value Evidently and most PSI write-ups use):
# a bin holding mass p on one side and none on the other then contributes about p * ln(p / 1e-4), e.g.
# 0.05 * 6.2 = 0.31 for 5 % of the mass in a new bin -- large enough to flag, finite enough to rank.
PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class CurrentCounts:
    """One column of the current data counted over its profile's bins (what an engine must produce)."""

    column: str
    counts: tuple[int, ...]
    null_count: int
    total: int
    out_of_range_count: int = 0
    mean: float | None = None
    # Exact moments of the non-null values (numerical only); None when absent or not finite (infinities).
    std: float | None = None
    min: float | None = None
    max: float | None = None

    @property
    def non_null(self) -> int:
        return self.total - self.null_count


@dataclass(frozen=True)
class NoiseFloor:
    """How large each statistic gets by chance alone at the sizes compared: its ``quantile`` under "no drift".

    Computed by ``noise_floor.py``; None where a statistic does not apply (KS for categorical columns,
    out-of-range for categorical ones) or where there is nothing to compare.
    """

    quantile: float
    reference_n: int
    current_n: int
    psi: float | None
    js_distance: float | None
    ks_statistic: float | None
    null_rate_change: float | None = None
    out_of_range_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoiseFloor:
        return cls(**data)


@dataclass(frozen=True)
class DriftResult:
    """Drift statistics of one column; None where a statistic does not apply or has no data."""

    column: str
    kind: str
    reference_rows: int
    current_rows: int
    psi: float | None
    js_distance: float | None
    ks_statistic: float | None
    chi2_statistic: float | None
    chi2_p_value: float | None
    reference_null_rate: float | None
    current_null_rate: float | None
    null_rate_change: float | None
    out_of_range_rate: float | None
    current_counts: tuple[int, ...]
    current_null_count: int
    current_out_of_range_count: int
    reference_mean: float | None = None
    current_mean: float | None = None
    # The statistics' no-drift quantiles at this column's sizes (None: grading against fixed thresholds).
    noise_floor: NoiseFloor | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["current_counts"] = list(self.current_counts)
        return d


# --- statistics on count vectors -------------------------------------------------------------------------


def row_proportions(counts: np.ndarray) -> np.ndarray:
    """Each row of a (rows, bins) count array as proportions; all zeros for a row with nothing counted."""
    c = np.asarray(counts, dtype="float64")
    totals = c.sum(axis=1, keepdims=True)
    return np.divide(c, totals, out=np.zeros_like(c), where=totals > 0)


def _one_row(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """One count vector as a (1, bins) array, for the row-wise functions below."""
    return np.atleast_2d(np.asarray(counts, dtype="float64"))


def proportions(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Counts as proportions; all zeros if there is nothing counted (callers check totals first)."""
    return row_proportions(_one_row(counts))[0]


# Each statistic is written once, row-wise over (rows, bins) count arrays: a column's drift is one row, and
# the noise floor (noise_floor.py) evaluates thousands of drawn rows at once with the very same formula.


def psi_rows(reference: np.ndarray, current: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """Population stability index of each row pair of two (rows, bins) count arrays (see PSI_EPSILON)."""
    r = row_proportions(reference)
    c = row_proportions(current)
    r = np.where(r == 0, epsilon, r)
    c = np.where(c == 0, epsilon, c)
    return np.sum((c - r) * np.log(c / r), axis=1)


def js_rows(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base-2 logarithms, hence in [0, 1]) of each row pair."""
    p = row_proportions(reference)
    q = row_proportions(current)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> np.ndarray:  # 0 * log 0 = 0; m > 0 wherever a > 0
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return np.sum(np.where(a > 0, a * np.log2(ratio), 0.0), axis=1)

    return np.sqrt(np.clip((kl(p) + kl(q)) / 2, 0.0, 1.0))  # clip rounding below zero


def ks_rows(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Max absolute difference of the cumulative proportions at the bin edges, of each row pair."""
    if reference.shape[1] == 0:
        return np.zeros(reference.shape[0])
    cr = np.cumsum(row_proportions(reference), axis=1)
    cc = np.cumsum(row_proportions(current), axis=1)
    return np.max(np.abs(cr - cc), axis=1)


def psi(
    reference_counts: Sequence[int], current_counts: Sequence[int], epsilon: float = PSI_EPSILON
) -> float:
    """Population stability index of two count vectors over the same bins (see PSI_EPSILON)."""
    return float(psi_rows(_one_row(reference_counts), _one_row(current_counts), epsilon)[0])


def js_distance(reference_counts: Sequence[int], current_counts: Sequence[int]) -> float:
    """Jensen-Shannon distance with base-2 logarithms, hence in [0, 1] (0 = same distribution)."""
    return float(js_rows(_one_row(reference_counts), _one_row(current_counts))[0])


def ks_binned(reference_counts: Sequence[int], current_counts: Sequence[int]) -> float:
    """Max absolute difference of the cumulative proportions at the bin edges."""
    return float(ks_rows(_one_row(reference_counts), _one_row(current_counts))[0])


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution (scipy's), with the degenerate cases made explicit."""
    if x <= 0:
        return 1.0
    if dof <= 0:
        return 0.0
    return float(chi2.sf(x, dof))


def chi_square(reference_counts: Sequence[int], current_counts: Sequence[int]) -> tuple[float, float]:
    """Chi-square test of homogeneity of the 2 x k table (reference, current) x bins: (statistic, p-value).

    Homogeneity rather than goodness of fit because the reference is a sample too, and because a category
    absent from the reference (expected count zero under goodness of fit) stays well defined. Bins empty
    on both sides carry no information and are dropped from the degrees of freedom.
    """
    table = np.vstack([np.asarray(reference_counts, "float64"), np.asarray(current_counts, "float64")])
    table = table[:, table.sum(axis=0) > 0]
    row_totals = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(row_totals == 0):
        return 0.0, 1.0
    expected = np.outer(row_totals, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, table.shape[1] - 1)


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


# --- one column -------------------------------------------------------------------------------------------


def compute_drift(profile: ColumnProfile, current: CurrentCounts) -> DriftResult:
    """All drift statistics of one column from its reference profile and its current counts."""
    if len(current.counts) != profile.n_bins:
        raise ValueError(f"{profile.name}: {len(current.counts)} current counts for {profile.n_bins} bins")
    ref_counts, cur_counts = profile.counts, current.counts
    both_have_values = sum(ref_counts) > 0 and sum(cur_counts) > 0
    numerical = isinstance(profile, NumericalProfile)

    ref_null = _rate(profile.null_count, profile.total)
    cur_null = _rate(current.null_count, current.total)
    chi2_stat = chi2_p = None
    if not numerical and both_have_values:
        chi2_stat, chi2_p = chi_square(ref_counts, cur_counts)
    return DriftResult(
        column=profile.name,
        kind=profile.kind,
        reference_rows=profile.total,
        current_rows=current.total,
        psi=psi(ref_counts, cur_counts) if both_have_values else None,
        js_distance=js_distance(ref_counts, cur_counts) if both_have_values else None,
        ks_statistic=ks_binned(ref_counts, cur_counts) if numerical and both_have_values else None,
        chi2_statistic=chi2_stat,
        chi2_p_value=chi2_p,
        reference_null_rate=ref_null,
        current_null_rate=cur_null,
        null_rate_change=cur_null - ref_null if ref_null is not None and cur_null is not None else None,
        out_of_range_rate=_rate(current.out_of_range_count, current.non_null) if numerical else None,
        current_counts=tuple(cur_counts),
        current_null_count=current.null_count,
        current_out_of_range_count=current.out_of_range_count,
        reference_mean=profile.mean if numerical else None,
        current_mean=current.mean,
    )


def current_counts_numpy(profile: ColumnProfile, values: Any) -> CurrentCounts:
    """Count raw in-memory values over the profile's bins (the numpy twin of ``spark_drift.count_pass``)."""
    if isinstance(profile, NumericalProfile):
        arr = as_float_array(values)
        idx = numerical_bin_index(arr, profile.edges)
        valid = arr[idx >= 0]
        out_of_range = 0
        if profile.valid_min is not None and profile.valid_max is not None:
            out_of_range = int(np.count_nonzero((valid < profile.valid_min) | (valid > profile.valid_max)))
        with np.errstate(invalid="ignore"):  # inf - inf in the moments: reported as None
            mean = finite_or_none(valid.mean()) if valid.size else None
            std = finite_or_none(valid.std(ddof=1)) if valid.size > 1 else None
        return CurrentCounts(
            column=profile.name,
            counts=tuple(int(c) for c in np.bincount(idx[idx >= 0], minlength=profile.n_bins)),
            null_count=int(arr.size - valid.size),
            total=int(arr.size),
            out_of_range_count=out_of_range,
            mean=mean,
            std=std,
            min=finite_or_none(valid.min()) if valid.size else None,
            max=finite_or_none(valid.max()) if valid.size else None,
        )
    assert isinstance(profile, CategoricalProfile)
    keys = category_key(values)
    codes = pd.Categorical(keys, categories=list(profile.vocabulary)).codes  # -1: null or not in vocabulary
    nulls = keys.isna().to_numpy()
    codes = np.where(codes < 0, len(profile.vocabulary), codes)[~nulls]
    return CurrentCounts(
        column=profile.name,
        counts=tuple(int(c) for c in np.bincount(codes, minlength=profile.n_bins)),
        null_count=int(nulls.sum()),
        total=int(keys.size),
    )


def column_drift_numpy(reference_profile: ColumnProfile, current_values: Any) -> DriftResult:
    """Drift of one column from raw current values: bins them with numpy, then ``compute_drift``."""
    return compute_drift(reference_profile, current_counts_numpy(reference_profile, current_values))


def dataset_drift_numpy(
    profile: ReferenceProfile, current: pd.DataFrame | Mapping[str, Any]
) -> dict[str, DriftResult]:
    """``column_drift_numpy`` for every profiled column of an in-memory dataset."""
    return {name: column_drift_numpy(col, current[name]) for name, col in profile.columns.items()}
