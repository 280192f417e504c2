"""Focused tests of the pure lakehouse functions on hand-made files, and of configuration errors."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from pyspark.sql import functions as F

from mlops_assets.lakehouse.entities import BILLING_EVENTS, USAGE_EVENTS
from mlops_assets.lakehouse.ingest import LandingSchemaError, landing_files, to_bronze
from mlops_assets.lakehouse.quality import split_silver
from mlops_assets.lakehouse.schemas import validation_errors
from mlops_assets.lakehouse.tables import TableLocator, TableRef
from mlops_assets.settings import SettingsError, load_settings

DAY = date(2026, 2, 10)


def _write(root: Path, name: str, text: str) -> str:
    folder = root / DAY.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return str(root)


def _rules_by_row(split) -> dict[int, list[str]]:
    return {r["_source_row"]: sorted(r["rules_broken"]) for r in split.quarantine.collect()}


def test_usage_rows_are_typed_deduplicated_or_quarantined_with_reasons(spark, tmp_path):
    lines = [
        '{"event_id": "U1", "customer_id": "C000001", "event_date": "2026-02-10", "sessions": 3, '
        '"minutes_used": 12.5, "support_tickets": 0, "device": "tv"}',
        # 2: exact duplicate of line 1
        '{"event_id": "U1", "customer_id": "C000001", "event_date": "2026-02-10", "sessions": 3, '
        '"minutes_used": 12.5, "support_tickets": 0, "device": "tv"}',
        # 3: negative minutes and an unknown device
        '{"event_id": "U2", "customer_id": "C000002", "event_date": "2026-02-09", "sessions": 1, '
        '"minutes_used": -4, "support_tickets": null, "device": "smartwatch"}',
        # 4: truncated JSON
        '{"event_id": "U3", "customer_id": null, "event_date": "2026-02-10", "sess',
        # 5: late by 2 days: kept, flagged late
        '{"event_id": "U4", "customer_id": "C000004", "event_date": "2026-02-08", "sessions": 2, '
        '"minutes_used": 5.0, "support_tickets": 1, "device": "mobile"}',
        # 6: from the future, and a malformed customer id
        '{"event_id": "U5", "customer_id": "X12", "event_date": "2026-02-12", "sessions": 2, '
        '"minutes_used": 5.0, "support_tickets": 1, "device": "mobile"}',
        # 7: sessions not an int
        '{"event_id": "U6", "customer_id": "C000006", "event_date": "2026-02-10", "sessions": "lots", '
        '"minutes_used": 5.0, "support_tickets": 1, "device": "mobile"}',
    ]
    root = _write(tmp_path, USAGE_EVENTS.file_name, "\n".join(lines) + "\n")
    bronze = to_bronze(spark, landing_files(root, USAGE_EVENTS, [DAY]), USAGE_EVENTS, datetime.now(UTC))
    assert bronze.count() == 7
    assert [r["_source_row"] for r in bronze.orderBy("_source_row").collect()] == list(range(1, 8))

    split = split_silver(bronze, USAGE_EVENTS)
    silver = {r["event_id"]: r for r in split.silver.collect()}
    assert set(silver) == {"U1", "U4"}
    assert silver["U1"]["sessions"] == 3 and silver["U1"]["minutes_used"] == 12.5
    assert silver["U4"]["_is_late"] is True and silver["U1"]["_is_late"] is False
    assert split.duplicates.count() == 1
    assert _rules_by_row(split) == {
        3: ["device:unknown_category", "minutes_used:out_of_range"],
        4: ["record:malformed"],
        6: ["customer_id:bad_format", "event_date:in_future"],
        7: ["sessions:bad_type"],
    }


def test_a_record_re_sent_on_a_later_day_stays_in_that_days_silver(spark, tmp_path):
    """Duplicates are removed within a day's files only, so loading two days in one run gives what two runs give;
    gold keeps the first arrival (test_gold_incremental)."""
    line = (
        '{"event_id": "U1", "customer_id": "C000001", "event_date": "2026-02-10", "sessions": 3, '
        '"minutes_used": 12.5, "support_tickets": 0, "device": "tv"}\n'
    )
    next_day = DAY + timedelta(days=1)
    for day, copies in ((DAY, 2), (next_day, 1)):
        (tmp_path / day.isoformat()).mkdir(parents=True, exist_ok=True)
        (tmp_path / day.isoformat() / USAGE_EVENTS.file_name).write_text(line * copies)
    files = landing_files(str(tmp_path), USAGE_EVENTS, [DAY, next_day])
    split = split_silver(to_bronze(spark, files, USAGE_EVENTS, datetime.now(UTC)), USAGE_EVENTS)
    kept = sorted((r["event_id"], r["_partition_date"], r["_is_late"]) for r in split.silver.collect())
    assert kept == [("U1", DAY, False), ("U1", next_day, True)]
    assert split.duplicates.count() == 1


def test_csv_field_count_and_bad_numbers_are_quarantined(spark, tmp_path):
    text = (
        "event_id,customer_id,event_ts,event_type,amount,payment_method\n"
        "B1,C000001,2026-02-10T10:00:00,charge,9.99,card\n"
        'B2,C000002,2026-02-10T11:00:00,charge,"12,x3",card\n'
        "B3,C000003,2026-02-10T11:00:00,charge,1.0,card,extra\n"
        "B4,C000004,2026-02-10T11:00:00,charge,1.0\n"
        "B5,C000005,2026-02-10T11:00:00,chargeback,1.0,crypto\n"
    )
    root = _write(tmp_path, BILLING_EVENTS.file_name, text)
    bronze = to_bronze(spark, landing_files(root, BILLING_EVENTS, [DAY]), BILLING_EVENTS, datetime.now(UTC))
    split = split_silver(bronze, BILLING_EVENTS)
    assert [r["event_id"] for r in split.silver.collect()] == ["B1"]
    assert _rules_by_row(split) == {
        3: ["amount:bad_type"],
        4: ["record:malformed"],
        5: ["record:malformed"],
        6: ["event_type:unknown_category", "payment_method:unknown_category"],
    }
    errors = dict(bronze.select("_source_row", "_parse_error").collect())
    assert errors[4] == "malformed csv: expected 6 fields, got 7"
    assert errors[5] == "malformed csv: expected 6 fields, got 5"


def test_new_column_in_a_csv_header_is_a_schema_change(spark, tmp_path):
    text = "event_id,customer_id,event_ts,event_type,amount,payment_method,coupon\nB1,C000001,2026-02-10T10:00:00,charge,9.99,card,X\n"
    root = _write(tmp_path, BILLING_EVENTS.file_name, text)
    with pytest.raises(LandingSchemaError) as error:
        to_bronze(spark, landing_files(root, BILLING_EVENTS, [DAY]), BILLING_EVENTS, datetime.now(UTC))
    assert error.value.unexpected == ["coupon"] and error.value.missing == []
    assert "billing_events.csv" in str(error.value)


def test_missing_landing_file_is_an_error_not_an_empty_day(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"usage_events\.jsonl"):
        landing_files(str(tmp_path), USAGE_EVENTS, [DAY])


def test_pandera_schema_flags_rows_that_break_the_spec(spark):
    good = spark.createDataFrame(
        [("U1", "C000001", date(2026, 2, 1), 1, 2.0, 0, "tv")],
        "event_id string, customer_id string, event_date date, sessions int, minutes_used double, "
        "support_tickets int, device string",
    )
    assert validation_errors(good, USAGE_EVENTS) == []
    bad = good.withColumn("device", F.lit("smartwatch")).withColumn("sessions", F.lit(-1))
    errors = validation_errors(bad, USAGE_EVENTS)
    assert any("device" in e and "isin" in e for e in errors), errors
    assert any("sessions" in e for e in errors), errors


def test_table_naming_maps_to_paths_and_catalog_names():
    ref = TableRef("silver", "usage_events")
    assert TableLocator("/lake").path(ref) == "/lake/silver/usage_events"
    assert TableLocator("/lake").identifier(ref) == "delta.`/lake/silver/usage_events`"
    assert TableLocator("/lake", catalog="prod").identifier(ref) == "prod.silver.usage_events"
    assert TableLocator("s3://bucket/lake").path(ref) == "s3://bucket/lake/silver/usage_events"
    with pytest.raises(ValueError, match=r"TableRef.layer"):
        TableRef("platinum", "x")
    with pytest.raises(ValueError, match=r"TableRef.name"):
        TableRef("silver", "Bad-Name")


def test_settings_errors_name_the_variable():
    with pytest.raises(SettingsError, match="MLOPS_ENV"):
        load_settings({"MLOPS_ENV": "staging"})
    with pytest.raises(SettingsError, match="LAKEHOUSE_ROOT"):
        load_settings({"LAKEHOUSE_ROOT": "relative/path"})
    with pytest.raises(SettingsError, match="DATABRICKS_CATALOG"):
        load_settings({"MLOPS_ENV": "databricks"})
    with pytest.raises(SettingsError, match="MLOPS_RETRAIN_COOLDOWN_HOURS"):
        load_settings({"MLOPS_RETRAIN_COOLDOWN_HOURS": "six"})
    with pytest.raises(SettingsError, match="MLOPS_MAX_RETRAINS"):
        load_settings({"MLOPS_MAX_RETRAINS": "-1"})
    assert load_settings({"MLOPS_RETRAIN_COOLDOWN_HOURS": "0"}).retrain_cooldown_hours == 0
    settings = load_settings({"LAKEHOUSE_ROOT": "/data/lake", "MLFLOW_TRACKING_URI": "sqlite:////x.db"})
    assert settings.lakehouse_root == "/data/lake" and settings.mlflow_tracking_uri == "sqlite:////x.db"
    assert load_settings({}).lakehouse_root.endswith("var/lakehouse")


def test_resource_config_errors_name_the_field():
    from mlops_assets.resources import QualityThresholds, SyntheticSourceResource

    with pytest.raises(Exception, match="scenario") as error:
        SyntheticSourceResource(scenario="meteor_strike")
    assert "gradual_covariate_shift" in str(error.value)
    with pytest.raises(Exception, match="drift_start"):
        SyntheticSourceResource(drift_start="next tuesday")
    with pytest.raises(Exception, match="quarantine_error_rate"):
        QualityThresholds(quarantine_error_rate=2.0)


def test_definitions_load_with_groups_kinds_and_owners(test_defs):
    from mlops_assets.defs.groups import LIFECYCLE

    graph = test_defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == set(LIFECYCLE)
    # The UI sorts group names: sorted, they read in lifecycle order, and no asset feeds an earlier group.
    assert sorted(groups) == list(LIFECYCLE)
    for key in graph.get_all_asset_keys():
        for parent in graph.get(key).parent_keys:
            if graph.has(parent):
                assert LIFECYCLE.index(graph.get(parent).group_name) <= LIFECYCLE.index(
                    graph.get(key).group_name
                ), (parent, key)
    assert graph.get(dg.AssetKey(["gold", "dim_customers"])).group_name == "05_gold"  # the dbt translator
    # Scoring depends on the champion in the lineage, not only on the features.
    assert dg.AssetKey(["ml", "champion"]) in graph.get(dg.AssetKey(["ml", "predictions"])).parent_keys
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.owners, key
        assert node.description, key
        if key.path[0] in ("bronze", "silver", "quarantine", "gold"):
            assert {"spark", "delta"} <= set(node.kinds), (key, node.kinds)
    assert test_defs.resolve_schedule_def("daily_lakehouse_schedule").cron_schedule == "0 1 * * *"
