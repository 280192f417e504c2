"""The rollout wiring through Dagster: start (CLI job), the serving/rollout_step asset on planted inference
rows, the aliases and tag it moves, the audit rows it appends, and the sensor that runs it.

Real MLflow registry (its own model name; versions registered straight from a local folder: the rollout
never loads a model, so no MLflow run and no artifact are needed), real Delta audit and inference tables.
"""

from __future__ import annotations

import os
import tempfile

import dagster as dg
import pytest
from mlflow import MlflowClient
from pyspark.sql import functions as F

from mlops_assets.defs.rollout import read_rollout, rollout_sensor
from mlops_assets.lakehouse.catalog import PROMOTION_AUDIT
from mlops_assets.lakehouse.inference_log import INFERENCE_SCHEMA, append_inference_rows
from mlops_assets.ml.audit import append_audit, read_audit
from mlops_assets.ml.mlflow_model import CANDIDATE, CHAMPION, ModelRegistry
from mlops_assets.ml.promotion_ledger import GATE_PASSED, rollback_target
from mlops_assets.serving.rollout import ABORTED, COMPLETED, ROLLED_BACK
from mlops_assets_tests.rollout_traffic import ERRORS, inference_rows

MODEL = "churn_rollout_tests"


def registry() -> ModelRegistry:
    return ModelRegistry(os.environ["MLFLOW_TRACKING_URI"], MODEL)


@pytest.fixture(scope="module")
def defs(test_resources) -> dg.Definitions:
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import MlflowTrackingResource

    tracking = MlflowTrackingResource(
        tracking_uri=test_resources["mlflow_tracking"].tracking_uri, model_name=MODEL
    )
    return build_defs({**test_resources, "mlflow_tracking": tracking})


@pytest.fixture(scope="module")
def versions(test_resources, lakehouse) -> list[str]:
    """Four versions of the module's model, v1 @champion, v2 and v3 passed by the (planted) gate."""
    client = MlflowClient(test_resources["mlflow_tracking"].tracking_uri)
    client.create_registered_model(MODEL)
    source = tempfile.mkdtemp(prefix="rollout_model_")
    made = [str(client.create_model_version(MODEL, source=source).version) for _ in range(4)]
    registry().set_alias(CHAMPION, made[0])
    for version in made[1:3]:
        append_audit(lakehouse, MODEL, GATE_PASSED, made[0], version, ["planted gate verdict"], "gate-run")
    return made


def _start(defs: dg.Definitions, candidate: str, **config) -> dg.ExecuteInProcessResult:
    run_config = {"ops": {"start_rollout": {"config": {"candidate": candidate, **config}}}}
    return defs.resolve_job_def("rollout_start").execute_in_process(
        run_config=run_config, raise_on_error=False
    )


def _step(defs: dg.Definitions) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def("rollout_step_job").execute_in_process(raise_on_error=False)
    assert result.success, _failures(result)
    return result


def _failures(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(e.event_specific_data.error) for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )


def _plant(lakehouse, **kwargs) -> None:
    state = read_rollout(registry())
    # Logged within a second of the step's settle time: the next step (started later, at wall-clock time)
    # must not count them, as it would not count rows the server logged before it moved on.
    rows = inference_rows(state, model_name=MODEL, spread_s=1.0, **kwargs)
    append_inference_rows(lakehouse, lakehouse.spark.createDataFrame(rows, INFERENCE_SCHEMA))


def _audit(lakehouse, rollout_id: str) -> list[tuple]:
    rows = (
        lakehouse.read(PROMOTION_AUDIT)
        .where((F.col("model_name") == MODEL) & F.col("decision").startswith("rollout_"))
        .where(F.exists("reasons", lambda r: r.contains(rollout_id)))
        .orderBy("decided_at")
        .collect()
    )
    return [(r["decision"], r["from_version"], r["to_version"], list(r["reasons"])) for r in rows]


def _metadata(result: dg.ExecuteInProcessResult) -> dict:
    (mat,) = result.asset_materializations_for_node("serving__rollout_step")
    return {k: v.value for k, v in mat.metadata.items()}


def test_a_bad_canary_is_rolled_back_and_audited(defs, versions, lakehouse) -> None:
    v1, v2 = versions[0], versions[1]
    assert _start(defs, v2, steps=[0.5, 1.0], min_requests_per_arm=200).success
    state = read_rollout(registry())
    assert (state.candidate_version, state.champion_version, state.status) == (v2, v1, "running")
    assert registry().alias_version(CANDIDATE) == v2
    _plant(lakehouse, units=1500, candidate=ERRORS, seed=1)
    meta = _metadata(_step(defs))
    assert (meta["outcome"], meta["audit"], meta["status"]) == (
        "rollback",
        "rollout_rolled_back",
        ROLLED_BACK,
    )
    assert registry().alias_version(CANDIDATE) is None
    assert registry().alias_version(CHAMPION) == v1
    assert read_rollout(registry()).status == ROLLED_BACK
    audit = _audit(lakehouse, state.id)
    assert [a[:3] for a in audit] == [("rollout_started", v1, v2), ("rollout_rolled_back", v1, v2)]
    assert any(r.startswith("FAIL error_rate: candidate 5xx") for r in audit[-1][3])
    # A finished rollout is not judged again: nothing is appended, nothing moves.
    assert _metadata(_step(defs))["outcome"] == "none"
    assert len(_audit(lakehouse, state.id)) == 2


def test_a_good_canary_holds_without_traffic_then_walks_to_promotion(defs, versions, lakehouse) -> None:
    v1, v3 = versions[0], versions[2]
    registry().set_alias(CHAMPION, v1)
    assert _start(defs, v3, steps=[0.25, 0.5, 1.0], min_requests_per_arm=200).success
    rollout_id = read_rollout(registry()).id
    held = _metadata(_step(defs))  # no rows yet: inconclusive, nothing moves
    assert (held["outcome"], held["audit"], held["step"]) == ("hold", "rollout_held", "1/3")
    assert registry().alias_version(CANDIDATE) == v3 and read_rollout(registry()).step == 0
    outcomes = []
    for seed in (2, 3):
        _plant(lakehouse, units=2000, seed=seed)
        outcomes.append(_metadata(_step(defs))["audit"])
    assert outcomes == ["rollout_advanced", "rollout_promoted"]
    assert registry().alias_version(CHAMPION) == v3
    assert registry().alias_version(CANDIDATE) is None
    assert read_rollout(registry()).status == COMPLETED
    decisions = [a[0] for a in _audit(lakehouse, rollout_id)]
    assert decisions == ["rollout_started", "rollout_held", "rollout_advanced", "rollout_promoted"]
    # `make rollback` undoes a rollout's promotion like any other.
    assert rollback_target(read_audit(lakehouse, MODEL), v3, MODEL) == v1
    registry().set_alias(CHAMPION, v1)


def test_a_canary_without_a_passed_gate_is_refused_and_a_shadow_can_be_aborted(
    defs, versions, lakehouse
) -> None:
    v1, v4 = versions[0], versions[3]
    registry().set_alias(CHAMPION, v1)
    refused = _start(defs, v4)
    assert not refused.success and "no promotion_gate verdict" in _failures(refused)
    assert registry().alias_version(CANDIDATE) is None
    assert _start(defs, v4, mode="shadow").success
    assert "is running: abort it first" in _failures(_start(defs, v4, mode="shadow"))
    rollout_id = read_rollout(registry()).id
    assert defs.resolve_job_def("rollout_abort").execute_in_process(raise_on_error=False).success
    assert read_rollout(registry()).status == ABORTED
    assert registry().alias_version(CANDIDATE) is None and registry().alias_version(CHAMPION) == v1
    assert [a[0] for a in _audit(lakehouse, rollout_id)] == ["rollout_started", "rollout_aborted"]


def test_the_sensor_runs_the_step_only_while_a_rollout_is_running(defs, versions) -> None:
    from mlops_assets.resources import MlflowTrackingResource

    tracking = MlflowTrackingResource(tracking_uri=os.environ["MLFLOW_TRACKING_URI"], model_name=MODEL)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"mlflow_tracking": tracking})
        registry().set_alias(CHAMPION, versions[0])
        assert _start(defs, versions[3], mode="shadow").success
        request = rollout_sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert request.tags["mlops/rollout_id"] == read_rollout(registry()).id
        assert defs.resolve_job_def("rollout_abort").execute_in_process(raise_on_error=False).success
        skip = rollout_sensor(context)
        assert isinstance(skip, dg.SkipReason) and "aborted" in skip.skip_message


def test_an_abort_while_a_step_is_judged_wins(defs, versions, lakehouse, monkeypatch) -> None:
    import mlops_assets.defs.rollout as wiring
    from mlops_assets.serving.rollout import ROLLOUT_TAG

    registry().set_alias(CHAMPION, versions[0])
    assert _start(defs, versions[3], mode="shadow").success
    state = read_rollout(registry())
    judge = wiring.judge_step

    def judge_during_an_abort(*args):
        aborted = type(state).from_dict({**state.to_dict(), "status": ABORTED})
        registry().set_model_tag(ROLLOUT_TAG, aborted.to_json())  # what `rollout abort` writes meanwhile
        return judge(*args)

    monkeypatch.setattr(wiring, "judge_step", judge_during_an_abort)
    assert _metadata(_step(defs))["outcome"] == "superseded"
    assert read_rollout(registry()).status == ABORTED
    assert [a[0] for a in _audit(lakehouse, state.id)] == ["rollout_started"]
    registry().delete_alias(CANDIDATE)
