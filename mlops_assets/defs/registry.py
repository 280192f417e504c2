"""Registry: moving ``@champion`` once the gate passed, every decision in the audit table, and rollback."""

import dagster as dg
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER
from mlops_assets.defs.evaluation import AUDIT, EVALUATION_KEY, append_audit
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION, alias_version, require_alias, set_alias
from mlops_assets.resources import LakehouseResource, MlflowTrackingResource


@dg.asset(
    key=["ml", "champion"],
    deps=[EVALUATION_KEY],
    group_name=groups.REGISTRY,
    kinds={"mlflow"},
    owners=[OWNER],
    description="Moves the registry alias @champion to the @challenger. Runs only when the blocking "
    "promotion_gate check on the evaluation report passed in the same run. Audited.",
)
def champion(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    challenger_version = alias_version(name, CHALLENGER)
    previous = alias_version(name, CHAMPION)
    set_alias(name, CHAMPION, challenger_version)
    append_audit(
        lakehouse,
        name,
        "promoted",
        previous,
        challenger_version,
        ["promotion_gate passed"],
        context.run.run_id,
    )
    context.log.info(f"{name}: @{CHAMPION} {previous} -> {challenger_version}")
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "champion_version": challenger_version,
            "previous_champion": previous or "none",
        }
    )


def rollback_target(lakehouse: LakehouseResource, model_name: str, current: str) -> str:
    """The champion before the current one: the version the current one replaced when it was promoted."""
    audit = (
        lakehouse.delta()
        .read(AUDIT)
        .where(
            (F.col("model_name") == model_name)
            & (F.col("to_version") == current)
            & F.col("decision").isin("promoted")
            & F.col("from_version").isNotNull()
        )
    )
    row = audit.orderBy(F.desc("decided_at")).select("from_version").first()
    if row is None:
        raise ValueError(f"rollback: no earlier champion of {model_name!r} to restore (current: v{current})")
    return row[0]


@dg.op(description="Restore the previous @champion and audit the rollback.")
def restore_previous_champion(
    context: dg.OpExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> str:
    name = mlflow_tracking.model_name
    current = require_alias(name, CHAMPION, "rollback")
    target = rollback_target(lakehouse, name, current)
    set_alias(name, CHAMPION, target)
    append_audit(
        lakehouse, name, "rollback", current, target, [f"rollback from v{current}"], context.run.run_id
    )
    context.log.info(f"{name}: @{CHAMPION} rolled back {current} -> {target}")
    return target


@dg.job(description="One command: restore the previous champion (`python -m mlops_assets.cli rollback`).")
def rollback_champion() -> None:
    restore_previous_champion()
