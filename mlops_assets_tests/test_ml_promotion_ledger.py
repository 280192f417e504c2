"""Which version ml/champion may promote, and which one a rollback restores, from audit records alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops_assets.ml.promotion_ledger import (
    GATE_PASSED,
    NO_MATERIAL_CHANGE,
    PROMOTED,
    REFUSED,
    ROLLBACK,
    AuditRecord,
    PromotionBlocked,
    RollbackBlocked,
    plan_promotion,
    rollback_target,
    stale_evaluation,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def row(decision: str, src: str | None, dst: str | None, run: str, minute: int) -> AuditRecord:
    return AuditRecord(decision, src, dst, run, T0 + timedelta(minutes=minute))


def test_promotes_the_version_the_gate_passed_in_this_run() -> None:
    plan = plan_promotion([row(GATE_PASSED, "1", "2", "run-a", 0)], ["run-a"], "1", "m")
    assert (plan.version, plan.previous, plan.gate_run_id, plan.noop) == ("2", "1", "run-a", False)


def test_no_material_change_keeps_the_champion_unless_it_moved_since() -> None:
    plan = plan_promotion([row(NO_MATERIAL_CHANGE, "1", "2", "run-a", 0)], ["run-a"], "1", "m")
    assert (plan.version, plan.previous, plan.noop, plan.kept) == ("2", "1", True, True)
    # Another run promoted v3 since: the equivalence with v1 says nothing about v3.
    with pytest.raises(PromotionBlocked, match="re-run the evaluation"):
        plan_promotion([row(NO_MATERIAL_CHANGE, "1", "2", "run-a", 0)], ["run-a"], "3", "m")


def test_a_gate_of_another_run_does_not_count() -> None:
    # The other run's gate passed v3; this run evaluated nothing: materializing ml/champion alone.
    with pytest.raises(PromotionBlocked, match="no promotion_gate evaluation of 'm' in run run-b") as error:
        plan_promotion([row(GATE_PASSED, "1", "3", "run-a", 0)], ["run-b"], "1", "m")
    assert "train_evaluate_promote" in str(error.value)


def test_a_refused_gate_blocks_and_names_the_version() -> None:
    with pytest.raises(PromotionBlocked, match="refused v4") as error:
        plan_promotion([row(REFUSED, "1", "4", "run-a", 0)], ["run-a"], "1", "m")
    assert error.value.version == "4"


def test_a_re_executed_run_finds_the_gate_of_the_run_it_re_executes() -> None:
    records = [row(GATE_PASSED, "1", "2", "root", 0)]
    plan = plan_promotion(records, ["retry-2", "retry-1", "root"], "1", "m")
    assert plan.version == "2" and plan.gate_run_id == "root"


def test_the_gate_nearest_in_the_lineage_wins() -> None:
    # The parent's gate passed v2; the re-execution re-ran the gate and it refused (the champion changed).
    records = [row(GATE_PASSED, "1", "2", "parent", 0), row(REFUSED, "1", "2", "child", 5)]
    with pytest.raises(PromotionBlocked, match="refused v2"):
        plan_promotion(records, ["child", "parent"], "1", "m")
    # ... and the other way round.
    records = [row(REFUSED, "1", "2", "parent", 0), row(GATE_PASSED, "1", "2", "child", 5)]
    assert plan_promotion(records, ["child", "parent"], "1", "m").version == "2"


def test_the_version_already_champion_is_a_noop() -> None:
    plan = plan_promotion([row(GATE_PASSED, None, "2", "run-a", 0)], ["run-a"], "2", "m")
    assert plan.noop and plan.version == plan.previous == "2"


def test_a_gate_compared_with_a_champion_that_has_since_changed_is_stale() -> None:
    with pytest.raises(PromotionBlocked, match="evaluated against v1, but @champion is now v5"):
        plan_promotion([row(GATE_PASSED, "1", "2", "run-a", 0)], ["run-a"], "5", "m")
    assert stale_evaluation("2", None, None) is None
    assert "no champion" in stale_evaluation("2", None, "7")


def test_promotion_decisions_of_other_kinds_are_not_gate_verdicts() -> None:
    records = [row(PROMOTED, "1", "2", "run-a", 0), row(ROLLBACK, "2", "1", "run-a", 1)]
    with pytest.raises(PromotionBlocked, match="no promotion_gate evaluation"):
        plan_promotion(records, ["run-a"], "1", "m")


def test_rollback_restores_the_champion_the_current_one_replaced() -> None:
    records = [
        row(PROMOTED, None, "1", "a", 0),
        row(PROMOTED, "1", "2", "b", 1),
        row(PROMOTED, "2", "3", "c", 2),
    ]
    assert rollback_target(records, "3", "m") == "2"
    # After rolling back to 2, the next rollback goes to 1, never forward to 3.
    assert rollback_target([*records, row(ROLLBACK, "3", "2", "d", 3)], "2", "m") == "1"


def test_rollback_skips_same_version_promotions() -> None:
    # Older code audited a same-version promotion as "promoted 2 -> 2": it must not become the target.
    records = [row(PROMOTED, "1", "2", "a", 0), row(PROMOTED, "2", "2", "b", 1)]
    assert rollback_target(records, "2", "m") == "1"


def test_rollback_without_a_previous_champion_is_refused() -> None:
    with pytest.raises(RollbackBlocked, match="no earlier champion of 'm' to restore: v1"):
        rollback_target([row(PROMOTED, None, "1", "a", 0), row(PROMOTED, "1", "1", "b", 1)], "1", "m")
    with pytest.raises(RollbackBlocked, match="has no @champion"):
        rollback_target([], None, "m")


def test_rollback_undoes_a_rollout_promotion_and_ignores_other_rollout_decisions() -> None:
    from mlops_assets.ml.promotion_ledger import ROLLOUT_PROMOTED, ROLLOUT_ROLLED_BACK, ROLLOUT_STARTED

    records = [
        row(PROMOTED, None, "1", "a", 0),
        row(ROLLOUT_STARTED, "1", "2", "b", 1),
        row(ROLLOUT_ROLLED_BACK, "1", "2", "c", 2),
        row(ROLLOUT_STARTED, "1", "3", "d", 3),
        row(ROLLOUT_PROMOTED, "1", "3", "e", 4),
    ]
    assert rollback_target(records, "3", "m") == "1"
    with pytest.raises(RollbackBlocked):
        rollback_target(records[:3], "2", "m")  # v2 was rolled out, never promoted
