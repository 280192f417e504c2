"""Ingestion: the synthetic source's daily landing files, and bronze tables of raw records."""

from datetime import UTC, datetime

import dagster as dg

from mlops_assets.defs import groups
from mlops_assets.defs.common import IDEMPOTENT_RETRY, OWNER, partition_days, replace_run_partitions
from mlops_assets.experiments.outbound import read_contact_exports
from mlops_assets.lakehouse.catalog import BRONZE
from mlops_assets.lakehouse.entities import ENTITIES, EntitySpec
from mlops_assets.lakehouse.ingest import LandingFileError, LandingSchemaError, landing_files, to_bronze
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import LakehouseResource, SyntheticSourceResource

LANDING_KEY = dg.AssetKey(["landing", "daily_files"])


@dg.asset(
    key=LANDING_KEY,
    group_name=groups.LANDING,
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
    kinds={"python", "csv", "json"},
    owners=[OWNER],
    description="The source system's daily export: customers (CSV), usage (JSON lines) and billing (CSV), "
    "with the dirt real sources have. Written by the built-in seeded synthetic source.",
)
def landing_daily_files(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, source: SyntheticSourceResource
) -> dg.MaterializeResult:
    days = partition_days(context)
    # The source system reads the contact lists the experiments exported (none outside an experiment).
    contacts = read_contact_exports(lakehouse.outbound_root)
    context.log.info(
        f"Simulating the source system through {days[-1]} ({len(days)} day(s) to write; "
        f"{sum(map(len, contacts.values()))} experiment contact(s) exported to it)"
    )
    written = source.source().write_landing(lakehouse.landing_root, days, contacts=contacts or None)
    files = [str(p) for day in written.values() for p in day.values()]
    return dg.MaterializeResult(
        metadata={
            "days": len(days),
            "files": len(files),
            "landing_root": dg.MetadataValue.path(lakehouse.landing_root),
            "scenario": source.scenario,
            "seed": source.seed,
        }
    )


def build_bronze_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    ref = BRONZE[spec.name]

    @dg.asset(
        key=ref.asset_key_path,
        deps=[LANDING_KEY],
        group_name=groups.BRONZE,
        partitions_def=daily_partitions,
        backfill_policy=single_run_backfill,
        kinds={"spark", "delta"},
        owners=[OWNER],
        retry_policy=IDEMPOTENT_RETRY,
        description=f"Raw {spec.name} records, one row per landing-file line with source file, line number "
        f"and load time. Re-running a partition replaces it. {spec.description}",
    )
    def _bronze(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        days = partition_days(context)
        delta = lakehouse.delta()
        try:
            paths = landing_files(lakehouse.landing_root, spec, days, lakehouse.max_landing_file_bytes)
            bronze = to_bronze(delta.spark, paths, spec, ingested_at=datetime.now(UTC))
        except (FileNotFoundError, LandingFileError, LandingSchemaError) as error:
            # The file is what it is: another attempt would refuse it the same way.
            raise dg.Failure(str(error), allow_retries=False) from error
        write = replace_run_partitions(delta, bronze, ref, days)
        parse_errors = write.written.where("_parse_error IS NOT NULL").count()
        context.log.info(
            f"{ref}: {write.commit.num_output_rows} rows from {len(paths)} file(s), {parse_errors} unparseable"
        )
        return dg.MaterializeResult(metadata=write.metadata(files=len(paths), unparseable_rows=parse_errors))

    return _bronze


bronze_assets = [build_bronze_asset(spec) for spec in ENTITIES.values()]

defs = dg.Definitions(assets=[landing_daily_files, *bronze_assets])
