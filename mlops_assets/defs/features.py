"""Features: the point-in-time churn feature set, one partition per as-of date, and its leakage gate."""

import dagster as dg
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import (
    IDEMPOTENT_RETRY,
    OWNER,
    partition_days,
    read_run_partitions,
    replace_run_partitions,
)
from mlops_assets.lakehouse.catalog import FEATURES, GOLD
from mlops_assets.lakehouse.features import as_of_frame, build_features, feature_inputs, leakage_violations
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import LakehouseResource

GOLD_INPUTS = {name: GOLD[name] for name in ("customer_history", "fct_usage_daily", "fct_billing_events")}


@dg.asset(
    key=FEATURES.asset_key_path,
    deps=[dg.AssetKey(ref.asset_key_path) for ref in GOLD_INPUTS.values()],
    group_name=groups.FEATURES,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"spark", "delta"},
    owners=[OWNER],
    retry_policy=IDEMPOTENT_RETRY,
    description="Churn features per active customer and as-of date, computed only from data that had "
    "happened and arrived before the as-of date. Described by contracts/churn_features.yaml.",
)
def churn_features(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    days = partition_days(context)
    delta = lakehouse.delta()
    gold = {name: delta.read(ref) for name, ref in GOLD_INPUTS.items()}
    usage, billing = feature_inputs(gold["fct_usage_daily"], gold["fct_billing_events"], days[0], days[-1])
    features = build_features(
        as_of_frame(delta.spark, days), gold["customer_history"], usage, billing
    ).withColumn("_partition_date", F.col("as_of"))
    write = replace_run_partitions(delta, features, FEATURES, days)
    context.log.info(f"{FEATURES}: {write.commit.num_output_rows} feature rows for {len(days)} as-of date(s)")
    return dg.MaterializeResult(metadata=write.metadata())


@dg.asset_check(
    asset=FEATURES.asset_key_path,
    name="point_in_time",
    blocking=True,
    partitions_def=daily_partitions,
    description="No feature row used data that happened or arrived on or after its as-of date.",
)
def point_in_time(
    context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource
) -> dg.AssetCheckResult:
    violations = leakage_violations(read_run_partitions(context, lakehouse, FEATURES))
    return dg.AssetCheckResult(passed=violations == 0, metadata={"rows_using_future_data": violations})


defs = dg.Definitions(assets=[churn_features], asset_checks=[point_in_time])
