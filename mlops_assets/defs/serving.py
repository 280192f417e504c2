"""Serving: the scoring service's request log as the Delta inference table, and the train-serving skew check.

The service (``make serve``) runs outside Dagster and never opens Spark; this stage brings what it answered
into the lakehouse, where the rollout judge and the skew check read it.
"""

import json

import dagster as dg
import numpy as np
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime
from mlops_assets.lakehouse.catalog import FEATURES, INFERENCE_LOG, PREDICTIONS
from mlops_assets.lakehouse.inference_log import ingest_request_log
from mlops_assets.resources import FeatureSetResource, LakehouseResource, MlflowTrackingResource
from mlops_assets.serving.request_log import request_log_dir
from mlops_assets.serving.scorer import offline_records, record_scorer
from mlops_assets.serving.skew import compare_features, with_replay

INFERENCE_LOG_KEY = dg.AssetKey(INFERENCE_LOG.asset_key_path)
# How many logged requests and offline rows the skew check compares (the latest ones).
SKEW_SAMPLE_ROWS = 5000
REPLAY_ROWS = 2000
# A feature may disagree on this share of logged requests before the check fails (offline features are
# recomputed when late data lands, so a request scored before that legitimately differs).
MAX_MISMATCH_SHARE = 0.01


@dg.asset(
    key=INFERENCE_LOG.asset_key_path,
    group_name=groups.SERVING,
    kinds={"spark", "delta"},
    owners=[OWNER],
    description="Every answer of the scoring service (`make serve`): one row per request, entity and arm "
    "(features as received, score, label, model version, arm, served or shadow, latency, status), appended "
    "from the service's closed request-log files, each file once. Lines that are not whole records go to "
    "quarantine/inference_log with the reason.",
)
def inference_log(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
    directory = request_log_dir(lakehouse.root)
    result = ingest_request_log(lakehouse.delta(), directory)
    context.log.info(
        f"ingested {result.rows} rows from {result.files} request-log files ({result.quarantined} quarantined, "
        f"{result.skipped_files} already in the table)"
    )
    return dg.MaterializeResult(metadata={**result.metadata(), "request_log_dir": directory})


@dg.asset_check(
    asset=INFERENCE_LOG_KEY,
    name="train_serving_skew",
    description="The features callers sent online against features/churn_features for the same (entity, "
    "as-of): exact for categoricals and integers, 1e-6 relative for floats; fails naming each feature that "
    "disagrees on more than 1% of logged requests, with the PSI of online against offline values. Also "
    "replays offline rows through the service's scorer against ml/predictions (same version, within 1e-9).",
)
def train_serving_skew(
    lakehouse: LakehouseResource, feature_set: FeatureSetResource, mlflow_tracking: MlflowTrackingResource
) -> dg.AssetCheckResult:
    delta = lakehouse.delta()
    contract = feature_set.contract()
    if contract.source is None and not delta.exists(FEATURES):
        return dg.AssetCheckResult(passed=True, description="no offline features yet: nothing to compare")
    key, as_of = contract.entity_key, contract.as_of
    numerical, categorical = list(contract.numerical), list(contract.categorical)
    offline = feature_set.read(lakehouse).withColumn("_entity", F.col(key).cast("string"))
    logged = (
        delta.read(INFERENCE_LOG)
        .where("status = 200 AND served AND as_of IS NOT NULL")
        .orderBy(F.col("logged_at").desc())
        .limit(SKEW_SAMPLE_ROWS)
        .select(F.col("entity").alias("_entity"), F.col("as_of").alias("_as_of"), "features")
    )
    pairs = (
        logged.join(offline, (logged["_entity"] == offline["_entity"]) & (logged["_as_of"] == offline[as_of]))
        .select("features", *numerical, *categorical)
        .toPandas()
    )
    online = [json.loads(f) for f in pairs["features"]]
    report = compare_features(
        online, offline_records(pairs, numerical, categorical), numerical, categorical, MAX_MISMATCH_SHARE
    )
    if delta.exists(PREDICTIONS):
        predictions = delta.read(PREDICTIONS)
        latest = predictions.agg(F.max("as_of")).first()[0]
        scored = predictions.where(F.col("as_of") == latest).limit(REPLAY_ROWS)
        replay = (
            scored.join(
                offline, (scored["entity"] == offline["_entity"]) & (scored["as_of"] == offline[as_of])
            )
            .select("score", "model_version", *numerical, *categorical)
            .toPandas()
        )
        registry = mlflow_tracking.registry()
        online_scores, batch_scores = [], []
        for version, rows in replay.groupby("model_version"):
            scorer = record_scorer(registry.load(str(version)))
            online_scores.append(scorer.scores(offline_records(rows, numerical, categorical)))
            batch_scores.append(rows["score"].to_numpy())
        if batch_scores:
            report = with_replay(report, np.concatenate(online_scores), np.concatenate(batch_scores))
    return dg.AssetCheckResult(
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(report.problems) or None,
        metadata={
            "pairs_compared": report.pairs,
            "rows_replayed": report.replayed,
            "max_score_difference": report.max_score_difference,
            "failing_features": ", ".join(f.feature for f in report.features if f.share > MAX_MISMATCH_SHARE)
            or "none",
            "report": dg.MetadataValue.md(report.markdown()),
        },
    )


inference_log_job = dg.define_asset_job(
    name="inference_log_job",
    selection=dg.AssetSelection.assets(INFERENCE_LOG_KEY),
    tags=max_runtime(hours=0.5),
    description="Append the scoring service's closed request-log files to serving/inference_log, then check "
    "train-serving skew (the rollout sensor's runs ingest too).",
)

defs = dg.Definitions(assets=[inference_log], asset_checks=[train_serving_skew], jobs=[inference_log_job])
