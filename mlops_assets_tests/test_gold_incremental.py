"""Incremental gold equals a full rebuild: on dirty data (late rows, records re-sent days later, new customer
versions), runs that merge one range of silver partitions at a time, out of order and re-run, leave exactly
the tables that ``dbt build --full-refresh`` (the gold asset's ``full_refresh`` config) builds from all of silver.

Its own lakehouse (the suite's is shared), built by the real jobs: landing -> silver for the days in one run,
then gold run by run, each a real dbt subprocess merging into the Delta tables.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import dagster as dg
import pytest
from pyspark.sql import functions as F

from mlops_assets.definitions import build_defs
from mlops_assets.defs.gold import gold_dbt_models
from mlops_assets.defs.ingestion import LANDING_KEY, bronze_assets
from mlops_assets.defs.silver import silver_assets
from mlops_assets.lakehouse.catalog import GOLD, SILVER
from mlops_assets.partitions import daily_partitions
from mlops_assets.resources import SyntheticSourceResource
from mlops_assets.settings import load_settings
from mlops_assets_tests.comparable import table_rows
from mlops_assets_tests.conftest import range_tags
from mlops_assets_tests.small_lakehouse import small_resources

START = date(2026, 1, 1)
DAYS = [START + timedelta(days=i) for i in range(4)]
# Run by run: the first build, two days in one run; a day ahead of its turn; then the day skipped together with
# that day again, as one backfill run over existing tables: the skipped day brings re-sends of the days before it
# and rows the later day's run wrote first, and the later day is merged a second time (a re-run). Every run is a
# dbt process (~1 min of fixed cost), so the runs are the fewest that cross each of those boundaries.
GOLD_RUNS = [
    (DAYS[0], DAYS[1]),
    (DAYS[3], DAYS[3]),
    (DAYS[2], DAYS[3]),
]


def _run_index(column: str = "_partition_date") -> F.Column:
    """Which of GOLD_RUNS (the first that covers it) merges a silver partition."""
    cases = " ".join(f"when {column} between '{a}' and '{b}' then {i}" for i, (a, b) in enumerate(GOLD_RUNS))
    return F.expr(f"case {cases} end")


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """Silver for DAYS, gold merged run by run (GOLD_RUNS); the incremental tables, then the full rebuild's."""
    tmp = tmp_path_factory.mktemp("gold_incremental")
    environ = {**os.environ, "LAKEHOUSE_ROOT": str(tmp / "lakehouse")}
    resources = {
        **small_resources(load_settings(environ)),
        # more customers than the suite's 300, so every run has late rows and re-sends from the runs before it
        "source": SyntheticSourceResource(initial_customers=1200, daily_signups=10),
    }
    to_silver = dg.define_asset_job(
        "to_silver",
        selection=dg.AssetSelection.assets(LANDING_KEY, *bronze_assets, *silver_assets),
        partitions_def=daily_partitions,
    )
    gold = dg.define_asset_job("gold", selection=[gold_dbt_models], partitions_def=daily_partitions)
    defs = dg.Definitions.merge(build_defs(resources), dg.Definitions(jobs=[to_silver, gold]))
    assert defs.resolve_job_def("to_silver").execute_in_process(tags=range_tags(DAYS[0], DAYS[-1])).success
    delta = resources["lakehouse"].delta()
    for first, last in GOLD_RUNS:
        assert defs.resolve_job_def("gold").execute_in_process(tags=range_tags(first, last)).success, (
            first,
            last,
        )
    incremental = {name: table_rows(delta, ref) for name, ref in GOLD.items()}
    full = defs.resolve_job_def("gold").execute_in_process(
        tags=range_tags(DAYS[0], DAYS[-1]),
        run_config={"ops": {gold_dbt_models.op.name: {"config": {"full_refresh": True}}}},
    )
    assert full.success
    rebuilt = {name: table_rows(delta, ref) for name, ref in GOLD.items()}
    return {"delta": delta, "incremental": incremental, "rebuilt": rebuilt}


def test_the_data_is_dirty_across_runs(built):
    """The equality below means something only if rows cross run boundaries: events re-sent or late into a
    later run than their first copy or event day, and customers with a new version in a later run."""
    delta = built["delta"]
    # billing has ~50 rows a day here, too few for a re-send in four days; its merge is the same macro as usage's
    runs = (
        delta.read(SILVER["usage_events"])
        .groupBy("event_id")
        .agg(F.countDistinct(_run_index()).alias("runs"))
    )
    assert runs.where("runs > 1").count() > 0, "no usage record re-sent into a later run"
    late = delta.read(SILVER["usage_events"]).where("event_date < _partition_date").count()
    assert late > 0
    history = delta.read(GOLD["customer_history"])
    closed_by_later_run = (
        history.alias("h")
        .join(
            history.alias("n"),
            (F.col("h.customer_id") == F.col("n.customer_id"))
            & (F.col("h.valid_to") == F.col("n.valid_from")),
        )
        .where(F.col("n.available_date") > F.col("h.available_date"))
    )
    assert closed_by_later_run.count() > 0


@pytest.mark.parametrize("model", sorted(GOLD))
def test_incremental_runs_leave_exactly_the_full_rebuilds_table(built, model):
    incremental, rebuilt = built["incremental"][model], built["rebuilt"][model]
    assert len(incremental) == len(rebuilt) > 0
    assert incremental == rebuilt


def test_each_event_is_in_gold_once_under_its_first_arrival(built):
    delta = built["delta"]
    for table, model in (("usage_events", "fct_usage_daily"), ("billing_events", "fct_billing_events")):
        first = delta.read(SILVER[table]).groupBy("event_id").agg(F.min("_partition_date").alias("first"))
        gold = delta.read(GOLD[model])
        assert gold.count() == gold.select("event_id").distinct().count() == first.count()
        wrong = gold.join(first, "event_id").where(F.col("available_date") != F.col("first")).count()
        assert wrong == 0, model
