"""The promotion gate's decision as a pure function of headline numbers and a policy.

Why pure: the Dagster asset that moves the registry alias only fetches the numbers and acts on the result;
the rules live here, where each one can be tested in isolation and explained in a sentence. Every rule
yields one human-readable reason (PASS or FAIL) so an operator sees why a model was or was not promoted.

Inputs are ``EvaluationReport.headline()``-style dicts: the challenger's, the champion's on the same rows
(``EvaluationReport.champion_headline()``) or None for the first model, and the trivial baseline's
(``EvaluationReport.baseline_headline()``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlops_assets.ml.metrics import HIGHER_IS_BETTER

# The three outcomes: move @champion, keep it (the challenger is fine but not materially different), or refuse.
PROMOTE = "promote"
KEEP_CHAMPION = "keep_champion"
REFUSE = "refuse"
OUTCOMES = (PROMOTE, KEEP_CHAMPION, REFUSE)
MATERIAL_CHANGE = "material_change"


@dataclass(frozen=True)
class PromotionPolicy:
    primary_metric: str = "roc_auc"
    non_inferiority_margin: float = 0.01  # challenger may be at most this much worse than the champion
    min_lift_over_baseline: float = 0.02
    max_ece: float = 0.1
    min_demographic_parity_ratio: float = 0.6
    max_equal_opportunity_difference: float = 0.25
    # "point": compare point estimates. "paired_ci": require the paired-bootstrap 95% CI of the difference
    # to clear the margin (a formal non-inferiority test; strict on small test sets).
    non_inferiority_test: Literal["point", "paired_ci"] = "point"
    # Missing fairness numbers (no protected attributes, groups too small) fail the gate instead of passing.
    require_fairness: bool = False
    # A challenger whose paired 95% CI of the primary-metric difference lies inside [-band, +band] is not a
    # material change: @champion stays, so retraining on unchanged data does not churn the registry. 0 = off.
    equivalence_band: float = 0.005

    def __post_init__(self) -> None:
        if self.primary_metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"primary_metric {self.primary_metric!r} is not one of {sorted(HIGHER_IS_BETTER)}"
            )
        if self.non_inferiority_test not in ("point", "paired_ci"):
            raise ValueError("non_inferiority_test must be 'point' or 'paired_ci'")
        if not self.equivalence_band >= 0:
            raise ValueError("equivalence_band must be >= 0 (0 turns the no-material-change rule off)")


@dataclass(frozen=True)
class PromotionDecision:
    """``outcome`` is PROMOTE, KEEP_CHAMPION (every guardrail passed, but the challenger is not materially
    different from the champion) or REFUSE; ``reasons`` say why, one line per rule."""

    outcome: str
    reasons: list[str]
    checks: dict[str, bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {OUTCOMES}")

    @property
    def promote(self) -> bool:
        return self.outcome == PROMOTE

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "promote": self.promote}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PromotionDecision:
        return cls(str(d["outcome"]), list(d["reasons"]), dict(d.get("checks", {})))


def _num(d: Mapping[str, Any] | None, key: str) -> float | None:
    """A finite number from a headline dict, or None (missing, None or NaN all mean 'not measured')."""
    if d is None:
        return None
    v = d.get(key)
    if v is None:
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _f(x: float) -> str:
    return f"{x:.3f}"


def decide_promotion(
    challenger: Mapping[str, Any],
    champion: Mapping[str, Any] | None,
    baseline: Mapping[str, Any],
    policy: PromotionPolicy | None = None,
) -> PromotionDecision:
    """Promote iff every rule passes: lift over baseline, non-inferiority to the champion (when there is
    one), a material change from it, calibration, and the two fairness bounds. When the material change is
    the only rule that fails, the outcome is KEEP_CHAMPION, not REFUSE: nothing is wrong with the challenger,
    it is just not worth a new champion."""
    policy = policy or PromotionPolicy()
    m = policy.primary_metric
    higher = HIGHER_IS_BETTER[m]
    sign = 1.0 if higher else -1.0
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    def record(check: str, ok: bool, text: str, failed: str = "FAIL") -> None:
        checks[check] = ok
        reasons.append(f"{'PASS' if ok else failed} {check}: {text}")

    ch = _num(challenger, m)
    if ch is None:
        record("primary_metric", False, f"the challenger has no {m} value")

    # 1. better than the trivial baseline
    base = _num(baseline, m)
    if ch is not None and base is not None:
        lift = sign * (ch - base)
        ok = lift >= policy.min_lift_over_baseline
        relation = ">=" if ok else "<"
        record(
            "beats_baseline",
            ok,
            f"{m} {_f(ch)} vs baseline {_f(base)}: lift {_f(lift)} {relation} required "
            f"{_f(policy.min_lift_over_baseline)}",
        )
    elif ch is not None:
        record("beats_baseline", False, f"the baseline has no {m} value to compare with")

    # 2. not worse than the current champion
    if champion is None:
        reasons.append("INFO no champion: first model, judged against the baseline and the guardrails only")
    elif ch is not None:
        champ = _num(champion, m)
        if champ is None:
            record("non_inferior_to_champion", False, f"the champion has no {m} value to compare with")
        else:
            diff = ch - champ
            lo, hi, p = (_num(challenger, f"{m}_diff_{k}") for k in ("ci_low", "ci_high", "p_value"))
            paired_text = ""
            if lo is not None and hi is not None:
                paired_text = f"; paired 95% CI of the difference [{_f(lo)}, {_f(hi)}]"
                paired_text += f", one-sided p {p:.3f}" if p is not None else ""
            if policy.non_inferiority_test == "paired_ci" and lo is not None and hi is not None:
                bound = lo if higher else hi
                ok = sign * bound >= -policy.non_inferiority_margin
                text = (
                    f"{m} {_f(ch)} vs champion {_f(champ)} (difference {diff:+.3f}{paired_text}); the CI "
                    f"{'clears' if ok else 'does not clear'} the margin {_f(policy.non_inferiority_margin)}"
                )
            else:
                ok = sign * diff >= -policy.non_inferiority_margin
                worse = "worse" if sign * diff < 0 else "better"
                text = (
                    f"{m} {_f(ch)} vs champion {_f(champ)}: {abs(diff):.3f} {worse}, "
                    f"{'within' if ok else 'beyond'} the margin {_f(policy.non_inferiority_margin)}{paired_text}"
                )
            record("non_inferior_to_champion", ok, text)
            _material_change(policy, m, lo, hi, record, reasons)

    # 3. calibration
    ece = _num(challenger, "ece")
    if ece is None:
        record("calibration", False, "the challenger has no ece value")
    else:
        ok = ece <= policy.max_ece
        record("calibration", ok, f"ece {ece:.4f} {'<=' if ok else '>'} max {_f(policy.max_ece)}")

    # 4./5. fairness over protected attributes
    fairness_rules = (
        ("demographic_parity", "min_demographic_parity_ratio", policy.min_demographic_parity_ratio, True),
        (
            "equal_opportunity",
            "max_equal_opportunity_difference",
            policy.max_equal_opportunity_difference,
            False,
        ),
    )
    for check, key, bound, at_least in fairness_rules:
        value = _num(challenger, key)
        if value is None:
            ok = not policy.require_fairness
            record(check, ok, f"{key} was not measured (no protected attributes or groups too small)")
            continue
        ok = value >= bound if at_least else value <= bound
        op = (">=" if ok else "<") if at_least else ("<=" if ok else ">")
        record(check, ok, f"{key} {_f(value)} {op} {'min' if at_least else 'max'} {_f(bound)}")

    failed = {check for check, ok in checks.items() if not ok}
    outcome = KEEP_CHAMPION if failed else PROMOTE
    if not checks or failed - {MATERIAL_CHANGE}:
        outcome = REFUSE
    return PromotionDecision(outcome=outcome, reasons=reasons, checks=checks)


def _material_change(
    policy: PromotionPolicy,
    metric: str,
    lo: float | None,
    hi: float | None,
    record: Callable[..., None],
    reasons: list[str],
) -> None:
    """The equivalence rule: a paired CI of the difference inside the band means no material change."""
    band = policy.equivalence_band
    if band <= 0:
        return
    if lo is None or hi is None:
        reasons.append(f"INFO {MATERIAL_CHANGE} not judged: no paired CI of the {metric} difference")
        return
    inside = -band <= lo and hi <= band
    ci = f"{metric} paired 95% CI of the difference [{_f(lo)}, {_f(hi)}]"
    if inside:
        text = f"no material change: {ci} lies inside the band ±{_f(band)}; @champion stays"
    else:
        text = f"{ci} reaches outside the band ±{_f(band)}"
    record(MATERIAL_CHANGE, not inside, text, failed="KEEP")
