"""The scoring service's request log into the Delta inference table, without the server ever opening Spark.

The server closes a log file before it is read (``serving/request_log.py``), so a file is ingested whole, once:
files already in the table are skipped (a re-run after a kill between the commit and the move adds nothing),
the new ones are appended in one commit, then moved to ``ingested/`` so the next run lists only new files and
its cost does not grow with history. A line that is not a whole JSON record (a killed server's torn last line)
goes to ``quarantine/inference_log`` with the reason, never silently dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlops_assets.lakehouse.catalog import INFERENCE_LOG, INFERENCE_LOG_QUARANTINE
from mlops_assets.serving.request_log import CLOSED_SUFFIX, close_stale_files

if TYPE_CHECKING:
    from mlops_assets.lakehouse.delta_io import DeltaLakehouse

RECORD_SCHEMA = (
    "request_id string, logged_at timestamp, entity string, as_of date, arm string, served boolean, "
    "model_name string, model_version string, rollout_id string, score double, predicted_label int, "
    "latency_ms double, status int, error string, features string"
)
# The table: the records plus the file each came from and the day it was logged (the partition).
INFERENCE_SCHEMA = f"{RECORD_SCHEMA}, log_file string, log_date date"
PARTITION = "log_date"
CORRUPT = "_corrupt_record"
INGESTED_DIR = "ingested"


@dataclass(frozen=True)
class IngestResult:
    files: int
    rows: int
    quarantined: int
    skipped_files: int  # already in the table (a re-run after a kill)

    def metadata(self) -> dict[str, int]:
        return {
            "files": self.files,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "skipped_files": self.skipped_files,
        }


def append_inference_rows(delta: DeltaLakehouse, rows) -> None:
    """The one way rows enter the inference table (partitioned by the day they were logged)."""
    delta.append(rows, INFERENCE_LOG, partition_by=PARTITION)


def _already_in(delta: DeltaLakehouse, ref, names: list[str]) -> set[str]:
    if not names or not delta.exists(ref):
        return set()
    table = delta.read(ref)
    return {
        r["log_file"]
        for r in table.where(table["log_file"].isin(names)).select("log_file").distinct().collect()
    }


def ingest_request_log(delta: DeltaLakehouse, directory: str) -> IngestResult:
    from pyspark.sql import functions as F

    log_dir = Path(directory)
    if not log_dir.is_dir():
        return IngestResult(0, 0, 0, 0)
    close_stale_files(log_dir)
    files = sorted(log_dir.glob(f"*{CLOSED_SUFFIX}"))
    names = [f.name for f in files]
    done = _already_in(delta, INFERENCE_LOG, names)
    quarantined_before = _already_in(delta, INFERENCE_LOG_QUARANTINE, names)
    todo = [f for f in files if f.name not in done]
    rows = quarantined = 0
    if todo:
        raw = (
            delta.spark.read.schema(f"{RECORD_SCHEMA}, {CORRUPT} string")
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT)
            .json([str(f) for f in todo])
            .withColumn("log_file", F.col("_metadata.file_name"))
            .cache()
        )
        bad = raw.where(F.col(CORRUPT).isNotNull() | F.col("request_id").isNull())
        good = raw.where(F.col(CORRUPT).isNull() & F.col("request_id").isNotNull())
        bad_rows = bad.where(~F.col("log_file").isin(list(quarantined_before) or [""])).select(
            "log_file",
            F.coalesce(F.col(CORRUPT), F.lit("")).alias("line"),
            F.lit("not a whole JSON log record (torn line of a killed server?)").alias("reason"),
            F.current_timestamp().alias("quarantined_at"),
        )
        quarantined = bad_rows.count()
        if quarantined:
            delta.append(bad_rows, INFERENCE_LOG_QUARANTINE)
        table = good.drop(CORRUPT).withColumn(PARTITION, F.to_date("logged_at"))
        rows = table.count()
        append_inference_rows(delta, table)
        raw.unpersist()
    moved = log_dir / INGESTED_DIR
    moved.mkdir(exist_ok=True)
    for f in files:
        os.replace(f, moved / f.name)
    return IngestResult(len(todo), rows, quarantined, len(files) - len(todo))
