"""Shared fixtures: one Spark session for the whole suite, and one small lakehouse built by the real graph.

The environment variables are set before anything imports the project, so the dbt subprocess and the
Python assets see the same temporary lakehouse.
"""

import os
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest

TEST_START = date(2026, 1, 1)
TEST_DAYS = 45  # enough for as-of dates whose 30-day churn label window has closed
TEST_END = TEST_START + timedelta(days=TEST_DAYS - 1)
_TMP = Path(tempfile.mkdtemp(prefix="mlops_assets_tests_"))
# Every secret-bearing variable carries this for the whole session; test_secrets looks for it everywhere after.
SECRET_SENTINEL = "sentinel-9f2c41d7-never-log-me"
SECRET_VARIABLES = ("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET")


def pytest_configure(config: pytest.Config) -> None:
    os.environ["LAKEHOUSE_ROOT"] = str(_TMP / "lakehouse")
    os.environ["DAGSTER_HOME"] = str(_TMP / "dagster_home")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_TMP / 'mlflow.db'}"
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Local-first, as under `make`: MLflow's usage telemetry off in this process and every child it starts.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    for variable in SECRET_VARIABLES:
        os.environ[variable] = SECRET_SENTINEL
    (_TMP / "dagster_home").mkdir(parents=True, exist_ok=True)
    # The suite's instance sends nothing out either (the webserver the UI test starts reads this file).
    (_TMP / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")


# Layers, from the fixtures a test asks for: what needs the JVM, what runs the graph, and the rest (unit).
SPARK_FIXTURES = {"spark", "test_resources", "test_defs", "lakehouse", "foundation_run", "first_training"}
GRAPH_FIXTURES = {"test_defs", "foundation_run"}
PROCESS_MARKERS = {"faults", "security", "serving", "ui"}  # real processes: never unit


# `make test` runs the suite on two pytest-xdist workers, each with its own Spark session, lakehouse, MLflow
# store and Dagster home (this module is imported once per worker). The scheduler below keeps a module whole on one
# worker (its module-scoped fixtures are built once) and every module that uses the foundation run in one group,
# so the 45-day build happens once; the longest groups are queued first, one per worker. (xdist's own
# `xdist_group` marks cannot do this under pytest 9.2: xdist 3.8 rewrites a node id attribute pytest no longer
# reads.) The controller never collects, so the foundation modules are named here, and collection checks the list.
FOUNDATION_GROUP = "foundation"
FOUNDATION_MODULES = frozenset(
    {
        "test_faults_killed_stage.py",
        "test_faults_transient.py",
        "test_lakehouse_graph.py",
        "test_ml_lifecycle.py",
        "test_ml_registry.py",
        "test_serving_parity.py",
        "test_secrets.py",
        "test_ui_in_browser.py",
    }
)
FIRST_GROUPS = (FOUNDATION_GROUP, "test_engines.py")


def suite_group(module: str) -> str:
    """The worker group of a test module (its file name)."""
    return FOUNDATION_GROUP if module in FOUNDATION_MODULES else module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unlisted = sorted(
        {item.path.name for item in items if "foundation_run" in getattr(item, "fixturenames", ())}
        - FOUNDATION_MODULES
    )
    if unlisted:
        raise pytest.UsageError(
            f"add {unlisted} to FOUNDATION_MODULES in conftest.py: they use foundation_run"
        )
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SPARK_FIXTURES:
            item.add_marker(pytest.mark.spark)
        if fixtures & GRAPH_FIXTURES:
            item.add_marker(pytest.mark.graph)
        if not fixtures & SPARK_FIXTURES and not {m.name for m in item.iter_markers()} & PROCESS_MARKERS:
            item.add_marker(pytest.mark.unit)
    first = {group: rank for rank, group in enumerate(FIRST_GROUPS)}
    items.sort(
        key=lambda item: first.get(suite_group(item.path.name), len(first))
    )  # stable: file order otherwise


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadgroup``: whole groups (``suite_group``) to one worker each, in collection order."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SuiteGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return suite_group(nodeid.split("::")[0].rsplit("/", 1)[-1])

    config.option.loadscopereorder = False  # collection order: the longest groups first
    return SuiteGroupScheduling(config, log)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(autouse=True, scope="module")
def _suite_mlflow_store_restored():
    """``mlflow.set_tracking_uri`` also writes ``os.environ["MLFLOW_TRACKING_URI"]``: a module that points MLflow
    at a store of its own (the engine slices) must not leave the next module on its worker, which finds the
    suite's store through that variable, pointed there."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is not None and os.environ.get("MLFLOW_TRACKING_URI") != before:
        import mlflow

        mlflow.set_tracking_uri(before)


def range_tags(start: date, end: date) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start.isoformat(),
        "dagster/asset_partition_range_end": end.isoformat(),
    }


@pytest.fixture(scope="session")
def spark():
    from mlops_assets.lakehouse.spark import build_local_session

    return build_local_session()


@pytest.fixture(scope="session")
def test_resources(spark):
    from mlops_assets_tests.small_lakehouse import small_resources

    return small_resources()


@pytest.fixture(scope="session")
def test_defs(test_resources):
    from mlops_assets.definitions import build_defs

    return build_defs(test_resources)


@pytest.fixture(scope="session")
def lakehouse(test_resources):
    return test_resources["lakehouse"].delta()


@pytest.fixture(scope="session")
def foundation_run(test_defs):
    """Landing -> bronze -> silver -> gold -> features for TEST_DAYS days as one backfill run."""
    return test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        tags=range_tags(TEST_START, TEST_END), raise_on_error=False
    )


FAST_TRAINING = {"ops": {"ml__churn_model": {"config": {"n_trials": 4, "seed": 7}}}}


@pytest.fixture(scope="session")
def first_training(foundation_run, test_defs, test_resources):
    """The first train -> evaluate -> gated promotion on the foundation: the suite's first @champion (the
    lifecycle and serving modules share it; later fixtures may move @champion on)."""
    assert foundation_run.success
    test_resources["mlflow_tracking"].configure()
    return test_defs.resolve_job_def("train_evaluate_promote").execute_in_process(
        run_config=FAST_TRAINING, raise_on_error=False
    )
