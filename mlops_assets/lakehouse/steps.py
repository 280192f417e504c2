"""Spark steps as pure functions of (SparkSession, TableLocator, params): the same code runs in the Dagster
process and on a remote cluster (``python -m mlops_assets.remote <step>``), so where a step runs is a
deployment choice, not a second implementation.

A step returns a JSON-serialisable summary; ``step_reports`` turns it into what Dagster shows (materialization
metadata and check outcomes) in the Pipes wire format, which the remote side reports as it is and the
in-process runner converts (``mlops_assets/compute.py``). No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mlops_assets.lakehouse.catalog import BRONZE, QUARANTINE, SILVER
from mlops_assets.lakehouse.delta_io import CommitInfo, DeltaLakehouse
from mlops_assets.lakehouse.entities import ENTITIES
from mlops_assets.lakehouse.quality import split_silver
from mlops_assets.lakehouse.tables import TableLocator, TableRef

SILVER_STEP = "silver"
ROWS_ACCOUNTED_FOR = "rows_accounted_for"  # the check the silver step reports on each silver asset
TOP_RULES = 10
PREVIEW_ROWS = 5

Summary = dict[str, Any]
# Pipes metadata: {"raw_value": ..., "type": "int" | "text" | "md" | "table_schema" | "null"}
PipesMetadata = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Materialization:
    asset_key: str  # slash-separated, as Pipes sends it: "silver/customers"
    metadata: PipesMetadata


@dataclass(frozen=True)
class CheckOutcome:
    asset_key: str
    check_name: str
    passed: bool
    severity: str  # "ERROR" | "WARN"
    metadata: PipesMetadata


@dataclass(frozen=True)
class StepReports:
    materializations: list[Materialization] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)


def days_between(start: date, end: date) -> list[date]:
    """Every day from start to end, inclusive."""
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def markdown_preview(df: DataFrame, rows: int = PREVIEW_ROWS) -> str:
    """A small Markdown table of the first rows: collects only ``rows`` rows to the driver."""
    sample = df.limit(rows).collect()
    columns = df.columns
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in sample:
        cells = [str(row[c]).replace("|", "\\|")[:40] for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def application_id(spark: SparkSession) -> str | None:
    """The Spark application id, through conf: a classic session and a Spark Connect one both answer it (Connect
    has no SparkContext to ask)."""
    try:
        return spark.conf.get("spark.app.id")
    except Exception:  # a session whose conf does not carry it: the id is a nicety, not worth failing a write
        return None


def table_summary(locator: TableLocator, ref: TableRef, commit: CommitInfo, written: DataFrame) -> Summary:
    """What a Delta write reports: rows, version, schema and a preview of the rows read back."""
    return {
        "table": str(ref),
        "asset_key": "/".join(ref.asset_key_path),
        "location": locator.path(ref),
        "rows_written": commit.num_output_rows,
        "delta_version": commit.version,
        "delta_operation": commit.operation,
        "schema": [[f.name, f.dataType.simpleString()] for f in written.schema.fields],
        "preview": markdown_preview(written),
    }


def silver_step(spark: SparkSession, locator: TableLocator, entity: str, days: Sequence[date]) -> Summary:
    """Bronze -> silver + quarantine for ``days`` of ``entity``; returns the step's summary.

    Delta has no two-table commit: quarantine first, then silver (the table consumers read). A run that fails
    between the two leaves the day's quarantine ahead and silver unchanged; the re-run replaces both
    partitions, so nothing is lost or doubled (test_bad_input fails the silver commit).
    """
    spec = ENTITIES[entity]
    bronze_ref, silver_ref, quarantine_ref = BRONZE[entity], SILVER[entity], QUARANTINE[entity]
    start, end = min(days), max(days)
    delta = DeltaLakehouse(spark, locator)
    bronze = delta.read_partitions(bronze_ref, start, end)
    bronze_rows = bronze.count()
    split = split_silver(bronze, spec)
    quarantine_commit = delta.replace_partitions(split.quarantine, quarantine_ref, start, end)
    silver_commit = delta.replace_partitions(split.silver, silver_ref, start, end)
    duplicates = split.duplicates.count()
    silver = delta.read_partitions(silver_ref, start, end)
    quarantine = delta.read_partitions(quarantine_ref, start, end)
    rules = (
        quarantine.select(F.explode("rules_broken").alias("rule"))
        .groupBy("rule")
        .count()
        .orderBy(F.desc("count"), "rule")
        .limit(TOP_RULES)
        .collect()
    )
    return {
        "step": SILVER_STEP,
        "entity": entity,
        "partitions": f"{start}..{end}",
        "bronze_rows": bronze_rows,
        "duplicates_removed": duplicates,
        "rules_broken": [[r["rule"], r["count"]] for r in rules],
        "spark_application_id": application_id(spark),
        "tables": {
            "silver": table_summary(locator, silver_ref, silver_commit, silver),
            "quarantine": table_summary(locator, quarantine_ref, quarantine_commit, quarantine),
        },
    }


def _value(raw: Any, kind: str) -> dict[str, Any]:
    return {"raw_value": raw, "type": "null" if raw is None else kind}


def _table_metadata(table: Summary, summary: Summary) -> PipesMetadata:
    """The metadata every Delta asset reports (``defs/common.delta_metadata`` for in-process steps)."""
    return {
        "dagster/row_count": _value(table["rows_written"], "int"),
        "dagster/column_schema": _value(
            {"columns": [{"name": n, "type": t} for n, t in table["schema"]]}, "table_schema"
        ),
        "dagster/uri": _value(table["location"], "text"),
        "table": _value(table["table"], "text"),
        "delta_version": _value(table["delta_version"], "int"),
        "delta_operation": _value(table["delta_operation"], "text"),
        "spark_application_id": _value(summary["spark_application_id"], "text"),
        "preview": _value(table["preview"], "md"),
        "partitions": _value(summary["partitions"], "text"),
    }


def silver_reports(summary: Summary) -> StepReports:
    """Silver and quarantine materializations, and the step's own accounting check on silver."""
    silver, quarantine = summary["tables"]["silver"], summary["tables"]["quarantine"]
    quarantined = quarantine["rows_written"] or 0
    rule_table = "\n".join(
        ["| rule | rows |", "|---|---|"]
        + [f"| {rule} | {count} |" for rule, count in summary["rules_broken"]]
    )
    placed = (silver["rows_written"] or 0) + quarantined + summary["duplicates_removed"]
    counts = {
        "bronze_rows": summary["bronze_rows"],
        "silver_rows_written": silver["rows_written"] or 0,
        "quarantined_rows": quarantined,
        "duplicates_removed": summary["duplicates_removed"],
    }
    return StepReports(
        materializations=[
            Materialization(
                silver["asset_key"],
                {
                    **_table_metadata(silver, summary),
                    "duplicates_removed": _value(summary["duplicates_removed"], "int"),
                    "quarantined_rows": _value(quarantined, "int"),
                },
            ),
            Materialization(
                quarantine["asset_key"],
                {**_table_metadata(quarantine, summary), "rules_broken": _value(rule_table, "md")},
            ),
        ],
        checks=[
            CheckOutcome(
                silver["asset_key"],
                ROWS_ACCOUNTED_FOR,
                passed=placed == summary["bronze_rows"],
                severity="ERROR",
                metadata={
                    **{k: _value(v, "int") for k, v in counts.items()},
                    "unaccounted_rows": _value(summary["bronze_rows"] - placed, "int"),
                },
            )
        ],
    )


def _silver_from_params(spark: SparkSession, locator: TableLocator, params: Mapping[str, Any]) -> Summary:
    days = days_between(date.fromisoformat(params["start"]), date.fromisoformat(params["end"]))
    return silver_step(spark, locator, params["entity"], days)


# The steps that can run remotely: name -> (run from JSON params, reports from the summary).
STEPS: dict[str, tuple[Callable[[SparkSession, TableLocator, Mapping[str, Any]], Summary], Callable]] = {
    SILVER_STEP: (_silver_from_params, silver_reports),
}


def run_step(name: str, spark: SparkSession, locator: TableLocator, params: Mapping[str, Any]) -> Summary:
    """Run step ``name`` with JSON ``params`` (what a remote entry point receives)."""
    if name not in STEPS:
        raise ValueError(f"unknown step {name!r}: one of {sorted(STEPS)}")
    return STEPS[name][0](spark, locator, params)


def step_reports(name: str, summary: Summary) -> StepReports:
    return STEPS[name][1](summary)
