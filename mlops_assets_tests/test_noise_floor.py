"""The noise floor of drift statistics: the row-wise statistics treat every row alone, and the floor is the
no-drift quantile it claims to be (checked against samples drawn independently of its bootstrap)."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_assets.monitoring.drift_stats import js_distance, js_rows, ks_binned, ks_rows, psi, psi_rows
from mlops_assets.monitoring.noise_floor import GRID_EXACT, NoiseFloor, grid_size, noise_floor

# A categorical-looking reference: two rare bins, so small samples often leave them empty (PSI's epsilon).
REFERENCE = (4000, 2500, 1500, 1000, 600, 300, 60, 40)


def test_the_row_wise_statistics_give_each_row_what_the_one_column_statistic_gives_it():
    rng = np.random.default_rng(7)
    reference = rng.integers(0, 50, size=(200, 8)).astype("float64")
    current = rng.integers(0, 50, size=(200, 8)).astype("float64")
    current[::7, 2] = 0  # empty bins on one side
    reference[::11, 5] = 0
    np.testing.assert_allclose(
        psi_rows(reference, current), [psi(r, c) for r, c in zip(reference, current, strict=True)]
    )
    np.testing.assert_allclose(
        js_rows(reference, current),
        [js_distance(r, c) for r, c in zip(reference, current, strict=True)],
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ks_rows(reference, current), [ks_binned(r, c) for r, c in zip(reference, current, strict=True)]
    )


@pytest.mark.parametrize("current_n", [150, 1500])
def test_the_floor_is_exceeded_by_chance_at_about_its_stated_rate(current_n):
    """Clean days drawn here (not by the floor's own generator) exceed the 0.99 floor on ~1 % of days."""
    floor = noise_floor(REFERENCE, current_n, numerical=True, quantile=0.99)
    p = np.asarray(REFERENCE) / sum(REFERENCE)
    rng = np.random.default_rng(12345)
    days = 4000
    exceed = {"psi": 0, "js": 0, "ks": 0}
    for _ in range(days):
        # the reference is itself a sample of the same distribution, as a real reference window is
        ref = rng.multinomial(sum(REFERENCE), p)
        cur = rng.multinomial(current_n, p)
        exceed["psi"] += psi(ref, cur) > floor.psi
        exceed["js"] += js_distance(ref, cur) > floor.js_distance
        exceed["ks"] += ks_binned(ref, cur) > floor.ks_statistic
    for name, count in exceed.items():
        # 1 % of 4000 is 40; binomial sd ~6.3, plus grid rounding (which only lowers the rate)
        assert 15 <= count <= 65, (name, count)


def test_the_floor_falls_with_the_sample_size_and_stays_under_the_thresholds_at_volume():
    small = noise_floor(REFERENCE, 150, numerical=False)
    large = noise_floor(REFERENCE, 150_000, numerical=False)
    assert small.psi > 0.1  # at 150 rows chance alone passes the usual 0.1 warn threshold
    assert large.psi < small.psi / 20
    assert large.psi < 0.01 and large.js_distance < 0.05
    assert small.ks_statistic is None and large.ks_statistic is None  # KS applies to numerical columns only


def test_the_floor_is_deterministic_and_sizes_are_rounded_down():
    assert noise_floor(REFERENCE, 333, numerical=True) == noise_floor(REFERENCE, 333, numerical=True)
    for n in (1, GRID_EXACT, GRID_EXACT + 1, 150, 10_000, 123_457):
        assert grid_size(n) <= n
        assert grid_size(n) >= 0.95 * n - 1
    assert grid_size(GRID_EXACT) == GRID_EXACT
    floor = noise_floor(REFERENCE, 333, numerical=True)
    assert floor.current_n == 333 and floor.reference_n == sum(REFERENCE)
    assert NoiseFloor.from_dict(floor.to_dict()) == floor


def test_nothing_to_compare_gives_no_floor_and_bad_settings_name_themselves():
    assert noise_floor((0, 0, 0), 100, numerical=True).psi is None
    assert noise_floor(REFERENCE, 0, numerical=True).psi is None
    with pytest.raises(ValueError, match="quantile"):
        noise_floor(REFERENCE, 100, numerical=True, quantile=1.0)
    with pytest.raises(ValueError, match="draws"):
        noise_floor(REFERENCE, 100, numerical=True, draws=10)
