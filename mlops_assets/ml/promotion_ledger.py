"""Which version may become ``@champion``, and which one a rollback restores, decided from the audit alone.

Why: the registry alias ``@challenger`` moves whenever any training run registers a version, so reading it at
promotion time promotes whatever happens to be there. The ``promotion_gate`` instead records its verdict for
the exact version it evaluated and the Dagster run that evaluated it; promotion and rollback read those
records (the ``ml/promotion_audit`` ledger), never the moving alias, to decide. No Dagster, no MLflow here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

# Decisions written to the audit ledger.
GATE_PASSED = "gate_passed"  # the promotion_gate passed this version (in this Dagster run)
REFUSED = "refused"  # the promotion_gate refused this version
NO_MATERIAL_CHANGE = "no_material_change"  # guardrails passed, not materially different from @champion
PROMOTED = "promoted"  # @champion moved from_version -> to_version
ALREADY_CHAMPION = "already_champion"  # the gate passed the version that already is @champion: nothing moved
# No material change: @champion stays from_version, to_version was not promoted.
CHAMPION_KEPT = "champion_kept"
PROMOTION_BLOCKED = "promotion_blocked"  # ml/champion refused to move @champion (no passed gate, stale gate)
ROLLBACK = "rollback"  # @champion moved back from_version -> to_version
GATE_DECISIONS = (GATE_PASSED, REFUSED, NO_MATERIAL_CHANGE)
# Safe rollouts (``mlops_assets.serving.rollout``): from_version is @champion, to_version the candidate.
ROLLOUT_STARTED = "rollout_started"  # @candidate set, the rollout tag written
ROLLOUT_ADVANCED = "rollout_advanced"  # a step passed: the candidate's share grew
ROLLOUT_HELD = "rollout_held"  # inconclusive (too little traffic, sample ratio mismatch): nothing moved
ROLLOUT_ROLLED_BACK = "rollout_rolled_back"  # a guard failed: @candidate removed, @champion unchanged
ROLLOUT_PROMOTED = "rollout_promoted"  # the last judged step passed: @champion moved to the candidate
ROLLOUT_SHADOW_PASSED = "rollout_shadow_passed"  # a shadow rollout passed: nothing served, nothing promoted
ROLLOUT_ABORTED = "rollout_aborted"  # stopped by hand: @candidate removed, @champion unchanged
# Experiments (``mlops_assets.experiments``): from_version is the control arm's model, to_version the treatment's.
EXPERIMENT_SHIPPED = (
    "experiment_shipped"  # the experiment's decision was ship: @champion moved to the treatment
)
EXPERIMENT_KEPT = "experiment_kept"  # no significant difference at the planned horizon: @champion stays
EXPERIMENT_STOPPED = "experiment_stopped"  # stopped for harm (worse churn or a guardrail): @champion stays
EXPERIMENT_STALE = (
    "experiment_stale"  # @champion moved during the experiment: its ship says nothing, not applied
)
EXPERIMENT_DECISIONS = (EXPERIMENT_SHIPPED, EXPERIMENT_KEPT, EXPERIMENT_STOPPED, EXPERIMENT_STALE)
# Decisions that moved @champion forward from from_version: what a rollback can undo.
CHAMPION_MOVES = (PROMOTED, ROLLOUT_PROMOTED, EXPERIMENT_SHIPPED)


@dataclass(frozen=True)
class AuditRecord:
    """One ledger row, as far as the rules need it."""

    decision: str
    from_version: str | None
    to_version: str | None
    dagster_run_id: str
    decided_at: datetime


class PromotionBlocked(ValueError):
    """ml/champion may not move @champion; the message says why and what to run instead."""

    def __init__(self, message: str, version: str | None = None) -> None:
        super().__init__(message)
        self.version = version


class RollbackBlocked(ValueError):
    """There is nothing to roll back to; nothing was changed."""


@dataclass(frozen=True)
class PromotionPlan:
    version: str  # the version the gate evaluated and passed
    previous: str | None  # @champion now
    gate_run_id: str  # the run whose promotion_gate passed it
    noop: bool  # @champion does not move (the version already is @champion, or ``kept``)
    kept: bool = False  # no material change: @champion stays ``previous``


def stale_evaluation(version: str, evaluated_against: str | None, current_champion: str | None) -> str | None:
    """Why an evaluation no longer supports promoting ``version``, or None when it still does.

    The gate's non-inferiority rule compared ``version`` with the champion of the evaluation
    (``evaluated_against``; None when there was none, or when it was the version itself). If another run has
    moved @champion since, that comparison says nothing about the current champion.
    """
    if current_champion in (evaluated_against, version):
        return None
    against = f"v{evaluated_against}" if evaluated_against else "no champion"
    return (
        f"v{version} was evaluated against {against}, but @champion is now v{current_champion}: "
        "re-run the evaluation"
    )


def plan_promotion(
    records: Iterable[AuditRecord],
    run_lineage: Sequence[str],
    current_champion: str | None,
    model_name: str,
) -> PromotionPlan:
    """The version this run may promote: the one whose promotion_gate passed in this run or in the runs it
    re-executes (``run_lineage``: this run's id first, then its parent, up to the root).

    The newest gate verdict in the lineage decides (a re-executed gate supersedes its parent's); a verdict of
    no material change plans to keep @champion (``kept``). Raises
    PromotionBlocked when there is no verdict, when the gate refused, or when @champion moved since the gate
    passed (its comparison is stale).
    """
    if not run_lineage:
        raise ValueError("run_lineage must contain at least the current run id")
    position = {run_id: i for i, run_id in enumerate(run_lineage)}
    verdicts = [r for r in records if r.decision in GATE_DECISIONS and r.dagster_run_id in position]
    runs = f"run {run_lineage[0]}" + (
        f" or the runs it re-executes ({', '.join(run_lineage[1:])})" if len(run_lineage) > 1 else ""
    )
    if not verdicts:
        raise PromotionBlocked(
            f"ml/champion: no promotion_gate evaluation of {model_name!r} in {runs}. @champion moves only to "
            "a version whose promotion_gate passed in the same run: materialize ml/evaluation_report (with "
            "its promotion_gate check) and ml/champion together, e.g. the train_evaluate_promote job"
        )
    latest = min(verdicts, key=lambda r: (position[r.dagster_run_id], -r.decided_at.timestamp()))
    version = latest.to_version
    if latest.decision == REFUSED or version is None:
        raise PromotionBlocked(
            f"ml/champion: the promotion_gate refused v{version} of {model_name!r} in run "
            f"{latest.dagster_run_id}; @champion stays v{current_champion}",
            version,
        )
    if current_champion == version:
        return PromotionPlan(version, current_champion, latest.dagster_run_id, noop=True)
    stale = stale_evaluation(version, latest.from_version, current_champion)
    if stale:
        raise PromotionBlocked(f"ml/champion: {stale}", version)
    kept = latest.decision == NO_MATERIAL_CHANGE
    return PromotionPlan(version, current_champion, latest.dagster_run_id, noop=kept, kept=kept)


def rollback_target(records: Iterable[AuditRecord], current_champion: str | None, model_name: str) -> str:
    """The champion the current one replaced: the newest promotion (by the gate or by a rollout) *to* the
    current version from a different one. Same-version rows (a no-op promotion recorded as ``promoted X -> X`` by older code) never
    count, so a rollback always changes the champion. Raises RollbackBlocked when there is none."""
    if current_champion is None:
        raise RollbackBlocked(
            f"rollback: model {model_name!r} has no @champion, so there is nothing to roll back; nothing changed"
        )
    earlier = [
        r
        for r in records
        if r.decision in CHAMPION_MOVES
        and r.to_version == current_champion
        and r.from_version is not None
        and r.from_version != current_champion
    ]
    if not earlier:
        raise RollbackBlocked(
            f"rollback: no earlier champion of {model_name!r} to restore: v{current_champion} did not replace "
            "another version (it was the first champion); nothing changed"
        )
    return str(max(earlier, key=lambda r: r.decided_at).from_version)
