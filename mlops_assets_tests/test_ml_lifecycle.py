"""End to end on the small test lakehouse: train -> evaluate -> gated promotion -> scoring -> rollback, with a
real MLflow tracking store and registry, and the ML stages pointed at an external feature table by config.

The registry is shared state, as in production: each test asks for the state it needs through a fixture (a first
trained champion, a second promotion, a refused challenger), so any single test also passes alone (`-k`).
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from pyspark.sql import functions as F

from mlops_assets.lakehouse.catalog import DRIFT_REPORTS, FEATURES, PREDICTIONS, PROMOTION_AUDIT, TRAINING_SET
from mlops_assets.ml.evaluation import SECTIONS
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION, ModelRegistry
from mlops_assets.ml.promotion import KEEP_CHAMPION, PromotionDecision
from mlops_assets.ml.training import tune_and_train
from mlops_assets_tests.conftest import FAST_TRAINING, TEST_END, TEST_START, range_tags
from mlops_assets_tests.small_lakehouse import project_experiment, suite_promotion_policy

MODEL = "churn_model"
AUDIT = PROMOTION_AUDIT


def registry() -> ModelRegistry:
    """The test model in the suite's MLflow store (conftest points MLFLOW_TRACKING_URI at it)."""
    return ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }


def test_training_registers_a_version_with_trials_as_child_runs(first_training):
    assert first_training.success
    model = _materialized(first_training)["ml/churn_model"]
    version = model["model_version"].value
    client = MlflowClient()
    mv = client.get_model_version(MODEL, version)
    for tag in (
        "dagster_run_id",
        "feature_set",
        "feature_set_fingerprint",
        "dataset_fingerprint",
        "code_version",
    ):
        assert mv.tags.get(tag), tag
    assert mv.tags["dagster_run_id"] == first_training.run_id
    parent = client.get_run(mv.run_id)
    assert parent.data.tags["dagster_run_id"] == first_training.run_id
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{mv.run_id}'"
    )
    trials = [c for c in children if "optuna_state" in c.data.tags]
    assert len(trials) == 4
    assert {c.data.tags["optuna_state"] for c in trials} <= {"COMPLETE", "PRUNED"}
    # The zoo: every family a child run of its own, the chosen one registered, the policy's reason recorded.
    candidates = {c.data.tags["zoo_candidate"]: c for c in children if "zoo_candidate" in c.data.tags}
    assert set(candidates) == {"baseline", "logistic", "lightgbm"} and len(children) == 4 + 3
    zoo = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/zoo.json")
    assert {c["family"] for c in zoo["candidates"]} == set(candidates)
    assert zoo["selection"]["chosen"] in {"logistic", "lightgbm"} and zoo["selection"]["reason"]
    assert registry().load(version).to_dict()["family"] == zoo["selection"]["chosen"]
    assert candidates["logistic"].data.metrics["valid_auc"] > candidates["baseline"].data.metrics["valid_auc"]
    assert "best_valid_auc" in parent.data.metrics and "seed" in parent.data.params
    # The training rows are logged as the run's dataset, named by the Delta version they were read at.
    (dataset,) = parent.inputs.dataset_inputs
    assert dataset.dataset.name == mv.tags["dataset_fingerprint"] and dataset.dataset.name.startswith("ml.")
    assert json.loads(dataset.dataset.source)["uri"].endswith("/ml/training_set")
    assert [t.value for t in dataset.tags if t.key == "mlflow.data.context"] == ["training"]
    assert registry().alias_version(CHALLENGER) == version


def test_first_model_beating_the_baseline_becomes_champion(first_training, lakehouse):
    gate = _checks(first_training)["promotion_gate"]
    assert gate.passed, gate.metadata["reasons"].value
    version = _materialized(first_training)["ml/churn_model"]["model_version"].value
    assert registry().alias_version(CHAMPION) == version
    # Other modules share the session lakehouse, so read only this run's rows.
    audit = lakehouse.read(AUDIT).where(F.col("dagster_run_id") == first_training.run_id).collect()
    # The gate's verdict for the exact version, then the promotion it allowed, both in the training run.
    assert [(r["decision"], r["to_version"], r["dagster_run_id"]) for r in audit] == [
        ("gate_passed", version, first_training.run_id),
        ("promoted", version, first_training.run_id),
    ]


def test_evaluation_report_has_every_section_in_ui_and_mlflow(first_training):
    report = _materialized(first_training)["ml/evaluation_report"]
    markdown = report["report"].value
    for section in SECTIONS:
        assert f"## {section}" in markdown, section
    assert "data:image/png;base64," in markdown
    assert "intended use" in report["model_card"].value.lower()
    # The MLflow run is a link into the MLflow UI (`make mlflow`), not an id to copy.
    link = report["mlflow_run"]
    assert isinstance(link, dg.UrlMetadataValue)
    prefix, run_id = link.url.rsplit("/runs/", 1)
    experiment_id = MlflowClient().get_run(run_id).info.experiment_id
    assert prefix == f"http://127.0.0.1:5000/#/experiments/{experiment_id}"
    artifacts = {a.path for a in MlflowClient().list_artifacts(run_id, "evaluation")}
    assert {"evaluation/report.md", "evaluation/model_card.md", "evaluation/roc_curve.png"} <= artifacts
    # Explanations from the registered model's own contributions, shown in the UI and logged beside the report.
    assert {"evaluation/importance.png", "evaluation/dependence.png"} <= artifacts
    assert "| Feature | Mean abs. contribution | Mean contribution |" in markdown
    assert "worst-predicted test rows (largest log loss)" in markdown
    run = MlflowClient().get_run(run_id)
    assert run.info.run_name == f"train_evaluate_promote {first_training.run_id[:8]}"
    assert first_training.run_id in run.data.tags["mlflow.note.content"]
    metrics = run.data.metrics
    assert metrics["test_roc_auc_ci_low"] <= metrics["test_roc_auc"] <= metrics["test_roc_auc_ci_high"]


@pytest.fixture(scope="module")
def retrained(first_training, test_defs):
    """A second training with the same inputs and seed: an identical challenger, so the first stays champion."""
    assert first_training.success
    return test_defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        run_config=FAST_TRAINING, raise_on_error=False
    )


def test_training_is_reproducible_for_the_same_inputs_and_seed(first_training, retrained, lakehouse):
    again = retrained
    assert again.success
    first, second = (_materialized(r)["ml/churn_model"] for r in (first_training, again))
    assert first["best_valid_auc"].value == second["best_valid_auc"].value
    assert first["best_params"].value == second["best_params"].value
    # The identical challenger passes every guardrail but is no material change: the champion stays.
    gate = _checks(again)["promotion_gate"]
    assert gate.passed and gate.metadata["verdict"].value == "no_material_change"
    decision = PromotionDecision.from_dict(gate.metadata["decision"].value)
    assert decision.outcome == KEEP_CHAMPION and decision.checks["material_change"] is False
    first_version, second_version = first["model_version"].value, second["model_version"].value
    assert second_version != first_version
    assert registry().alias_version(CHAMPION) == first_version
    assert _materialized(again)["ml/champion"]["kept_over"].value == second_version
    audit = (
        lakehouse.read(AUDIT).where(F.col("dagster_run_id") == again.run_id).orderBy("decided_at").collect()
    )
    assert [(r["decision"], r["from_version"], r["to_version"]) for r in audit] == [
        ("no_material_change", first_version, second_version),
        ("champion_kept", first_version, second_version),
    ]
    (reason,) = [r for r in audit[0]["reasons"] if "material_change" in r]
    assert "no material change" in reason and "[0.000, 0.000]" in reason and "band ±0.005" in reason


@pytest.fixture(scope="module")
def refused_challenger(first_training, test_defs, test_resources):
    """A genuinely worse model registered as @challenger, and the evaluation + gated promotion run it got.
    Returns (that run, the champion before it, the worse version)."""
    from mlops_assets.defs.training import read_training_set

    assert first_training.success
    champion_before = registry().alias_version(CHAMPION)
    contract = test_resources["feature_set"].contract()
    df = read_training_set(test_resources["lakehouse"])
    train, valid = df[df["split"] == "train"].copy(), df[df["split"] == "valid"].copy()
    # A genuinely worse model: trained on labels shuffled so it learns nothing.
    train[contract.label] = train[contract.label].sample(frac=1.0, random_state=1).to_numpy()
    noise = tune_and_train(train, valid, contract, n_trials=1, seed=1)
    with mlflow.start_run(run_name="worse-challenger", experiment_id=project_experiment(test_resources)):
        bad = registry().register(
            noise.to_model(0.5),
            contract,
            train,
            tags={
                "dagster_run_id": "test",
                "feature_set": "churn_features v1",
                "feature_set_fingerprint": contract.fingerprint(),
                "dataset_fingerprint": "test",
            },
        )
    registry().set_alias(CHALLENGER, bad.version)

    result = test_defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        asset_selection=[dg.AssetKey(["ml", "evaluation_report"]), dg.AssetKey(["ml", "champion"])],
        raise_on_error=False,
    )
    return result, champion_before, bad.version


def test_gate_refuses_a_worse_challenger_and_audits_it(refused_challenger, lakehouse):
    result, champion_before, bad_version = refused_challenger
    gate = _checks(result)["promotion_gate"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert "FAIL" in gate.metadata["reasons"].value
    assert "ml/champion" not in _materialized(result)
    assert registry().alias_version(CHAMPION) == champion_before
    refused = (
        lakehouse.read(AUDIT)
        .where((F.col("decision") == "refused") & (F.col("dagster_run_id") == result.run_id))
        .collect()
    )
    assert [(r["from_version"], r["to_version"]) for r in refused] == [(champion_before, bad_version)]
    assert any("roc_auc" in reason for reason in refused[0]["reasons"])


def test_scoring_writes_one_row_per_entity_per_day_with_shadow_scores_and_reasons(
    refused_challenger, test_defs, test_resources, lakehouse
):
    start = TEST_END - timedelta(days=1)
    result = test_defs.resolve_job_def("daily_scoring").execute_in_process(
        tags=range_tags(start, TEST_END), raise_on_error=False
    )
    assert result.success
    predictions = lakehouse.read(PREDICTIONS)
    features = lakehouse.read(FEATURES).where(F.col("as_of") >= start)
    assert predictions.count() == features.count() > 0
    assert predictions.select("entity", "as_of").distinct().count() == predictions.count()
    assert {r[0] for r in predictions.select("model_version").distinct().collect()} == {
        registry().alias_version(CHAMPION)
    }
    # The refused challenger still scores in shadow, so the two can be compared on live data.
    assert predictions.where("shadow_score IS NULL").count() == 0
    assert {r[0] for r in predictions.select("shadow_model_version").distinct().collect()} == {
        registry().alias_version(CHALLENGER)
    }
    assert predictions.where("score < 0 OR score > 1").count() == 0
    _assert_reasons_are_the_champions_largest_contributions(
        predictions, features, test_resources["feature_set"].contract()
    )


def _assert_reasons_are_the_champions_largest_contributions(predictions, features, contract) -> None:
    """reason_1..3 beside each score are the champion's three largest |contributions|, recomputed here."""
    reasons = [c for i in (1, 2, 3) for c in (f"reason_{i}", f"reason_{i}_contribution")]
    rows = predictions.select("entity", "as_of", "score", *reasons).toPandas()
    assert rows["reason_1"].notna().all() and rows["reason_3"].notna().all()
    assert set(rows["reason_1"]) <= set(contract.feature_names)
    magnitudes = rows[[f"reason_{i}_contribution" for i in (1, 2, 3)]].abs().to_numpy()
    assert (magnitudes[:, :-1] >= magnitudes[:, 1:]).all()  # largest first
    frame = features.toPandas()
    frame = frame.assign(entity=frame[contract.entity_key].astype(str), as_of=pd.to_datetime(frame["as_of"]))
    rows["as_of"] = pd.to_datetime(rows["as_of"])
    joined = rows.merge(frame, on=["entity", "as_of"], validate="one_to_one")
    champion = registry().load(registry().alias_version(CHAMPION))
    contributions = champion.contributions(joined)
    assert np.allclose(contributions.margin(), champion.margin(joined))
    assert np.allclose(joined["score"], champion.predict_proba(joined))
    largest = np.sort(np.abs(contributions.values), axis=1)[:, ::-1][:, :3]
    assert np.allclose(joined[[f"reason_{i}_contribution" for i in (1, 2, 3)]].abs().to_numpy(), largest)
    for i in (1, 2, 3):
        index = [contributions.feature_names.index(n) for n in joined[f"reason_{i}"]]
        picked = contributions.values[np.arange(len(joined)), index]
        assert np.allclose(picked, joined[f"reason_{i}_contribution"])


def test_a_predictions_table_written_before_reasons_gains_the_columns(spark, lakehouse):
    """Schema evolution: the scoring write adds the reason columns to an older table; old rows read null."""
    from mlops_assets.lakehouse.delta_io import PARTITION_COLUMN
    from mlops_assets.lakehouse.tables import TableRef
    from mlops_assets.ml.explain import REASON_SCHEMA

    table = TableRef("ml", "predictions_before_reasons")
    old_schema = "entity string, score double, " + PARTITION_COLUMN + " date"
    day1, day2 = TEST_START, TEST_START + timedelta(days=1)
    lakehouse.replace_partitions(spark.createDataFrame([("a", 0.2, day1)], old_schema), table, day1, day1)
    new_row = ("b", 0.7, day2, "tenure_days", -0.5, "plan", 0.25, "tickets_30d", 0.1)
    new = spark.createDataFrame(
        [new_row], f"entity string, score double, {PARTITION_COLUMN} date, {REASON_SCHEMA}"
    )
    with pytest.raises(Exception, match=r"(?i)schema"):  # without mergeSchema Delta refuses the new columns
        lakehouse.replace_partitions(new, table, day2, day2)
    lakehouse.replace_partitions(new, table, day2, day2, merge_schema=True)
    rows = {r["entity"]: r for r in lakehouse.read(table).collect()}
    assert rows["a"]["reason_1"] is None and rows["a"]["reason_1_contribution"] is None
    assert (rows["b"]["reason_1"], rows["b"]["reason_1_contribution"]) == ("tenure_days", -0.5)


def test_drift_report_measures_performance_once_a_days_labels_close(first_training, test_defs, lakehouse):
    profile = _materialized(first_training)["monitoring/reference_profile"]
    assert 0 < profile["profile_bytes"].value < 64_000  # kilobytes, not the training rows
    labelled, recent = TEST_START + timedelta(days=12), TEST_END  # 30-day labels closed / still open
    for day in (labelled, recent):
        result = test_defs.resolve_job_def("daily_scoring").execute_in_process(
            partition_key=day.isoformat(), raise_on_error=False
        )
        assert result.success
        metadata = _materialized(result)["monitoring/drift_report"]
        verdict = metadata["verdict"].value
        assert metadata["action"].value == verdict["action"]
        # Figures for Dagster's plots tab: numbers, not text.
        assert isinstance(metadata["max_psi"].value, float) and metadata["max_psi"].value >= 0
        assert metadata["critical_column_count"].value == len(verdict["critical_columns"])
        assert isinstance(metadata["baseline_roc_auc"].value, float)
        assert verdict["model_version"] == registry().alias_version(CHAMPION)
        assert _checks(result)["drift_severity"].metadata["level"].value == verdict["data_drift_level"]
    rows = {r["_partition_date"]: r for r in lakehouse.read(DRIFT_REPORTS).collect()}
    assert rows[labelled]["performance_level"] in {"none", "moderate", "significant"}
    assert 0.5 < rows[labelled]["current_roc_auc"] <= 1.0 and rows[labelled]["baseline_roc_auc"] > 0.5
    assert rows[labelled]["data_version"].endswith(":labelled")
    assert rows[recent]["performance_level"] == "pending" and rows[recent]["current_roc_auc"] is None
    assert rows[recent]["data_version"].endswith(":pending")
    report = json.loads(rows[labelled]["report_json"])
    assert report["action"] == rows[labelled]["action"]
    # The label-free estimate (CBPE, from the champion's calibration map): on both days, beside the realized
    # ROC-AUC once the labels are in, and in the figures Dagster plots.
    for day in (labelled, recent):
        estimate = json.loads(rows[day]["report_json"])["estimate"]
        assert (
            0.5 < estimate["estimate"] <= 1 and estimate["lower"] <= estimate["estimate"] <= estimate["upper"]
        )
        assert estimate["n"] > 0 and json.loads(rows[day]["report_json"])["estimated_level"] is not None
    assert "estimated roc_auc without labels (CBPE)" in metadata["report"].value  # the pending day's report
    assert isinstance(metadata["estimated_roc_auc"].value, float)


def test_a_multi_day_drift_run_gives_each_day_its_own_verdict_and_report(
    first_training, test_defs, lakehouse
):
    first, last = TEST_END - timedelta(days=2), TEST_END
    result = test_defs.resolve_job_def("daily_scoring").execute_in_process(
        tags=range_tags(first, last), raise_on_error=False
    )
    assert result.success
    events = [
        e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(["monitoring", "drift_report"])
    ]
    assert sorted(m.partition for m in events) == [(first + timedelta(days=i)).isoformat() for i in range(3)]
    rows = {r["_partition_date"].isoformat(): r for r in lakehouse.read(DRIFT_REPORTS).collect()}
    for m in events:
        # The day's own action (not the run's worst), its own report first, and the verdict last.
        assert (
            m.metadata["verdict"].value["action"] == rows[m.partition]["action"] == m.metadata["action"].value
        )
        assert m.metadata["report"].value.startswith(f"# {m.partition}\n")
        assert next(iter(m.metadata)) == "report"
        assert m.metadata["critical_column_count"].value == len(rows[m.partition]["critical_columns"])


@pytest.fixture(scope="module")
def second_champion(first_training, retrained, test_resources):
    """The retrained version promoted over the first with the material-change rule off (band 0), so the
    champion has a previous one to return to."""
    from mlops_assets.definitions import build_defs

    first, second = (
        _materialized(r)["ml/churn_model"]["model_version"].value for r in (first_training, retrained)
    )
    registry().set_alias(CHAMPION, first)
    registry().set_alias(CHALLENGER, second)
    defs = build_defs({**test_resources, "promotion_policy": suite_promotion_policy(equivalence_band=0)})
    result = defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        asset_selection=[dg.AssetKey(["ml", "evaluation_report"]), dg.AssetKey(["ml", "champion"])],
        raise_on_error=False,
    )
    assert result.success and registry().alias_version(CHAMPION) == second
    return second


def test_rollback_restores_the_previous_champion(second_champion, test_defs, lakehouse):
    current = registry().alias_version(CHAMPION)
    assert current == second_champion
    promoted = lakehouse.read(AUDIT).where(
        (F.col("decision") == "promoted") & (F.col("to_version") == current)
    )
    previous = promoted.first()["from_version"]
    assert previous is not None
    result = test_defs.resolve_job_def("rollback_champion").execute_in_process()
    assert result.success
    assert registry().alias_version(CHAMPION) == previous
    rollback = (
        lakehouse.read(AUDIT)
        .where((F.col("decision") == "rollback") & (F.col("dagster_run_id") == result.run_id))
        .collect()
    )
    assert [(r["from_version"], r["to_version"]) for r in rollback] == [(current, previous)]


def _external_table(
    tmp_path: Path, lakehouse, leaky: bool, labels: str | None = None, pending_from=None
) -> Path:
    """Export the built-in training data to Parquet with a contract: the 'bring your own table' path. With
    ``labels`` the contract names them: ``own`` (the table's label column and a ``label_known`` date) or
    ``table`` (a separate label table); labels of as-of dates from ``pending_from`` on are known only in 2999."""
    from mlops_assets.resources import DEFAULT_CONTRACT

    table = lakehouse.read(TRAINING_SET).drop("split")
    if leaky:
        table = table.withColumn("days_to_cancel", F.col("churned_30d") * 10 + F.rand(seed=3))
    path = tmp_path / ("leaky" if leaky else "clean")
    contract = yaml.safe_load(DEFAULT_CONTRACT.read_text())
    if labels is not None:
        pending = F.col("as_of") >= F.lit(pending_from) if pending_from else F.lit(False)
        known = F.when(pending, F.lit("2999-01-01").cast("date")).otherwise(F.date_add("as_of", 30))
        table = table.withColumn("label_known", known)
        contract["labels"] = {"available": "label_known"}
        if labels == "table":
            label_path = str(path / "labels.parquet")
            table.select("customer_id", "as_of", "churned_30d", "label_known").write.parquet(label_path)
            table = table.drop("churned_30d", "label_known")
            contract["labels"]["source"] = {"format": "parquet", "path": label_path}
    table.write.mode("overwrite").parquet(str(path / "features.parquet"))
    contract["name"] = "my_churn_features"
    contract["source"] = {"format": "parquet", "path": str(path / "features.parquet")}
    if leaky:
        contract["features"].append({"name": "days_to_cancel", "kind": "numerical"})
    (path / "contract.yaml").write_text(yaml.safe_dump(contract))
    return path / "contract.yaml"


@pytest.mark.parametrize("labels", ["own", "table"])
def test_an_external_tables_drift_report_measures_performance_from_the_labels_its_contract_names(
    first_training, test_resources, lakehouse, tmp_path, labels
):
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import FeatureSetResource

    days = sorted(r[0] for r in lakehouse.read(TRAINING_SET).select("as_of").distinct().collect())
    labelled, pending = days[-2], days[-1]  # the newest day's labels are known only after this run
    contract_path = _external_table(tmp_path, lakehouse, leaky=False, labels=labels, pending_from=pending)
    feature_set = FeatureSetResource(contract_path=str(contract_path))
    defs = build_defs({**test_resources, "feature_set": feature_set})
    for day in (labelled, pending):
        result = defs.resolve_job_def("daily_scoring").execute_in_process(
            partition_key=day.isoformat(), raise_on_error=False
        )
        assert result.success
    rows = {r["_partition_date"]: r for r in lakehouse.read(DRIFT_REPORTS).collect()}
    assert rows[labelled]["performance_level"] in {"none", "moderate", "significant"}
    assert 0.5 < rows[labelled]["current_roc_auc"] <= 1.0
    assert rows[labelled]["data_version"].endswith(":labelled")
    assert rows[pending]["performance_level"] == "pending" and rows[pending]["current_roc_auc"] is None
    assert rows[pending]["data_version"].endswith(":pending")
    # Its training set (written to a lakehouse of its own) keeps only the rows whose labels are known.
    from mlops_assets.defs.training import training_set
    from mlops_assets.resources import LakehouseResource

    own = LakehouseResource(root=str(tmp_path / "own_lakehouse"), spark=test_resources["spark"])
    assert dg.materialize([training_set], resources={"lakehouse": own, "feature_set": feature_set}).success
    trained_on = own.delta().read(TRAINING_SET).select("as_of").distinct().collect()
    assert sorted(r[0] for r in trained_on) == days[:-1]


def test_ml_stages_run_on_an_external_feature_table_by_config_alone(
    first_training, test_resources, lakehouse, tmp_path
):
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import FeatureSetResource

    contract_path = _external_table(tmp_path, lakehouse, leaky=False)
    defs = build_defs({**test_resources, "feature_set": FeatureSetResource(contract_path=str(contract_path))})
    result = defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        run_config=FAST_TRAINING, raise_on_error=False
    )
    assert result.success
    version = _materialized(result)["ml/churn_model"]["model_version"].value
    assert MlflowClient().get_model_version(MODEL, version).tags["feature_set"] == "my_churn_features v1"
    assert "features.parquet" in _materialized(result)["ml/training_set"]["external_source"].value


def test_a_planted_leaky_feature_is_caught_and_blocks_training(
    first_training, test_resources, lakehouse, tmp_path
):
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import FeatureSetResource

    contract_path = _external_table(tmp_path, lakehouse, leaky=True)
    defs = build_defs({**test_resources, "feature_set": FeatureSetResource(contract_path=str(contract_path))})
    result = defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        run_config=FAST_TRAINING, raise_on_error=False
    )
    leak = _checks(result)["no_single_feature_leak"]
    assert not leak.passed
    assert leak.metadata["suspicious_features"].value == ["days_to_cancel"]
    assert "ml/churn_model" not in _materialized(result)


def test_a_contract_that_does_not_match_its_table_names_the_column(test_resources, lakehouse, tmp_path):
    from mlops_assets.ml.contract import ContractError
    from mlops_assets.resources import FeatureSetResource

    contract_path = _external_table(tmp_path, lakehouse, leaky=False)
    contract = yaml.safe_load(contract_path.read_text())
    contract["features"].append({"name": "lifetime_value", "kind": "numerical"})
    contract["features"] = [
        {**f, "kind": "categorical"} if f["name"] == "minutes_7d" else f for f in contract["features"]
    ]
    contract_path.write_text(yaml.safe_dump(contract))
    with pytest.raises(ContractError) as error:
        FeatureSetResource(contract_path=str(contract_path)).read(test_resources["lakehouse"])
    assert "lifetime_value" in str(error.value) and "missing" in str(error.value)
    assert "minutes_7d" in str(error.value)
    json.dumps(error.value.problems)  # problems are plain strings, ready for the UI


def test_an_external_table_with_rows_before_the_partitions_start_names_the_setting(
    first_training, test_resources, lakehouse, tmp_path
):
    from mlops_assets.environment import build_resources
    from mlops_assets.settings import SettingsError, load_settings

    contract_path = _external_table(tmp_path, lakehouse, leaky=False)
    first = lakehouse.read(TRAINING_SET).agg(F.min("as_of")).first()[0]
    environ = {**os.environ, "FEATURE_CONTRACT": str(contract_path)}
    later = build_resources(load_settings({**environ, "MLOPS_START_DATE": str(first + timedelta(days=1))}))
    with pytest.raises(SettingsError) as error:
        later["feature_set"].read(test_resources["lakehouse"])
    assert f"has rows from {first}" in str(error.value) and f"MLOPS_START_DATE={first}" in str(error.value)
    # Starting on the table's first day is fine.
    same = build_resources(load_settings({**environ, "MLOPS_START_DATE": str(first)}))
    assert same["feature_set"].read(test_resources["lakehouse"]).count() > 0
