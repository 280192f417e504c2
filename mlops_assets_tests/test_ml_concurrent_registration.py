"""Two processes registering versions of one model at once against one SQLite MLflow store: contiguous
versions, each registered once, aliases consistent; and the lock retry, by injection."""

from __future__ import annotations

import multiprocessing
import sqlite3

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlops_assets.ml import mlflow_model
from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.mlflow_model import CHALLENGER, ModelRegistry, retry_when_locked
from mlops_assets.ml.training import tune_and_train

MODEL = "concurrent_model"
PER_WRITER = 3
CONTRACT = FeatureSetContract.from_dict(
    {
        "name": "tiny",
        "version": "1",
        "entity_key": "id",
        "as_of": "as_of",
        "label": "y",
        "features": [{"name": "x1", "kind": "numerical"}, {"name": "x2", "kind": "numerical"}],
    }
)


def _frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 400
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    return pd.DataFrame(
        {
            "id": np.arange(n),
            "as_of": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 30, n), unit="D"),
            "x1": x1,
            "x2": x2,
            "y": (x1 + rng.normal(scale=0.5, size=n) > 0).astype(int),
        }
    )


def _writer(uri: str, writer: int, start, out) -> None:
    """One training process: train a tiny model, then register it PER_WRITER times, moving @challenger."""
    mlflow.set_tracking_uri(uri)  # the fluent run that log_model logs under
    registry = ModelRegistry(uri, MODEL)
    df = _frame(writer)
    model = tune_and_train(df[:300], df[300:], CONTRACT, n_trials=1, seed=writer).to_model(0.5)
    start.wait()  # both processes write from here on, at the same moment
    versions = []
    for i in range(PER_WRITER):
        with mlflow.start_run(run_name=f"writer-{writer}-{i}", experiment_id=out["experiment_id"]):
            registered = registry.register(model, CONTRACT, df, tags={"writer": str(writer), "i": str(i)})
        registry.set_alias(CHALLENGER, registered.version)
        versions.append(registered.version)
    out[writer] = versions


def test_two_processes_registering_at_once_get_contiguous_versions(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(
        "concurrent", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        out = manager.dict({"experiment_id": experiment_id})
        start = manager.Barrier(2)
        writers = [ctx.Process(target=_writer, args=(uri, w, start, out)) for w in (1, 2)]
        for p in writers:
            p.start()
        for p in writers:
            p.join(timeout=600)
        assert [p.exitcode for p in writers] == [0, 0]
        claimed = sorted(int(v) for w in (1, 2) for v in out[w])
    client = MlflowClient(uri)
    stored = client.search_model_versions(f"name = '{MODEL}'")
    assert sorted(int(v.version) for v in stored) == claimed == list(range(1, 2 * PER_WRITER + 1))
    # Each version is one registration: its own run and its own (writer, i) tags.
    assert (
        len({(v.tags["writer"], v.tags["i"]) for v in stored})
        == len({v.run_id for v in stored})
        == len(stored)
    )
    # search results carry no aliases: read each version
    holders = [v.version for v in stored if CHALLENGER in client.get_model_version(MODEL, v.version).aliases]
    assert len(holders) == 1  # one alias, one version: last writer wins, never half-set
    assert client.get_model_version_by_alias(MODEL, CHALLENGER).version == holders[0]


def test_a_locked_store_is_retried_and_other_errors_fail_at_once(monkeypatch):
    monkeypatch.setattr(mlflow_model, "LOCK_BACKOFF_S", 0.0)
    calls = []

    def locked_once() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return "v7"

    assert retry_when_locked("creating a version", locked_once) == "v7" and len(calls) == 2

    failures = []

    def broken() -> None:
        failures.append(1)
        raise mlflow.exceptions.MlflowException("RESOURCE_DOES_NOT_EXIST: model 'x' not found")

    with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
        retry_when_locked("setting @champion", broken)
    assert len(failures) == 1  # not retried

    def always_locked() -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(RuntimeError, match="still locked after 3 attempts at setting @champion"):
        retry_when_locked("setting @champion", always_locked, attempts=3)
