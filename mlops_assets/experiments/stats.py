"""The statistics of an experiment on a binary metric (a unit churned within 30 days or not).

Pure numpy/scipy/statsmodels, so every number of a readout can be unit-tested and simulated. Effects are
direction-neutral: ``effect = treatment - control`` (for churn, negative is better). Counts may be scalars or
numpy arrays of many simulated experiments (any leading shape); results then hold arrays of the same shape.
Degenerate inputs (an empty arm, zero variance) give NaN fields, never an exception: a readout job reports
"not enough data" instead of crashing.

Two readouts of the same difference: ``fixed_horizon`` for the one look at the planned sample size, and the
always-valid ``msprt`` + ``running_always_valid`` for the looks taken every day before it (see its section
for why the daily looks need it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.stats import chi2, norm
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint, proportion_effectsize

FloatOrArray = float | np.ndarray
IntOrArray = int | np.ndarray


def json_safe(value: Any) -> Any:
    """Python scalars and nested lists and dicts, with NaN and +-inf as None (strict JSON has neither)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


class Result:
    """Mixin of the frozen result dataclasses: ``to_dict()`` gives JSON-safe values."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: json_safe(getattr(self, f.name)) for f in fields(self)}


def as_result(value: Any) -> FloatOrArray:
    """A 0-d answer as a Python float (scalar calls read naturally), anything else as a float array."""
    array = np.asarray(value, dtype=float)
    return float(array) if array.ndim == 0 else array


def as_counts(value: Any) -> IntOrArray:
    array = np.asarray(value)
    return int(array) if array.ndim == 0 else array


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float strictly inside (0, 1), or a ValueError naming the parameter."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in (0, 1), got {value!r}") from None
    if not 0.0 < number < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return number


def check_number(name: str, value: Any, positive: bool = False) -> float:
    """``value`` as a finite float (> 0 if ``positive``), or a ValueError naming the parameter."""
    wanted = "a positive number" if positive else "a finite number"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {wanted}, got {value!r}") from None
    if not math.isfinite(number) or (positive and number <= 0):
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return number


def check_counts(successes_name: str, successes: Any, n_name: str, n: Any) -> tuple[np.ndarray, np.ndarray]:
    """Success and unit counts as float arrays: finite, >= 0, successes <= n (else a ValueError naming them)."""
    x, m = np.asarray(successes, dtype=float), np.asarray(n, dtype=float)
    for name, array in ((successes_name, x), (n_name, m)):
        if not np.all(np.isfinite(array)) or np.any(array < 0):
            raise ValueError(f"{name} must be finite counts >= 0")
    if np.any(x > m):
        raise ValueError(f"{successes_name} must not exceed {n_name} (more successes than units)")
    return x, m


def z_critical(alpha: float) -> float:
    """The two-sided normal quantile z_{1 - alpha/2}."""
    return float(norm.isf(alpha / 2.0))


# ------------------------------------------------------------------------------------------------------
# Planning
# ------------------------------------------------------------------------------------------------------


def required_sample_size(baseline: float, mde: float, alpha: float, power: float, ratio: float = 1.0) -> int:
    """Units in the control arm (the other arm gets ``ratio`` times as many) for a two-sided test of two
    proportions to detect ``baseline`` vs ``baseline - |mde|`` with probability ``power`` at level ``alpha``.

    ``mde`` is the absolute difference; its sign is ignored and the smaller rate is the alternative (a churn
    drop). The effect size is Cohen's h (arcsine transform, statsmodels ``proportion_effectsize``), solved by
    ``NormalIndPower``; it agrees with the textbook pooled-variance formula within about 1 %.
    """
    base = check_fraction("baseline", baseline)
    drop = abs(check_number("mde", mde))
    if not 0.0 < drop < base:
        raise ValueError(f"mde must be non-zero and smaller than baseline {base:g} in size, got {mde!r}")
    level = check_fraction("alpha", alpha)
    wanted = check_fraction("power", power)
    if wanted <= level:
        raise ValueError(f"power must exceed alpha ({level:g}), got {power!r}")
    arm_ratio = check_number("ratio", ratio, positive=True)
    effect = abs(float(proportion_effectsize(base, base - drop)))
    n = NormalIndPower().solve_power(
        effect_size=effect, alpha=level, power=wanted, ratio=arm_ratio, alternative="two-sided"
    )
    return math.ceil(float(np.squeeze(n)))


# ------------------------------------------------------------------------------------------------------
# One arm, and the fixed-horizon difference
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArmRate(Result):
    """One arm's rate with a Wilson interval (coverage holds near 0 and 1, where Wald's does not)."""

    n: IntOrArray
    successes: IntOrArray
    rate: FloatOrArray
    ci_low: FloatOrArray
    ci_high: FloatOrArray


def proportion_ci(successes: Any, n: Any, alpha: float = 0.05) -> ArmRate:
    """The rate ``successes / n`` and its Wilson (1927) interval at level 1 - alpha (statsmodels
    ``proportion_confint``); NaN for an empty arm."""
    level = check_fraction("alpha", alpha)
    x, m = check_counts("successes", successes, "n", n)
    has_units = m > 0
    safe_n = np.where(has_units, m, 1.0)  # an empty arm has x = 0: 0/1 keeps statsmodels free of 0/0
    low, high = proportion_confint(x, safe_n, alpha=level, method="wilson")
    nan = np.nan
    return ArmRate(
        n=as_counts(n),
        successes=as_counts(successes),
        rate=as_result(np.where(has_units, x / safe_n, nan)),
        ci_low=as_result(np.where(has_units, low, nan)),
        ci_high=as_result(np.where(has_units, high, nan)),
    )


@dataclass(frozen=True)
class FixedHorizonEffect(Result):
    """Treatment minus control, read once at the planned horizon: valid only if nobody acted on earlier looks."""

    diff: FloatOrArray  # p_t - p_c
    diff_ci_low: FloatOrArray
    diff_ci_high: FloatOrArray
    relative_lift: FloatOrArray  # p_t / p_c - 1
    lift_ci_low: FloatOrArray
    lift_ci_high: FloatOrArray
    p_value: FloatOrArray  # two-sided, H0: diff = 0
    z: FloatOrArray


def fixed_horizon(x_t: Any, n_t: Any, x_c: Any, n_c: Any, alpha: float = 0.05) -> FixedHorizonEffect:
    """The difference in proportions with a Wald interval and the two-sided unpooled-variance z-test (equal
    to statsmodels ``test_proportions_2indep``/``confint_proportions_2indep`` with ``method='wald'``), and the
    relative lift with the delta-method interval on the log ratio (statsmodels' ``compare='ratio',
    method='log'``). Vectorized over any leading shape.

    The p-value holds only for a single look at a horizon fixed in advance: checking it every day and
    stopping at the first p < alpha multiplies false positives (``msprt`` is the readout that may be
    watched). An empty arm or zero variance (all 0 or all 1 in both arms) gives NaN; the observed
    diff is still reported when both arms have units.
    """
    level = check_fraction("alpha", alpha)
    xt, nt = check_counts("x_t", x_t, "n_t", n_t)
    xc, nc = check_counts("x_c", x_c, "n_c", n_c)
    z_crit = z_critical(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_t, p_c = xt / nt, xc / nc  # 0/0 -> NaN for an empty arm
        diff = p_t - p_c
        variance = p_t * (1 - p_t) / nt + p_c * (1 - p_c) / nc
        se = np.sqrt(np.where(variance > 0, variance, np.nan))
        z = diff / se
        lift = np.where(p_c > 0, p_t / p_c - 1.0, np.nan)
        # Var(log p_hat) = (1 - p) / (n p) = 1/x - 1/n by the delta method; undefined with a zero count.
        log_variance = np.where((xt > 0) & (xc > 0), 1 / xt - 1 / nt + 1 / xc - 1 / nc, np.nan)
        log_half_width = z_crit * np.sqrt(np.where(log_variance > 0, log_variance, np.nan))
        log_ratio = np.log(np.where((xt > 0) & (xc > 0), p_t / p_c, np.nan))
        return FixedHorizonEffect(
            diff=as_result(diff),
            diff_ci_low=as_result(diff - z_crit * se),
            diff_ci_high=as_result(diff + z_crit * se),
            relative_lift=as_result(lift),
            lift_ci_low=as_result(np.expm1(log_ratio - log_half_width)),
            lift_ci_high=as_result(np.expm1(log_ratio + log_half_width)),
            p_value=as_result(2.0 * norm.sf(np.abs(z))),
            z=as_result(z),
        )


# ------------------------------------------------------------------------------------------------------
# CUPED
# ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CupedEffect(Result):
    """The CUPED-adjusted difference beside the plain one, so a readout shows what the adjustment bought."""

    theta: FloatOrArray  # cov(y, x) / var(x), pooled over both arms
    diff: FloatOrArray  # adjusted mean difference, treatment - control
    ci_low: FloatOrArray
    ci_high: FloatOrArray
    se: FloatOrArray
    plain_diff: FloatOrArray
    plain_ci_low: FloatOrArray
    plain_ci_high: FloatOrArray
    plain_se: FloatOrArray
    variance_reduction: FloatOrArray  # 1 - se^2 / plain_se^2: the share of the variance removed


def _mean_difference(values: np.ndarray, treated: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Difference of arm means along the last axis and its unequal-variance standard error (NaN below 2
    units in an arm or with zero variance)."""
    control = ~treated
    n_t, n_c = treated.sum(axis=-1), control.sum(axis=-1)
    mean_t = np.where(treated, values, 0.0).sum(axis=-1) / n_t
    mean_c = np.where(control, values, 0.0).sum(axis=-1) / n_c
    ss_t = np.where(treated, values - mean_t[..., None], 0.0) ** 2
    ss_c = np.where(control, values - mean_c[..., None], 0.0) ** 2
    variance = ss_t.sum(axis=-1) / (n_t - 1) / n_t + ss_c.sum(axis=-1) / (n_c - 1) / n_c
    valid = (n_t >= 2) & (n_c >= 2) & (variance > 0)
    return mean_t - mean_c, np.sqrt(np.where(valid, variance, np.nan))


def cuped(y: Any, x: Any, treated: Any, alpha: float = 0.05) -> CupedEffect:
    """CUPED (Deng, Xu, Kohavi & Walker 2013): the difference of means of ``y - theta (x - mean x)``, where
    ``x`` is a pre-period covariate that the treatment cannot affect. Its expectation is the plain
    difference's (randomization balances x), its variance smaller by the share of y's variance that x
    explains: the same decision needs fewer units. Normal interval with unequal variances.

    ``y`` (0/1 outcomes), ``x`` (any real) and ``treated`` (bool) hold units on the last axis and broadcast
    (2-D: simulations x units). A constant x explains nothing: theta 0, CUPED equals plain.
    """
    level = check_fraction("alpha", alpha)
    outcome, covariate = np.asarray(y, dtype=float), np.asarray(x, dtype=float)
    arm = np.asarray(treated)
    if arm.dtype != np.bool_:
        raise ValueError(f"treated must be booleans, got dtype {arm.dtype}")
    for name, array in (("y", outcome), ("x", covariate)):
        if array.ndim == 0 or not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be an array of finite numbers with units on the last axis")
    outcome, covariate, arm = np.broadcast_arrays(outcome, covariate, arm)
    z_crit = z_critical(level)
    with np.errstate(divide="ignore", invalid="ignore"):
        centered_x = covariate - covariate.mean(axis=-1, keepdims=True)
        centered_y = outcome - outcome.mean(axis=-1, keepdims=True)
        var_x = (centered_x**2).mean(axis=-1)
        cov_xy = (centered_x * centered_y).mean(axis=-1)
        constant_x = np.ptp(covariate, axis=-1) == 0  # exact, unlike var_x == 0 after rounding
        theta = np.where(constant_x, 0.0, cov_xy / np.where(constant_x, 1.0, var_x))
        diff, se = _mean_difference(outcome - theta[..., None] * centered_x, arm)
        plain_diff, plain_se = _mean_difference(outcome, arm)
        return CupedEffect(
            theta=as_result(theta),
            diff=as_result(diff),
            ci_low=as_result(diff - z_crit * se),
            ci_high=as_result(diff + z_crit * se),
            se=as_result(se),
            plain_diff=as_result(plain_diff),
            plain_ci_low=as_result(plain_diff - z_crit * plain_se),
            plain_ci_high=as_result(plain_diff + z_crit * plain_se),
            plain_se=as_result(plain_se),
            variance_reduction=as_result(1.0 - se**2 / plain_se**2),
        )


# ------------------------------------------------------------------------------------------------------
# Sample ratio mismatch, vectorized for simulations
# ------------------------------------------------------------------------------------------------------


def srm_p_values(counts: Any, shares: Any) -> FloatOrArray:
    """Chi-square goodness-of-fit p-values of arm counts (arms on the last axis, e.g. simulations x arms) to
    their assigned shares: the vectorized twin of ``serving.rollout.srm_test``, with its conventions (no
    units: p = 1; units in a zero-share arm: p = 0). A small p says the split is not the one assigned, so
    every number of the readout is suspect."""
    observed = np.asarray(counts, dtype=float)
    expected_shares = np.asarray(shares, dtype=float)
    if expected_shares.ndim != 1 or not np.all(np.isfinite(expected_shares)) or np.any(expected_shares < 0):
        raise ValueError("shares must be a 1-D sequence of finite shares >= 0")
    if not math.isclose(float(expected_shares.sum()), 1.0, abs_tol=1e-9):
        raise ValueError(f"shares must sum to 1, got {float(expected_shares.sum()):g}")
    if observed.ndim == 0 or observed.shape[-1] != expected_shares.size:
        raise ValueError(f"counts must have one column per share ({expected_shares.size}) on the last axis")
    if not np.all(np.isfinite(observed)) or np.any(observed < 0):
        raise ValueError("counts must be finite counts >= 0")
    assigned = expected_shares > 0
    total = observed.sum(axis=-1)
    safe_total = np.where(total > 0, total, 1.0)
    expected = safe_total[..., None] * expected_shares[assigned]
    statistic = ((observed[..., assigned] - expected) ** 2 / expected).sum(axis=-1)
    dof = int(assigned.sum()) - 1
    p = chi2.sf(statistic, dof) if dof > 0 else np.where(statistic > 0, 0.0, 1.0)
    p = np.where(statistic > 0, p, 1.0)
    p = np.where((observed[..., ~assigned] > 0).any(axis=-1), 0.0, p)
    return as_result(np.where(total > 0, p, 1.0))


# ------------------------------------------------------------------------------------------------------
# The always-valid sequential readout
# ------------------------------------------------------------------------------------------------------
#
# Why: a fixed-horizon p-value is valid for one look at a sample size fixed in advance. Reading it daily and
# stopping at the first p < 0.05 rejects a true null far more often than 5 % (about 30 % over 28 daily looks
# in ``test_experiment_stats``), because the z-statistic's path crosses any fixed line eventually. The mixture
# sequential probability ratio test (mSPRT) of Johari, Pekelis & Walsh (2017, "Always valid inference")
# bounds the chance that its likelihood ratio *ever* exceeds 1/alpha under the null by alpha (Ville's
# inequality; approximately, with a plug-in variance), so its p-values and confidence sequences hold at every
# look at once, and stopping as soon as they say so is safe. The price is width: its interval is wider than
# the fixed-horizon one at the same look, and with daily rather than continuous looks it is conservative.


@dataclass(frozen=True)
class SequentialReadout(Result):
    """One look of the mSPRT on treatment - control: valid at this look whenever it is taken."""

    diff: FloatOrArray  # p_t - p_c
    cs_low: FloatOrArray  # the confidence sequence at level 1 - alpha at this look
    cs_high: FloatOrArray
    p_value: FloatOrArray  # min(1, 1 / likelihood_ratio): this look's always-valid p-value
    likelihood_ratio: FloatOrArray  # the mixture likelihood ratio against the null (inf if it overflows)


def msprt(
    x_t: Any, n_t: Any, x_c: Any, n_c: Any, tau: float, alpha: float = 0.05, null: float = 0.0
) -> SequentialReadout:
    """The normal-mixture mSPRT on the difference in proportions at one look (vectorized over any shape).

    With the plug-in variance ``se^2 = p_t(1-p_t)/n_t + p_c(1-p_c)/n_c``, a N(null, tau^2) mixture over the
    true difference and ``d = diff - null``:
    ``Lambda = sqrt(se^2 / (se^2 + tau^2)) * exp(tau^2 d^2 / (2 se^2 (se^2 + tau^2)))``.
    The confidence sequence is every null with Lambda < 1/alpha, in closed form
    ``diff +- sqrt(se^2 (se^2 + tau^2) / tau^2 * (2 ln(1/alpha) + ln((se^2 + tau^2) / se^2)))``.
    ``tau`` is the effect size the test is most sensitive to (pass the MDE). One look's p-value is valid at
    that look; to stop on *any* look, combine the looks with ``running_always_valid``. An empty arm or zero
    variance gives NaN (no evidence yet).
    """
    level = check_fraction("alpha", alpha)
    tau2 = check_number("tau", tau, positive=True) ** 2
    null_diff = check_number("null", null)
    xt, nt = check_counts("x_t", x_t, "n_t", n_t)
    xc, nc = check_counts("x_c", x_c, "n_c", n_c)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        p_t, p_c = xt / nt, xc / nc
        diff = p_t - p_c
        variance = p_t * (1 - p_t) / nt + p_c * (1 - p_c) / nc
        v = np.where(variance > 0, variance, np.nan)
        d = diff - null_diff
        log_lr = 0.5 * np.log(v / (v + tau2)) + tau2 * d**2 / (2 * v * (v + tau2))
        half_width = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / level) + np.log((v + tau2) / v)))
        return SequentialReadout(
            diff=as_result(diff),
            cs_low=as_result(np.where(np.isnan(v), np.nan, diff - half_width)),
            cs_high=as_result(np.where(np.isnan(v), np.nan, diff + half_width)),
            p_value=as_result(np.minimum(1.0, np.exp(-log_lr))),
            likelihood_ratio=as_result(np.exp(log_lr)),
        )


@dataclass(frozen=True)
class AlwaysValidPath(Result):
    """The always-valid readout after each look (looks on the last axis): what a decision may act on."""

    p_value: np.ndarray  # running minimum of the looks' p-values
    cs_low: np.ndarray  # running intersection of the looks' confidence sequences
    cs_high: np.ndarray

    @property
    def empty(self) -> np.ndarray:
        """Looks after which the intersection is empty: no constant effect fits every look (a drifting effect
        or a broken pipeline), so the readout should be examined rather than trusted."""
        return self.cs_low > self.cs_high

    def __iter__(self) -> Iterator[np.ndarray]:
        """Unpacks as ``p_value, cs_low, cs_high``."""
        return iter((self.p_value, self.cs_low, self.cs_high))


def running_always_valid(p_values: Any, cs_lows: Any, cs_highs: Any) -> AlwaysValidPath:
    """The running minimum p-value and the running intersection of the intervals along the last axis (looks).

    Why it is valid: every look's mSPRT interval covers the true effect simultaneously with probability
    1 - alpha, so their intersection does too, and the minimum p-value is below alpha with probability at
    most alpha under the null. This is what makes "stop the first day it is significant" safe; the same
    running minimum of fixed-horizon p-values is not. NaN looks (no data yet) are skipped.
    """
    p, low, high = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (p_values, cs_lows, cs_highs))
    if not p.shape == low.shape == high.shape:
        raise ValueError(
            f"p_values, cs_lows and cs_highs must have the same shape, got {p.shape}, {low.shape}, {high.shape}"
        )
    return AlwaysValidPath(
        p_value=np.fmin.accumulate(p, axis=-1),  # fmin/fmax: a NaN look leaves the running value alone
        cs_low=np.fmax.accumulate(low, axis=-1),
        cs_high=np.fmin.accumulate(high, axis=-1),
    )


def always_valid(readouts_over_looks: Sequence[SequentialReadout]) -> AlwaysValidPath:
    """``running_always_valid`` of the ``msprt`` readouts of successive looks, in the order taken."""
    if not readouts_over_looks:
        raise ValueError("readouts_over_looks must hold at least one look")

    def stacked(name: str) -> np.ndarray:
        return np.stack([np.asarray(getattr(r, name), dtype=float) for r in readouts_over_looks], axis=-1)

    return running_always_valid(stacked("p_value"), stacked("cs_low"), stacked("cs_high"))
