"""The request log into the Delta inference table: each closed file once, torn lines quarantined with the
reason, a re-run after a kill adds nothing (real writer, real Spark and Delta, the real asset)."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from mlops_assets.defs.serving import inference_log
from mlops_assets.lakehouse.catalog import INFERENCE_LOG, INFERENCE_LOG_QUARANTINE
from mlops_assets.lakehouse.inference_log import INGESTED_DIR
from mlops_assets.serving.request_log import LogRecord, RequestLogWriter, request_log_dir


def _record(i: int, arm: str = "champion") -> LogRecord:
    return LogRecord(
        f"req-{i}", datetime.now(UTC).isoformat(), f"c{i}", "2026-02-01", arm, arm != "shadow", "churn_model",
        "1", None, 0.25, 0, 1.5, 200, None, '{"plan":"basic"}',
    )  # fmt: skip


def _ingest(test_resources) -> dict:
    result = dg.materialize([inference_log], resources=test_resources)
    assert result.success
    return result.asset_materializations_for_node("serving__inference_log")[0].metadata


def _count(lakehouse, ref) -> int:
    return lakehouse.read(ref).count() if lakehouse.exists(ref) else 0


def test_closed_log_files_are_ingested_once_and_torn_lines_quarantined(test_resources, lakehouse) -> None:
    directory = Path(request_log_dir(test_resources["lakehouse"].root))
    before, quarantined_before = _count(lakehouse, INFERENCE_LOG), _count(lakehouse, INFERENCE_LOG_QUARANTINE)
    writer = RequestLogWriter(directory, rotate_seconds=3600)
    writer.write([_record(i) for i in range(5)])
    first = writer.rotate()
    writer.write([_record(i, "shadow") for i in range(5, 8)])
    second = writer.rotate()
    writer.write([_record(99)])  # still open: not ingested yet
    # A killed server's file: complete lines and a torn last one.
    torn = directory / "killed-1-1.jsonl"
    torn.write_text(_record(50).to_json() + "\n" + _record(51).to_json()[:40])

    metadata = _ingest(test_resources)
    assert (metadata["files"].value, metadata["rows"].value, metadata["quarantined"].value) == (3, 9, 1)
    table = lakehouse.read(INFERENCE_LOG)
    assert table.count() == before + 9
    mine = table.where(table["log_file"].isin([first.name, second.name, torn.name]))
    assert mine.select("request_id").distinct().count() == 9
    assert mine.where("arm = 'shadow' AND NOT served").count() == 3
    assert {r["log_date"] for r in mine.select("log_date").distinct().collect()} == {datetime.now(UTC).date()}
    bad = lakehouse.read(INFERENCE_LOG_QUARANTINE).where(f"log_file = '{torn.name}'").collect()
    assert (
        len(bad) == 1 and "torn" in bad[0]["reason"] and bad[0]["line"].startswith('{"request_id":"req-51"')
    )
    assert not list(directory.glob("*.jsonl"))  # moved to ingested/: the next run lists only new files

    # A run killed after its commit and before the move leaves the files in place: the re-run adds nothing.
    for path in (first, second, torn):
        shutil.copy(directory / INGESTED_DIR / path.name, path)
    again = _ingest(test_resources)
    assert (again["rows"].value, again["quarantined"].value, again["skipped_files"].value) == (0, 0, 3)
    assert _count(lakehouse, INFERENCE_LOG) == before + 9
    assert _count(lakehouse, INFERENCE_LOG_QUARANTINE) == quarantined_before + 1

    writer.close()  # the open file closes and is ingested by the next run
    assert _ingest(test_resources)["rows"].value == 1
