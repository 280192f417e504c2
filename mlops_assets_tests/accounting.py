"""Bronze rows accounted for, recomputed from bronze by lineage (source file and line), not taken from a step's
own counts: shared by the graph test and the engine tests."""

from __future__ import annotations

from mlops_assets.lakehouse.catalog import BRONZE, QUARANTINE, SILVER
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.entities import EntitySpec

LINEAGE = ["_source_file", "_source_row"]


def assert_bronze_accounted_for(delta: DeltaLakehouse, name: str, spec: EntitySpec) -> tuple[int, int]:
    """bronze = silver + quarantine + duplicates: every quarantined row is a bronze row, the bronze rows left
    over collapse to exactly silver's keys per day, one row each, and every silver row is one of them. Returns
    (quarantined, duplicates). Duplicates are removed within a day's files: a record re-sent on a later day is in
    silver once per day it arrived (gold keeps its first arrival)."""
    bronze, silver, quarantine = (delta.read(t[name]) for t in (BRONZE, SILVER, QUARANTINE))
    kept = bronze.join(quarantine.select(*LINEAGE), LINEAGE, "left_anti")
    n_bronze, n_kept, n_quarantine, n_silver = (
        bronze.count(),
        kept.count(),
        quarantine.count(),
        silver.count(),
    )
    assert n_bronze == n_kept + n_quarantine, f"{name}: a quarantined row that is not a bronze row"
    day_key = [*spec.key, "_partition_date"]
    assert silver.select(*day_key).distinct().count() == n_silver, f"{name}: a key twice in a day of silver"
    assert kept.select(*day_key).distinct().count() == n_silver, f"{name}: kept keys differ from silver's"
    assert silver.join(kept.select(*LINEAGE), LINEAGE, "left_anti").count() == 0, (
        f"{name}: silver row not in bronze"
    )
    return n_quarantine, n_kept - n_silver
