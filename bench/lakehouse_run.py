"""One ``daily_lakehouse`` run (landing -> bronze -> silver -> gold -> features) in a process of its own, as a
Dagster run would be: the growth and scale benchmarks start it, time it and watch its JVMs' memory.

``python -m bench.lakehouse_run START END CUSTOMERS``: the project's resources (``LAKEHOUSE_ROOT`` etc. from the
environment) with the built-in source at ``CUSTOMERS`` initial customers. Prints one JSON line: success, the
step durations (from the run's events) and the landing rows written.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import date
from pathlib import Path

import dagster as dg

# New customers a day per initial customer, as in the default source (12 a day for 2,000).
SIGNUPS_PER_CUSTOMER = 12 / 2000


def landing_rows(root: Path, start: date, end: date) -> int:
    """Data lines in the landing files of start..end (headers aside)."""
    total = 0
    for folder in root.iterdir():
        if folder.is_dir() and start.isoformat() <= folder.name <= end.isoformat():
            for path in folder.iterdir():
                lines = path.read_bytes().count(b"\n")
                total += lines - 1 if path.suffix == ".csv" else lines
    return total


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Wall seconds per step, from the timestamps of its start and success (or failure) events."""
    started: dict[str, float] = {}
    seconds: dict[str, float] = defaultdict(float)
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in started:
            seconds[event.step_key] += entry.timestamp - started.pop(event.step_key)
    return dict(seconds)


def main(argv: list[str]) -> int:
    from mlops_assets.definitions import build_defs
    from mlops_assets.environment import build_resources
    from mlops_assets.resources import SyntheticSourceResource
    from mlops_assets.settings import load_settings
    from mlops_assets_tests.conftest import range_tags

    start, end = date.fromisoformat(argv[0]), date.fromisoformat(argv[1])
    customers = int(argv[2])
    settings = load_settings()
    source = SyntheticSourceResource(
        initial_customers=customers, daily_signups=round(customers * SIGNUPS_PER_CUSTOMER)
    )
    resources = build_resources(settings)
    job = build_defs({**resources, "source": source}).resolve_job_def("daily_lakehouse")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        instance=instance,
        tags=range_tags(start, end),
        raise_on_error=False,
    )
    landing = Path(resources["lakehouse"].landing_root)
    summary = {
        "success": result.success,
        "steps": step_seconds(instance, result.run_id),
        "landing_rows": landing_rows(landing, start, end) if landing.exists() else 0,
    }
    print(json.dumps(summary), flush=True)
    return 0 if result.success else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
