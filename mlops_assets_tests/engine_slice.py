"""One slice of the real graph on the engine ``MLOPS_SPARK`` names: landing -> bronze -> silver (+ quarantine)
-> gold -> features for a few days as one run, then landing -> bronze -> silver for the last day again (a re-run
must leave no duplicates).

Run as ``python -m mlops_assets_tests.engine_slice START END`` in a process of its own (one process holds one
classic SparkContext, and the suite's is local): it prints one JSON line with each run's success and time. The
caller reads the tables it wrote (Delta, by path) and compares them with another engine's.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import date

from pyspark.sql import functions as F

from mlops_assets.lakehouse.catalog import BRONZE, FEATURES, GOLD, QUARANTINE, SILVER
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.tables import TableRef

# Columns a re-run rewrites with the time of the load: left out when two builds are compared.
LOAD_TIME_COLUMNS = ("_ingested_at", "_quarantined_at")
SLICE_TABLES: dict[str, TableRef] = {
    **{f"bronze/{n}": r for n, r in BRONZE.items()},
    **{f"silver/{n}": r for n, r in SILVER.items()},
    **{f"quarantine/{n}": r for n, r in QUARANTINE.items()},
    **{f"gold/{n}": r for n, r in GOLD.items()},
    "features": FEATURES,
}


def table_rows(delta: DeltaLakehouse, ref: TableRef) -> list[tuple]:
    """A table's rows, load-time columns aside and source files relative to the lakehouse root (two builds in two
    roots read the same landing files), in a stable order."""
    df = delta.read(ref)
    df = df.drop(*[c for c in df.columns if c in LOAD_TIME_COLUMNS])
    if "_source_file" in df.columns:
        df = df.withColumn(
            "_source_file", F.replace("_source_file", F.lit(delta.locator.root), F.lit("<root>"))
        )
    return sorted(map(tuple, df.collect()), key=repr)


def run_slice(start: date, end: date, resources: dict[str, object] | None = None) -> dict[str, object]:
    """The daily lakehouse job for start..end as one run, then for ``end`` alone again."""
    from mlops_assets.definitions import build_defs
    from mlops_assets_tests.conftest import range_tags
    from mlops_assets_tests.small_lakehouse import small_resources

    job = build_defs(resources or small_resources()).resolve_job_def("daily_lakehouse")
    rerun = [
        key
        for key in job.asset_layer.executable_asset_keys
        if key.path[0] in ("landing", "bronze", "silver", "quarantine")
    ]
    timings, successes = [], []
    for tags, selection in ((range_tags(start, end), None), ({"dagster/partition": end.isoformat()}, rerun)):
        began = time.monotonic()
        result = job.execute_in_process(tags=tags, asset_selection=selection, raise_on_error=False)
        timings.append(round(time.monotonic() - began, 1))
        successes.append(result.success)
        if not result.success:
            failures = [str(e.event_specific_data.error) for e in result.all_events if e.is_step_failure]
            return {"success": successes, "seconds": timings, "errors": failures}
    return {"success": successes, "seconds": timings, "errors": []}


if __name__ == "__main__":
    first, last = (date.fromisoformat(arg) for arg in sys.argv[1:3])
    print(json.dumps(run_slice(first, last)), flush=True)
