"""The noise floor of drift statistics: the row-wise statistics treat every row alone, each floor is the
no-drift quantile it claims to be (checked against samples drawn independently of its bootstrap), grading
honours it, the report shows it, and on the synthetic source it stops small clean days warning without
hiding any injected scenario."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_assets.monitoring import noise_floor as noise_floor_module
from mlops_assets.monitoring.drift_stats import (
    DriftResult,
    NoiseFloor,
    js_distance,
    js_rows,
    ks_binned,
    ks_rows,
    psi,
    psi_rows,
)
from mlops_assets.monitoring.noise_floor import (
    GRID_EXACT,
    grid_size,
    noise_floor,
    null_rate_change_floor,
    out_of_range_floor,
)
from mlops_assets.monitoring.render import render_markdown
from mlops_assets.monitoring.severity import DriftThresholds, Severity, assess_column, build_report
from mlops_assets.synthetic.drift_study import grade_day, reference_profile, run_noise_study, scenario_rows

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


def test_the_closed_forms_agree_with_the_bootstrap_where_every_bin_is_well_filled(monkeypatch):
    reference = (3000, 2500, 2000, 1500, 1000)  # smallest bin: 10 % of the mass
    closed = noise_floor(reference, 5000, numerical=True)  # 500 expected in the smallest bin: closed form
    monkeypatch.setattr(noise_floor_module, "ASYMPTOTIC_MIN_EXPECTED", math.inf)
    noise_floor_module._bin_floor.cache_clear()
    try:
        drawn = noise_floor(reference, 5000, numerical=True)
    finally:
        noise_floor_module._bin_floor.cache_clear()
    assert drawn.psi == pytest.approx(closed.psi, rel=0.1)
    assert drawn.js_distance == pytest.approx(closed.js_distance, rel=0.1)
    # Kolmogorov's law is for continuous data: an upper bound of the binned KS, and not a loose one
    assert drawn.ks_statistic <= closed.ks_statistic <= 1.3 * drawn.ks_statistic


def test_the_null_rate_and_out_of_range_floors_are_the_no_drift_quantiles_they_claim():
    rng = np.random.default_rng(3)
    floor = null_rate_change_floor(500, 10_000, 150, quantile=0.99)  # 5 % nulls, 150-row days
    assert floor > 0.02  # the default warn threshold is inside the noise at this size
    changes = np.abs(rng.binomial(150, 0.05, 20_000) / 150 - rng.binomial(10_000, 0.05, 20_000) / 10_000)
    assert 0.005 <= np.mean(changes > floor) <= 0.015
    assert (
        null_rate_change_floor(0, 10_000, 150) == 0.0
    )  # no nulls in the reference: none can appear by chance
    # out of range: values drawn from the reference's own distribution, outside its [min, max]
    reference_n, current_n = 2000, 150
    exceed = 0
    for _ in range(2000):
        values = rng.normal(size=reference_n + current_n)
        ref, cur = values[:reference_n], values[reference_n:]
        exceed += np.mean((cur < ref.min()) | (cur > ref.max())) > out_of_range_floor(
            reference_n, current_n, 0.99
        )
    assert exceed <= 0.01 * 2000 + 3 * math.sqrt(0.01 * 2000)


def _result(psi_value: float, floor_psi: float | None) -> DriftResult:
    floor = None if floor_psi is None else NoiseFloor(0.999, 10_000, 150, floor_psi, None, None)
    return DriftResult(
        column="minutes", kind="numerical", reference_rows=10_000, current_rows=150, psi=psi_value,
        js_distance=None, ks_statistic=None, chi2_statistic=None, chi2_p_value=None,
        reference_null_rate=0.0, current_null_rate=0.0, null_rate_change=0.0, out_of_range_rate=0.0,
        current_counts=(), current_null_count=0, current_out_of_range_count=0, noise_floor=floor,
    )  # fmt: skip


def test_a_statistic_warns_only_above_its_noise_floor_and_the_reason_says_so():
    assert assess_column(_result(0.15, 0.21)).severity is Severity.NONE  # above 0.1, inside the noise
    warned = assess_column(_result(0.22, 0.21))
    assert warned.severity is Severity.WARN
    assert "noise floor at n=150" in warned.reasons[0] and "threshold 0.1" in warned.reasons[0]
    assert (
        assess_column(_result(0.30, 0.21)).severity is Severity.CRITICAL
    )  # 0.25 is above the floor: as before
    assert assess_column(_result(0.12, 0.01)).reasons == ("psi=0.12>=0.1",)  # a low floor changes nothing
    fixed = DriftThresholds(noise_quantile=None)
    assert assess_column(_result(0.15, 0.21), fixed).severity is Severity.WARN  # floors off: fixed bounds
    with pytest.raises(ValueError, match="noise_quantile"):
        DriftThresholds(noise_quantile=1.5)
    assert DriftResult(**{**_result(0.1, 0.2).__dict__}).to_dict()["noise_floor"]["psi"] == 0.2


def test_small_clean_days_rarely_warn_and_every_scenario_is_still_caught_at_full_size():
    """Issue 12's target: at 150 rows a day, <= 5 % of clean days warn and none go critical over 10 seeds,
    while every injected scenario flags exactly its drifted columns at the source's full daily size."""
    study = run_noise_study(rows_per_day=150, seeds=range(1, 11))
    assert study.clean_days >= 300
    assert study.clean_warn_rate <= 0.05, study.to_dict()
    assert study.clean_critical_days == 0, study.to_dict()
    assert study.detected == {s: 10 for s in study.detected} and len(study.detected) == 3, study.detected
    # the same days against fixed thresholds: what users saw before the floor (issue 12: 24 % at ~165 rows)
    fixed = run_noise_study(
        150, seeds=range(1, 4), thresholds=DriftThresholds(noise_quantile=None), scenarios=()
    )
    assert fixed.clean_warn_rate > 0.05, fixed.to_dict()


def test_the_report_shows_each_statistics_n_and_noise_floor():
    rows = scenario_rows("none", seed=1)
    day = rows[rows.event_date == rows.event_date.max()].head(150)
    summary = grade_day(reference_profile(rows), day, DriftThresholds())
    markdown = render_markdown(build_report(summary))
    header = next(line for line in markdown.splitlines() if line.startswith("| column"))
    assert "| n |" in header and "PSI (floor)" in header and "null rate ref -> cur (floor)" in header
    sessions = next(line for line in markdown.splitlines() if line.startswith("| sessions "))
    floor = next(a.result.noise_floor for a in summary.columns if a.column == "sessions")
    assert f"| {floor.current_n:,} |" in sessions and f"({floor.psi:.3f})" in sessions
    assert "quantile with no drift" in markdown


def test_a_count_statistic_sitting_exactly_on_its_floor_does_not_warn():
    """Two of 165 values outside the range is the out-of-range share's 99.9 % quantile when the reference holds
    ~5,000 values: reaching it happens on ~0.2 % of clean days, exceeding it on ~0.005 %."""
    floor = out_of_range_floor(4950, 165)
    assert floor == pytest.approx(2 / 165)
    on_floor = DriftResult(**{**_result(0.0, None).__dict__, "out_of_range_rate": 2 / 165, "noise_floor": NoiseFloor(0.999, 4950, 165, None, None, None, 0.0, floor)})  # fmt: skip
    assert assess_column(on_floor).severity is Severity.NONE
    above = DriftResult(**{**on_floor.__dict__, "out_of_range_rate": 3 / 165})
    assert assess_column(above).severity is Severity.WARN
