"""Bronze -> silver: type, validate, deduplicate; quarantine what breaks a rule, with the rule's name.

Every bronze row ends in exactly one of three places: silver (valid, first of its key), quarantine
(broke at least one rule: the names are on the row), or removed as a duplicate of a silver row. That
is what the reconciliation check proves per partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from mlops_assets.lakehouse.entities import ColumnSpec, EntitySpec
from mlops_assets.lakehouse.ingest import INVALID_UTF8, REPEATED_HEADER, try_cast

LINEAGE_COLUMNS = ["_partition_date", "_source_file", "_source_row", "_ingested_at"]


@dataclass
class SilverSplit:
    silver: DataFrame
    quarantine: DataFrame
    duplicates: DataFrame


def _column_rules(c: ColumnSpec) -> list[Column]:
    """One expression per rule: the rule's name where the row breaks it, else null."""
    raw, typed = F.col(c.name), F.col(f"__typed_{c.name}")
    rules = []
    if c.required:
        rules.append(F.when(raw.isNull() | (F.trim(raw) == ""), F.lit(f"{c.name}:missing")))
    if c.dtype != "string":
        rules.append(F.when(raw.isNotNull() & typed.isNull(), F.lit(f"{c.name}:bad_type")))
    if c.allowed is not None:
        rules.append(F.when(typed.isNotNull() & ~typed.isin(*c.allowed), F.lit(f"{c.name}:unknown_category")))
    if c.min_value is not None:
        rules.append(F.when(typed < F.lit(c.min_value), F.lit(f"{c.name}:out_of_range")))
    if c.max_value is not None:
        rules.append(F.when(typed > F.lit(c.max_value), F.lit(f"{c.name}:out_of_range")))
    if c.pattern is not None:
        rules.append(F.when(typed.isNotNull() & ~typed.rlike(c.pattern), F.lit(f"{c.name}:bad_format")))
    return rules


def _event_date(spec: EntitySpec) -> Column | None:
    if spec.event_date_column is None:
        return None
    return F.to_date(F.col(f"__typed_{spec.event_date_column}"))


def rule_violations(bronze: DataFrame, spec: EntitySpec) -> DataFrame:
    """Bronze rows with typed columns and ``rules_broken``: the names of every rule the row breaks."""
    typed = bronze.select(
        "*", *[try_cast(F.col(c.name), c.dtype).alias(f"__typed_{c.name}") for c in spec.columns]
    )
    rules: list[Column] = []
    for c in spec.columns:
        rules.extend(_column_rules(c))
    event_date = _event_date(spec)
    if event_date is not None:
        name = spec.event_date_column
        rules.append(F.when(event_date > F.col("_partition_date"), F.lit(f"{name}:in_future")))
        rules.append(
            F.when(
                event_date < F.date_sub(F.col("_partition_date"), spec.max_lateness_days),
                F.lit(f"{name}:too_late"),
            )
        )
    column_rules = F.filter(F.array(*rules), lambda r: r.isNotNull())
    # A line that did not parse has no trustworthy columns: its one reason is the record's, not a column's.
    parse_error = F.col("_parse_error")
    return typed.withColumn(
        "rules_broken",
        F.when(parse_error.isNotNull(), F.array(_record_rule(parse_error))).otherwise(column_rules),
    )


def _record_rule(parse_error: Column) -> Column:
    return (
        F.when(parse_error.startswith(INVALID_UTF8), F.lit("record:invalid_utf8"))
        .when(parse_error.startswith(REPEATED_HEADER), F.lit("record:repeated_header"))
        .otherwise(F.lit("record:malformed"))
    )


def split_silver(bronze: DataFrame, spec: EntitySpec, processed_at: Column | None = None) -> SilverSplit:
    """Split bronze rows into silver, quarantine and removed duplicates."""
    processed_at = processed_at if processed_at is not None else F.current_timestamp()
    checked = rule_violations(bronze, spec)
    valid = checked.where(F.size("rules_broken") == 0)
    # A partition is a function of its own files: a key repeated within one day's files is a duplicate here; a
    # record re-sent on a later day stays in that day's partition too (what arrived, when), and gold keeps its
    # first arrival. So a backfill's silver equals the same days loaded one run at a time.
    first_of_key = Window.partitionBy(
        *[F.col(f"__typed_{k}") for k in spec.key], F.col("_partition_date")
    ).orderBy("_source_file", "_source_row")
    ranked = valid.withColumn("__rank", F.row_number().over(first_of_key))

    typed_columns = [F.col(f"__typed_{c.name}").alias(c.name) for c in spec.columns]
    extra: list[Column] = []
    event_date = _event_date(spec)
    if event_date is not None:
        extra.append((event_date < F.col("_partition_date")).alias("_is_late"))
    silver = ranked.where(F.col("__rank") == 1).select(*typed_columns, *extra, *LINEAGE_COLUMNS)
    duplicates = ranked.where(F.col("__rank") > 1).select(*LINEAGE_COLUMNS)
    quarantine = checked.where(F.size("rules_broken") > 0).select(
        *LINEAGE_COLUMNS,
        "_raw",
        "rules_broken",
        processed_at.alias("_quarantined_at"),
    )
    return SilverSplit(silver=silver, quarantine=quarantine, duplicates=duplicates)
