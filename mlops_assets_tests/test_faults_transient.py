"""Transient faults are retried where retrying is safe; the rest fail at once with a clear message.

A real dbt process is SIGKILLed mid-build during a real lakehouse run: the gold step is retried (dbt rebuilds
gold from silver) and the run succeeds with gold as it was. A bad landing file and a failed dbt build are not
retried: retrying would fail the same way, only later.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.gold import dbt_failure
from mlops_assets.lakehouse.tables import TableRef
from mlops_assets_tests.conftest import TEST_END
from mlops_assets_tests.servers import dbt_builds

pytestmark = pytest.mark.faults

GOLD = [TableRef("gold", name) for name in ("dim_customers", "fct_usage_daily", "fct_billing_events")]


def test_a_killed_dbt_is_retried_and_the_run_succeeds_with_gold_unchanged(
    foundation_run, test_defs, lakehouse
):
    assert foundation_run.success
    before = {str(t): lakehouse.read(t).count() for t in GOLD}
    killed: list[int] = []

    def kill_the_first_dbt() -> None:
        deadline = time.monotonic() + 600
        while not killed and time.monotonic() < deadline:
            builds = dbt_builds(os.getpid())
            if builds:
                time.sleep(8)  # mid-build: its Spark session is up and models are being written
                os.kill(builds[0], signal.SIGKILL)
                killed.append(builds[0])
            time.sleep(0.5)

    killer = threading.Thread(target=kill_the_first_dbt, daemon=True)
    killer.start()
    result = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=TEST_END.isoformat(), raise_on_error=False
    )
    killer.join(timeout=5)
    assert killed, "no dbt build was seen to kill"
    assert result.success
    gold_step = next(s for s in {e.step_key for e in result.all_events if e.step_key} if "dbt" in s)
    retried = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert [e.step_key for e in retried] == [gold_step]
    assert "killed by signal 9" in retried[0].event_specific_data.error.to_string()
    assert {str(t): lakehouse.read(t).count() for t in GOLD} == before


def test_dbt_errors_are_not_retried_but_a_killed_dbt_is():
    assert dbt_failure(-9).allow_retries is True
    for exit_code in (1, 2):
        failure = dbt_failure(exit_code)
        assert failure.allow_retries is False and f"exit {exit_code}" in failure.description


def test_a_bad_landing_file_fails_once_without_retries(small_lakehouse_for_retries):
    result = small_lakehouse_for_retries()
    assert not result.success
    events = result.all_events
    assert not [e for e in events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    failure = next(e for e in events if e.is_step_failure)
    assert "empty file" in failure.step_failure_data.error.to_string()


@pytest.fixture
def small_lakehouse_for_retries(spark, tmp_path):
    """A landing day whose usage file is empty, and bronze of it (nothing else needed)."""
    from mlops_assets.defs.ingestion import bronze_assets
    from mlops_assets.lakehouse.entities import USAGE_EVENTS
    from mlops_assets.resources import LakehouseResource, SparkResource

    spark_resource = SparkResource()
    lakehouse = LakehouseResource(root=str(tmp_path / "lakehouse"), spark=spark_resource)
    day = "2026-02-01"
    folder = Path(lakehouse.landing_root) / day
    folder.mkdir(parents=True)
    (folder / USAGE_EVENTS.file_name).write_bytes(b"")
    usage = [a for a in bronze_assets if dg.AssetKey(["bronze", USAGE_EVENTS.name]) in a.keys]

    def load() -> dg.ExecuteInProcessResult:
        resources = {"spark": spark_resource, "lakehouse": lakehouse}
        return dg.materialize(usage, resources=resources, partition_key=day, raise_on_error=False)

    return load
