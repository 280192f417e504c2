"""Streaming inference over an append-only Delta source: each event lands exactly once (scored or dead-lettered)
across runs, across a `kill -9` between the sink write and the checkpoint commit, dead-letter reasons name the
field, the blocking dead-letter check, the sensor, and the offsets and lag in the materialization.

Real Spark, real Delta, real MLflow registry. The module keeps its own lakehouse root (its feature table, events
and stream tables never meet the suite's) and its own registered model name; the feature set is the small
contract of ``test_ml_training`` with a logistic regression champion (trained in a second, registered as-is).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
import yaml
from pyspark.sql import functions as F

from mlops_assets.defs.streaming import (
    DEAD_LETTER_CHECK,
    SCORE_EVENTS_KEY,
    STREAM_PREDICTIONS_KEY,
    latest_delta_version,
    score_events,
    score_events_sensor,
    stream_predictions,
)
from mlops_assets.lakehouse.catalog import FEATURES, SCORE_EVENTS, STREAM_DEAD_LETTER, STREAM_PREDICTIONS
from mlops_assets.ml.families import fit_logistic
from mlops_assets.ml.mlflow_model import CHAMPION, ModelRegistry
from mlops_assets.ml.streaming import (
    StreamRunResult,
    StreamTables,
    append_idempotent,
    events_from_features,
    run_stream,
)
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.small_lakehouse import project_experiment
from mlops_assets_tests.test_ml_training import CONTRACT, make_frame

MODEL = "churn_streaming_tests"
DAY0 = date(2026, 1, 10)
DAYS = [DAY0 + timedelta(days=i) for i in range(4)]
MALFORMED = 0.1  # of each day's events: the dead letter always has rows


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    df = make_frame(n=1200, seed=5, days=30)
    df["customer_id"] = df["customer_id"].astype(str)
    df["as_of_date"] = df["as_of_date"].dt.date
    return df


@pytest.fixture(scope="module")
def model(frame):
    train = frame[frame["as_of_date"] < DAY0]
    return fit_logistic(train, train[CONTRACT.label].to_numpy(), CONTRACT, c=1.0)


@pytest.fixture(scope="module")
def features(spark, frame):
    return spark.createDataFrame(frame[[*CONTRACT.columns]]).withColumn(
        "_partition_date", F.col("as_of_date")
    )


def _tables(root: Path) -> StreamTables:
    return StreamTables(
        str(root / "stream" / "score_events"),
        str(root / "ml" / "stream_predictions"),
        str(root / "ml" / "stream_dead_letter"),
        str(root / "_checkpoints" / "ml" / "stream_predictions"),
    )


def _append_day(features, tables: StreamTables, day: date) -> None:
    events = events_from_features(features.where(F.col("as_of_date") == day), CONTRACT, day, MALFORMED)
    events = events.coalesce(1)  # one file per day, as the asset writes
    append_idempotent(events, tables.source, f"score_events-{day}", 0)


def _run(spark, tables: StreamTables, model, **kwargs) -> StreamRunResult:
    return run_stream(spark, tables, CONTRACT, MODEL, model.to_dict(), "1", **kwargs)


def _ids(spark, location: str) -> list[str]:
    return [r[0] for r in spark.read.format("delta").load(location).select("event_id").collect()]


def _assert_exactly_once(spark, tables: StreamTables) -> tuple[list[str], list[str]]:
    """Every source event is in exactly one of the two sinks, once."""
    source, scored, dead = (_ids(spark, t) for t in (tables.source, tables.sink, tables.dead_letter))
    assert len(set(source)) == len(source), "event ids are unique in the source"
    assert len(scored) == len(set(scored)), "no event scored twice"
    assert len(dead) == len(set(dead)), "no event dead-lettered twice"
    assert not set(scored) & set(dead)
    assert len(scored) + len(dead) == len(source)
    assert set(scored) | set(dead) == set(source)
    return scored, dead


def test_each_event_is_scored_or_dead_lettered_exactly_once_as_events_arrive(
    spark, features, model, tmp_path
):
    tables = _tables(tmp_path)
    for version, day in enumerate(DAYS[:2]):
        _append_day(features, tables, day)
        result = _run(spark, tables, model)
        assert (result.start_version, result.end_version) == (version - 1 if version else None, version)
        assert result.lag_versions == 0 and result.batches >= 1
        _, dead = _assert_exactly_once(spark, tables)
        assert dead, "the malformed share reaches the dead letter"
    _append_day(features, tables, DAYS[0])  # a re-run of a day's append: Delta skips it
    assert latest_delta_version(Path(tables.source)) == 1
    idle = _run(spark, tables, model)
    assert (idle.batches, idle.rows_scored, idle.rows_dead_lettered) == (0, 0, 0)
    assert (idle.start_version, idle.end_version, idle.lag_versions) == (1, 1, 0)
    _assert_exactly_once(spark, tables)
    # The stream scores as the batch path does: the same model, the same rows, the same scores.
    out = spark.read.format("delta").load(tables.sink).toPandas()
    events = spark.read.format("delta").load(tables.source).toPandas().set_index("event_id")
    typed = pd.json_normalize(events.loc[out["event_id"], "features"].map(json.loads).tolist())
    assert abs(out["score"].to_numpy() - model.predict_proba(typed)).max() < 1e-12
    assert StreamRunResult.from_json(idle.to_json()) == idle


# The child: the pure stream function in its own process (own JVM), SIGKILLing its whole process group (Python
# and the JVM) from the hook, i.e. after batch KILL_AT's rows are in both sinks, before the checkpoint commit.
CHILD = textwrap.dedent(
    """
    import json, os, signal, sys
    from mlops_assets.lakehouse.spark import build_local_session
    from mlops_assets.ml.families import model_from_dict
    from mlops_assets.ml.streaming import StreamTables, run_stream
    from mlops_assets_tests.test_ml_training import CONTRACT

    tables, model_file, kill_at = StreamTables(**json.loads(sys.argv[1])), sys.argv[2], int(sys.argv[3])
    model = json.loads(open(model_file).read())

    def kill(batch_id):
        if batch_id == kill_at:
            os.killpg(os.getpgrp(), signal.SIGKILL)

    run_stream(build_local_session(), tables, CONTRACT, "churn_streaming_tests", model, "1",
               max_files_per_trigger=1, after_batch_written=kill)
    """
)


@pytest.mark.faults
def test_a_stream_killed_between_the_sink_write_and_the_checkpoint_commit_replays_without_duplicates(
    spark, features, model, tmp_path
):
    tables = _tables(tmp_path / "lake")
    for day in DAYS:
        _append_day(features, tables, day)
    model_file = tmp_path / "model.json"
    model_file.write_text(json.dumps(model.to_dict()))
    tables_json = json.dumps(dataclasses.asdict(tables))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, tables_json, str(model_file), "1"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        start_new_session=True,
    )
    try:
        assert child.wait(timeout=300) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
    checkpoint = Path(tables.checkpoint)
    assert (checkpoint / "offsets" / "1").exists() and not (checkpoint / "commits" / "1").exists()
    batches = spark.read.format("delta").load(tables.sink).select("stream_batch_id").distinct().collect()
    assert {r[0] for r in batches} == {0, 1}, "batch 1 reached the sink before the kill"
    rerun = _run(spark, tables, model)
    assert rerun.batch_ids[0] == 1, "the uncommitted batch is replayed first"
    assert rerun.lag_versions == 0
    _assert_exactly_once(spark, tables)


def test_dead_letter_reasons_name_the_field_and_the_rule(spark, model, tmp_path):
    tables = _tables(tmp_path)
    good = {"tenure_days": 100, "minutes_7d": 12.5, "minutes_trend": 0.1, "payment_failures_30d": 0}
    good |= {"tickets_30d": 1, "monthly_fee": 9.99, "plan": "basic", "device": "tv"}
    payloads = {
        "ok": json.dumps(good),
        "null-is-missing-value": json.dumps(good | {"minutes_7d": None}),
        "unknown-plan": json.dumps(good | {"plan": "platinum"}),
        "no-tenure": json.dumps({k: v for k, v in good.items() if k != "tenure_days"}),
        "nan-minutes": json.dumps(good | {"minutes_7d": float("nan")}),
        "mistyped-fee": json.dumps(good | {"monthly_fee": "9,99 EUR"}),
        "two-faults": json.dumps(good | {"device": "fridge", "tickets_30d": "many"}),
        "not-json": '{"tenure_days": 1,',
    }
    rows = [
        (k, datetime(2026, 1, 20, 10), f"c{i}", DAY0, v, DAY0) for i, (k, v) in enumerate(payloads.items())
    ]
    rows.append(("no-entity", datetime(2026, 1, 20, 10), None, DAY0, json.dumps(good), DAY0))
    schema = "event_id string, event_time timestamp, customer_id string, as_of_date date, features string, event_date date"
    append_idempotent(spark.createDataFrame(rows, schema), tables.source, "hand-made", 0)
    result = _run(spark, tables, model)
    reasons = {
        r["event_id"]: r["reason"] for r in spark.read.format("delta").load(tables.dead_letter).collect()
    }
    assert reasons == {
        "unknown-plan": "plan:unknown_category",
        "no-tenure": "tenure_days:missing",
        "nan-minutes": "minutes_7d:not_finite",
        "mistyped-fee": "monthly_fee:bad_type",
        "two-faults": "tickets_30d:bad_type; device:unknown_category",
        "not-json": "features:malformed",
        "no-entity": "customer_id:missing",
    }
    assert sorted(_ids(spark, tables.sink)) == ["null-is-missing-value", "ok"]
    assert result.rules_broken["plan:unknown_category"] == 1 and result.rows_dead_lettered == 7
    # A reset checkpoint is a new stream: a new app id, so Delta does not skip its writes (under the old id,
    # batch 0 of the new stream would be skipped as already written) and the source is scored again.
    shutil.rmtree(tables.checkpoint)
    again = _run(spark, tables, model)
    assert again.sink_app_id != result.sink_app_id and again.batch_ids == result.batch_ids == (0,)
    assert sorted(_ids(spark, tables.sink)) == ["null-is-missing-value"] * 2 + ["ok"] * 2


# --- the Dagster wiring -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stream_resources(test_resources, features, model, frame, tmp_path_factory):
    """The suite's resources on this module's own lakehouse root, feature contract and registered model, with
    the feature table written there and the logistic model registered as @champion."""
    from mlops_assets.resources import FeatureSetResource, LakehouseResource, MlflowTrackingResource

    root = tmp_path_factory.mktemp("stream_lakehouse")
    contract_path = root / "contract.yaml"
    contract_path.write_text(yaml.safe_dump(CONTRACT.to_dict()))
    lakehouse = LakehouseResource(root=str(root), spark=test_resources["spark"])
    features.write.format("delta").partitionBy("_partition_date").save(lakehouse.locator.path(FEATURES))
    tracking = test_resources["mlflow_tracking"]
    registry = ModelRegistry(tracking.tracking_uri, MODEL)
    with mlflow.start_run(run_name="streaming-champion", experiment_id=project_experiment(test_resources)):
        version = registry.register(model, CONTRACT, frame.head(50), tags={"dagster_run_id": "test"}).version
    registry.set_alias(CHAMPION, version)
    return {
        **test_resources,
        "lakehouse": lakehouse,
        "feature_set": FeatureSetResource(contract_path=str(contract_path), start_date="2026-01-01"),
        "mlflow_tracking": MlflowTrackingResource(tracking_uri=tracking.tracking_uri, model_name=MODEL),
    }


def _materialize(resources, asset, partition: str | None = None, config: dict | None = None):
    """One asset of the streaming pair, in process; the events carry MALFORMED unless ``config`` says else."""
    if config is None and asset == SCORE_EVENTS_KEY:
        config = {"malformed_share": MALFORMED}
    return dg.materialize(
        [score_events, stream_predictions],
        selection=[asset],
        partition_key=partition,
        resources=resources,
        run_config={"ops": {asset.to_python_identifier(): {"config": config}}} if config else None,
        raise_on_error=False,
    )


def _check(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.check_name == DEAD_LETTER_CHECK
    return evaluation


def test_the_sensor_requests_a_run_on_a_new_source_version_only(stream_resources):
    lakehouse = stream_resources["lakehouse"]
    table = Path(lakehouse.locator.path(SCORE_EVENTS))
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor: str | None):
        with dg.build_sensor_context(
            instance=instance, cursor=cursor, resources={"lakehouse": lakehouse}
        ) as context:
            return score_events_sensor(context), context.cursor

    if latest_delta_version(table) is None:  # alone (-k): no events yet
        result, cursor = tick(None)
        assert isinstance(result, dg.SkipReason) and cursor is None
        assert _materialize(stream_resources, SCORE_EVENTS_KEY, DAYS[0].isoformat()).success
    first = latest_delta_version(table)
    request, cursor = tick(None)
    assert isinstance(request, dg.RunRequest) and cursor == str(first)
    assert request.run_key == f"score_events-v{first}"
    skip, same = tick(cursor)
    assert isinstance(skip, dg.SkipReason) and same == cursor
    assert _materialize(stream_resources, SCORE_EVENTS_KEY, DAYS[3].isoformat()).success
    request, cursor = tick(cursor)
    assert isinstance(request, dg.RunRequest) and cursor == str(first + 1)


def test_the_materialization_carries_offsets_lag_and_counts_and_the_check_blocks_above_its_threshold(
    stream_resources, spark
):
    lakehouse = stream_resources["lakehouse"]
    for day in DAYS[:2]:
        assert _materialize(stream_resources, SCORE_EVENTS_KEY, day.isoformat()).success
    again = _materialize(stream_resources, SCORE_EVENTS_KEY, DAYS[0].isoformat())  # idempotent per day
    assert (
        again.asset_materializations_for_node("stream__score_events")[0].metadata["appended"].value is False
    )
    latest = latest_delta_version(Path(lakehouse.locator.path(SCORE_EVENTS)))
    run = _materialize(stream_resources, STREAM_PREDICTIONS_KEY, config={"max_dead_letter_rate": 0.5})
    assert run.success
    meta = {
        k: v.value
        for k, v in run.asset_materializations_for_node("ml__stream_predictions")[0].metadata.items()
    }
    assert meta["source_end_version"] == meta["source_latest_version"] == latest and meta["lag_versions"] == 0
    assert meta["rows_scored"] > 0 and meta["rows_dead_lettered"] > 0 and meta["model_version"]
    delta = lakehouse.delta()
    assert (
        delta.read(STREAM_PREDICTIONS).count() + delta.read(STREAM_DEAD_LETTER).count()
        == delta.read(SCORE_EVENTS).count()
    )
    assert _check(run).passed  # ~10 % malformed, under a 50 % threshold
    # A new day, a threshold below the run's dead-letter rate: the blocking check fails, naming the numbers.
    assert _materialize(stream_resources, SCORE_EVENTS_KEY, DAYS[2].isoformat()).success
    strict = _materialize(stream_resources, STREAM_PREDICTIONS_KEY, config={"max_dead_letter_rate": 0.01})
    check = _check(strict)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["dead_letter_rate"].value > 0.01
    meta = {
        k: v.value
        for k, v in strict.asset_materializations_for_node("ml__stream_predictions")[0].metadata.items()
    }
    assert meta["source_start_version"] == latest and meta["source_end_version"] == latest + 1
