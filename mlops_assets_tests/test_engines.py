"""The same slice of the graph on real engines: a standalone cluster (Master + Worker) and a Spark Connect
server, both started by this module on 127.0.0.1 (once per session) from this venv's pyspark.

Each engine runs landing -> bronze -> silver (+ quarantine) -> gold -> features for three days, then the last
day again, then scoring and the drift report for the last two days by one @champion, in a child process with
``MLOPS_SPARK`` pointing at it (the code never asks which engine it is on). The reference is the same slice on the
local engine, run in this process, which also registers the champion in the MLflow store all slices share. Every
table must hold exactly the reference's rows (load-time columns aside): same counts, same reconciliation, no
duplicate keys after the re-run, the same scores; and every day's drift verdict must be the reference's, its
statistics within 1e-9.
"""

from __future__ import annotations

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
from mlops_assets_tests.comparable import report_figures, table_rows
from mlops_assets_tests.engine_slice import (
    SHIFTED_FEATURE,
    SLICE_TABLES,
    SliceRuns,
    drift_verdicts,
    register_champion,
    run_scoring,
    run_slice,
)
from mlops_assets_tests.engines import connect_server, standalone_cluster
from mlops_assets_tests.small_lakehouse import small_resources

# The per-test limit covers the fixture too: the local reference slice and an engine's slice, on 2 busy cores.
pytestmark = [pytest.mark.engines, pytest.mark.timeout(1800)]
# The source's first days: every initial customer lands on the first, so from the second on (the first day's features
# have no history behind them) the features hold ~300 rows a day, scored and drift-graded.
START, SCORED_FROM, END = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


def _environ(root: str, engine: str, tmp, mlflow_store) -> dict[str, str]:
    return {
        **os.environ,
        "LAKEHOUSE_ROOT": root,
        "MLOPS_SPARK": engine,
        "MLFLOW_TRACKING_URI": f"sqlite:///{mlflow_store / 'mlflow.db'}",
        "DAGSTER_HOME": str(tmp / "dagster_home"),
    }


def _slice_in_child(root: str, engine: str, tmp, reference: dict) -> SliceRuns:
    """The slice in a process of its own, on ``engine``: a classic driver cannot share this process' JVM."""
    (tmp / "dagster_home").mkdir(parents=True, exist_ok=True)
    args = [START.isoformat(), END.isoformat(), SCORED_FROM.isoformat(), str(reference["champion"])]
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets_tests.engine_slice", *args],
        env=_environ(root, engine, tmp, reference["mlflow_store"]),
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    runs = SliceRuns.from_json(done.stdout.strip().splitlines()[-1])
    assert runs.success == [True, True, True], runs.errors
    return runs


@pytest.fixture(scope="module")
def local_slice(spark, tmp_path_factory):
    """The reference: the slice on the local engine, in this process (the suite's session, no new JVM), and the
    champion every engine scores with, registered in the MLflow store the slices share."""
    tmp = tmp_path_factory.mktemp("local_slice")
    mlflow_store = tmp_path_factory.mktemp("slice_mlflow")
    resources = small_resources(load_settings(_environ(str(tmp / "lakehouse"), "local", tmp, mlflow_store)))
    runs = run_slice(START, END, resources)
    assert runs.success == [True, True], runs.errors
    delta = resources["lakehouse"].delta()
    champion = register_champion(delta.read(SLICE_TABLES["features"]).toPandas(), resources)
    runs.extend(run_scoring(SCORED_FROM, END, resources, champion))
    assert runs.success == [True, True, True], runs.errors
    assert [len(ids) for ids in runs.application_ids] == [1, 1, 1], runs.application_ids
    champion_file = tmp / "champion.json"
    champion_file.write_text(champion.to_json())
    return {
        "tables": {name: table_rows(delta, ref) for name, ref in SLICE_TABLES.items()},
        "verdicts": drift_verdicts(delta),
        "runs": runs,
        "champion": champion_file,
        "mlflow_store": mlflow_store,
    }


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
    runs = _slice_in_child(root, engine.url, tmp_path, local_slice)
    print(f"{engine.name}: started in {engine.startup_s} s, slice runs {runs.seconds} s")
    # The same gates pass and fail as on the local engine (freshness aside: it depends on the clock), and each run's
    # Spark steps share one session: one application id per run.
    assert runs.checks_run == local_slice["runs"].checks_run and min(runs.checks_run) > 0, runs.checks_run
    assert _gates(runs) == _gates(local_slice["runs"]), (
        f"{engine.name}: other asset checks failed than locally"
    )
    assert [len(ids) for ids in runs.application_ids] == [1, 1, 1], runs.application_ids
    delta = DeltaLakehouse(spark, TableLocator(root=root))
    tables = local_slice["tables"]
    for name, ref in SLICE_TABLES.items():
        rows = table_rows(delta, ref)
        assert len(rows) == len(tables[name]), (
            f"{engine.name} {name}: {len(rows)} rows, local {len(tables[name])}"
        )
        assert rows == tables[name], f"{engine.name} {name}: rows differ from the local engine's"
    for entity, spec in ENTITIES.items():
        assert_bronze_accounted_for(delta, entity, spec)  # after the re-run too: no duplicate keys
    assert sum(len(tables[f"quarantine/{e}"]) for e in ENTITIES) > 0  # dirty data reached every engine
    assert len(tables["predictions"]) == len(tables["features"])  # one score per entity and day

    verdicts, reference = drift_verdicts(delta), local_slice["verdicts"]
    assert [v["_partition_date"] for v in reference] == [SCORED_FROM.isoformat(), END.isoformat()]
    assert all(SHIFTED_FEATURE in v["drifted_columns"] for v in reference)  # a verdict with something in it
    for theirs, ours in zip(verdicts, reference, strict=True):
        day = ours["_partition_date"]
        assert {k: v for k, v in theirs.items() if k != "report"} == {
            k: v for k, v in ours.items() if k != "report"
        }, f"{engine.name} {day}: another verdict than the local engine's"
        assert report_figures(theirs["report"]) == pytest.approx(
            report_figures(ours["report"]), abs=1e-9, nan_ok=True
        ), f"{engine.name} {day}: drift statistics differ from the local engine's"


def _gates(runs: SliceRuns) -> list[str]:
    return [check for check in runs.failed_checks if "freshness" not in check]


def test_a_bad_engine_names_the_variable():
    from mlops_assets.settings import SettingsError

    with pytest.raises(SettingsError, match="MLOPS_SPARK"):
        load_settings({"MLOPS_SPARK": "yarn"})
    assert build_resources(load_settings({"MLOPS_SPARK": "sc://127.0.0.1:15002"}))["spark"].engine.startswith(
        "sc://"
    )
