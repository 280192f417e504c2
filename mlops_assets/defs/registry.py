"""Registry: moving ``@champion`` to the version whose promotion_gate passed in the same run, every decision in
the audit table, and rollback. The rules are in ``mlops_assets.ml.promotion_ledger``; this is the wiring."""

import dagster as dg

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime
from mlops_assets.defs.evaluation import EVALUATION_KEY, run_lineage
from mlops_assets.ml.audit import append_audit, read_audit
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION
from mlops_assets.ml.promotion_ledger import (
    ALREADY_CHAMPION,
    CHAMPION_KEPT,
    PROMOTED,
    PROMOTION_BLOCKED,
    ROLLBACK,
    PromotionBlocked,
    RollbackBlocked,
    plan_promotion,
    rollback_target,
)
from mlops_assets.resources import LakehouseResource, MlflowTrackingResource


@dg.asset(
    key=["ml", "champion"],
    deps=[EVALUATION_KEY],
    group_name=groups.REGISTRY,
    kinds={"mlflow"},
    owners=[OWNER],
    description="Moves the registry alias @champion to the version whose blocking promotion_gate check passed "
    "in this run (or in the run it re-executes) — never to whatever @challenger points at. Without a passed "
    "gate it fails and audits the refusal; a version that already is @champion is left as it is, and so is "
    "@champion when the gate found no material change. Audited.",
)
def champion(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    registry = mlflow_tracking.registry()
    run_id = context.run.run_id
    current = registry.alias_version(CHAMPION)
    try:
        plan = plan_promotion(
            read_audit(lakehouse.delta(), name), run_lineage(context.instance, context.run), current, name
        )
    except PromotionBlocked as blocked:
        append_audit(
            lakehouse.delta(), name, PROMOTION_BLOCKED, current, blocked.version, [str(blocked)], run_id
        )
        raise dg.Failure(description=str(blocked), allow_retries=False) from None
    gate = f"promotion_gate passed v{plan.version} in run {plan.gate_run_id}"
    if plan.kept:
        kept = (
            f"no material change from v{current}: @{CHAMPION} stays v{current}, v{plan.version} not promoted"
        )
        gate = f"promotion_gate found v{plan.version} not materially different in run {plan.gate_run_id}"
        append_audit(lakehouse.delta(), name, CHAMPION_KEPT, current, plan.version, [gate, kept], run_id)
        context.log.info(f"{name}: {kept}")
    elif plan.noop:
        append_audit(
            lakehouse.delta(),
            name,
            ALREADY_CHAMPION,
            current,
            plan.version,
            [gate, "already @champion"],
            run_id,
        )
        context.log.info(f"{name}: v{plan.version} already is @{CHAMPION}; nothing moved")
    else:
        # Audit first: if setting the alias then fails, a re-run repeats a recorded promotion instead of
        # leaving a moved alias with no record of the champion it replaced (rollback needs that record).
        append_audit(lakehouse.delta(), name, PROMOTED, current, plan.version, [gate], run_id)
        registry.set_alias(CHAMPION, plan.version)
        context.log.info(f"{name}: @{CHAMPION} {current} -> {plan.version}")
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "champion_version": current if plan.kept else plan.version,
            "previous_champion": current or "none",
            "kept_over": plan.version if plan.kept else "none",
            "changed": not plan.noop,
            "gate_run_id": plan.gate_run_id,
        }
    )


@dg.op(description="Restore the previous @champion and audit the rollback.")
def restore_previous_champion(
    context: dg.OpExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> str:
    name = mlflow_tracking.model_name
    registry = mlflow_tracking.registry()
    current = registry.alias_version(CHAMPION)
    try:
        records = (
            read_audit(lakehouse.delta(), name) if current else []
        )  # no champion: no need to read the ledger
        target = rollback_target(records, current, name)
    except RollbackBlocked as blocked:
        raise dg.Failure(description=str(blocked), allow_retries=False) from None
    reasons = [f"rollback from v{current}"]
    if registry.alias_version(CHALLENGER) == current:
        # Otherwise the next evaluation would judge (and could promote) the rolled-back model again.
        registry.delete_alias(CHALLENGER)
        reasons.append(f"removed @{CHALLENGER} from v{current}")
    registry.set_alias(CHAMPION, target)
    append_audit(lakehouse.delta(), name, ROLLBACK, current, target, reasons, context.run.run_id)
    context.log.info(f"{name}: @{CHAMPION} rolled back {current} -> {target}")
    return target


@dg.job(
    description="One command: restore the previous champion (`python -m mlops_assets.cli rollback`).",
    tags=max_runtime(hours=0.25),
)
def rollback_champion() -> None:
    restore_previous_champion()


defs = dg.Definitions(assets=[champion], jobs=[rollback_champion])
