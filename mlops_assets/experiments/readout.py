"""One look at an experiment: its validity (sample ratio), each arm's churn, the effects, and the decision.

Why one type: the same readout is rendered in the Dagster UI, logged to MLflow, stored in the lakehouse and
read back by the next day's look (the decision is acted on once), so it has one serialization (``to_dict`` /
``from_dict``) instead of a dict per consumer.

The rules (``decide``), in order:
1. A sample-ratio mismatch (chi-square of the enrolled counts against the weights below ``srm_alpha``)
   invalidates the readout: assignment or exposure is broken, so no effect estimate can be trusted.
2. A guardrail breached by the treatment arm (contact rate, cost per customer) stops it for harm.
3. Before the planned horizon, only the always-valid (mSPRT) confidence sequence at ``early_stop_alpha`` may
   end the experiment: it excludes zero below (ship) or above (stop for harm). Looking every day is safe.
4. At the planned horizon (every wave's outcome final), the fixed-horizon test at ``alpha - early_stop_alpha``
   (the test the sample size was computed for) decides: ship on a significant drop in churn, stop for harm on
   a significant rise, otherwise keep the champion. Otherwise the experiment is still running: inconclusive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.experiments import stats
from mlops_assets.experiments.spec import Comparison, ExperimentSpec
from mlops_assets.serving.rollout import srm_test

SHIP = "ship"  # the treatment's model becomes @champion
KEEP = "keep"  # the horizon was reached without a significant difference: @champion stays
STOP_HARM = "stop_harm"  # the treatment is worse (or breached a guardrail): stopped, @champion stays
INCONCLUSIVE = "inconclusive"  # still running: nothing is decided yet
INVALID = "invalid"  # sample-ratio mismatch: the readout cannot be trusted, nothing is decided
FINAL = (SHIP, KEEP, STOP_HARM)

# Columns of the unit table ``analyze`` reads (one row per enrolled unit).
UNIT_COLUMNS = ("unit", "arm", "wave", "contacted", "covariate", "churned")


@dataclass(frozen=True)
class ArmReadout:
    arm: str
    enrolled: int  # every enrolled unit (counts for the sample ratio)
    final: int  # units whose outcome window has closed (the analysed sample)
    churned: int
    rate: float
    ci_low: float
    ci_high: float
    contact_rate: float
    cost_per_customer: float


@dataclass(frozen=True)
class EffectReadout:
    """Treatment minus control on churn (negative = fewer churners), three ways."""

    comparison: str
    diff: float
    ci_low: float
    ci_high: float
    relative_lift: float
    lift_ci_low: float
    lift_ci_high: float
    p_value: float  # fixed-horizon, two-sided (valid only at the planned horizon)
    seq_low: float  # always-valid confidence sequence (running intersection over the looks)
    seq_high: float
    seq_p_value: float  # always-valid p-value (running minimum over the looks)
    cuped_diff: float
    cuped_ci_low: float
    cuped_ci_high: float
    variance_reduction: float


@dataclass(frozen=True)
class Readout:
    experiment: str
    through: date  # outcomes known through this day
    look: int  # how many waves' outcomes are final (0: nothing to analyse yet)
    waves: int
    at_horizon: bool
    srm_p_value: float
    srm_chi2: float
    arms: tuple[ArmReadout, ...]
    primary: EffectReadout | None
    secondary: tuple[EffectReadout, ...]
    decision: str
    reasons: tuple[str, ...]
    versions: dict[str, str] = field(default_factory=dict)  # arm -> model version

    @property
    def final(self) -> bool:
        return self.decision in FINAL

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["through"] = self.through.isoformat()
        return stats.json_safe(d)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Readout:
        return cls(
            experiment=d["experiment"],
            through=date.fromisoformat(d["through"]),
            look=d["look"],
            waves=d["waves"],
            at_horizon=d["at_horizon"],
            srm_p_value=_float(d["srm_p_value"]),
            srm_chi2=_float(d["srm_chi2"]),
            arms=tuple(ArmReadout(**_floats(a)) for a in d["arms"]),
            primary=EffectReadout(**_floats(d["primary"])) if d["primary"] else None,
            secondary=tuple(EffectReadout(**_floats(e)) for e in d["secondary"]),
            decision=d["decision"],
            reasons=tuple(d["reasons"]),
            versions=dict(d.get("versions") or {}),
        )


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _floats(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_float(v) if v is None else v) for k, v in d.items()}


# --------------------------------------------------------------------------------------------------------
# The analysis
# --------------------------------------------------------------------------------------------------------


def analyze(
    units: pd.DataFrame, spec: ExperimentSpec, through: date, versions: dict[str, str] | None = None
) -> Readout:
    """The readout of ``units`` (``UNIT_COLUMNS``; ``churned`` may be null where the window is still open)
    with outcomes known through ``through``."""
    missing = sorted(set(UNIT_COLUMNS) - set(units.columns))
    if missing:
        raise ValueError(f"units: missing column(s) {missing}")
    final_waves = [w for w in spec.wave_days if spec.outcome_final(w, through)]
    enrolled_waves = sorted(set(units["wave"]))
    at_horizon = len(final_waves) == spec.waves and len(enrolled_waves) == spec.waves
    counts = [int((units["arm"] == a.name).sum()) for a in spec.arms]
    chi2, srm_p = srm_test(counts, [a.weight for a in spec.arms]) if sum(counts) else (0.0, 1.0)
    analysed = units[units["wave"].isin(final_waves)]
    arms = tuple(_arm_readout(units, analysed, a.name, spec) for a in spec.arms)
    primary = _effect(analysed, spec, spec.comparison, final_waves) if final_waves else None
    secondary = tuple(_effect(analysed, spec, c, final_waves) for c in spec.secondary) if final_waves else ()
    decision, reasons = decide(spec, arms, primary, srm_p, at_horizon, len(final_waves))
    return Readout(
        spec.name,
        through,
        len(final_waves),
        spec.waves,
        at_horizon,
        float(srm_p),
        float(chi2),
        arms,
        primary,
        secondary,
        decision,
        tuple(reasons),
        dict(versions or {}),
    )


def _arm_readout(units: pd.DataFrame, analysed: pd.DataFrame, arm: str, spec: ExperimentSpec) -> ArmReadout:
    mine = units[units["arm"] == arm]
    done = analysed[analysed["arm"] == arm]
    churned = int(done["churned"].sum())
    rate = stats.proportion_ci(churned, len(done), spec.alpha)
    contact_rate = float(mine["contacted"].mean()) if len(mine) else float("nan")
    return ArmReadout(
        arm,
        len(mine),
        len(done),
        churned,
        rate.rate,
        rate.ci_low,
        rate.ci_high,
        contact_rate,
        contact_rate * spec.contact_cost,
    )


def _sums(frame: pd.DataFrame, arm: str) -> tuple[int, int]:
    mine = frame[frame["arm"] == arm]
    return int(mine["churned"].sum()), len(mine)


def _effect(
    analysed: pd.DataFrame, spec: ExperimentSpec, c: Comparison, final_waves: list[date]
) -> EffectReadout:
    x_t, n_t = _sums(analysed, c.treatment)
    x_c, n_c = _sums(analysed, c.control)
    fixed = stats.fixed_horizon(x_t, n_t, x_c, n_c, spec.alpha_at_horizon)
    # One look per final wave: the always-valid readout is the running min / intersection over all of them.
    looks = [analysed[analysed["wave"] <= w] for w in final_waves]
    sums = np.array([[*_sums(f, c.treatment), *_sums(f, c.control)] for f in looks], dtype=float)
    seq = stats.msprt(sums[:, 0], sums[:, 1], sums[:, 2], sums[:, 3], spec.mde, spec.early_stop_alpha)
    run_p, run_low, run_high = stats.running_always_valid(seq.p_value, seq.cs_low, seq.cs_high)
    pair = analysed[analysed["arm"].isin([c.treatment, c.control])]
    cuped = stats.cuped(
        pair["churned"].to_numpy(float),
        pair["covariate"].to_numpy(float),
        (pair["arm"] == c.treatment).to_numpy(),
        spec.alpha_at_horizon,
    )
    return EffectReadout(
        c.describe(),
        fixed.diff,
        fixed.diff_ci_low,
        fixed.diff_ci_high,
        fixed.relative_lift,
        fixed.lift_ci_low,
        fixed.lift_ci_high,
        fixed.p_value,
        float(run_low[-1]),
        float(run_high[-1]),
        float(run_p[-1]),
        cuped.diff,
        cuped.ci_low,
        cuped.ci_high,
        cuped.variance_reduction,
    )


def decide(
    spec: ExperimentSpec,
    arms: tuple[ArmReadout, ...],
    primary: EffectReadout | None,
    srm_p_value: float,
    at_horizon: bool,
    look: int,
) -> tuple[str, list[str]]:
    """The decision and its reasons, by the rules in the module docstring."""
    c = spec.comparison
    if srm_p_value < spec.srm_alpha:
        counts = ", ".join(f"{a.arm} {a.enrolled:,}" for a in arms)
        shares = ", ".join(f"{a.name} {a.weight:.0%}" for a in spec.arms)
        return INVALID, [
            f"SAMPLE RATIO MISMATCH: enrolled {counts} against planned {shares} (chi-square p = "
            f"{srm_p_value:.2g} < {spec.srm_alpha}); assignment or exposure is broken: no effect is trusted"
        ]
    treated = next(a for a in arms if a.arm == c.treatment)
    g = spec.guardrails
    breaches = []
    if treated.contact_rate > g.max_contact_rate:
        breaches.append(f"contact rate {treated.contact_rate:.1%} > {g.max_contact_rate:.1%}")
    if treated.cost_per_customer > g.max_cost_per_customer:
        breaches.append(f"cost per customer {treated.cost_per_customer:.2f} > {g.max_cost_per_customer:.2f}")
    if breaches:
        return STOP_HARM, [f"guardrail breached by {c.treatment}: " + "; ".join(breaches)]
    if primary is None:
        return INCONCLUSIVE, [f"no wave's {spec.horizon_days}-day outcome is final yet (0 of {spec.waves})"]
    seq = f"always-valid {1 - spec.early_stop_alpha:.0%} CS [{primary.seq_low:+.4f}, {primary.seq_high:+.4f}]"
    if primary.seq_high < 0:
        return SHIP, [f"{c.describe()}: {seq} excludes 0 below: {c.treatment} lowers churn (early stop)"]
    if primary.seq_low > 0:
        return STOP_HARM, [f"{c.describe()}: {seq} excludes 0 above: {c.treatment} raises churn (early stop)"]
    if not at_horizon:
        return INCONCLUSIVE, [
            f"look {look} of {spec.waves}: {seq} contains 0; continue to the planned horizon"
        ]
    fixed = (
        f"diff {primary.diff:+.4f}, {1 - spec.alpha_at_horizon:.0%} CI [{primary.ci_low:+.4f}, "
        f"{primary.ci_high:+.4f}], p = {primary.p_value:.3g}"
    )
    if primary.p_value < spec.alpha_at_horizon and primary.diff < 0:
        return SHIP, [f"{c.describe()} at the planned horizon: {fixed}: {c.treatment} lowers churn"]
    if primary.p_value < spec.alpha_at_horizon and primary.diff > 0:
        return STOP_HARM, [f"{c.describe()} at the planned horizon: {fixed}: {c.treatment} raises churn"]
    return KEEP, [
        f"{c.describe()} at the planned horizon: {fixed}: no significant difference; keep {c.control}"
    ]
