"""A sentinel secret in every secret-bearing variable (set by conftest for the whole session) lands nowhere:
not in a Dagster event or compute log, an MLflow param/tag/metric/artifact, a dbt log, or a Delta table.

Runs after the lakehouse (and, in the suite, the ML lifecycle before it: files sort before this one) has been
built with the sentinel in the environment of every process: Spark, dbt's subprocess, MLflow.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import functions as F

from mlops_assets_tests.conftest import _TMP, SECRET_SENTINEL, SECRET_VARIABLES, TEST_END

pytestmark = pytest.mark.security

DBT_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project"


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under root whose bytes contain needle. Parquet is compressed: Delta tables are read instead."""
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and path.suffix != ".parquet" and needle in path.read_bytes():
            hits.append(path)
    return hits


def delta_tables_containing(spark, root: Path, needle: str) -> list[str]:
    """Delta tables under root with any row whose JSON form contains needle."""
    hits = []
    for log in root.rglob("_delta_log"):
        table = spark.read.format("delta").load(str(log.parent))
        if table.select(F.to_json(F.struct("*")).alias("row")).where(F.col("row").contains(needle)).count():
            hits.append(str(log.parent))
    return hits


def test_the_sentinel_is_in_the_environment_of_the_run():
    import os

    assert all(os.environ[v] == SECRET_SENTINEL for v in SECRET_VARIABLES)


def test_the_scan_finds_a_planted_secret(spark, tmp_path):
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "step.log").write_text(f"token={SECRET_SENTINEL}\n")
    spark.createDataFrame([("a", SECRET_SENTINEL)], "k string, v string").write.format("delta").save(
        str(tmp_path / "table")
    )
    # (Delta's commit log keeps column min/max stats: the table's log files are hits too)
    assert tmp_path / "logs" / "step.log" in files_containing(tmp_path, SECRET_SENTINEL.encode())
    assert delta_tables_containing(spark, tmp_path, SECRET_SENTINEL) == [str(tmp_path / "table")]


@pytest.fixture(scope="module")
def run_on_the_instance(foundation_run, test_defs):
    """One lakehouse day (bronze to features, dbt included) on the persistent instance, so its events and
    compute logs land in DAGSTER_HOME (the suite's other runs execute on ephemeral instances)."""
    assert foundation_run.success
    return test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=TEST_END.isoformat(), instance=dg.DagsterInstance.get(), raise_on_error=False
    )


def test_no_secret_in_events_logs_mlflow_dbt_or_tables(spark, run_on_the_instance):
    assert run_on_the_instance.success
    stores = [_TMP / "dagster_home", _TMP / "lakehouse", _TMP / "artifacts", DBT_PROJECT / "logs"]
    stores += [_TMP / "mlflow.db", DBT_PROJECT / "target"]
    scanned = [s for s in stores if s.exists()]
    # the scan reads the stores this session wrote: the run's id is in the instance's files
    assert files_containing(_TMP / "dagster_home", run_on_the_instance.run_id.encode())
    assert DBT_PROJECT / "logs" in scanned
    needle = SECRET_SENTINEL.encode()
    leaks = [s for s in scanned if s.is_file() and needle in s.read_bytes()]
    leaks += [p for s in scanned if s.is_dir() for p in files_containing(s, needle)]
    assert not leaks, f"the secret leaked into {leaks}"
    tables = delta_tables_containing(spark, _TMP / "lakehouse", SECRET_SENTINEL)
    assert not tables, f"the secret is in Delta tables {tables}"


def test_databricks_credentials_are_bound_as_env_vars_not_values():
    from mlops_assets.environment import build_resources
    from mlops_assets.settings import load_settings
    from mlops_assets_tests.test_config_errors import DATABRICKS

    settings = load_settings({**DATABRICKS, "DATABRICKS_TOKEN": SECRET_SENTINEL})
    resources = build_resources(settings)
    workspace = resources["databricks"]
    assert workspace.token == dg.EnvVar("DATABRICKS_TOKEN") != SECRET_SENTINEL
    # the compute resource's workspace too; the settings keep no token at all
    assert resources["compute"].databricks.token == dg.EnvVar("DATABRICKS_TOKEN")
    assert SECRET_SENTINEL not in repr(settings)
