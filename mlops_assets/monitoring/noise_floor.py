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

Cost: ``draws`` x bins binomial draws per (column, sizes). Sizes are rounded *down* to a geometric grid
before drawing, so a backfill's days of similar size share one floor; a smaller n only raises the floor,
so the rounding errs towards not warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from mlops_assets.monitoring.drift_stats import js_rows, ks_rows, psi_rows

DEFAULT_NOISE_QUANTILE = 0.999
DEFAULT_DRAWS = 10_000
# Sizes up to GRID_EXACT are used as they are; above, rounded down to GRID_EXACT * GRID_STEP**k (~5 % steps).
GRID_EXACT = 64
GRID_STEP = 1.05


@dataclass(frozen=True)
class NoiseFloor:
    """The ``quantile`` of each statistic under no drift, at the sizes it was drawn for (None: not applicable)."""

    quantile: float
    reference_n: int
    current_n: int
    psi: float | None
    js_distance: float | None
    ks_statistic: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseFloor:
        return cls(**data)


def grid_size(n: int) -> int:
    """``n`` rounded down to the floor's size grid (exact up to GRID_EXACT, then ~5 % steps)."""
    if n <= GRID_EXACT:
        return max(n, 0)
    steps = math.floor(math.log(n / GRID_EXACT) / math.log(GRID_STEP) + 1e-9)
    return min(n, int(GRID_EXACT * GRID_STEP**steps))


# --- the floor ---------------------------------------------------------------------------------------------


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
    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    if draws < 100:
        raise ValueError(f"draws must be at least 100, got {draws}")
    counts = tuple(int(c) for c in reference_counts)
    if any(c < 0 for c in counts):
        raise ValueError("reference_counts must not be negative")
    reference_n = sum(counts)
    if reference_n == 0 or current_n <= 0 or len(counts) < 2:
        return NoiseFloor(quantile, reference_n, max(current_n, 0), None, None, None)
    psi_q, js_q, ks_q = _floor(
        counts, grid_size(reference_n), grid_size(current_n), numerical, quantile, draws, seed
    )
    return NoiseFloor(quantile, reference_n, current_n, psi_q, js_q, ks_q)


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
def _floor(
    counts: tuple[int, ...],
    reference_n: int,
    current_n: int,
    numerical: bool,
    quantile: float,
    draws: int,
    seed: int,
) -> tuple[float, float, float | None]:
    """Bootstrap quantiles (cached: a backfill asks for the same column at similar sizes day after day)."""
    p = np.asarray(counts, dtype="float64")
    p /= p.sum()
    rng = np.random.default_rng([seed, reference_n, current_n, len(counts)])
    reference = multinomial_rows(rng, reference_n, p, draws)
    current = multinomial_rows(rng, current_n, p, draws)
    return (
        float(np.quantile(psi_rows(reference, current), quantile)),
        float(np.quantile(js_rows(reference, current), quantile)),
        float(np.quantile(ks_rows(reference, current), quantile))
        if numerical
        else None,  # KS: numerical only
    )
