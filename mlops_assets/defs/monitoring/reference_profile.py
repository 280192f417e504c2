"""The champion's reference profile: computed once per version from its training rows, then read by every
drift report (the storage is ``monitoring/profile_store.py``)."""

import json

import dagster as dg

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER
from mlops_assets.defs.training import SPLIT, read_training_set
from mlops_assets.ml.mlflow_model import CHAMPION
from mlops_assets.monitoring.profile import build_profile_pandas
from mlops_assets.monitoring.profile_store import store_profile, stored_profile_json
from mlops_assets.monitoring.severity import SCORE_COLUMN as SCORE
from mlops_assets.resources import (
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
    MonitoringResource,
)

REFERENCE_PROFILE_KEY = dg.AssetKey(["monitoring", "reference_profile"])


@dg.asset(
    key=REFERENCE_PROFILE_KEY,
    deps=[["ml", "champion"]],
    group_name=groups.MONITORING,
    kinds={"delta", "mlflow"},
    owners=[OWNER],
    description="Per champion version, computed once from its training rows: quantile bins and counts of each "
    "numerical feature and of the model score, top-K vocabularies of categoricals. Kilobytes; drift runs never "
    "re-read the reference data.",
)
def reference_profile(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
    monitoring: MonitoringResource,
) -> dg.MaterializeResult:
    name = mlflow_tracking.model_name
    registry = mlflow_tracking.registry()
    version = registry.require_alias(CHAMPION, "reference_profile")
    delta = lakehouse.delta()
    profile_json = stored_profile_json(delta, name, version)
    if profile_json is not None:
        context.log.info(f"reference profile of {name} v{version} exists; not recomputed")
    else:
        contract = feature_set.contract()
        train = read_training_set(lakehouse)
        train = train[train[SPLIT] == "train"].copy()
        train[SCORE] = registry.load(version).predict_proba(train)
        numerical = [c for c in contract.numerical if c not in monitoring.exclude_columns]
        categorical = [c for c in contract.categorical if c not in monitoring.exclude_columns]
        profile = build_profile_pandas(train, [*numerical, SCORE], categorical)
        profile_json = profile.to_json()
        store_profile(delta, name, version, profile_json)
        run_id = registry.version(version).run_id
        mlflow_tracking.client().log_text(run_id, profile_json, "monitoring/reference_profile.json")
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "profile_bytes": len(profile_json),
            "columns": len(json.loads(profile_json)["columns"]),
        }
    )


defs = dg.Definitions(assets=[reference_profile])
