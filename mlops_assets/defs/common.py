"""Helpers every stage uses: partition ranges and the metadata the UI shows for a Delta table."""

import base64
import functools
import importlib.metadata
import subprocess
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
from pyspark.sql import DataFrame

from mlops_assets.lakehouse.delta_io import CommitInfo, DeltaLakehouse
from mlops_assets.lakehouse.steps import application_id, markdown_preview
from mlops_assets.lakehouse.tables import TableRef
from mlops_assets.resources import LakehouseResource

OWNER = "team:ml-platform"
# Run monitoring (the daemon) stops a run past this many seconds: a hung step cannot hold the run queue and its
# pool slots forever. Generous: a 120-day backfill runs ~5 min on a laptop, training stops its search at 10 min.
MAX_RUNTIME_TAG = "dagster/max_runtime"
# For steps whose write atomically replaces what it wrote before (Delta replaceWhere, a dbt rebuild): running
# them again is the recovery, so a transient fault (a lost Spark executor, a killed dbt process) is retried.
# Steps that register or promote models have none: a second attempt would register a second version. A fault
# that retrying cannot fix (a bad landing file, a failed dbt test) is raised as ``dg.Failure(allow_retries=False)``.
IDEMPOTENT_RETRY = dg.RetryPolicy(max_retries=2, delay=5, backoff=dg.Backoff.EXPONENTIAL)


def max_runtime(hours: float) -> dict[str, str]:
    """Job tags that bound a run's wall time (enforced by run monitoring, see dagster.yaml)."""
    return {MAX_RUNTIME_TAG: str(int(hours * 3600))}


@functools.cache
def git_revision() -> str:
    """The git commit of the checkout this package runs from (logged as the model's ``code_version`` for
    lineage; not Dagster's asset code version); the package version outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    return importlib.metadata.version("mlops_assets")


def partition_days(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> list[date]:
    """Every day in the run's partition range (one day for a daily run, many for a backfill)."""
    window = context.partition_time_window
    start, end = window.start.date(), window.end.date()
    return [start + timedelta(days=i) for i in range((end - start).days)]


def read_run_partitions(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
    lakehouse: LakehouseResource,
    ref: TableRef,
) -> DataFrame:
    """The rows of ``ref`` in the run's partition range: what a check of this run has to look at."""
    days = partition_days(context)
    return lakehouse.delta().read_partitions(ref, days[0], days[-1])


def png_markdown(name: str, png: bytes) -> str:
    """A PNG inline in Markdown metadata, so plots show in the Dagster UI without a file server."""
    return f"![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"


def table_schema(df: DataFrame) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[dg.TableColumn(f.name, f.dataType.simpleString()) for f in df.schema.fields]
    )


def delta_metadata(ref: TableRef, location: str, commit: CommitInfo, df: DataFrame, **extra: object) -> dict:
    """The metadata every Delta asset reports: rows written, schema, table version, a preview.

    ``df`` should be the rows just written, read back from Delta, so the preview costs one small read.
    """
    return {
        "dagster/row_count": commit.num_output_rows,
        "dagster/column_schema": table_schema(df),
        "dagster/uri": location,
        "table": str(ref),
        "delta_version": commit.version,
        "delta_operation": commit.operation,
        "spark_application_id": application_id(df.sparkSession),
        "preview": dg.MetadataValue.md(markdown_preview(df)),
        **extra,
    }


@dataclass(frozen=True)
class PartitionWrite:
    """A run's partitions of one table, replaced and read back: the commit, and the rows now there."""

    ref: TableRef
    location: str
    days: list[date]
    commit: CommitInfo
    written: DataFrame

    def metadata(self, **extra: object) -> dict:
        return delta_metadata(
            self.ref,
            self.location,
            self.commit,
            self.written,
            partitions=f"{self.days[0]}..{self.days[-1]}",
            **extra,
        )


def replace_run_partitions(
    delta: DeltaLakehouse, df: DataFrame, ref: TableRef, days: list[date], *, merge_schema: bool = False
) -> PartitionWrite:
    """Write ``df`` over the run's partitions of ``ref`` (one atomic commit) and read them back for the metadata."""
    commit = delta.replace_partitions(df, ref, days[0], days[-1], merge_schema=merge_schema)
    written = delta.read_partitions(ref, days[0], days[-1])
    return PartitionWrite(ref, delta.locator.path(ref), days, commit, written)
