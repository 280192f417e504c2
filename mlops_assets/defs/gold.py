"""Gold: dbt models over silver, loaded as assets through dagster-dbt; dbt tests become asset checks."""

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import dagster as dg
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)

from mlops_assets.defs import groups
from mlops_assets.defs.common import IDEMPOTENT_RETRY, OWNER, partition_days
from mlops_assets.lakehouse.spark import delta_package
from mlops_assets.partitions import daily_partitions, single_run_backfill
from mlops_assets.resources import LakehouseResource, dbt_project

# Only one dbt step at a time may hold dbt's Derby metastore (see dbt_project/profiles.yml).
DBT_POOL = "dbt"


class LakehouseDbtTranslator(DagsterDbtTranslator):
    """dbt sources are the silver assets; dbt models are gold assets named like their tables."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return dg.AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return dg.AssetKey(["gold", dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return groups.GOLD

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        return [OWNER]

    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        return spec.merge_attributes(kinds={"delta"}) if spec.key.path[0] == "gold" else spec


translator = LakehouseDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


class GoldConfig(dg.Config):
    """``full_refresh``: rebuild every gold model from all of silver (``dbt build --full-refresh``) instead of
    merging the run's partitions: after a model's logic changed, or to prove the incremental tables right."""

    full_refresh: bool = False


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool=DBT_POOL,
    retry_policy=IDEMPOTENT_RETRY,
    # Daily like silver, so one run takes a day from landing to gold and silver's blocking checks can stop
    # gold within that run. Each run merges only its own silver partitions (the models are incremental); a
    # backfill runs dbt once over its whole range.
    partitions_def=daily_partitions,
    backfill_policy=single_run_backfill,
)
def gold_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, lakehouse: LakehouseResource, config: GoldConfig
):
    """Build (run + test) the gold models from the run's silver partitions. dbt runs as a subprocess with its
    own JVM."""
    days = partition_days(context)
    args = ["build", "--vars", dbt_vars(lakehouse.root, lakehouse.spark.engine, (days[0], days[-1]))]
    invocation = dbt.cli(
        [*args, "--full-refresh"] if config.full_refresh else args,
        context=context,
        raise_on_error=False,
    )
    yield from invocation.stream()
    if not invocation.is_successful():
        raise dbt_failure(invocation.process.returncode)


def dbt_vars(
    lakehouse_root: str, spark_engine: str = "local", run_days: tuple[date, date] | None = None
) -> str:
    """What this dbt call needs to know, as its ``--vars``: where the lakehouse is, which Delta jar its Spark
    session loads, the engine (the ``connect`` target builds gold on the same Spark Connect server as the
    Python steps) and the run's first and last day (the silver partitions an incremental run merges). Passed
    to the one call, never through the process' environment (which every other step and thread of the run
    shares)."""
    found = {"lakehouse_root": lakehouse_root, "delta_package": delta_package(), "spark_engine": spark_engine}
    if run_days is not None:
        found |= {"run_start": run_days[0].isoformat(), "run_end": run_days[1].isoformat()}
    return json.dumps(found)


def dbt_failure(returncode: int) -> dg.Failure:
    """A killed dbt (signal, OOM) is retried: the rebuild replaces what it half wrote. dbt's own errors (a failed
    test, a compile error: exit 1 or 2) would fail the same way again, so they fail the step at once."""
    if returncode < 0:
        return dg.Failure(
            f"dbt was killed by signal {-returncode}; the step is retried (each model's merge is one Delta "
            "commit, and merging the same partitions again replaces what they wrote)"
        )
    return dg.Failure(
        f"dbt build failed (exit {returncode}): a model or test error, see the dbt log above and the failed "
        "checks; not retried, since it would fail the same way",
        allow_retries=False,
    )


defs = dg.Definitions(assets=[gold_dbt_models])
