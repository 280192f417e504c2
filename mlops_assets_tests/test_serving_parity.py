"""Online equals batch: the service over the suite's real @champion answers each (entity, as-of) with exactly the
score ``ml/predictions`` holds for it, and what it logged passes (then, tampered, fails) the skew check."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from pyspark.sql import functions as F

from mlops_assets.defs.serving import inference_log, train_serving_skew
from mlops_assets.lakehouse.catalog import FEATURES, PREDICTIONS
from mlops_assets.ml.mlflow_model import CHAMPION, ModelRegistry
from mlops_assets.ml.training import as_text
from mlops_assets_tests.conftest import TEST_END, range_tags
from mlops_assets_tests.servers import wait_until
from mlops_assets_tests.serving_fixtures import MODEL_NAME, running_server

pytestmark = pytest.mark.serving


@pytest.fixture(scope="module")
def builtin_champion(first_training) -> str:
    """``@champion`` = the suite's first trained version, on the built-in contract. Earlier modules of the group
    may have promoted a model trained on an external table with other features (as a user could)."""
    assert first_training.success
    [version] = [
        e.event_specific_data.materialization.metadata["model_version"].value
        for e in first_training.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "ml/churn_model"
    ]
    ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL_NAME).set_alias(CHAMPION, version)
    return version


@pytest.fixture(scope="module")
def batch_scored(builtin_champion, test_defs, test_resources, lakehouse):
    """Eight days scored by @champion: (champion version, pandas rows of features + batch score)."""
    start, end = TEST_END - timedelta(days=9), TEST_END - timedelta(days=2)
    result = test_defs.resolve_job_def("daily_scoring").execute_in_process(tags=range_tags(start, end))
    assert result.success
    version = ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL_NAME).alias_version(CHAMPION)
    contract = test_resources["feature_set"].contract()
    predictions = lakehouse.read(PREDICTIONS).where(F.col("as_of").between(start, end))
    features = lakehouse.read(FEATURES).withColumn("entity", F.col(contract.entity_key).cast("string"))
    rows = (
        predictions.where(F.col("model_version") == version)
        .join(features, ["entity", "as_of"])
        .select("entity", "as_of", "score", *contract.feature_names)
        .toPandas()
    )
    return version, contract, rows


def _instances(rows, contract, known: dict[str, list[str]]) -> tuple[list[dict], list[int]]:
    """JSON instances for the rows whose categories the model knows (the service refuses the others)."""
    instances, kept = [], []
    for i, row in enumerate(rows.to_dict("records")):
        instance = {contract.entity_key: row["entity"], contract.as_of: row["as_of"].isoformat()}
        for name in contract.numerical:
            value = row[name]
            instance[name] = (
                None if value is None or (isinstance(value, float) and math.isnan(value)) else value
            )
        for name in contract.categorical:
            text = as_text(rows[name].iloc[[i]]).iloc[0]
            instance[name] = None if not isinstance(text, str) else text
        if all(
            instance[n] is None or known[n] is None or instance[n] in known[n] for n in contract.categorical
        ):
            instances.append(instance)
            kept.append(i)
    return instances, kept


def _skew(test_resources) -> dg.AssetCheckEvaluation:
    result = dg.materialize([inference_log, train_serving_skew], resources=test_resources)
    assert result.success
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_online_scores_equal_batch_predictions_and_skew_is_caught_by_feature(
    batch_scored, test_resources, tmp_path
) -> None:
    version, contract, rows = batch_scored
    lakehouse = Path(test_resources["lakehouse"].root)
    env = {
        **os.environ,
        "LAKEHOUSE_ROOT": str(lakehouse),
        "SERVING_ALIAS_TTL_S": "1",
        "SERVING_LOG_ROTATE_S": "0.5",
    }
    env.pop("SERVING_API_KEYS", None)
    env.pop("FEATURE_CONTRACT", None)
    with running_server(lakehouse, env, tmp_path) as server:
        inputs = server.call("GET", f"/v2/models/{MODEL_NAME}").body["inputs"]
        known = {i["name"]: i["categories"] for i in inputs if "categories" in i}
        instances, kept = _instances(rows, contract, known)
        assert len(instances) >= 1000
        answers = []
        for start in range(0, len(instances), 500):
            response = server.score({"instances": instances[start : start + 500]})
            assert response.status == 200, response.body
            answers += response.body["predictions"]
        assert {a["model_version"] for a in answers} == {version}
        online = np.array([a["score"] for a in answers])
        batch = rows["score"].to_numpy()[kept]
        assert [a[contract.entity_key] for a in answers] == [i[contract.entity_key] for i in instances]
        np.testing.assert_allclose(online, batch, rtol=0, atol=1e-9)

        wait_until(lambda: len(server.records()) >= len(instances), 15, "the request log to close its files")
        clean = _skew(test_resources)
        assert clean.passed, clean.description
        assert clean.metadata["pairs_compared"].value >= 1000
        assert clean.metadata["rows_replayed"].value > 0
        assert clean.metadata["max_score_difference"].value <= 1e-9

        # A caller that computes one feature differently online: the check fails naming it.
        skewed = [{**i, "minutes_7d": (i["minutes_7d"] or 0) * 1.5 + 1} for i in instances[:200]]
        assert server.score({"instances": skewed}).status == 200
        wait_until(lambda: len(server.records()) >= len(instances) + 200, 15, "the skewed requests' log")
    failed = _skew(test_resources)
    assert not failed.passed
    assert failed.metadata["failing_features"].value == "minutes_7d"
    assert "minutes_7d" in failed.description and "tenure_days" not in failed.description


def test_a_shadow_rollout_runs_end_to_end_through_the_real_service(
    builtin_champion, test_defs, test_resources, lakehouse, tmp_path
) -> None:
    """Start (audited) -> the real service scores the shadow beside @champion -> the request log is ingested and
    the step judged by the real jobs -> completed without promoting, @candidate gone, every decision audited."""
    import mlflow

    from mlops_assets.lakehouse.catalog import PROMOTION_AUDIT
    from mlops_assets.ml.mlflow_model import CANDIDATE
    from mlops_assets_tests.small_lakehouse import project_experiment

    registry = ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL_NAME)
    champion = builtin_champion
    contract = test_resources["feature_set"].contract()
    example = lakehouse.read(FEATURES).limit(5).toPandas()
    with mlflow.start_run(
        experiment_id=project_experiment(test_resources)
    ):  # the champion's twin: same scores
        twin = registry.register(
            registry.load(champion), contract, example, {"training_run_id": "twin"}
        ).version
    # p99 guard loosened: the suite shares 2 cores with a Spark job on the other worker (a timing is no test).
    config = {"candidate": twin, "mode": "shadow", "min_requests_per_arm": 200, "settle_seconds": 0,
              "guards": {"max_p99_latency_ms": 5000}}  # fmt: skip
    started = test_defs.resolve_job_def("rollout_start").execute_in_process(
        run_config={"ops": {"start_rollout": {"config": config}}}
    )
    assert started.success and registry.alias_version(CANDIDATE) == twin
    rows = lakehouse.read(FEATURES).withColumn("entity", F.col(contract.entity_key).cast("string"))
    rows = rows.orderBy("entity").limit(300).toPandas()
    rows["score"] = 0.0
    instances, _ = _instances(rows, contract, {n: None for n in contract.categorical})
    root = Path(test_resources["lakehouse"].root)
    env = {
        **os.environ,
        "LAKEHOUSE_ROOT": str(root),
        "SERVING_ALIAS_TTL_S": "0.5",
        "SERVING_LOG_ROTATE_S": "0.5",
        "SERVING_RATE_LIMIT_RPS": "100000",  # one client sending 250 requests back to back
        "SERVING_RATE_LIMIT_BURST": "100000",
    }
    with running_server(root, env, tmp_path) as server:
        wait_until(lambda: server.state()["candidate_version"] == twin, 15, "the shadow to start")
        sent = [server.score(i) for i in instances[:250]]
        assert {r.status for r in sent} <= {200, 422} and sum(r.status == 200 for r in sent) >= 200
        assert {p["arm"] for r in sent if r.status == 200 for p in r.body["predictions"]} == {"champion"}
    step = test_defs.resolve_job_def("rollout_step_job").execute_in_process()
    assert step.success
    audit = lakehouse.read(PROMOTION_AUDIT).where(
        (F.col("model_name") == MODEL_NAME) & (F.col("to_version") == twin)
    )
    audit = audit.orderBy("decided_at").collect()
    assert [r["decision"] for r in audit] == ["rollout_started", "rollout_shadow_passed"], audit
    assert registry.alias_version(CHAMPION) == champion and registry.alias_version(CANDIDATE) is None
