"""End to end: the foundation graph on a small temporary lakehouse, through the real Spark, Delta and dbt."""

import json
import os
from datetime import timedelta

import dagster as dg
import pytest
from pyspark.sql import functions as F

from mlops_assets.lakehouse.catalog import BRONZE, GOLD, GOLD_MODELS, QUARANTINE, SILVER
from mlops_assets.lakehouse.entities import ENTITIES
from mlops_assets.lakehouse.features import USAGE_WINDOW_DAYS, as_of_frame, build_features, feature_inputs
from mlops_assets.lakehouse.ingest import LandingSchemaError
from mlops_assets_tests.accounting import assert_bronze_accounted_for
from mlops_assets_tests.conftest import TEST_DAYS, TEST_END, TEST_START

# Taken at collection, before any test of the session runs a step.
ENVIRON_AT_COLLECTION = dict(os.environ)


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetMaterialization]:
    return {
        e.asset_key.to_user_string(): e.event_specific_data.materialization
        for e in result.get_asset_materialization_events()
    }


def _check_evaluations(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    return [
        e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]


def test_foundation_run_materializes_every_layer(foundation_run, lakehouse):
    assert foundation_run.success
    for name in ENTITIES:
        for layer in (BRONZE, SILVER, QUARANTINE):
            assert lakehouse.exists(layer[name]), f"{layer[name]} missing"
        partitions = {
            r[0] for r in lakehouse.read(SILVER[name]).select("_partition_date").distinct().collect()
        }
        expected = {TEST_START + timedelta(days=i) for i in range(TEST_DAYS)}
        # Every day has usage; a day without sign-ups or billing events has no rows, hence no partition.
        assert partitions == expected if name == "usage_events" else partitions <= expected
    for model in GOLD_MODELS:
        assert lakehouse.read(GOLD[model]).count() > 0


def test_every_bronze_row_is_accounted_for(foundation_run, lakehouse):
    """bronze = silver + quarantine + duplicates, recomputed from bronze by lineage (``accounting.py``)."""
    quarantined = duplicates = 0
    for name, spec in ENTITIES.items():
        q, d = assert_bronze_accounted_for(lakehouse, name, spec)
        quarantined += q
        duplicates += d
    assert quarantined > 0, "the dirty source should have produced quarantined rows"
    assert duplicates > 0, "the dirty source should have produced duplicates"


def test_quality_checks_ran_and_passed(foundation_run):
    evaluations = _check_evaluations(foundation_run)
    names = {(e.asset_key.to_user_string(), e.check_name) for e in evaluations}
    for name in ENTITIES:
        for check in ("pandera_schema", "reconciles_with_bronze", "quarantine_rate", "unique_key"):
            assert (f"silver/{name}", check) in names
    failed = [(e.asset_key.to_user_string(), e.check_name, e.metadata) for e in evaluations if not e.passed]
    assert not [f for f in failed if not f[1].startswith("freshness")], failed
    reconciled = [e for e in evaluations if e.check_name == "reconciles_with_bronze"]
    assert all(e.metadata["unaccounted_rows"].value == 0 for e in reconciled)
    assert any(e.metadata["duplicates_removed"].value > 0 for e in reconciled)


def test_gold_leaves_the_process_environment_alone(foundation_run):
    """dbt gets the lakehouse root and the Delta package as ``--vars`` of its own call: no step writes
    ``os.environ`` (the gold step used to set both variables for every later step of the process)."""
    assert foundation_run.success
    for name in ("LAKEHOUSE_ROOT", "MLOPS_DELTA_PACKAGE"):
        assert os.environ.get(name) == ENVIRON_AT_COLLECTION.get(name), name


def test_dbt_models_and_tests_surface_as_assets_and_checks(foundation_run):
    materialized = set(_materializations(foundation_run))
    assert {f"gold/{m}" for m in GOLD_MODELS} <= materialized
    dbt_checks = [e for e in _check_evaluations(foundation_run) if e.asset_key.path[0] == "gold"]
    assert len(dbt_checks) >= 10
    assert all(e.passed for e in dbt_checks), [e.check_name for e in dbt_checks if not e.passed]
    assert any(e.check_name.startswith("unique_") for e in dbt_checks)


def test_one_spark_application_per_run(foundation_run):
    app_ids = {
        key: m.metadata["spark_application_id"].value
        for key, m in _materializations(foundation_run).items()
        if "spark_application_id" in m.metadata
    }
    assert len(app_ids) == 10  # 3 bronze, 3 silver, 3 quarantine, features
    assert len(set(app_ids.values())) == 1, app_ids


def test_materialization_metadata_for_the_ui(foundation_run):
    silver = _materializations(foundation_run)["silver/usage_events"]
    assert silver.metadata["dagster/row_count"].value > 0
    assert silver.metadata["delta_version"].value >= 0
    assert "event_id" in silver.metadata["preview"].value
    assert {c.name for c in silver.metadata["dagster/column_schema"].value.columns} >= {
        "event_id",
        "_source_row",
    }
    assert silver.metadata["partitions"].value == f"{TEST_START}..{TEST_END}"


def test_quarantine_rows_carry_their_reasons(foundation_run, lakehouse):
    rules = set()
    for name in ENTITIES:
        quarantine = lakehouse.read(QUARANTINE[name])
        assert quarantine.where(F.size("rules_broken") == 0).count() == 0
        assert (
            quarantine.where("_source_file IS NULL OR _source_row IS NULL OR _partition_date IS NULL").count()
            == 0
        )
        rules |= {r[0] for r in quarantine.select(F.explode("rules_broken")).distinct().collect()}
    assert "record:malformed" in rules
    assert any(r.endswith(":unknown_category") for r in rules)
    assert any(r.endswith(":out_of_range") for r in rules)
    assert any(r.endswith(":missing") for r in rules)


def test_rerunning_a_partition_replaces_it(foundation_run, test_defs, lakehouse):
    def counts() -> dict[str, int]:
        return {
            str(layer[name]): lakehouse.read(layer[name]).count()
            for name in ENTITIES
            for layer in (BRONZE, SILVER, QUARANTINE)
        }

    before = counts()
    version_before = lakehouse.version(SILVER["usage_events"])
    lakehouse_layers = [
        k
        for k in test_defs.resolve_all_asset_keys()
        if k.path[0] in ("landing", "bronze", "silver", "quarantine")
    ]
    result = test_defs.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key="2026-01-03", asset_selection=lakehouse_layers
    )
    assert result.success
    assert counts() == before
    assert lakehouse.version(SILVER["usage_events"]) > version_before
    for name, spec in ENTITIES.items():
        silver = lakehouse.read(SILVER[name])
        assert silver.groupBy(*spec.key, "_partition_date").count().where("count > 1").count() == 0


def test_schema_change_fails_before_anything_is_committed(
    foundation_run, test_defs, test_resources, lakehouse
):
    day = TEST_END + timedelta(days=3)
    landing_root = test_resources["lakehouse"].landing_root
    test_resources["source"].source().write_landing(landing_root, [day])
    customers_file = f"{landing_root}/{day.isoformat()}/customers.csv"
    with open(customers_file) as f:
        text = f.read()
    with open(customers_file, "w") as f:
        f.write(text.replace("acquisition_channel", "channel", 1))
    bronze = BRONZE["customers"]
    version_before = lakehouse.version(bronze)

    job = test_defs.resolve_job_def("daily_lakehouse")
    # raised as a Failure that is not retried: the file would be refused the same way again
    with pytest.raises(dg.Failure) as error:
        job.execute_in_process(
            partition_key=day.isoformat(), asset_selection=[dg.AssetKey(bronze.asset_key_path)]
        )
    assert isinstance(error.value.__cause__, LandingSchemaError) and error.value.allow_retries is False
    message = str(error.value)
    assert "customers.csv" in message and "missing columns ['acquisition_channel']" in message
    assert "unexpected columns ['channel']" in message
    assert lakehouse.version(bronze) == version_before
    assert lakehouse.read(bronze).where(F.col("_partition_date") == day).count() == 0


def test_type_change_fails_with_the_column_named(foundation_run, test_defs, test_resources):
    day = TEST_END + timedelta(days=4)
    landing_root = test_resources["lakehouse"].landing_root
    test_resources["source"].source().write_landing(landing_root, [day])
    usage_file = f"{landing_root}/{day.isoformat()}/usage_events.jsonl"
    with open(usage_file) as f:
        lines = f.read().splitlines()
    changed = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        record["sessions"] = f"{record['sessions']} sessions"
        changed.append(json.dumps(record))
    with open(usage_file, "w") as f:
        f.write("\n".join(changed) + "\n")
    job = test_defs.resolve_job_def("daily_lakehouse")
    with pytest.raises(dg.Failure, match=r"column 'sessions' no longer parses as int"):
        job.execute_in_process(
            partition_key=day.isoformat(), asset_selection=[dg.AssetKey(["bronze", "usage_events"])]
        )


def test_quarantine_rate_error_blocks_gold_in_the_run(foundation_run, test_resources, lakehouse):
    from mlops_assets.definitions import build_defs
    from mlops_assets.resources import QualityThresholds

    strict = build_defs(
        {
            **test_resources,
            "quality": QualityThresholds(quarantine_warn_rate=0.0, quarantine_error_rate=0.0001),
        }
    )
    gold = GOLD["fct_usage_daily"]
    gold_version = lakehouse.version(gold)
    result = strict.resolve_job_def("daily_lakehouse").execute_in_process(
        partition_key=TEST_START.isoformat(),
        asset_selection=[
            dg.AssetKey(["silver", "usage_events"]),
            dg.AssetKey(["quarantine", "usage_events"]),
            dg.AssetKey(gold.asset_key_path),
        ],
        raise_on_error=False,
    )
    rate = next(e for e in _check_evaluations(result) if e.check_name == "quarantine_rate")
    assert not rate.passed and rate.severity == dg.AssetCheckSeverity.ERROR
    assert rate.metadata["quarantine_rate"].value > 0.0001
    assert "gold/fct_usage_daily" not in _materializations(result)
    assert lakehouse.version(gold) == gold_version


def test_a_days_features_read_only_the_gold_windows_they_need(foundation_run, lakehouse, capsys):
    """feature_inputs prunes gold to the windows before the as-of dates (partition filters on event_date, seen in
    the physical plan), and the features are exactly those computed from all of gold."""
    days = [TEST_START + timedelta(days=40), TEST_START + timedelta(days=41)]
    gold = {
        name: lakehouse.read(GOLD[name])
        for name in ("customer_history", "fct_usage_daily", "fct_billing_events")
    }
    usage, billing = feature_inputs(gold["fct_usage_daily"], gold["fct_billing_events"], days[0], days[-1])
    as_of = as_of_frame(lakehouse.spark, days)
    pruned = build_features(as_of, gold["customer_history"], usage, billing)
    everything = build_features(
        as_of, gold["customer_history"], gold["fct_usage_daily"], gold["fct_billing_events"]
    )
    assert pruned.count() > 0
    assert sorted(map(tuple, pruned.collect())) == sorted(map(tuple, everything.collect()))

    read_days = usage.select("event_date").distinct().count()
    assert read_days == USAGE_WINDOW_DAYS + 1  # the 28 days before the first as-of date, and the one between
    capsys.readouterr()
    usage.explain(mode="formatted")
    plan = capsys.readouterr().out
    partition_filters = next(line for line in plan.splitlines() if "PartitionFilters:" in line)
    assert f">= {days[0] - timedelta(days=USAGE_WINDOW_DAYS)})" in partition_filters, plan
    assert f"< {days[-1]})" in partition_filters, plan
