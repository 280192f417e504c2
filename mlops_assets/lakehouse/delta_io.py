"""Delta reads and idempotent writes, addressed through the one naming scheme.

Partitioned writes replace exactly the partitions of the run (``replaceWhere``) in one atomic commit:
re-running a partition, or a whole range, never duplicates it, and a killed writer leaves only
uncommitted files that readers never see.

Everything here works on a classic session and over Spark Connect alike: table history, existence and
commit metrics come from SQL (``DESCRIBE HISTORY`` / ``DESCRIBE DETAIL``), never from ``delta.tables.DeltaTable``,
whose Python API needs Delta's Connect server plugin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime

from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from mlops_assets.lakehouse.tables import TableLocator, TableRef

PARTITION_COLUMN = "_partition_date"
# How many recent commits replace_partitions searches for its own (concurrent writers may have committed since).
COMMIT_SEARCH_DEPTH = 20


# What ``replace_partitions`` reports when Delta made no commit (an empty write over partitions that held
# nothing): the table is unchanged at ``version`` and this write wrote 0 rows.
NO_COMMIT = "NONE"


@dataclass(frozen=True)
class CommitInfo:
    version: int
    operation: str
    num_output_rows: int | None


@dataclass(frozen=True)
class HistoryEntry:
    """One commit of a table, as ``DESCRIBE HISTORY`` shows it."""

    version: int
    timestamp: datetime
    operation: str
    num_output_rows: int | None
    user_metadata: str | None


class DeltaLakehouse:
    """Delta tables of one lakehouse, for one Spark session."""

    def __init__(self, spark: SparkSession, locator: TableLocator) -> None:
        self.spark = spark
        self.locator = locator

    def exists(self, ref: TableRef) -> bool:
        if self.locator.catalog:
            return self.spark.catalog.tableExists(self.locator.identifier(ref))
        try:
            detail = self.spark.sql(f"DESCRIBE DETAIL {self._sql_name(ref)}").first()
        except AnalysisException:  # no table there (or not a Delta one)
            return False
        return detail is not None and detail["format"] == "delta"

    def read(self, ref: TableRef) -> DataFrame:
        if self.locator.catalog:
            return self.spark.read.table(self.locator.identifier(ref))
        return self.spark.read.format("delta").load(self.locator.path(ref))

    def read_partitions(self, ref: TableRef, start: date, end: date) -> DataFrame:
        return self.read(ref).where(F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end)))

    def _sql_name(self, ref: TableRef) -> str:
        """The table in SQL: its catalog name, or ``delta.`path``` for a table addressed by path."""
        if self.locator.catalog:
            return self.locator.identifier(ref)
        return "delta.`" + self.locator.path(ref).replace("`", "``") + "`"

    def _history(self, ref: TableRef, limit: int | None = None) -> DataFrame:
        suffix = f" LIMIT {int(limit)}" if limit is not None else ""
        return self.spark.sql(f"DESCRIBE HISTORY {self._sql_name(ref)}{suffix}")

    def _save(self, writer, ref: TableRef) -> None:
        if self.locator.catalog:
            writer.saveAsTable(self.locator.identifier(ref))
        else:
            writer.save(self.locator.path(ref))

    def replace_partitions(
        self,
        df: DataFrame,
        ref: TableRef,
        start: date,
        end: date,
        *,
        merge_schema: bool = False,
        only: tuple[str, str] | None = None,
    ) -> CommitInfo:
        """Atomically replace partitions start..end (inclusive) of a table partitioned by date.

        Returns the commit this write made, found by a token in its ``userMetadata`` (never a concurrent or
        earlier commit). Delta makes no commit for an empty write over partitions that held nothing: then
        the result says so (operation ``NONE``, 0 rows, the table's unchanged version). ``merge_schema``
        lets the write add new (nullable) columns to an existing table; rows already there read them as null.
        ``only = (column, value)`` narrows the replacement to those partitions' rows holding ``value`` (one
        experiment's rows of a table several experiments share); ``value`` must be a plain identifier.
        """
        condition = (
            f"{PARTITION_COLUMN} >= '{start.isoformat()}' AND {PARTITION_COLUMN} <= '{end.isoformat()}'"
        )
        inside = F.col(PARTITION_COLUMN).between(F.lit(start), F.lit(end))
        if only is not None:
            column, value = only
            if not all(c.isalnum() or c in "-_." for c in value):
                raise ValueError(
                    f"{ref}: replace_partitions(only=...) value {value!r} is not a plain identifier"
                )
            condition += f" AND {column} = '{value}'"
            inside = inside & (F.col(column) == F.lit(value))
        outside = df.where(~inside).limit(1).count()
        if outside:
            raise ValueError(f"{ref}: rows outside the partitions being replaced ({start}..{end})")
        token = f"replace_partitions {start.isoformat()}..{end.isoformat()} {uuid.uuid4().hex}"
        writer = (
            df.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", condition)
            .option("userMetadata", token)
            .option("mergeSchema", str(merge_schema).lower())
            .partitionBy(PARTITION_COLUMN)
        )
        self._save(writer, ref)
        recent = self._history(ref, COMMIT_SEARCH_DEPTH).where(F.col("userMetadata") == token).first()
        if recent is None:
            return CommitInfo(self.version(ref), NO_COMMIT, 0)
        return _commit_info(recent)

    def overwrite(self, df: DataFrame, ref: TableRef) -> CommitInfo:
        """Replace a whole (small, unpartitioned) table atomically."""
        self._save(df.write.format("delta").mode("overwrite").option("overwriteSchema", "true"), ref)
        return self.last_commit(ref)

    def append(self, df: DataFrame, ref: TableRef, partition_by: str | None = None) -> CommitInfo:
        writer = df.write.format("delta").mode("append")
        self._save(writer.partitionBy(partition_by) if partition_by else writer, ref)
        return self.last_commit(ref)

    def last_commit(self, ref: TableRef) -> CommitInfo:
        return _commit_info(self._history(ref, 1).first())

    def version(self, ref: TableRef) -> int:
        return self.last_commit(ref).version

    def history(self, ref: TableRef) -> list[HistoryEntry]:
        """The table's commits, newest first."""
        entries = []
        for row in self._history(ref).collect():
            rows_out = (row["operationMetrics"] or {}).get("numOutputRows")
            entries.append(
                HistoryEntry(
                    version=int(row["version"]),
                    timestamp=row["timestamp"],
                    operation=row["operation"],
                    num_output_rows=int(rows_out) if rows_out is not None else None,
                    user_metadata=row["userMetadata"],
                )
            )
        return entries

    def restore(self, ref: TableRef, version: int, user_metadata: str | None = None) -> CommitInfo:
        """``RESTORE TABLE ... TO VERSION AS OF version``: one atomic commit that brings the old rows back;
        ``user_metadata`` goes on that commit, so ``DESCRIBE HISTORY`` says why."""
        key = "spark.databricks.delta.commitInfo.userMetadata"
        if user_metadata is not None:
            self.spark.conf.set(key, user_metadata)
        try:
            self.spark.sql(f"RESTORE TABLE {self.locator.identifier(ref)} TO VERSION AS OF {int(version)}")
        finally:
            if user_metadata is not None:
                self.spark.conf.unset(key)
        return self.last_commit(ref)


def _commit_info(row: Row) -> CommitInfo:
    """A history row as CommitInfo; a write that added no files wrote 0 rows (Delta then omits the count)."""
    metrics = row["operationMetrics"] or {}
    rows = metrics.get("numOutputRows")
    if rows is None and metrics.get("numFiles") == "0":
        rows = 0
    return CommitInfo(int(row["version"]), row["operation"], int(rows) if rows is not None else None)
