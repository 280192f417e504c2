"""Monitoring: scenario detection on the synthetic source across seeds, the binned AUC, and the retraining
sensor's decisions evaluated against a real Dagster instance."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY, VERDICT
from mlops_assets.defs.monitoring.labelled import labelled_drift_schedule
from mlops_assets.defs.monitoring.retraining import (
    DATA_VERSION_TAG,
    FEATURES_KEY,
    TRAINING_DATA_TAG,
    drift_retraining_sensor,
    retrain_job,
)
from mlops_assets.monitoring.severity import Action, DriftThresholds, Level
from mlops_assets.monitoring.spark_drift import binned_auc
from mlops_assets.monitoring.verdict import DayVerdict
from mlops_assets.resources import RetrainGuardrails
from mlops_assets.synthetic.drift_study import scenario_flags
from mlops_assets.synthetic.source import SCENARIOS


def _flagged(scenario: str, seed: int) -> tuple[set[str], set[str]]:
    """The scenario's day 28 at full size, graded as the drift report grades (noise floors included)."""
    summary = scenario_flags(scenario, seed, DriftThresholds())
    return set(summary.drifted_columns), set(summary.critical_columns)


@pytest.mark.parametrize("seed", range(1, 11))
def test_no_drift_scenario_raises_no_critical_drift(seed):
    _, critical = _flagged("none", seed)
    assert critical == set()


@pytest.mark.parametrize("scenario", ["gradual_covariate_shift", "sudden_covariate_shift", "null_spike"])
@pytest.mark.parametrize("seed", range(1, 6))
def test_each_scenario_flags_the_columns_it_drifted_and_only_those(scenario, seed):
    drifted, critical = _flagged(scenario, seed)
    expected = set(SCENARIOS[scenario].drifted_columns)
    assert drifted == expected, (drifted, expected)  # flagged (warn or critical): these, and only these
    assert critical <= expected and critical, critical


def test_concept_shift_leaves_feature_distributions_alone():
    _, critical = _flagged("concept_shift", 1)
    assert critical == set()


def test_binned_auc_matches_sklearn(spark):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    score = np.clip(0.35 * y + rng.normal(0.3, 0.2, 5000), 0, 1)
    df = spark.createDataFrame(
        [(float(s), int(t)) for s, t in zip(score, y, strict=True)], "score double, churned_30d int"
    )
    assert binned_auc(df, "churned_30d") == pytest.approx(roc_auc_score(y, score), abs=1e-3)
    assert binned_auc(df.where("churned_30d = 1"), "churned_30d") is None


# --- the retraining sensor, against a real instance ---------------------------------------------------------


def _report(instance: dg.DagsterInstance, day: str, action: str, data_version: str, days: int = 1) -> None:
    """Drift report materializations as the asset writes them: one per day, each with its own verdict."""
    first = date.fromisoformat(day)
    for i in range(days):
        verdict = DayVerdict(
            day=first + timedelta(days=i),
            model_name="churn_model",
            model_version="1",
            action=Action(action),
            data_drift_level=Level.SIGNIFICANT,
            performance_level=Level.PENDING,
            drifted_columns=("minutes_used",),
            critical_columns=("minutes_used",),
            baseline_roc_auc=0.8,
            current_roc_auc=None,
            data_version=data_version,
        )
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                DRIFT_REPORT_KEY,
                partition=verdict.day.isoformat(),
                metadata={VERDICT: dg.MetadataValue.json(verdict.to_metadata())},
            )
        )


def _features_loaded(instance: dg.DagsterInstance) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(FEATURES_KEY, partition="2026-05-05"))


def _tick(instance: dg.DagsterInstance, cursor: str | None, guardrails: RetrainGuardrails | None = None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"retrain_guardrails": guardrails or RetrainGuardrails()}
    )
    return drift_retraining_sensor(context), context


def _skip(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message


def _launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> None:
    """What the daemon does with a request: create the run (its tags carry the data version)."""
    instance.create_run_for_job(job_def=_retrain_job_def(), tags=request.tags)


def _retrain_job_def():
    from mlops_assets.definitions import defs

    return defs.resolve_job_def(retrain_job.name)


def test_sensor_launches_exactly_one_run_for_a_critical_report_seen_on_two_ticks():
    with dg.instance_for_test() as instance:
        _report(instance, "2026-05-05", "RETRAIN_URGENT", "1:t1")
        first, _ = _tick(instance, None)
        assert len(first.run_requests) == 1
        request = first.run_requests[0]
        assert request.run_key == "drift-2026-05-05-1:t1" and request.tags[DATA_VERSION_TAG] == "1:t1"
        _launch(instance, request)
        # Next tick: nothing new.
        second, _ = _tick(instance, first.cursor)
        assert isinstance(second, dg.SkipReason) and second.skip_message == "no new drift report"
        # The same report seen again (a re-materialization with the same data): still no second run.
        _report(instance, "2026-05-05", "RETRAIN_URGENT", "1:t1")
        third, _ = _tick(instance, first.cursor, RetrainGuardrails(cooldown_hours=0))
        assert not third.run_requests
        assert "already launched" in _skip(third)


def test_sensor_does_not_retrain_on_a_warn_only_report():
    with dg.instance_for_test() as instance:
        _report(instance, "2026-05-05", "MONITOR", "1:t1")
        result, _ = _tick(instance, None)
        assert not result.run_requests
        assert "no retrain needed" in _skip(result)


def test_sensor_honours_the_cooldown_and_the_cap():
    with dg.instance_for_test() as instance:
        _report(instance, "2026-05-05", "RETRAIN", "1:t1")
        first, _ = _tick(instance, None)
        _launch(instance, first.run_requests[0])
        # New data, new critical report, but within the cooldown of the last retrain.
        _report(instance, "2026-05-06", "RETRAIN", "1:t2")
        second, _ = _tick(instance, first.cursor, RetrainGuardrails(cooldown_hours=6))
        assert not second.run_requests and "cooldown" in _skip(second)
        # Without a cooldown but at the cap of retrains per window.
        third, _ = _tick(instance, first.cursor, RetrainGuardrails(cooldown_hours=0, max_retrains=1))
        assert not third.run_requests and "max 1" in _skip(third)
        # Without either limit, the new data does launch.
        fourth, _ = _tick(instance, first.cursor, RetrainGuardrails(cooldown_hours=0, max_retrains=5))
        assert [r.run_key for r in fourth.run_requests] == ["drift-2026-05-06-1:t2"]


def test_one_retrain_for_a_run_of_critical_days_keyed_by_the_newest():
    with dg.instance_for_test() as instance:
        _report(instance, "2026-05-03", "RETRAIN", "1:t1:pending", days=5)
        result, _ = _tick(instance, None)
        assert [r.run_key for r in result.run_requests] == ["drift-2026-05-07-1:t1:pending"]
        assert result.run_requests[0].tags["mlops/drift_partition"] == "2026-05-07"


def test_sensor_does_not_retrain_when_the_training_data_has_not_changed():
    with dg.instance_for_test() as instance:
        _features_loaded(instance)
        _report(instance, "2026-05-05", "RETRAIN", "1:t1:pending")
        first, _ = _tick(instance, None)
        assert TRAINING_DATA_TAG in first.run_requests[0].tags
        _launch(instance, first.run_requests[0])
        # Re-scored by the new champion: a new report, still critical, but nothing new to learn from.
        _report(instance, "2026-05-05", "RETRAIN", "2:t2:pending")
        no_cooldown = RetrainGuardrails(cooldown_hours=0)
        second, _ = _tick(instance, first.cursor, no_cooldown)
        assert not second.run_requests and "training data unchanged" in _skip(second)
        # A new day lands in the feature table: now a retrain can learn something.
        _features_loaded(instance)
        third, _ = _tick(instance, first.cursor, no_cooldown)
        assert [r.run_key for r in third.run_requests] == ["drift-2026-05-05-2:t2:pending"]


def test_labelled_drift_schedule_completes_the_report_whose_labels_just_closed():
    at = datetime(2026, 6, 7, 5, tzinfo=UTC)  # 31 days after 2026-05-07
    with dg.instance_for_test() as instance:
        unscored = labelled_drift_schedule(dg.build_schedule_context(instance, scheduled_execution_time=at))
        assert isinstance(unscored, dg.SkipReason) and "2026-05-07" in unscored.skip_message
        _report(instance, "2026-05-07", "RETRAIN", "1:t1:pending")
        request = labelled_drift_schedule(dg.build_schedule_context(instance, scheduled_execution_time=at))
        assert request.partition_key == "2026-05-07" and request.run_key == "labelled-2026-05-07"
