"""Safe rollouts: the state's validation and JSON, the pure step judge on planted numbers, and the judge on
numbers Spark counts from planted inference-table rows (good candidates walk to promotion, bad ones roll
back with reasons, dropped logs are flagged as a sample ratio mismatch)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mlops_assets.ml.promotion_ledger import (
    GATE_PASSED,
    NO_MATERIAL_CHANGE,
    REFUSED,
    ROLLOUT_ADVANCED,
    ROLLOUT_HELD,
    ROLLOUT_PROMOTED,
    ROLLOUT_ROLLED_BACK,
    ROLLOUT_SHADOW_PASSED,
    AuditRecord,
)
from mlops_assets.serving.rollout import (
    ADVANCE,
    CANARY,
    COMPLETED,
    HOLD,
    ROLLBACK,
    ROLLED_BACK,
    SHADOW,
    SRM,
    ArmStats,
    Rollout,
    RolloutDecision,
    RolloutGuards,
    RolloutInvalid,
    judge_step,
    plan_transition,
    srm_test,
    start_refusal,
)
from mlops_assets_tests.rollout_traffic import ERRORS, SHIFTED, SLOW, inference_rows

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BETA_2_5 = (1407, 2137, 2037, 1627, 1133, 729, 361, 139, 27, 3)  # ~Beta(2, 5) over 10 bins, 9,600 scores


def canary(**overrides) -> Rollout:
    return replace(Rollout.start("2", "1", CANARY, now=T0, min_requests_per_arm=200), **overrides)


def stats(
    arm: str, requests: int, errors: int = 0, p99: float = 20.0, scores=BETA_2_5, units=None
) -> ArmStats:
    scale = requests / sum(BETA_2_5)
    counts = tuple(round(c * scale) for c in scores)
    return ArmStats(arm, requests, requests if units is None else units, errors, p99, counts)


def split(state: Rollout, total: int = 10_000, **candidate) -> dict[str, ArmStats]:
    n = round(total * state.weight)
    return {"champion": stats("champion", total - n), "candidate": stats("candidate", n, **candidate)}


# --- the state ---------------------------------------------------------------------------------------------


def test_the_state_round_trips_through_the_tag_json() -> None:
    state = canary(step=2, guards=RolloutGuards(max_score_psi=0.3))
    assert Rollout.from_json(state.to_json()) == state
    assert state.weights() == [("champion", 0.5), ("candidate", 0.5)]
    assert replace(state, status=ROLLED_BACK).weights() == [("champion", 1.0), ("candidate", 0.0)]
    shadow = Rollout.start("2", "1", SHADOW, now=T0)
    assert shadow.steps == (1.0,) and shadow.weights() == [("champion", 1.0), ("candidate", 0.0)]
    assert shadow.arms == ("champion", "shadow")
    assert Rollout.start("2", "1").salt != Rollout.start("2", "1").salt  # every rollout re-randomizes


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"steps": (0.25, 0.05, 1.0)}, "steps: .* strictly increasing"),
        ({"steps": (0.05, 0.5)}, "steps: the last step must be 1.0"),
        ({"steps": (0.0, 1.0)}, r"steps: .* fractions in \(0, 1\]"),
        ({"steps": (1.0,)}, "steps: a canary needs at least one step below 1.0"),
        ({"mode": "blue_green"}, "mode: 'blue_green' is not one of"),
        ({"status": "paused"}, "status: 'paused'"),
        ({"step": 4}, "step: 4 is not an index"),
        ({"guards": RolloutGuards(max_p99_latency_ms=0)}, "guards.max_p99_latency_ms: 0"),
        ({"guards": RolloutGuards(srm_p_value=-1)}, "guards.srm_p_value"),
        ({"min_requests_per_arm": 0}, "min_requests_per_arm: 0"),
        ({"candidate_version": "1"}, "candidate_version: v1 already is the champion"),
        ({"champion_version": ""}, "champion_version: a rollout needs a @champion"),
    ],
)
def test_an_invalid_rollout_is_refused_naming_the_field(overrides, message) -> None:
    with pytest.raises(RolloutInvalid, match=message):
        canary(**overrides)


def test_a_bad_tag_is_refused_naming_the_problem() -> None:
    with pytest.raises(RolloutInvalid, match=r"unknown fields \['colour'\]"):
        Rollout.from_json(canary().to_json()[:-1] + ', "colour": "red"}')
    with pytest.raises(RolloutInvalid, match="not JSON"):
        Rollout.from_json("{")


def test_a_canary_needs_a_passed_gate_and_a_shadow_does_not() -> None:
    def rec(decision: str, version: str, minute: int) -> AuditRecord:
        return AuditRecord(decision, "1", version, f"run-{minute}", T0 + timedelta(minutes=minute))

    assert "no promotion_gate verdict" in start_refusal(CANARY, "2", [rec(GATE_PASSED, "3", 0)])
    assert start_refusal(SHADOW, "2", []) is None
    assert start_refusal(CANARY, "2", [rec(GATE_PASSED, "2", 0)]) is None
    assert start_refusal(CANARY, "2", [rec(NO_MATERIAL_CHANGE, "2", 0)]) is None
    assert "refused v2 in run run-5" in start_refusal(
        CANARY, "2", [rec(GATE_PASSED, "2", 0), rec(REFUSED, "2", 5)]
    )


# --- the judge on planted numbers ------------------------------------------------------------------------


def test_srm_test_is_a_goodness_of_fit_to_the_assigned_shares() -> None:
    assert srm_test([5000, 5000], [0.5, 0.5]) == (0.0, 1.0)
    statistic, p = srm_test([5000, 4500], [0.5, 0.5])
    assert statistic == pytest.approx(2 * 250**2 / 4750) and p < 1e-6
    assert srm_test([100, 3], [1.0, 0.0]) == (float("inf"), 0.0)
    assert srm_test([0, 0], [0.5, 0.5]) == (0.0, 1.0)


def test_a_good_step_advances_with_every_guard_named() -> None:
    decision = judge_step(canary(), split(canary()))
    assert decision.outcome == ADVANCE
    text = "\n".join(decision.reasons)
    for guard in ("PASS srm", "PASS error_rate", "PASS p99_latency", "PASS score_psi"):
        assert guard in text


def test_too_little_traffic_holds_and_never_promotes() -> None:
    state = canary()
    decision = judge_step(state, split(state, total=3000))  # 150 candidate requests < 200
    assert decision.outcome == HOLD
    assert (
        "minimum traffic: candidate below 200 requests per arm (champion 2850, candidate 150)"
        in decision.reasons[0]
    )
    assert judge_step(state, {}).outcome == HOLD
    assert plan_transition(state, decision).audit == ROLLOUT_HELD
    assert plan_transition(state, decision).state == state


@pytest.mark.parametrize(
    ("candidate", "guard", "numbers"),
    [
        (
            {"errors": 40},
            "FAIL error_rate",
            "candidate 5xx 8.00% (40/500) vs champion 0.00% (0/9500): +8.00%, max +1.00%",
        ),
        ({"p99": 180.0}, "FAIL p99_latency", "candidate p99 180.0 ms (champion 20.0 ms), max 100 ms"),
        ({"scores": tuple(reversed(BETA_2_5))}, "FAIL score_psi", "PSI of candidate scores vs champion"),
    ],
)
def test_a_harmful_candidate_is_rolled_back_naming_the_guard_and_numbers(candidate, guard, numbers) -> None:
    decision = judge_step(canary(), split(canary(), **candidate))
    assert decision.outcome == ROLLBACK
    failed = [r for r in decision.reasons if r.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith(guard) and numbers in failed[0]


def test_a_sample_ratio_mismatch_holds_and_harm_still_rolls_back() -> None:
    state = canary(step=2)  # 50 %
    skewed = {"champion": stats("champion", 5000), "candidate": stats("candidate", 4500)}
    decision = judge_step(state, skewed)
    assert decision.outcome == HOLD and SRM in decision.reasons[0]
    assert "units champion 5000 / candidate 4500 vs expected shares 50%, 50%" in decision.reasons[1]
    harmful = {**skewed, "candidate": stats("candidate", 4500, errors=450)}
    assert judge_step(state, harmful).outcome == ROLLBACK


def test_the_transitions_walk_a_canary_to_promotion_and_a_shadow_to_completion() -> None:
    state, audits = canary(), []
    advance = RolloutDecision(ADVANCE, ["ok"])
    while state.running:
        t = plan_transition(state, advance, now=T0 + timedelta(hours=len(audits)))
        audits.append(t.audit)
        state = t.state
    assert audits == [ROLLOUT_ADVANCED, ROLLOUT_ADVANCED, ROLLOUT_PROMOTED]
    assert state.status == COMPLETED and state.step == 3
    rolled = plan_transition(canary(), RolloutDecision(ROLLBACK, ["bad"]))
    assert (rolled.audit, rolled.state.status, rolled.remove_candidate, rolled.promote) == (
        ROLLOUT_ROLLED_BACK, ROLLED_BACK, True, False,
    )  # fmt: skip
    shadow = plan_transition(Rollout.start("2", "1", SHADOW), advance)
    assert (shadow.audit, shadow.state.status, shadow.promote) == (ROLLOUT_SHADOW_PASSED, COMPLETED, False)


# --- the judge on rows Spark counts ----------------------------------------------------------------------


def _judge_rows(spark, state: Rollout, rows: list[tuple]) -> RolloutDecision:
    from mlops_assets.lakehouse.inference_log import INFERENCE_SCHEMA
    from mlops_assets.serving.rollout_stats import arm_stats, step_rows

    df = spark.createDataFrame(rows, INFERENCE_SCHEMA)
    return judge_step(state, arm_stats(step_rows(df, state)))


def test_spark_counts_what_was_planted(spark) -> None:
    from mlops_assets.lakehouse.inference_log import INFERENCE_SCHEMA
    from mlops_assets.serving.rollout_stats import arm_stats, step_rows

    state = canary(step=2)
    rows = inference_rows(state, 2000, candidate=ERRORS, seed=3)
    earlier = inference_rows(
        replace(state, step_started_at=(T0 - timedelta(hours=1)).isoformat()), 50, seed=4
    )
    other = inference_rows(replace(state, id="other"), 50, seed=5)
    df = spark.createDataFrame(rows + earlier + other, INFERENCE_SCHEMA)
    got = arm_stats(step_rows(df, state))
    for arm in ("champion", "candidate"):
        mine = [r for r in rows if r[4] == arm]
        assert got[arm].requests == got[arm].units == len(mine)
        assert got[arm].errors == sum(r[12] >= 500 for r in mine)
        assert sum(got[arm].score_counts) == sum(r[9] is not None for r in mine)
        latencies = sorted(r[11] for r in mine)
        assert latencies[int(0.97 * len(latencies))] <= got[arm].p99_latency_ms <= latencies[-1]


def test_a_good_canary_advances_step_by_step_to_promotion(spark) -> None:
    state, audits = canary(), []
    while state.running:
        decision = _judge_rows(spark, state, inference_rows(state, 6000, seed=len(audits)))
        assert decision.outcome == ADVANCE, decision.reasons
        transition = plan_transition(state, decision, now=T0 + timedelta(hours=len(audits) + 1))
        audits.append(transition.audit)
        state = transition.state
    assert audits == [ROLLOUT_ADVANCED, ROLLOUT_ADVANCED, ROLLOUT_PROMOTED]


@pytest.mark.parametrize(
    ("bad", "guard"), [(ERRORS, "error_rate"), (SHIFTED, "score_psi"), (SLOW, "p99_latency")]
)
def test_a_bad_canary_is_rolled_back_with_reasons(spark, bad, guard) -> None:
    state = canary()
    decision = _judge_rows(spark, state, inference_rows(state, 6000, candidate=bad, seed=11))
    assert decision.outcome == ROLLBACK
    assert [r.split(":")[0] for r in decision.reasons if r.startswith("FAIL")] == [f"FAIL {guard}"]


@pytest.mark.parametrize("share", [0.5, 0.1])
def test_dropping_one_arms_logs_is_flagged_as_srm(spark, share) -> None:
    state = canary(step=2)
    clean = _judge_rows(spark, state, inference_rows(state, 10_000, seed=21))
    assert clean.outcome == ADVANCE, clean.reasons
    dropped = _judge_rows(spark, state, inference_rows(state, 10_000, drop=("candidate", share), seed=21))
    assert dropped.outcome == HOLD and SRM in dropped.reasons[0], dropped.reasons


def test_a_shadow_compares_the_same_requests_and_flags_lost_shadow_rows(spark) -> None:
    state = Rollout.start("2", "1", SHADOW, now=T0, min_requests_per_arm=200)
    assert _judge_rows(spark, state, inference_rows(state, 3000, seed=31)).outcome == ADVANCE
    shifted = _judge_rows(spark, state, inference_rows(state, 3000, candidate=SHIFTED, seed=31))
    assert shifted.outcome == ROLLBACK and any("FAIL score_psi" in r for r in shifted.reasons)
    lost = _judge_rows(spark, state, inference_rows(state, 3000, drop=("shadow", 0.1), seed=31))
    assert lost.outcome == HOLD and SRM in lost.reasons[0]
