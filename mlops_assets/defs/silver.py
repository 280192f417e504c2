"""Silver: typed, validated, deduplicated tables, with every rejected row in quarantine, plus the
quality gates that guard them."""

import functools

import dagster as dg
from pyspark.sql import functions as F

from mlops_assets.compute import SparkStepRunner
from mlops_assets.defs import groups
from mlops_assets.defs.common import IDEMPOTENT_RETRY, OWNER, partition_days, read_run_partitions
from mlops_assets.lakehouse.catalog import BRONZE, QUARANTINE, SILVER
from mlops_assets.lakehouse.delta_io import PARTITION_COLUMN
from mlops_assets.lakehouse.entities import ENTITIES, EntitySpec
from mlops_assets.lakehouse.ingest import try_cast
from mlops_assets.lakehouse.schemas import validation_errors
from mlops_assets.lakehouse.steps import ROWS_ACCOUNTED_FOR, SILVER_STEP
from mlops_assets.lakehouse.tables import TableRef
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import LakehouseResource, QualityThresholds


def _refs(spec: EntitySpec) -> tuple[TableRef, TableRef, TableRef]:
    return BRONZE[spec.name], SILVER[spec.name], QUARANTINE[spec.name]


def build_silver_assets(
    spec: EntitySpec, retry_policy: dg.RetryPolicy | None = IDEMPOTENT_RETRY
) -> dg.AssetsDefinition:
    bronze_ref, silver_ref, quarantine_ref = _refs(spec)
    bronze_key = dg.AssetKey(bronze_ref.asset_key_path)
    silver_key = dg.AssetKey(silver_ref.asset_key_path)

    @dg.multi_asset(
        name=f"silver_{spec.name}",
        specs=[
            dg.AssetSpec(
                silver_ref.asset_key_path,
                deps=[bronze_key],
                group_name=groups.SILVER,
                kinds={"spark", "delta"},
                owners=[OWNER],
                description=f"Typed, validated, deduplicated {spec.name}; key {list(spec.key)}.",
            ),
            dg.AssetSpec(
                quarantine_ref.asset_key_path,
                deps=[bronze_key],
                group_name=groups.QUARANTINE,
                kinds={"spark", "delta"},
                owners=[OWNER],
                description=f"{spec.name} rows that broke a rule, with the rules broken, the raw line, the "
                "source file and line, and the partition. Nothing is dropped silently.",
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                ROWS_ACCOUNTED_FOR,
                asset=silver_key,
                blocking=True,
                description="The step's own commits account for every bronze row it read: rows written to "
                "silver + quarantined + removed duplicates = bronze rows (reported by the step, wherever it ran).",
            )
        ],
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        retry_policy=retry_policy,
    )
    def _silver(context: dg.AssetExecutionContext, compute: SparkStepRunner):
        """The step runs where the ``compute`` resource says (in process, a Pipes subprocess, Databricks)."""
        days = partition_days(context)
        params = {"entity": spec.name, "start": days[0].isoformat(), "end": days[-1].isoformat()}
        run = compute.run(context, SILVER_STEP, params)
        tables = run.summary["tables"]
        context.log.info(
            f"{spec.name}: {tables['silver']['rows_written']} to silver, "
            f"{tables['quarantine']['rows_written']} quarantined, "
            f"{run.summary['duplicates_removed']} duplicates removed"
        )
        yield from run.results

    return _silver


def build_silver_checks(spec: EntitySpec) -> list[dg.AssetChecksDefinition]:
    bronze_ref, silver_ref, quarantine_ref = _refs(spec)
    lineage = ["_source_file", "_source_row"]
    # Every gate: on the silver asset, per partition, and blocking (an ERROR stops gold in the run).
    silver_gate = functools.partial(
        dg.asset_check,
        asset=dg.AssetKey(silver_ref.asset_key_path),
        blocking=True,
        partitions_def=daily_partitions,
    )

    @silver_gate(
        name="pandera_schema",
        description="The silver rows conform to the pandera schema generated from the entity spec.",
    )
    def pandera_schema(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource):
        errors = validation_errors(
            read_run_partitions(context, lakehouse, silver_ref).select(*spec.column_names), spec
        )
        return dg.AssetCheckResult(
            passed=not errors,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errors) or "none")},
        )

    @silver_gate(
        name="reconciles_with_bronze",
        description="Every bronze row is in silver, in quarantine, or a removed duplicate of a silver key.",
    )
    def reconciles_with_bronze(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource):
        bronze, silver, quarantine = (
            read_run_partitions(context, lakehouse, r) for r in (bronze_ref, silver_ref, quarantine_ref)
        )
        placed = silver.select(*lineage).unionByName(quarantine.select(*lineage))
        unplaced = bronze.join(placed, lineage, "left_anti")
        day_keys = [*spec.key, PARTITION_COLUMN]  # duplicates are removed within a day's files (quality.py)
        silver_keys = silver.select(*day_keys).distinct()
        typed_keys = [try_cast(F.col(k), spec.column(k).dtype).alias(k) for k in spec.key]
        duplicates = (
            unplaced.select(*typed_keys, PARTITION_COLUMN).join(silver_keys, day_keys, "left_semi").count()
        )
        counts = {
            "bronze_rows": bronze.count(),
            "silver_rows": silver.count(),
            "quarantined_rows": quarantine.count(),
            "duplicates_removed": duplicates,
        }
        lost = counts["bronze_rows"] - counts["silver_rows"] - counts["quarantined_rows"] - duplicates
        return dg.AssetCheckResult(passed=lost == 0, metadata={**counts, "unaccounted_rows": lost})

    @silver_gate(
        name="quarantine_rate",
        description="Share of bronze rows quarantined: WARN above the warn rate, blocking ERROR above the error rate.",
    )
    def quarantine_rate(
        context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource, quality: QualityThresholds
    ):
        n_bronze = read_run_partitions(context, lakehouse, bronze_ref).count()
        n_quarantine = read_run_partitions(context, lakehouse, quarantine_ref).count()
        rate = n_quarantine / n_bronze if n_bronze else 0.0
        severity = (
            dg.AssetCheckSeverity.ERROR
            if rate > quality.quarantine_error_rate
            else dg.AssetCheckSeverity.WARN
        )
        return dg.AssetCheckResult(
            passed=rate <= quality.quarantine_warn_rate,
            severity=severity,
            metadata={
                "quarantine_rate": round(rate, 5),
                "warn_above": quality.quarantine_warn_rate,
                "error_above": quality.quarantine_error_rate,
                "quarantined_rows": n_quarantine,
                "bronze_rows": n_bronze,
            },
        )

    @silver_gate(
        name="unique_key",
        description=f"No two silver rows of one day share the key {list(spec.key)} (a record re-sent on a "
        "later day is in that day too; gold keeps its first arrival).",
    )
    def unique_key(context: dg.AssetCheckExecutionContext, lakehouse: LakehouseResource):
        dupes = (
            read_run_partitions(context, lakehouse, silver_ref)
            .groupBy(*spec.key, PARTITION_COLUMN)
            .count()
            .where("count > 1")
            .count()
        )
        return dg.AssetCheckResult(passed=dupes == 0, metadata={"duplicate_keys": dupes})

    return [pandera_schema, reconciles_with_bronze, quarantine_rate, unique_key]


silver_assets = [build_silver_assets(spec) for spec in ENTITIES.values()]
silver_checks = [check for spec in ENTITIES.values() for check in build_silver_checks(spec)]
SILVER_KEYS = [dg.AssetKey(ref.asset_key_path) for ref in SILVER.values()]

defs = dg.Definitions(assets=silver_assets, asset_checks=silver_checks)
