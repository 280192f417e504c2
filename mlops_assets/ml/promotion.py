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
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlops_assets.ml.metrics import HIGHER_IS_BETTER


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

    def __post_init__(self) -> None:
        if self.primary_metric not in HIGHER_IS_BETTER:
            raise ValueError(
                f"primary_metric {self.primary_metric!r} is not one of {sorted(HIGHER_IS_BETTER)}"
            )
        if self.non_inferiority_test not in ("point", "paired_ci"):
            raise ValueError("non_inferiority_test must be 'point' or 'paired_ci'")


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reasons: list[str]
    checks: dict[str, bool] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    one), calibration, and the two fairness bounds."""
    policy = policy or PromotionPolicy()
    m = policy.primary_metric
    higher = HIGHER_IS_BETTER[m]
    sign = 1.0 if higher else -1.0
    checks: dict[str, bool] = {}
    reasons: list[str] = []

    def record(check: str, ok: bool, text: str) -> None:
        checks[check] = ok
        reasons.append(f"{'PASS' if ok else 'FAIL'} {check}: {text}")

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

    return PromotionDecision(promote=bool(checks) and all(checks.values()), reasons=reasons, checks=checks)
