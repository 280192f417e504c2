"""What two builds can be compared by. Rows of a table: the columns a load stamps with its own time left out, source
files relative to the lakehouse root (two builds in two roots read the same landing files), in a stable order
(the engine, Pipes and killed-stage tests). The numbers of a drift report, by path (the engine and drift tests)."""

from __future__ import annotations

from typing import Any

from pyspark.sql import functions as F

from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.tables import TableRef

# Stamped with the time of the load: a re-run writes new values by design.
LOAD_TIME_COLUMNS = ("_ingested_at", "_quarantined_at", "scored_at")


def comparable_rows(df: Any, root: str | None = None) -> list[tuple]:
    """``df``'s rows without load-time columns, ``root`` in source file paths replaced by ``<root>``, sorted."""
    df = df.drop(*[c for c in df.columns if c in LOAD_TIME_COLUMNS])
    if root is not None and "_source_file" in df.columns:
        df = df.withColumn("_source_file", F.replace("_source_file", F.lit(root), F.lit("<root>")))
    return sorted(map(tuple, df.collect()), key=repr)


def table_rows(delta: DeltaLakehouse, ref: TableRef) -> list[tuple]:
    """A whole table's comparable rows."""
    return comparable_rows(delta.read(ref), delta.locator.root)


def report_figures(report: object, path: str = "") -> dict[str, float]:
    """Every number in a drift report's dict (``DriftReport.to_dict``), by its path; lists of columns by name."""
    if isinstance(report, dict):
        return {
            k: v for key, item in report.items() for k, v in report_figures(item, f"{path}/{key}").items()
        }
    if isinstance(report, list):
        named = all(isinstance(item, dict) and "column" in item for item in report) and report
        keys = [item["column"] for item in report] if named else range(len(report))
        return {
            k: v
            for key, item in zip(keys, report, strict=True)
            for k, v in report_figures(item, f"{path}/{key}").items()
        }
    if isinstance(report, bool) or not isinstance(report, int | float):
        return {}
    return {path: float(report)}
