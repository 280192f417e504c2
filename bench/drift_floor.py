"""The floor of drift-bench: the statistics ours computes, in one process over data already in memory.

What this hardware allows without an engine, so ``vs_floor = ours_s / floor_s`` says what Spark's planning,
scheduling and Parquet decoding cost on top of the arithmetic itself. The same algorithm as ours: edges from
quantiles of a ~50k-row sample, exact bin counts, moments and top-K vocabulary of the reference, exact counts
of the current side over those bins, then the same drift statistics and grading (``compute_drift``,
``summarize_dataset``). Loading the Parquet (numerical columns as float64 numpy with NaN for null, categorical
ones as Arrow dictionary arrays) is excluded from the time, as it is for Evidently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mlops_assets.monitoring.drift_stats import CurrentCounts, compute_drift, current_counts_numpy
from mlops_assets.monitoring.profile import (
    DEFAULT_QUANTILE_SAMPLE_ROWS,
    DEFAULT_TOP_K,
    CategoricalProfile,
    NumericalProfile,
    categorical_profile_from_counts,
    numerical_profile_from_values,
)
from mlops_assets.monitoring.severity import DriftThresholds, summarize_dataset


@dataclass(frozen=True)
class InMemorySide:
    """One side of the data in memory: numerical columns as float64 (NaN: null), categorical as Arrow dictionaries."""

    numerical: dict[str, np.ndarray]
    categorical: dict[str, pa.DictionaryArray]


@dataclass(frozen=True)
class FloorResult:
    seconds: float
    drifted: frozenset[str]


def load_side(path: Path, numerical: list[str], categorical: list[str]) -> InMemorySide:
    """Read one Parquet side into memory (not timed): one contiguous array per column."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, read_dictionary=categorical).unify_dictionaries().combine_chunks()
    return InMemorySide(
        numerical={
            c: table.column(c).chunk(0).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            for c in numerical
        },
        categorical={c: table.column(c).chunk(0) for c in categorical},
    )


def _label_counts(values: pa.DictionaryArray) -> tuple[dict[str, int], int]:
    """Count per category label and the null count: one bincount over the dictionary codes."""
    labels = values.dictionary.to_pylist()
    codes = values.indices.fill_null(len(labels)).to_numpy()
    counts = np.bincount(codes, minlength=len(labels) + 1)
    return {label: int(c) for label, c in zip(labels, counts[:-1], strict=True) if c}, int(counts[-1])


def _categorical_counts(profile: CategoricalProfile, values: pa.DictionaryArray) -> CurrentCounts:
    counts, nulls = _label_counts(values)
    in_vocab = [counts.get(v, 0) for v in profile.vocabulary]
    return CurrentCounts(
        column=profile.name,
        counts=(*in_vocab, len(values) - nulls - sum(in_vocab)),
        null_count=nulls,
        total=len(values),
    )


def run_floor(reference: InMemorySide, current: InMemorySide) -> FloorResult:
    """Profile the reference, count the current side, grade: the whole verdict, timed."""
    start = time.perf_counter()
    results = []
    for name, values in reference.numerical.items():
        profile: NumericalProfile = numerical_profile_from_values(
            name, values, quantile_sample_rows=DEFAULT_QUANTILE_SAMPLE_ROWS
        )
        results.append(compute_drift(profile, current_counts_numpy(profile, current.numerical[name])))
    for name, values in reference.categorical.items():
        counts, _ = _label_counts(values)
        cat_profile = categorical_profile_from_counts(name, counts, len(values), DEFAULT_TOP_K)
        results.append(
            compute_drift(cat_profile, _categorical_counts(cat_profile, current.categorical[name]))
        )
    summary = summarize_dataset(results, DriftThresholds())
    return FloorResult(time.perf_counter() - start, frozenset(summary.drifted_columns))
