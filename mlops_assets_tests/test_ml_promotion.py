"""The promotion gate's rules, one at a time, plus one run on real evaluation reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.evaluation import evaluate
from mlops_assets.ml.promotion import (
    KEEP_CHAMPION,
    PROMOTE,
    REFUSE,
    PromotionDecision,
    PromotionPolicy,
    decide_promotion,
)

BASELINE = {"roc_auc": 0.5, "pr_auc": 0.25, "log_loss": 0.56, "brier": 0.19, "f1": 0.0, "ece": 0.0}


def headline(**overrides: float | None) -> dict[str, float | None]:
    h: dict[str, float | None] = {
        "roc_auc": 0.80,
        "pr_auc": 0.50,
        "log_loss": 0.45,
        "brier": 0.15,
        "f1": 0.55,
        "ece": 0.03,
        "min_demographic_parity_ratio": 0.85,
        "max_equal_opportunity_difference": 0.08,
    }
    h.update(overrides)
    return h


def failed(decision: PromotionDecision) -> set[str]:
    return {k for k, ok in decision.checks.items() if not ok}


def paired(lo: float, hi: float, **overrides: float | None) -> dict[str, float | None]:
    """A challenger headline with the paired CI of its ROC-AUC difference from the champion."""
    return headline(roc_auc_diff_ci_low=lo, roc_auc_diff_ci_high=hi, roc_auc_diff_p_value=0.5, **overrides)


def test_better_challenger_is_promoted() -> None:
    d = decide_promotion(
        paired(0.004, 0.036, roc_auc=0.82), headline(roc_auc=0.80), BASELINE, PromotionPolicy()
    )
    assert d.promote and d.outcome == PROMOTE
    assert set(d.checks) == {
        "beats_baseline",
        "non_inferior_to_champion",
        "material_change",
        "calibration",
        "demographic_parity",
        "equal_opportunity",
    }
    assert all(d.checks.values())
    assert len(d.reasons) == len(d.checks) and all(r.startswith("PASS") for r in d.reasons)


def test_worse_challenger_is_refused_with_a_reason_naming_the_metric() -> None:
    d = decide_promotion(headline(roc_auc=0.76), headline(roc_auc=0.80), BASELINE, PromotionPolicy())
    assert not d.promote
    assert failed(d) == {"non_inferior_to_champion"}
    reason = next(r for r in d.reasons if r.startswith("FAIL non_inferior_to_champion"))
    assert "roc_auc 0.760 vs champion 0.800" in reason and "beyond the margin 0.010" in reason


def test_slightly_worse_within_margin_is_promoted() -> None:
    d = decide_promotion(headline(roc_auc=0.795), headline(roc_auc=0.80), BASELINE, PromotionPolicy())
    assert d.promote and d.checks["non_inferior_to_champion"]


def test_first_model_promoted_iff_it_beats_the_baseline() -> None:
    first = decide_promotion(headline(roc_auc=0.70), None, BASELINE, PromotionPolicy())
    assert first.promote and "non_inferior_to_champion" not in first.checks
    assert any(r.startswith("INFO no champion") for r in first.reasons)
    weak = decide_promotion(headline(roc_auc=0.51), None, BASELINE, PromotionPolicy())
    assert not weak.promote and failed(weak) == {"beats_baseline"}
    assert any("FAIL beats_baseline: roc_auc 0.510 vs baseline 0.500" in r for r in weak.reasons)


@pytest.mark.parametrize(
    ("override", "check"),
    [
        ({"ece": 0.2}, "calibration"),
        ({"min_demographic_parity_ratio": 0.4}, "demographic_parity"),
        ({"max_equal_opportunity_difference": 0.4}, "equal_opportunity"),
        ({"roc_auc": None}, "primary_metric"),
    ],
)
def test_guardrails_refuse_even_a_better_model(override: dict, check: str) -> None:
    d = decide_promotion(headline(**override), headline(roc_auc=0.70), BASELINE, PromotionPolicy())
    assert not d.promote
    assert check in failed(d)
    assert any(r.startswith(f"FAIL {check}") for r in d.reasons)


def test_missing_fairness_numbers_pass_unless_required() -> None:
    challenger = headline(min_demographic_parity_ratio=None, max_equal_opportunity_difference=float("nan"))
    lenient = decide_promotion(challenger, None, BASELINE, PromotionPolicy())
    assert lenient.promote and any("was not measured" in r for r in lenient.reasons)
    strict = decide_promotion(challenger, None, BASELINE, PromotionPolicy(require_fairness=True))
    assert failed(strict) == {"demographic_parity", "equal_opportunity"}


def test_paired_ci_mode_uses_the_interval() -> None:
    # Point estimates within the margin, but the paired CI reaches far below it.
    challenger = headline(
        roc_auc=0.798, roc_auc_diff_ci_low=-0.03, roc_auc_diff_ci_high=0.02, roc_auc_diff_p_value=0.6
    )
    champion = headline(roc_auc=0.80)
    point = decide_promotion(challenger, champion, BASELINE, PromotionPolicy())
    paired = decide_promotion(
        challenger, champion, BASELINE, PromotionPolicy(non_inferiority_test="paired_ci")
    )
    assert point.promote
    assert not paired.promote and failed(paired) == {"non_inferior_to_champion"}
    assert any("[-0.030, 0.020]" in r for r in paired.reasons)


def test_a_retrain_not_materially_different_keeps_the_champion_and_says_why() -> None:
    # An identical retrain: every paired resample gives the same AUC, so the CI is [0, 0].
    d = decide_promotion(paired(0.0, 0.0), headline(), BASELINE, PromotionPolicy(equivalence_band=0.005))
    assert d.outcome == KEEP_CHAMPION and not d.promote
    assert failed(d) == {"material_change"}  # every guardrail passed: kept, not refused
    (reason,) = [r for r in d.reasons if "material_change" in r]
    assert reason.startswith("KEEP material_change: no material change")
    assert "[0.000, 0.000]" in reason and "band ±0.005" in reason and "@champion stays" in reason


@pytest.mark.parametrize(("lo", "hi"), [(-0.002, 0.02), (-0.012, 0.004), (0.006, 0.02)])
def test_a_difference_reaching_outside_the_band_is_promoted(lo: float, hi: float) -> None:
    challenger = paired(lo, hi, roc_auc=0.80 + (lo + hi) / 2)
    d = decide_promotion(challenger, headline(), BASELINE, PromotionPolicy(equivalence_band=0.005))
    assert d.outcome == PROMOTE, d.reasons
    assert any(r.startswith("PASS material_change") and "reaches outside" in r for r in d.reasons)


def test_a_guardrail_failure_refuses_even_an_equivalent_challenger() -> None:
    d = decide_promotion(paired(0.0, 0.0, ece=0.2), headline(), BASELINE, PromotionPolicy())
    assert d.outcome == REFUSE and failed(d) == {"material_change", "calibration"}


def test_the_first_model_and_a_zero_band_skip_the_material_change_rule() -> None:
    first = decide_promotion(paired(0.0, 0.0), None, BASELINE, PromotionPolicy())
    assert first.outcome == PROMOTE and "material_change" not in first.checks
    off = decide_promotion(paired(0.0, 0.0), headline(), BASELINE, PromotionPolicy(equivalence_band=0))
    assert off.outcome == PROMOTE and "material_change" not in off.checks
    unjudged = decide_promotion(headline(), headline(), BASELINE, PromotionPolicy())
    assert unjudged.outcome == PROMOTE
    assert any(r.startswith("INFO material_change not judged") for r in unjudged.reasons)
    with pytest.raises(ValueError, match="equivalence_band"):
        PromotionPolicy(equivalence_band=-0.01)


def test_the_decision_round_trips_through_its_dict() -> None:
    d = decide_promotion(paired(0.0, 0.0), headline(), BASELINE, PromotionPolicy())
    as_dict = d.to_dict()
    assert as_dict["outcome"] == KEEP_CHAMPION and as_dict["promote"] is False
    assert PromotionDecision.from_dict(json.loads(json.dumps(as_dict))) == d
    with pytest.raises(ValueError, match="outcome"):
        PromotionDecision("maybe", [], {})


def test_lower_is_better_primary_metric() -> None:
    policy = PromotionPolicy(primary_metric="log_loss")
    better = decide_promotion(headline(log_loss=0.40), headline(log_loss=0.45), BASELINE, policy)
    worse = decide_promotion(headline(log_loss=0.50), headline(log_loss=0.45), BASELINE, policy)
    assert better.promote
    assert not worse.promote and failed(worse) == {"non_inferior_to_champion"}
    with pytest.raises(ValueError, match="primary_metric"):
        PromotionPolicy(primary_metric="accuracy")


def test_gate_on_real_reports() -> None:
    """Evaluation headlines feed the gate directly: a model that ignores the signal loses to the champion."""
    rng = np.random.default_rng(4)
    n = 2000
    df = pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "as_of_date": pd.Timestamp("2026-03-01"),
            "x": rng.normal(0, 1, n),
            "g": rng.choice(["a", "b"], n),
        }
    )
    p = 1 / (1 + np.exp(-(-1 + 2 * df["x"])))
    df["y"] = (rng.random(n) < p).astype(int)
    contract = FeatureSetContract.from_dict(
        {
            "name": "t",
            "version": "1",
            "entity_key": "customer_id",
            "as_of": "as_of_date",
            "label": "y",
            "features": [{"name": "x", "kind": "numerical"}],
            "protected_attributes": ["g"],
        }
    )

    def good(d: pd.DataFrame) -> np.ndarray:
        return (1 / (1 + np.exp(-(-1 + 2 * d["x"])))).to_numpy()

    def blind(d: pd.DataFrame) -> np.ndarray:
        return np.random.default_rng(0).uniform(0.2, 0.4, len(d))

    kwargs = dict(threshold=0.4, n_bootstrap=50, latency_calls=0, top_features=[])
    worse = evaluate(blind, df, contract, champion_predict=good, **kwargs)
    d = decide_promotion(
        worse.headline(), worse.champion_headline(), worse.baseline_headline(), PromotionPolicy()
    )
    assert not d.promote and "non_inferior_to_champion" in failed(d) and "beats_baseline" in failed(d)
    better = evaluate(good, df, contract, champion_predict=blind, **kwargs)
    d = decide_promotion(
        better.headline(), better.champion_headline(), better.baseline_headline(), PromotionPolicy()
    )
    assert d.promote, d.reasons
    first = decide_promotion(better.headline(), None, better.baseline_headline(), PromotionPolicy())
    assert first.promote
    # The same model retrained: the paired CI is [0, 0], the champion stays.
    same = evaluate(good, df, contract, champion_predict=good, **kwargs)
    d = decide_promotion(
        same.headline(), same.champion_headline(), same.baseline_headline(), PromotionPolicy()
    )
    assert d.outcome == KEEP_CHAMPION, d.reasons
