"""`kill -9` of the real dagster-daemon while its sensor launches a retrain: exactly one run for one critical
drift report, however often the daemon dies around the launch.

A persistent instance of its own, whose ``dagster.yaml`` binds ``CrashingRunCoordinator``
(``mlops_assets_tests/daemon_crash.py``): the daemon SIGKILLs itself once after the tick created the retrain
run but before submitting it, then (restarted) once right after submitting it; a third daemon runs clean. The
queue launches nothing (``max_concurrent_runs: 0``): the test counts what the sensor requested, it does not
train. The real code location (``workspace.yaml``), the real ``drift_retraining_sensor``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets.defs.monitoring.drift_report import DRIFT_REPORT_KEY
from mlops_assets.defs.monitoring.retraining import DATA_VERSION_TAG, retrain_job
from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.browser import chromium_page, open_page, screenshot, webserver
from mlops_assets_tests.daemon_crash import AFTER_SUBMIT, BEFORE_SUBMIT, CRASH_AT_VAR
from mlops_assets_tests.servers import stop_process_group, wait_until
from mlops_assets_tests.test_monitoring import _report

pytestmark = pytest.mark.faults

SENSOR = "drift_retraining_sensor"
DAY = "2026-05-07"
DATA_VERSION = "1:t1:pending"
RUN_KEY = f"drift-{DAY}-{DATA_VERSION}"
INSTANCE_YAML = """\
run_coordinator:
  module: mlops_assets_tests.daemon_crash
  class: CrashingRunCoordinator
  config:
    max_concurrent_runs: 0  # queued runs stay queued: the test counts requests, it does not train
telemetry:
  enabled: false
"""


def start_daemon(home: Path, crash_at: str | None) -> subprocess.Popen:
    env = {**os.environ, "DAGSTER_HOME": str(home), "MLOPS_RETRAIN_COOLDOWN_HOURS": "0"}
    env.pop(CRASH_AT_VAR, None)
    if crash_at:
        env[CRASH_AT_VAR] = crash_at
    daemon = str(Path(sys.executable).parent / "dagster-daemon")
    return subprocess.Popen(
        [daemon, "run", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=env,
        start_new_session=True,  # its code server is in its group: stopped with it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def retrain_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(job_name=retrain_job.name)))


def sensor_ticks(instance: dg.DagsterInstance) -> list:
    """The sensor's ticks, newest first (status, run ids, run keys, log key). Statuses are compared by value:
    Dagster exports no public name for its tick status enum."""
    (state,) = [s for s in instance.all_instigator_state() if s.instigator_name == SENSOR]
    return list(instance.get_ticks(state.instigator_origin_id, state.selector_id))


@pytest.fixture(scope="module")
def crashed_twice(tmp_path_factory):
    """A critical report; the daemon killed before the launch, then after it, then run clean to its next tick."""
    home = tmp_path_factory.mktemp("daemon_home")
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    instance = dg.DagsterInstance.from_config(str(home))
    _report(instance, DAY, "RETRAIN", DATA_VERSION)
    seen = {}
    for stage in (BEFORE_SUBMIT, AFTER_SUBMIT):
        daemon = start_daemon(home, crash_at=stage)
        try:
            seen[stage] = daemon.wait(timeout=300)
        finally:
            stop_process_group(daemon)  # the code server it left behind
        seen[f"runs after {stage}"] = [(r.run_id, r.status) for r in retrain_runs(instance)]
    daemon = start_daemon(home, crash_at=None)
    try:
        wait_until(
            lambda: [t.status.value for t in sensor_ticks(instance)][:1] == ["SUCCESS"],
            300,
            "the clean daemon to finish the interrupted tick",
            interval_s=1,
        )
        # The same report materialized again (same data version): the sensor's next tick must not relaunch.
        _report(instance, DAY, "RETRAIN", DATA_VERSION)
        wait_until(lambda: len(sensor_ticks(instance)) >= 2, 120, "the next tick", interval_s=1)
        wait_until(lambda: sensor_ticks(instance)[0].status.value != "STARTED", 60, "it to end")
    finally:
        stop_process_group(daemon)
    return home, instance, seen


def test_a_daemon_killed_before_and_after_the_launch_requests_exactly_one_retrain(crashed_twice):
    _, instance, seen = crashed_twice
    assert seen[BEFORE_SUBMIT] == -9 and seen[AFTER_SUBMIT] == -9, "each crashing daemon died by SIGKILL"
    # Killed before the submit: the run exists but was never queued.
    (created,) = seen[f"runs after {BEFORE_SUBMIT}"]
    assert created[1] == dg.DagsterRunStatus.NOT_STARTED
    # Killed after the submit: the same run, now queued; no second run.
    assert seen[f"runs after {AFTER_SUBMIT}"] == [(created[0], dg.DagsterRunStatus.QUEUED)]
    (run,) = retrain_runs(instance)
    assert run.run_id == created[0] and run.status == dg.DagsterRunStatus.QUEUED
    assert run.tags["dagster/run_key"] == RUN_KEY and run.tags[DATA_VERSION_TAG] == DATA_VERSION
    assert instance.get_latest_materialization_event(DRIFT_REPORT_KEY) is not None
    # The interrupted tick was resumed and finished on that run's key (the run existed: not created again);
    # the next tick saw the report materialized again and skipped it.
    newest, resumed = sensor_ticks(instance)[:2]
    assert resumed.status.value == "SUCCESS" and list(resumed.run_keys) == [RUN_KEY]
    assert newest.status.value == "SKIPPED", newest.status
    assert "already launched a retrain" in (newest.skip_reason or ""), newest.skip_reason


@pytest.mark.ui
def test_the_sensor_tick_log_shows_each_decision_in_the_browser(crashed_twice):
    """As a user checks why a retrain ran (or did not): Automation -> the sensor -> a tick's logs."""
    home, _, _ = crashed_twice
    with webserver(home) as url, chromium_page() as page:
        open_page(page, f"{url}/locations/mlops_assets/sensors/{SENSOR}")
        logs = page.get_by_role("button", name="View logs")
        logs.nth(1).wait_for()
        assert logs.count() == 2  # the resumed tick and the one after it
        logs.nth(0).click()  # newest first: the re-seen report
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("already launched a retrain").first.wait_for()
        dialog.get_by_role("button", name="Done").click()
        dialog.wait_for(state="hidden")
        logs.nth(1).click()  # the tick the daemon died in twice, resumed by the clean daemon
        dialog.get_by_text(f"LAUNCHED retraining (run key {RUN_KEY})").first.wait_for()
        page.wait_for_timeout(1_000)  # the dialog's fade-in
        screenshot(page, "sensor_tick_log")
