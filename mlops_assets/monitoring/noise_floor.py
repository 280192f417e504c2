"""How large a drift statistic gets by chance alone at a day's sample size: its noise floor.

PSI, JS and KS of two finite samples of the *same* distribution are not zero. At 150 rows over 10 equal bins
PSI's 99.9th percentile with no drift at all is ~0.2, twice the usual warn threshold, so a fixed threshold
warns on quiet days at small n (issue 12: 24 % of clean days at ~165 rows a day). The floor is a statistic's
``quantile`` under the null hypothesis "the current data is drawn from the reference distribution",
estimated by a parametric bootstrap: both sides are redrawn from the reference's bin proportions at their
own sizes (the reference is a sample too), and each statistic is computed as ``drift_stats`` computes it
(same bins, same PSI epsilon, so empty rare-category bins are accounted for where a chi-square
approximation would not be). A grade then trips only above ``max(threshold, floor)``; at production
volumes the floor is far below the thresholds and nothing changes.

Where every bin expects at least ``ASYMPTOTIC_MIN_EXPECTED`` values on both sides the bootstrap is not needed:
PSI (a symmetrised KL divergence) then follows ``(1/n + 1/m) * chi2(k - 1)``, JS distance
``sqrt(PSI / (8 ln 2))`` and the KS statistic Kolmogorov's law (continuous, so an upper bound of the binned
KS). Those closed forms cost microseconds, so a million-row day pays nothing for its floor.

The null-rate change has a floor too (both null counts binomial at the reference rate), and so does the
out-of-range share: a value drawn from the reference distribution falls outside the reference's
[min, max] of N values with probability at most 2 / (N + 1).

Cost of a bootstrap: ``draws`` x bins binomial draws per (column, sizes). Sizes are rounded *down* to a
geometric grid first, so a backfill's days of similar size share one cached floor; a smaller n only raises
the floor, so the rounding errs towards not warning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

import numpy as np
from scipy.stats import binom, chi2, kstwobign, norm

from mlops_assets.monitoring.drift_stats import (
    CurrentCounts,
    DriftResult,
    NoiseFloor,
    compute_drift,
    js_rows,
    ks_rows,
    psi_rows,
)
from mlops_assets.monitoring.profile import ColumnProfile, NumericalProfile, ReferenceProfile

DEFAULT_NOISE_QUANTILE = 0.999
DEFAULT_DRAWS = 10_000
# Sizes up to GRID_EXACT are used as they are; above, rounded down to GRID_EXACT * GRID_STEP**k (~5 % steps).
GRID_EXACT = 64
GRID_STEP = 1.05
# Expected count per bin (on the smaller side) from which the closed forms replace the bootstrap.
ASYMPTOTIC_MIN_EXPECTED = 100


def grid_size(n: int) -> int:
    """``n`` rounded down to the floor's size grid (exact up to GRID_EXACT, then ~5 % steps)."""
    if n <= GRID_EXACT:
        return max(n, 0)
    steps = math.floor(math.log(n / GRID_EXACT) / math.log(GRID_STEP) + 1e-9)
    return min(n, int(GRID_EXACT * GRID_STEP**steps))


def _check(quantile: float, draws: int) -> None:
    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    if draws < 100:
        raise ValueError(f"draws must be at least 100, got {draws}")


# --- the floors ---------------------------------------------------------------------------------------------


def noise_floor(
    reference_counts: Sequence[int],
    current_n: int,
    numerical: bool,
    quantile: float = DEFAULT_NOISE_QUANTILE,
    draws: int = DEFAULT_DRAWS,
    seed: int = 0,
) -> NoiseFloor:
    """The no-drift ``quantile`` of PSI, JS (and KS for numerical columns) for a current sample of
    ``current_n`` non-null values against a reference with ``reference_counts`` per bin.

    Deterministic: the same inputs (after grid rounding) give the same floor.
    """
    _check(quantile, draws)
    counts = tuple(int(c) for c in reference_counts)
    if any(c < 0 for c in counts):
        raise ValueError("reference_counts must not be negative")
    reference_n = sum(counts)
    if reference_n == 0 or current_n <= 0 or len(counts) < 2:
        return NoiseFloor(quantile, reference_n, max(current_n, 0), None, None, None)
    psi_q, js_q, ks_q = _bin_floor(
        counts, grid_size(reference_n), grid_size(current_n), numerical, quantile, draws, seed
    )
    return NoiseFloor(quantile, reference_n, current_n, psi_q, js_q, ks_q)


def column_noise_floor(
    profile: ColumnProfile,
    current: CurrentCounts,
    quantile: float = DEFAULT_NOISE_QUANTILE,
    draws: int = DEFAULT_DRAWS,
) -> NoiseFloor:
    """Every floor of one column: the binned statistics', the null-rate change's and the out-of-range share's."""
    numerical = isinstance(profile, NumericalProfile)
    bins = noise_floor(profile.counts, current.non_null, numerical, quantile, draws)
    null_floor = null_rate_change_floor(profile.null_count, profile.total, current.total, quantile, draws)
    out_of_range = out_of_range_floor(profile.non_null, current.non_null, quantile) if numerical else None
    return replace(bins, null_rate_change=null_floor, out_of_range_rate=out_of_range)


def with_noise_floor(
    result: DriftResult,
    profile: ColumnProfile,
    current: CurrentCounts,
    quantile: float = DEFAULT_NOISE_QUANTILE,
) -> DriftResult:
    """``result`` carrying its column's noise floor, for grading and for the report."""
    return replace(result, noise_floor=column_noise_floor(profile, current, quantile))


def drift_with_floors(
    profile: ReferenceProfile, counts: Mapping[str, CurrentCounts], quantile: float | None
) -> dict[str, DriftResult]:
    """``compute_drift`` of every profiled column, each carrying its noise floor unless ``quantile`` is None
    (what every engine does with its counts: Spark's one aggregation, numpy's binning)."""
    results = {name: compute_drift(col, counts[name]) for name, col in profile.columns.items()}
    if quantile is None:
        return results
    return {
        name: with_noise_floor(r, profile.columns[name], counts[name], quantile)
        for name, r in results.items()
    }


def null_rate_change_floor(
    reference_nulls: int,
    reference_total: int,
    current_total: int,
    quantile: float = DEFAULT_NOISE_QUANTILE,
    draws: int = DEFAULT_DRAWS,
) -> float | None:
    """No-drift ``quantile`` of |current null rate - reference null rate|, both binomial at the reference rate."""
    _check(quantile, draws)
    if reference_total <= 0 or current_total <= 0:
        return None
    return _null_floor(
        reference_nulls / reference_total,
        grid_size(reference_total),
        grid_size(current_total),
        quantile,
        draws,
    )


def out_of_range_floor(
    reference_n: int, current_n: int, quantile: float = DEFAULT_NOISE_QUANTILE
) -> float | None:
    """No-drift ``quantile`` of the share of ``current_n`` values outside the [min, max] of ``reference_n``.

    A value exchangeable with N reference values is their new minimum or maximum with probability
    2 / (N + 1) (exactly so for continuous values, less with ties), so the count outside is at most
    binomial(current_n, 2 / (N + 1)).
    """
    if reference_n <= 0 or current_n <= 0:
        return None
    return float(binom.ppf(quantile, current_n, 2 / (reference_n + 1)) / current_n)


# --- how each floor is computed -------------------------------------------------------------------------------


def multinomial_rows(rng: np.random.Generator, n: int, p: np.ndarray, draws: int) -> np.ndarray:
    """``draws`` multinomial(n, p) count vectors as conditional binomials, one vectorized call per bin
    (numpy's ``multinomial(size=draws)`` loops per draw and is ~5x slower here)."""
    out = np.zeros((draws, len(p)), dtype="float64")
    remaining = np.full(draws, n, dtype="int64")
    mass_left = 1.0
    for j, pj in enumerate(p[:-1]):
        share = min(1.0, pj / mass_left) if mass_left > 0 else 0.0
        drawn = rng.binomial(remaining, share)
        out[:, j] = drawn
        remaining -= drawn
        mass_left -= pj
    out[:, -1] = remaining
    return out


@lru_cache(maxsize=4096)
def _bin_floor(
    counts: tuple[int, ...],
    reference_n: int,
    current_n: int,
    numerical: bool,
    quantile: float,
    draws: int,
    seed: int,
) -> tuple[float, float, float | None]:
    """(PSI, JS, KS) floors: closed forms when every bin is well filled, else the bootstrap (cached: a
    backfill asks for the same column at similar sizes day after day)."""
    p = np.asarray(counts, dtype="float64")
    p /= p.sum()
    filled = p[p > 0]
    if len(filled) < 2:  # one value only: no drawn sample can differ
        return 0.0, 0.0, 0.0 if numerical else None
    if min(reference_n, current_n) * filled.min() >= ASYMPTOTIC_MIN_EXPECTED:
        spread = 1 / reference_n + 1 / current_n
        psi_q = float(spread * chi2.ppf(quantile, len(filled) - 1))
        ks_q = float(kstwobign.ppf(quantile) * math.sqrt(spread)) if numerical else None
        return psi_q, math.sqrt(psi_q / (8 * math.log(2))), ks_q
    rng = np.random.default_rng([seed, reference_n, current_n, len(counts)])
    reference = multinomial_rows(rng, reference_n, p, draws)
    current = multinomial_rows(rng, current_n, p, draws)
    return (
        float(np.quantile(psi_rows(reference, current), quantile)),
        float(np.quantile(js_rows(reference, current), quantile)),
        float(np.quantile(ks_rows(reference, current), quantile)) if numerical else None,  # numerical only
    )


@lru_cache(maxsize=4096)
def _null_floor(rate: float, reference_n: int, current_n: int, quantile: float, draws: int) -> float:
    if rate in (0.0, 1.0):
        return 0.0  # no drawn sample can change a rate of exactly 0 or 1
    if min(reference_n, current_n) * min(rate, 1 - rate) >= ASYMPTOTIC_MIN_EXPECTED:
        z = norm.ppf((1 + quantile) / 2)  # |difference| of two near-normal proportions
        return float(z * math.sqrt(rate * (1 - rate) * (1 / reference_n + 1 / current_n)))
    rng = np.random.default_rng([reference_n, current_n, draws])
    difference = (
        rng.binomial(current_n, rate, draws) / current_n
        - rng.binomial(reference_n, rate, draws) / reference_n
    )
    return float(np.quantile(np.abs(difference), quantile))
