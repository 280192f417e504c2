"""The reference profile: everything drift detection needs to know about the training data, in kilobytes.

Drift is measured against the data the model was trained on. Keeping that data around (and re-reading it on
every monitoring run) is expensive, so it is summarised once into a profile: per numerical column the
quantile bin edges and the reference counts per bin, per categorical column a top-K vocabulary with counts.
The current data is later binned over exactly these bins, so reference and current are always compared on
the same support, whatever engine (numpy, Spark) computed the current counts.

Binning contract (shared by every engine, see ``numerical_bin_index``):
- numerical bins are left-closed ``[e_i, e_{i+1})`` over edges ``-inf < e_1 < ... < e_{k-1} < +inf``;
  a value equal to an inner edge falls in the upper bin;
- null and NaN are "missing": counted in ``null_count``, never in a bin;
- categorical values are compared as strings (see ``category_key``); values outside the vocabulary,
  including categories never seen in the reference, fall in the ``__other__`` bucket (the last bin).

The profile is JSON-serialisable (``to_dict``/``from_dict``) with no non-standard floats: the infinite outer
edges are implicit in the serialised form, because strict JSON (and thus MLflow tags, Postgres jsonb, ...)
has no Infinity.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    pass

OTHER = "__other__"
DEFAULT_BINS = 10
DEFAULT_TOP_K = 20
# Relative error of Spark's percentile_approx for the bin edges. Edges only choose the bins; the counts
# are exact, so 1e-3 (ten times looser than Spark's default) costs nothing in accuracy and much in speed.
DEFAULT_QUANTILE_RELATIVE_ERROR = 1e-3
# Rows sampled for the Spark edges (see build_profile_spark). With 50k rows a decile's rank has a standard
# error of sqrt(0.1 * 0.9 / 50k) = 0.13 %: bins hold 10 % +- 0.3 % of the reference instead of exactly
# 10 %, which changes no PSI that matters (the counts themselves stay exact).
DEFAULT_QUANTILE_SAMPLE_ROWS = 50_000
PROFILE_FORMAT_VERSION = 1


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN/Infinity: statistics that do not exist (all-null column) are stored as None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def quantile_edges(quantiles: Iterable[float | None]) -> tuple[float, ...]:
    """Bin edges from (possibly repeated) quantiles: deduplicated, sorted, wrapped in -inf/+inf.

    Repeated quantiles (a column with heavy ties, e.g. many zeros) would create empty bins of zero width,
    so they are merged: a discrete column simply gets fewer bins.
    """
    inner = sorted({float(q) for q in quantiles if q is not None and math.isfinite(float(q))})
    return (-math.inf, *inner, math.inf)


class _BinCounts:
    """What both column profiles derive from their ``counts``, ``null_count`` and ``total`` fields."""

    @property
    def n_bins(self) -> int:
        return len(self.counts)

    @property
    def non_null(self) -> int:
        return self.total - self.null_count


@dataclass(frozen=True)
class NumericalProfile(_BinCounts):
    """Reference summary of one numerical column (a feature or the model score)."""

    name: str
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    null_count: int
    total: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None
    # Values outside [valid_min, valid_max] count as out of range. Defaults to the reference min/max;
    # kept separate from min/max so a caller can widen it with domain knowledge.
    valid_min: float | None = None
    valid_max: float | None = None

    kind = "numerical"

    def __post_init__(self) -> None:
        if len(self.edges) < 2 or self.edges[0] != -math.inf or self.edges[-1] != math.inf:
            raise ValueError(f"{self.name}: edges must start at -inf and end at +inf, got {self.edges}")
        if len(self.counts) != len(self.edges) - 1:
            raise ValueError(f"{self.name}: {len(self.counts)} counts for {len(self.edges) - 1} bins")

    @property
    def inner_edges(self) -> tuple[float, ...]:
        return self.edges[1:-1]

    def bin_labels(self) -> list[str]:
        """Human-readable bin names for reports and histograms."""

        def fmt(x: float) -> str:
            return "-inf" if x == -math.inf else "+inf" if x == math.inf else f"{x:.4g}"

        return [f"[{fmt(lo)}, {fmt(hi)})" for lo, hi in itertools.pairwise(self.edges)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "inner_edges": list(self.inner_edges),
            "counts": list(self.counts),
            "null_count": self.null_count,
            "total": self.total,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "std": self.std,
            "valid_min": self.valid_min,
            "valid_max": self.valid_max,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NumericalProfile:
        return cls(
            name=d["name"],
            edges=(-math.inf, *(float(e) for e in d["inner_edges"]), math.inf),
            counts=tuple(int(c) for c in d["counts"]),
            null_count=int(d["null_count"]),
            total=int(d["total"]),
            min=d.get("min"),
            max=d.get("max"),
            mean=d.get("mean"),
            std=d.get("std"),
            valid_min=d.get("valid_min"),
            valid_max=d.get("valid_max"),
        )


@dataclass(frozen=True)
class CategoricalProfile(_BinCounts):
    """Reference summary of one categorical column: top-K vocabulary plus an ``__other__`` bucket.

    Only the K most frequent categories are kept so the profile stays small for high-cardinality columns;
    ``counts`` has one entry per vocabulary value and a last one for everything else (non-null).
    """

    name: str
    vocabulary: tuple[str, ...]
    counts: tuple[int, ...]
    null_count: int
    total: int

    kind = "categorical"

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.vocabulary) + 1:
            raise ValueError(f"{self.name}: counts must cover the vocabulary plus {OTHER}")

    def bin_labels(self) -> list[str]:
        return [*self.vocabulary, OTHER]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "vocabulary": list(self.vocabulary),
            "counts": list(self.counts),
            "null_count": self.null_count,
            "total": self.total,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CategoricalProfile:
        return cls(
            name=d["name"],
            vocabulary=tuple(str(v) for v in d["vocabulary"]),
            counts=tuple(int(c) for c in d["counts"]),
            null_count=int(d["null_count"]),
            total=int(d["total"]),
        )


ColumnProfile = NumericalProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """The profiles of all monitored columns of one reference dataset."""

    columns: dict[str, ColumnProfile]
    row_count: int
    n_bins: int = DEFAULT_BINS
    top_k: int = DEFAULT_TOP_K
    metadata: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> ColumnProfile:
        return self.columns[name]

    @property
    def numerical(self) -> list[NumericalProfile]:
        return [c for c in self.columns.values() if isinstance(c, NumericalProfile)]

    @property
    def categorical(self) -> list[CategoricalProfile]:
        return [c for c in self.columns.values() if isinstance(c, CategoricalProfile)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": PROFILE_FORMAT_VERSION,
            "row_count": self.row_count,
            "n_bins": self.n_bins,
            "top_k": self.top_k,
            "metadata": dict(self.metadata),
            "columns": [c.to_dict() for c in self.columns.values()],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReferenceProfile:
        if d.get("format_version") != PROFILE_FORMAT_VERSION:
            raise ValueError(f"unsupported profile format {d.get('format_version')!r}")
        columns: dict[str, ColumnProfile] = {}
        for c in d["columns"]:
            col = (
                NumericalProfile.from_dict(c) if c["kind"] == "numerical" else CategoricalProfile.from_dict(c)
            )
            columns[col.name] = col
        return cls(
            columns=columns,
            row_count=int(d["row_count"]),
            n_bins=int(d["n_bins"]),
            top_k=int(d["top_k"]),
            metadata=dict(d.get("metadata", {})),
        )

    def to_json(self) -> str:
        # allow_nan=False: fail loudly rather than emit JSON other tools reject.
        return json.dumps(self.to_dict(), allow_nan=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        return cls.from_dict(json.loads(text))


# --- binning shared by the numpy/pandas paths ---------------------------------------------------------


def as_float_array(values: Any) -> np.ndarray:
    """Any 1-d numeric container (numpy, pandas incl. nullable dtypes, list with None) as float64 with NaN."""
    return pd.Series(values, copy=False).to_numpy(dtype="float64", na_value=np.nan)


def numerical_bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index per value under the profile's contract (left-closed bins); -1 for missing (NaN)."""
    idx = np.searchsorted(np.asarray(edges[1:-1], dtype="float64"), values, side="right")
    return np.where(np.isnan(values), -1, idx)


def category_key(values: Any) -> pd.Series:
    """Categorical values as strings (nulls kept as missing), spelled the way Spark's cast to string does.

    Spark and pandas must map a value to the same vocabulary entry; the only common spelling difference
    for sensible categorical dtypes is booleans (Spark: ``true``, Python: ``True``).
    """
    s = pd.Series(values, copy=False)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.map({True: "true", False: "false"})
    mask = s.isna()
    out = s.astype("object").where(mask, s.astype(str))
    return out.where(~mask, None)


def numerical_profile_from_values(
    name: str, values: Any, n_bins: int = DEFAULT_BINS, quantile_sample_rows: int | None = None
) -> NumericalProfile:
    """Profile one numerical column held in memory: exact quantiles, or (``quantile_sample_rows``) quantiles of
    an evenly spaced sample of about that many values, as the Spark profile does; the counts are always exact."""
    arr = as_float_array(values)
    valid = arr[~np.isnan(arr)]
    if valid.size:
        probs = np.arange(1, n_bins) / n_bins
        step = max(1, valid.size // quantile_sample_rows) if quantile_sample_rows else 1
        edges = quantile_edges(np.quantile(valid[::step], probs).tolist())
        counts = np.bincount(numerical_bin_index(valid, edges), minlength=len(edges) - 1)
        lo, hi = float(valid.min()), float(valid.max())
        with np.errstate(invalid="ignore"):  # inf - inf: stored as None by finite_or_none
            mean = float(valid.mean())
            std = float(valid.std(ddof=1)) if valid.size > 1 else None
    else:
        edges, counts, lo, hi, mean, std = quantile_edges([]), np.zeros(1, dtype=int), None, None, None, None
    return NumericalProfile(
        name=name,
        edges=edges,
        counts=tuple(int(c) for c in counts),
        null_count=int(arr.size - valid.size),
        total=int(arr.size),
        min=finite_or_none(lo),
        max=finite_or_none(hi),
        mean=finite_or_none(mean),
        std=finite_or_none(std),
        valid_min=finite_or_none(lo),
        valid_max=finite_or_none(hi),
    )


def top_k_vocabulary(counts: Mapping[str, int], top_k: int) -> list[tuple[str, int]]:
    """The K most frequent categories; ties broken by value so every engine picks the same vocabulary."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top_k]


def categorical_profile_from_values(name: str, values: Any, top_k: int = DEFAULT_TOP_K) -> CategoricalProfile:
    """Profile one categorical column held in memory."""
    keys = category_key(values)
    non_null = keys.dropna()
    return categorical_profile_from_counts(name, non_null.value_counts().to_dict(), int(keys.size), top_k)


def categorical_profile_from_counts(
    name: str, counts: Mapping[str, int], total: int, top_k: int = DEFAULT_TOP_K
) -> CategoricalProfile:
    """Profile one categorical column from its per-category counts (nulls: ``total`` minus their sum)."""
    vocab = top_k_vocabulary(counts, top_k)
    non_null = sum(counts.values())
    in_vocab = sum(c for _, c in vocab)
    return CategoricalProfile(
        name=name,
        vocabulary=tuple(v for v, _ in vocab),
        counts=(*(int(c) for _, c in vocab), int(non_null - in_vocab)),
        null_count=int(total - non_null),
        total=int(total),
    )


def build_profile_pandas(
    df: pd.DataFrame,
    numerical: Sequence[str],
    categorical: Sequence[str],
    n_bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
) -> ReferenceProfile:
    """Reference profile of an in-memory DataFrame (exact quantiles)."""
    check_disjoint(numerical, categorical)
    columns: dict[str, ColumnProfile] = {}
    for name in numerical:
        columns[name] = numerical_profile_from_values(name, df[name], n_bins)
    for name in categorical:
        columns[name] = categorical_profile_from_values(name, df[name], top_k)
    return ReferenceProfile(columns=columns, row_count=len(df), n_bins=n_bins, top_k=top_k)


def check_disjoint(numerical: Sequence[str], categorical: Sequence[str]) -> None:
    both = set(numerical) & set(categorical)
    if both:
        raise ValueError(f"columns both numerical and categorical: {sorted(both)}")
    if len(set(numerical)) != len(numerical) or len(set(categorical)) != len(categorical):
        raise ValueError("duplicate column names")
