"""Scoring: daily batch predictions by the registered @champion, through Spark, with the @challenger's
shadow scores beside them when one exists."""

from datetime import UTC, date, datetime

import dagster as dg
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import IDEMPOTENT_RETRY, OWNER, partition_days, replace_run_partitions
from mlops_assets.lakehouse.catalog import FEATURES, PREDICTIONS
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION
from mlops_assets.ml.scoring import score_partition
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import FeatureSetResource, LakehouseResource, MlflowTrackingResource

PREDICTIONS_KEY = dg.AssetKey(PREDICTIONS.asset_key_path)
FEATURES_KEY = dg.AssetKey(FEATURES.asset_key_path)


class MissingFeaturesError(ValueError):
    """Some days of the run have no feature rows: scoring them would write nothing and hide the cause."""


def days_without_rows(features, as_of: str, days: list[date]) -> list[date]:
    """The run's days that have no feature row (one small aggregation: a count per as-of day)."""
    present = {r[0] for r in features.groupBy(F.to_date(as_of)).count().collect() if r["count"]}
    return [d for d in days if d not in present]


def missing_features_message(missing: list[date], source: str, external: bool) -> str:
    days = ", ".join(d.isoformat() for d in missing)
    fix = (
        "check the external feature table's as-of dates"
        if external
        else f"materialize {'that partition' if len(missing) == 1 else 'those partitions'} with daily_lakehouse first"
    )
    return f"{PREDICTIONS_KEY.to_user_string()}: no rows in {source} for {days} ({fix})"


@dg.asset(
    key=PREDICTIONS.asset_key_path,
    # The champion is an input as much as the features: lineage shows which promotion scoring depends on.
    deps=[FEATURES_KEY, dg.AssetKey(["ml", "champion"])],
    group_name=groups.SCORING,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"spark", "delta", "mlflow"},
    owners=[OWNER],
    retry_policy=IDEMPOTENT_RETRY,
    description="One prediction per entity per as-of day by the @champion (with its version), its top 3 "
    "reasons (reason_1..3: feature and signed contribution in log-odds), plus the @challenger's shadow score "
    "when a challenger other than the champion exists.",
)
def predictions(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
) -> dg.MaterializeResult:
    days = partition_days(context)
    name = mlflow_tracking.model_name
    contract = feature_set.contract()
    registry = mlflow_tracking.registry()
    champion_version = registry.require_alias(CHAMPION, "predictions")
    challenger_version = registry.alias_version(CHALLENGER)
    shadow_version = challenger_version if challenger_version not in (None, champion_version) else None
    champion_model = registry.load(champion_version).to_dict()
    shadow_model = registry.load(shadow_version).to_dict() if shadow_version else None
    features = feature_set.read(lakehouse).where(
        F.col(contract.as_of).between(F.lit(days[0]), F.lit(days[-1]))
    )
    missing = days_without_rows(features, contract.as_of, days)
    if missing:
        source = contract.source.path if contract.source else FEATURES_KEY.to_user_string()
        error = MissingFeaturesError(missing_features_message(missing, source, contract.source is not None))
        raise dg.Failure(str(error), allow_retries=False) from error
    scored = score_partition(
        features, contract, name, champion_model, champion_version, shadow_model, shadow_version
    )
    scored = scored.withColumn("scored_at", F.lit(datetime.now(UTC)).cast("timestamp")).withColumn(
        "_partition_date", F.col("as_of")
    )
    delta = lakehouse.delta()
    # mergeSchema: a table written before the reason columns existed gains them (older rows read null).
    write = replace_run_partitions(delta, scored, PREDICTIONS, days, merge_schema=True)
    context.log.info(
        f"scored {write.commit.num_output_rows} rows with {name} v{champion_version} (shadow: {shadow_version})"
    )
    return dg.MaterializeResult(
        metadata=write.metadata(model_version=champion_version, shadow_model_version=shadow_version or "none")
    )


defs = dg.Definitions(assets=[predictions])
