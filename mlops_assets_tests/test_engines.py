"""The same slice of the graph on real engines: a standalone cluster (Master + Worker) and a Spark Connect
server, both started by this module on 127.0.0.1 (once per session) from this venv's pyspark.

Each engine runs landing -> bronze -> silver (+ quarantine) -> gold -> features for two days, then the last
day again, in a child process with ``MLOPS_SPARK`` pointing at it (the code never asks which engine it is on).
The reference is the same slice on the local engine, run in this process. Every table must hold exactly the
reference's rows (load-time columns aside): same counts, same reconciliation, no duplicate keys after the re-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from mlops_assets.environment import build_resources
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.entities import ENTITIES
from mlops_assets.lakehouse.tables import TableLocator
from mlops_assets.settings import PROJECT_ROOT, load_settings
from mlops_assets_tests.accounting import assert_bronze_accounted_for
from mlops_assets_tests.engine_slice import SLICE_TABLES, run_slice, table_rows
from mlops_assets_tests.engines import connect_server, standalone_cluster
from mlops_assets_tests.small_lakehouse import small_resources

pytestmark = pytest.mark.engines
START, END = date(2026, 3, 1), date(2026, 3, 2)


def _environ(root: str, engine: str, tmp) -> dict[str, str]:
    return {
        **os.environ,
        "LAKEHOUSE_ROOT": root,
        "MLOPS_SPARK": engine,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "DAGSTER_HOME": str(tmp / "dagster_home"),
    }


def _slice_in_child(root: str, engine: str, tmp) -> dict:
    """The slice in a process of its own, on ``engine``: a classic driver cannot share this process' JVM."""
    (tmp / "dagster_home").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets_tests.engine_slice", START.isoformat(), END.isoformat()],
        env=_environ(root, engine, tmp),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["success"] == [True, True], summary["errors"]
    return summary


@pytest.fixture(scope="module")
def local_slice(spark, tmp_path_factory):
    """The reference: the slice on the local engine, in this process (the suite's session, no new JVM)."""
    tmp = tmp_path_factory.mktemp("local_slice")
    settings = load_settings({**_environ(str(tmp / "lakehouse"), "local", tmp)})
    summary = run_slice(START, END, small_resources(settings))
    assert summary["success"] == [True, True], summary["errors"]
    delta = DeltaLakehouse(spark, TableLocator(root=settings.lakehouse_root))
    return {name: table_rows(delta, ref) for name, ref in SLICE_TABLES.items()}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("cluster")) as engine:
        yield engine


@pytest.fixture(scope="session")
def connect(tmp_path_factory):
    with connect_server(tmp_path_factory.mktemp("connect")) as engine:
        yield engine


@pytest.mark.parametrize("engine_fixture", ["cluster", "connect"])
def test_the_slice_writes_the_same_tables_on_every_engine(
    engine_fixture, request, local_slice, spark, tmp_path
):
    engine = request.getfixturevalue(engine_fixture)
    root = str(tmp_path / "lakehouse")
    summary = _slice_in_child(root, engine.url, tmp_path)
    print(f"{engine.name}: started in {engine.startup_s} s, slice runs {summary['seconds']} s")
    delta = DeltaLakehouse(spark, TableLocator(root=root))
    for name, ref in SLICE_TABLES.items():
        rows = table_rows(delta, ref)
        assert len(rows) == len(local_slice[name]), (
            f"{engine.name} {name}: {len(rows)} rows, local {len(local_slice[name])}"
        )
        assert rows == local_slice[name], f"{engine.name} {name}: rows differ from the local engine's"
    for entity, spec in ENTITIES.items():
        assert_bronze_accounted_for(delta, entity, spec)  # after the re-run too: no duplicate keys
    assert sum(len(local_slice[f"quarantine/{e}"]) for e in ENTITIES) > 0  # dirty data reached every engine


def test_a_bad_engine_names_the_variable():
    from mlops_assets.settings import SettingsError

    with pytest.raises(SettingsError, match="MLOPS_SPARK"):
        load_settings({"MLOPS_SPARK": "yarn"})
    assert build_resources(load_settings({"MLOPS_SPARK": "sc://127.0.0.1:15002"}))["spark"].engine.startswith(
        "sc://"
    )
