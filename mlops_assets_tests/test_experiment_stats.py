"""The statistics of A/B and holdout experiments (issue 14): agreement with statsmodels and textbook formulas,
and simulated operating characteristics -- false positives, the cost of peeking, power, SRM detection and
CUPED -- each asserted within its Monte Carlo tolerance. Pure numpy, fixed seeds, vectorized: a few seconds.
Run with ``-s`` to see the measured rates."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit
from scipy.stats import chi2, ncx2, norm
from statsmodels.stats import proportion as sm_proportion

from mlops_assets.experiments.stats import (
    always_valid,
    cuped,
    fixed_horizon,
    msprt,
    proportion_ci,
    required_sample_size,
    running_always_valid,
    srm_p_values,
)
from mlops_assets.serving.rollout import srm_test

BASELINE = 0.17  # 30-day churn of the control arm
ALPHA = 0.05


def binomial_tolerance(rate: float, sims: int) -> float:
    """Three standard errors of a rate estimated from ``sims`` independent simulations."""
    return 3 * math.sqrt(rate * (1 - rate) / sims)


def report(name: str, **figures: object) -> None:
    print(f"\n[experiment stats] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# ------------------------------------------------------------------------------------------------------
# Agreement with statsmodels and the textbook
# ------------------------------------------------------------------------------------------------------


def test_sample_size_matches_the_pooled_variance_formula() -> None:
    baseline, mde = 0.17, 0.02
    n = required_sample_size(baseline, mde, ALPHA, 0.8)
    treated = baseline - mde
    pooled = (baseline + treated) / 2
    textbook = (
        norm.isf(ALPHA / 2) * math.sqrt(2 * pooled * (1 - pooled))
        + norm.isf(0.2) * math.sqrt(baseline * (1 - baseline) + treated * (1 - treated))
    ) ** 2 / mde**2
    report("sample size", n_per_arm=n, textbook=round(textbook))
    assert 5000 < n < 5600
    assert abs(n - textbook) / textbook < 0.02
    assert required_sample_size(baseline, -mde, ALPHA, 0.8) == n  # the sign of the mde is ignored
    assert required_sample_size(baseline, mde, ALPHA, 0.9) > n
    # An unequal split: the control arm needs more than half of an equal split's total, less than all of it.
    assert n < required_sample_size(baseline, mde, ALPHA, 0.8, ratio=0.5) < 3 * n


def test_fixed_horizon_equals_statsmodels_wald_and_log_ratio() -> None:
    cases = [(300, 2000, 340, 2000), (12, 150, 30, 160), (5000, 20000, 5200, 21000), (1, 40, 7, 35)]
    x_t, n_t, x_c, n_c = (np.array(column) for column in zip(*cases, strict=True))
    vectorized = fixed_horizon(x_t, n_t, x_c, n_c, ALPHA)
    for i, (xt, nt, xc, nc) in enumerate(cases):
        scalar = fixed_horizon(xt, nt, xc, nc, ALPHA)
        test = sm_proportion.test_proportions_2indep(xt, nt, xc, nc, method="wald", compare="diff")
        low, high = sm_proportion.confint_proportions_2indep(
            xt, nt, xc, nc, method="wald", compare="diff", alpha=ALPHA
        )
        ratio_low, ratio_high = sm_proportion.confint_proportions_2indep(
            xt, nt, xc, nc, method="log", compare="ratio", alpha=ALPHA
        )
        expected = {
            "z": test.statistic,
            "p_value": test.pvalue,
            "diff_ci_low": low,
            "diff_ci_high": high,
            "lift_ci_low": ratio_low - 1,
            "lift_ci_high": ratio_high - 1,
            "relative_lift": (xt / nt) / (xc / nc) - 1,
            "diff": xt / nt - xc / nc,
        }
        for name, value in expected.items():
            assert getattr(scalar, name) == pytest.approx(float(value), abs=1e-9), name
            assert getattr(vectorized, name)[i] == pytest.approx(float(value), abs=1e-9), name
    assert isinstance(scalar.p_value, float)
    json.dumps(scalar.to_dict(), allow_nan=False)


def test_proportion_ci_is_statsmodels_wilson() -> None:
    arm = proportion_ci(340, 2000, ALPHA)
    low, high = sm_proportion.proportion_confint(340, 2000, alpha=ALPHA, method="wilson")
    assert (arm.n, arm.successes, arm.rate) == (2000, 340, 0.17)
    assert (arm.ci_low, arm.ci_high) == pytest.approx((low, high), abs=1e-12)
    many = proportion_ci(np.array([0, 5, 40]), np.array([10, 50, 40]))
    assert many.ci_low[0] == 0.0 and many.ci_high[2] == 1.0 and many.ci_low[2] < 1.0
    assert np.all(many.ci_low <= many.rate) and np.all(many.rate <= many.ci_high)


def test_srm_p_values_equal_the_rollout_srm_test() -> None:
    cases = [
        ([5000, 5000], [0.5, 0.5]),
        ([5100, 4900], [0.5, 0.5]),
        ([950, 50], [0.95, 0.05]),
        ([300, 330, 370], [0.3, 0.3, 0.4]),
        ([0, 0], [0.5, 0.5]),
        ([10, 3], [1.0, 0.0]),  # units in a zero-share arm: an infinite mismatch
        ([10, 0], [1.0, 0.0]),
    ]
    for observed, shares in cases:
        assert srm_p_values(observed, shares) == pytest.approx(srm_test(observed, shares)[1], abs=1e-12)
    two_arm = [c for c in cases if len(c[0]) == 2 and c[1] == [0.5, 0.5]]
    batch = srm_p_values(np.array([c[0] for c in two_arm]), [0.5, 0.5])
    assert batch == pytest.approx([srm_test(o, s)[1] for o, s in two_arm], abs=1e-12)


def test_msprt_closed_form_boundary_and_containment() -> None:
    tau = 0.02
    readout = msprt(300, 2000, 340, 2000, tau, ALPHA)
    assert readout.cs_low < readout.diff < readout.cs_high
    # The confidence sequence is exactly the nulls whose likelihood ratio stays below 1/alpha.
    for edge in (readout.cs_low, readout.cs_high):
        assert msprt(300, 2000, 340, 2000, tau, ALPHA, null=edge).likelihood_ratio == pytest.approx(1 / ALPHA)
    assert readout.p_value == pytest.approx(min(1.0, 1 / readout.likelihood_ratio))
    # Wider than the fixed-horizon interval at the same look: the price of being valid at every look.
    fixed = fixed_horizon(300, 2000, 340, 2000, ALPHA)
    assert readout.cs_low < fixed.diff_ci_low and fixed.diff_ci_high < readout.cs_high
    # A large effect: the likelihood ratio overflows to inf (None in JSON), the p-value is 0, never a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        strong = msprt(100, 100000, 40000, 100000, tau, ALPHA)
    assert strong.p_value == 0.0 and strong.to_dict()["likelihood_ratio"] is None


# ------------------------------------------------------------------------------------------------------
# Simulated operating characteristics
# ------------------------------------------------------------------------------------------------------


def test_aa_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(1401)
    sims, n = 4000, 2000
    x_t, x_c = rng.binomial(n, BASELINE, size=(2, sims))
    fpr = float(np.mean(fixed_horizon(x_t, n, x_c, n, ALPHA).p_value < ALPHA))
    report("A/A fixed horizon", sims=sims, n_per_arm=n, false_positive_rate=round(fpr, 4))
    assert abs(fpr - ALPHA) <= binomial_tolerance(ALPHA, sims)


def test_peeking_inflates_fixed_horizon_but_not_msprt() -> None:
    rng = np.random.default_rng(1402)
    sims, looks, arrivals_per_day, tau = 2000, 28, 143, 0.02
    daily_t = rng.binomial(arrivals_per_day, 0.5, size=(sims, looks))  # 50/50 assignment of each day's units
    daily_c = arrivals_per_day - daily_t
    n_t, n_c = daily_t.cumsum(axis=-1), daily_c.cumsum(axis=-1)
    x_t = rng.binomial(daily_t, BASELINE).cumsum(axis=-1)
    x_c = rng.binomial(daily_c, BASELINE).cumsum(axis=-1)

    fixed = fixed_horizon(x_t, n_t, x_c, n_c, ALPHA)
    peeking_fpr = float(np.mean((fixed.p_value < ALPHA).any(axis=-1)))
    last_look_fpr = float(np.mean(fixed.p_value[:, -1] < ALPHA))
    readouts = msprt(x_t, n_t, x_c, n_c, tau, ALPHA)
    path = running_always_valid(readouts.p_value, readouts.cs_low, readouts.cs_high)
    sequential_fpr = float(np.mean(path.p_value[:, -1] < ALPHA))
    cs_excludes_zero = float(np.mean(((path.cs_low > 0) | (path.cs_high < 0)).any(axis=-1)))
    report(
        "A/A peeking, 28 daily looks",
        sims=sims,
        n_per_arm_at_end=int(np.mean(n_t[:, -1])),
        fixed_any_look=round(peeking_fpr, 4),
        fixed_last_look_only=round(last_look_fpr, 4),
        msprt_any_look=round(sequential_fpr, 4),
        msprt_cs_excludes_0_any_look=round(cs_excludes_zero, 4),
    )
    assert peeking_fpr > 0.10
    assert sequential_fpr <= ALPHA
    assert cs_excludes_zero <= ALPHA
    assert abs(last_look_fpr - ALPHA) <= binomial_tolerance(ALPHA, sims)


def test_power_at_the_planned_sample_size() -> None:
    rng = np.random.default_rng(1403)
    sims, treated_rate = 4000, 0.14
    n = required_sample_size(BASELINE, BASELINE - treated_rate, ALPHA, 0.8)
    x_t = rng.binomial(n, treated_rate, size=sims)
    x_c = rng.binomial(n, BASELINE, size=sims)
    effect = fixed_horizon(x_t, n, x_c, n, ALPHA)
    power = float(np.mean(effect.p_value < ALPHA))
    report("power at planned n", n_per_arm=n, sims=sims, power=round(power, 4))
    assert abs(power - 0.8) <= 0.03
    assert np.all(effect.diff[effect.p_value < ALPHA] < 0)  # no significant result in the wrong direction


def test_srm_detects_a_two_percent_drop_of_one_arm() -> None:
    rng = np.random.default_rng(1404)
    sims, drop, threshold, wanted = 2000, 0.02, 0.001, 0.95
    # The observed shares when arm B loses 2 % of its units; chi-square noncentrality per observed unit.
    observed_shares = np.array([0.5, 0.5 * (1 - drop)]) / (1 - drop / 2)
    noncentrality_per_unit = float(np.sum((observed_shares - 0.5) ** 2 / 0.5))
    critical = chi2.isf(threshold, 1)
    needed = brentq(lambda lam: ncx2.sf(critical, 1, lam) - wanted, 1e-6, 1e4)
    assigned = math.ceil(needed / noncentrality_per_unit / (1 - drop / 2))
    arm_a = rng.binomial(assigned, 0.5, size=sims)  # 50/50 assignment of the planned units
    arm_b = assigned - arm_a
    kept_b = rng.binomial(arm_b, 1 - drop)  # each of B's exposures is lost with probability 2 %
    detected = float(np.mean(srm_p_values(np.stack([arm_a, kept_b], axis=-1), [0.5, 0.5]) < threshold))
    false_alarm = float(np.mean(srm_p_values(np.stack([arm_a, arm_b], axis=-1), [0.5, 0.5]) < threshold))
    report(
        "SRM, 2% of arm B dropped",
        units_assigned=assigned,
        sims=sims,
        detected=round(detected, 4),
        flagged_without_drop=round(false_alarm, 4),
    )
    assert detected >= 0.90
    assert false_alarm <= threshold + binomial_tolerance(threshold, sims)
    # One simulated experiment through the rollout's own test reads the same.
    assert srm_test([int(arm_a[0]), int(kept_b[0])], [0.5, 0.5])[1] == pytest.approx(
        srm_p_values([arm_a[0], kept_b[0]], [0.5, 0.5])
    )


def test_cuped_is_unbiased_narrower_and_covers() -> None:
    rng = np.random.default_rng(1405)
    sims, units, intercept, slope, logit_effect = 2000, 2000, -2.5, 2.0, -0.25  # churn ~0.17
    risk = rng.standard_normal((sims, units))  # latent churn risk
    x = risk + 0.3 * rng.standard_normal((sims, units))  # pre-period covariate: a noisy read of the risk
    treated = rng.random((sims, units)) < 0.5
    y = (rng.random((sims, units)) < expit(intercept + slope * risk + logit_effect * treated)).astype(float)
    # The true average effect on the probability scale, by Gauss-Hermite quadrature over the risk.
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / weights.sum()
    base_logit = intercept + slope * nodes
    true_effect = float(np.sum(weights * (expit(base_logit + logit_effect) - expit(base_logit))))

    effect = cuped(y, x, treated, ALPHA)
    bias = float(np.mean(effect.diff) - true_effect)
    bias_tolerance = 3 * float(np.std(effect.diff)) / math.sqrt(sims)
    width_ratio = (effect.ci_high - effect.ci_low) / (effect.plain_ci_high - effect.plain_ci_low)
    coverage = float(np.mean((effect.ci_low <= true_effect) & (true_effect <= effect.ci_high)))
    plain_coverage = float(
        np.mean((effect.plain_ci_low <= true_effect) & (true_effect <= effect.plain_ci_high))
    )
    report(
        "CUPED",
        sims=sims,
        units=units,
        true_effect=round(true_effect, 5),
        bias=f"{bias:+.5f} (tolerance {bias_tolerance:.5f})",
        mean_ci_width_ratio=round(float(np.mean(width_ratio)), 4),
        max_ci_width_ratio=round(float(np.max(width_ratio)), 4),
        mean_variance_reduction=round(float(np.mean(effect.variance_reduction)), 4),
        coverage=round(coverage, 4),
        plain_coverage=round(plain_coverage, 4),
    )
    assert abs(bias) <= bias_tolerance
    assert np.all(width_ratio < 1.0)
    assert float(np.mean(width_ratio)) < 0.9  # at least 10 % narrower on average with this covariate
    assert abs(coverage - 0.95) <= binomial_tolerance(0.95, sims)
    assert abs(float(np.mean(effect.plain_diff)) - true_effect) <= 3 * float(
        np.std(effect.plain_diff)
    ) / math.sqrt(sims)


# ------------------------------------------------------------------------------------------------------
# Edge cases
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "parameter"),
    [
        ({"baseline": 0.0}, "baseline"),
        ({"baseline": 1.2}, "baseline"),
        ({"mde": 0.0}, "mde"),
        ({"mde": 0.3}, "mde"),  # larger than the baseline: a negative rate
        ({"mde": "a lot"}, "mde"),
        ({"alpha": 0.0}, "alpha"),
        ({"power": 1.0}, "power"),
        ({"power": 0.01}, "power"),  # below alpha: no sample size achieves it meaningfully
        ({"ratio": 0.0}, "ratio"),
        ({"ratio": math.inf}, "ratio"),
    ],
)
def test_sample_size_validation_names_the_parameter(arguments: dict, parameter: str) -> None:
    values = {"baseline": 0.17, "mde": 0.02, "alpha": 0.05, "power": 0.8, **arguments}
    with pytest.raises(ValueError, match=rf"^{parameter}\b"):
        required_sample_size(**values)


def test_invalid_counts_name_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"^x_t must not exceed n_t"):
        fixed_horizon(11, 10, 1, 10)
    with pytest.raises(ValueError, match=r"^n_c\b"):
        fixed_horizon(1, 10, 1, -10)
    with pytest.raises(ValueError, match=r"^alpha\b"):
        proportion_ci(1, 10, alpha=1.5)
    with pytest.raises(ValueError, match=r"^tau\b"):
        msprt(1, 10, 1, 10, tau=0.0)
    with pytest.raises(ValueError, match=r"^null\b"):
        msprt(1, 10, 1, 10, tau=0.02, null=None)
    with pytest.raises(ValueError, match=r"^treated\b"):
        cuped([0.0, 1.0], [0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match=r"^shares\b"):
        srm_p_values([10, 10], [0.5, 0.6])


def test_degenerate_inputs_give_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked divide-by-zero RuntimeWarning fails the test
        empty = fixed_horizon(0, 0, 5, 10)
        flat = fixed_horizon(0, 10, 0, 10)  # zero variance in both arms
        no_control_churn = fixed_horizon(3, 10, 0, 10)
        arm = proportion_ci(0, 0)
        sequential = msprt(0, 10, 0, 10, tau=0.02)
        batch = fixed_horizon(np.array([0, 3]), np.array([0, 10]), np.array([0, 4]), np.array([10, 10]))
        too_small = cuped([1.0, 0.0, 1.0], [0.3, 0.1, 0.2], [True, False, False])  # one treated unit
    assert all(math.isnan(value) for value in vars(empty).values())
    assert flat.diff == 0.0 and math.isnan(flat.p_value) and math.isnan(flat.diff_ci_low)
    assert not math.isnan(no_control_churn.p_value) and math.isnan(no_control_churn.relative_lift)
    assert math.isnan(no_control_churn.lift_ci_low)
    assert math.isnan(arm.rate) and math.isnan(arm.ci_low)
    assert math.isnan(sequential.p_value) and math.isnan(sequential.cs_low)
    assert np.isnan(batch.p_value[0]) and not np.isnan(batch.p_value[1])
    assert math.isnan(too_small.se) and math.isnan(too_small.plain_se)
    for result in (empty, flat, arm, sequential, too_small):
        json.dumps(result.to_dict(), allow_nan=False)  # NaN is None in the dict


def test_cuped_with_a_constant_covariate_is_the_plain_difference() -> None:
    rng = np.random.default_rng(1406)
    y = (rng.random(500) < 0.2).astype(float)
    treated = rng.random(500) < 0.5
    effect = cuped(y, np.full(500, 0.1), treated)
    assert effect.theta == 0.0
    assert (effect.diff, effect.se, effect.ci_low) == (
        effect.plain_diff,
        effect.plain_se,
        effect.plain_ci_low,
    )
    assert effect.variance_reduction == 0.0
    # The adjusted difference is the plain one minus theta times the covariate's arm gap.
    x = y + rng.standard_normal(500)
    informative = cuped(y, x, treated)
    x_gap = np.mean(x[treated]) - np.mean(x[~treated])
    assert isinstance(informative.theta, float) and 0 < informative.theta < 1
    assert informative.diff == pytest.approx(informative.plain_diff - informative.theta * x_gap)


def test_always_valid_running_readout_is_monotone() -> None:
    rng = np.random.default_rng(1407)
    daily = rng.binomial(100, [[0.15], [0.18]], size=(2, 20))  # treatment, control churners per day
    n = np.arange(1, 21) * 100
    readouts = [
        msprt(daily[0, : k + 1].sum(), n[k], daily[1, : k + 1].sum(), n[k], tau=0.02) for k in range(20)
    ]
    path = always_valid(readouts)
    assert path.p_value.shape == (20,)
    running_p, running_low, running_high = path  # unpacks in field order
    assert running_p is path.p_value and running_low is path.cs_low and running_high is path.cs_high
    assert np.all(np.diff(path.p_value) <= 0)
    assert np.all(np.diff(path.cs_low) >= 0) and np.all(np.diff(path.cs_high) <= 0)
    last = readouts[-1]
    assert path.cs_low[-1] >= last.cs_low and path.cs_high[-1] <= last.cs_high
    # NaN looks (no data yet) are skipped, and the result is the same vectorized over a batch.
    padded = running_always_valid(
        [np.nan, 0.5, 0.2, 0.3], [np.nan, -0.1, -0.05, -0.08], [np.nan, 0.1, 0.02, 0.04]
    )
    assert padded.p_value.tolist()[1:] == [0.5, 0.2, 0.2]
    assert padded.cs_low.tolist()[1:] == [-0.1, -0.05, -0.05] and padded.cs_high.tolist()[1:] == [
        0.1,
        0.02,
        0.02,
    ]
    batch = running_always_valid(np.stack([path.p_value, path.p_value]), np.zeros((2, 20)), np.ones((2, 20)))
    assert batch.p_value.shape == (2, 20) and not batch.empty.any()
    with pytest.raises(ValueError, match=r"^p_values, cs_lows and cs_highs"):
        running_always_valid([0.1, 0.2], [0.0], [1.0])
