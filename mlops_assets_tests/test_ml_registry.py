"""The promotion gate cannot be bypassed, and rollback always changes something or says why not.

Real Dagster runs, real MLflow registry, real Delta audit table on the suite's small lakehouse. The module
uses its own registered model name, so its versions, aliases and audit rows never mix with the lifecycle
tests' model; each test sets up the registry state it needs, so it passes alone (``-k``).
"""

from __future__ import annotations

import os

import dagster as dg
import mlflow
import pytest
from pyspark.sql import functions as F

from mlops_assets.defs.evaluation import EVALUATION_KEY
from mlops_assets.lakehouse.catalog import PROMOTION_AUDIT
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION, ModelRegistry
from mlops_assets.ml.training import tune_and_train
from mlops_assets_tests.small_lakehouse import project_experiment, suite_promotion_policy

MODEL = "churn_registry_tests"
FAST_TRAINING = {"ops": {"ml__churn_model": {"config": {"n_trials": 2, "seed": 7}}}}
CHAMPION_KEY = dg.AssetKey(["ml", "champion"])


def registry() -> ModelRegistry:
    """The test model in the suite's MLflow store (conftest points MLFLOW_TRACKING_URI at it)."""
    return ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.check_name: e.event_specific_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }


def _failures(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(e.event_specific_data.error) for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


def _build(
    test_resources: dict, model_name: str = MODEL, equivalence_band: float | None = None, **extra
) -> dg.Definitions:
    """The project's definitions on this module's model; ``equivalence_band=0`` lets an identical copy of the
    champion be promoted (the binding and rollback tests need a second champion, not a better one)."""
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import MlflowTrackingResource

    tracking = MlflowTrackingResource(
        tracking_uri=test_resources["mlflow_tracking"].tracking_uri, model_name=model_name
    )
    resources = {**test_resources, "mlflow_tracking": tracking}
    if equivalence_band is not None:
        resources["promotion_policy"] = suite_promotion_policy(equivalence_band=equivalence_band)
    defs = build_defs(resources)
    if not extra:
        return defs
    return dg.Definitions.merge(defs, dg.Definitions(**extra))


def _audit(lakehouse, model_name: str = MODEL) -> list[tuple]:
    rows = (
        lakehouse.read(PROMOTION_AUDIT)
        .where(F.col("model_name") == model_name)
        .orderBy("decided_at")
        .collect()
    )
    return [(r["decision"], r["from_version"], r["to_version"], r["dagster_run_id"]) for r in rows]


def _register(model, test_resources, run_name: str) -> str:
    """Register a ChurnModel as a new version with complete lineage tags and make it @challenger."""
    from mlops_assets.defs.training import read_training_set

    contract = test_resources["feature_set"].contract()
    train = read_training_set(test_resources["lakehouse"]).query("split == 'train'")
    with mlflow.start_run(run_name=run_name, experiment_id=project_experiment(test_resources)):
        registered = registry().register(
            model,
            contract,
            train,
            tags={
                "dagster_run_id": "test",
                "feature_set": f"{contract.name} v{contract.version}",
                "feature_set_fingerprint": contract.fingerprint(),
                "dataset_fingerprint": "test",
            },
        )
    registry().set_alias(CHALLENGER, registered.version)
    return registered.version


def _register_worse(test_resources) -> str:
    """A genuinely worse model: trained on shuffled labels, so it learns nothing."""
    from mlops_assets.defs.training import read_training_set

    contract = test_resources["feature_set"].contract()
    df = read_training_set(test_resources["lakehouse"])
    train, valid = df[df["split"] == "train"].copy(), df[df["split"] == "valid"].copy()
    train[contract.label] = train[contract.label].sample(frac=1.0, random_state=1).to_numpy()
    noise = tune_and_train(train, valid, contract, n_trials=1, seed=1)
    return _register(noise.to_model(0.5), test_resources, "worse-challenger")


def _evaluate_and_promote(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        asset_selection=[EVALUATION_KEY, CHAMPION_KEY], raise_on_error=False
    )


@pytest.fixture(scope="module")
def first_champion(foundation_run, test_resources) -> str:
    """v1 of this module's model, trained, gated and promoted by the real job."""
    assert foundation_run.success
    test_resources["mlflow_tracking"].configure()
    result = (
        _build(test_resources)
        .resolve_job_def("train_evaluate_promote")
        .execute_in_process(
            run_config=FAST_TRAINING,
            asset_selection=[
                dg.AssetKey(["ml", "training_set"]),
                dg.AssetKey(["ml", "churn_model"]),
                EVALUATION_KEY,
                CHAMPION_KEY,
            ],
            raise_on_error=False,
        )
    )
    assert result.success, _failures(result)
    return registry().alias_version(CHAMPION)


def test_champion_alone_never_promotes_an_unevaluated_challenger(first_champion, test_resources, lakehouse):
    registry().set_alias(CHAMPION, first_champion)
    worse = _register_worse(test_resources)
    result = (
        _build(test_resources)
        .resolve_job_def("train_evaluate_promote")
        .execute_in_process(asset_selection=[CHAMPION_KEY], raise_on_error=False)
    )
    assert not result.success
    assert "no promotion_gate evaluation" in _failures(result)
    assert registry().alias_version(CHAMPION) == first_champion
    assert _audit(lakehouse)[-1][:3] == ("promotion_blocked", first_champion, None)
    assert _audit(lakehouse)[-1][3] == result.run_id
    assert worse not in {row[2] for row in _audit(lakehouse) if row[0] == "promoted"}


def test_promotion_is_bound_to_the_version_the_gate_evaluated(first_champion, test_resources, lakehouse):
    registry().set_alias(CHAMPION, first_champion)
    evaluated = _register(registry().load(first_champion), test_resources, "equal-challenger")
    interlopers: list[str] = []

    @dg.asset_check(asset=EVALUATION_KEY, name="registers_an_interloper", blocking=True)
    def registers_an_interloper() -> dg.AssetCheckResult:
        # Another training run registers a (worse) challenger after the evaluation, before the promotion.
        interlopers.append(_register_worse(test_resources))
        return dg.AssetCheckResult(passed=True)

    defs = _build(test_resources, equivalence_band=0, asset_checks=[registers_an_interloper])
    result = _evaluate_and_promote(defs)
    assert result.success, _failures(result)
    assert _checks(result)["promotion_gate"].passed
    assert registry().alias_version(CHALLENGER) == interlopers[0] != evaluated
    assert registry().alias_version(CHAMPION) == evaluated
    mine = [row[:3] for row in _audit(lakehouse) if row[3] == result.run_id]
    assert mine == [("gate_passed", first_champion, evaluated), ("promoted", first_champion, evaluated)]


def test_a_version_already_champion_is_not_promoted_again(first_champion, test_resources, lakehouse):
    registry().set_alias(CHAMPION, first_champion)
    registry().set_alias(CHALLENGER, first_champion)
    result = _evaluate_and_promote(_build(test_resources))
    assert result.success, _failures(result)
    assert registry().alias_version(CHAMPION) == first_champion
    mine = [row[:3] for row in _audit(lakehouse) if row[3] == result.run_id]
    assert mine == [
        ("gate_passed", first_champion, first_champion),
        ("already_champion", first_champion, first_champion),
    ]


def test_an_identical_challenger_keeps_the_champion_and_the_audit_says_why(
    first_champion, test_resources, lakehouse
):
    registry().set_alias(CHAMPION, first_champion)
    copy = _register(registry().load(first_champion), test_resources, "identical-challenger")
    result = _evaluate_and_promote(_build(test_resources))
    assert result.success, _failures(result)
    gate = _checks(result)["promotion_gate"]
    assert gate.passed and gate.metadata["verdict"].value == "no_material_change"
    assert registry().alias_version(CHAMPION) == first_champion  # the copy never gets the alias
    mine = [row[:3] for row in _audit(lakehouse) if row[3] == result.run_id]
    assert mine == [
        ("no_material_change", first_champion, copy),
        ("champion_kept", first_champion, copy),
    ]
    reasons = [
        reason
        for r in lakehouse.read(PROMOTION_AUDIT).where(F.col("dagster_run_id") == result.run_id).collect()
        for reason in r["reasons"]
    ]
    assert any(r.startswith("KEEP material_change: no material change") and "band ±" in r for r in reasons)
    assert any(f"@champion stays v{first_champion}, v{copy} not promoted" in r for r in reasons)


def test_rollback_restores_a_different_version_and_retires_its_challenger_alias(
    first_champion, test_resources, lakehouse
):
    registry().set_alias(CHAMPION, first_champion)
    newer = _register(registry().load(first_champion), test_resources, "equal-challenger")
    defs = _build(test_resources, equivalence_band=0)
    assert _evaluate_and_promote(defs).success
    assert registry().alias_version(CHAMPION) == newer
    # Evaluating the champion again (it still holds @challenger) must not give rollback a same-version target.
    assert _evaluate_and_promote(defs).success
    result = defs.resolve_job_def("rollback_champion").execute_in_process(raise_on_error=False)
    assert result.success, _failures(result)
    assert registry().alias_version(CHAMPION) == first_champion
    # The rolled-back model no longer holds @challenger, so the next evaluation cannot promote it again.
    assert registry().alias_version(CHALLENGER) is None
    rollback = [row for row in _audit(lakehouse) if row[3] == result.run_id]
    assert [row[:3] for row in rollback] == [("rollback", newer, first_champion)]
    reasons = (
        lakehouse.read(PROMOTION_AUDIT).where(F.col("dagster_run_id") == result.run_id).first()["reasons"]
    )
    assert any(f"removed @challenger from v{newer}" in r for r in reasons)


def test_rollback_without_a_previous_champion_changes_nothing(first_champion, test_resources, lakehouse):
    registry().set_alias(CHAMPION, first_champion)  # the first champion: it replaced nothing
    challenger = registry().alias_version(CHALLENGER)
    before = _audit(lakehouse)
    result = (
        _build(test_resources).resolve_job_def("rollback_champion").execute_in_process(raise_on_error=False)
    )
    assert not result.success
    assert f"no earlier champion of {MODEL!r} to restore: v{first_champion}" in _failures(result)
    assert registry().alias_version(CHAMPION) == first_champion
    assert registry().alias_version(CHALLENGER) == challenger
    assert _audit(lakehouse) == before


def test_rollback_of_a_model_without_any_champion_changes_nothing(test_resources, lakehouse):
    test_resources["mlflow_tracking"].configure()
    before = lakehouse.read(PROMOTION_AUDIT).count() if lakehouse.exists(PROMOTION_AUDIT) else 0
    result = (
        _build(test_resources, model_name="never_trained")
        .resolve_job_def("rollback_champion")
        .execute_in_process(raise_on_error=False)
    )
    assert not result.success
    assert "'never_trained' has no @champion, so there is nothing to roll back" in _failures(result)
    assert (lakehouse.read(PROMOTION_AUDIT).count() if lakehouse.exists(PROMOTION_AUDIT) else 0) == before
