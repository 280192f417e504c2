"""A bad gold overwrite is undone with Delta RESTORE by one documented command, and audited."""

import pytest

from mlops_assets.lakehouse import catalog
from mlops_assets.lakehouse.catalog import TABLE_RESTORES
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.restore import RestoreError, history_table, restore_table, table_history
from mlops_assets.lakehouse.tables import TableLocator

GOLD = catalog.GOLD["fct_usage_daily"]


@pytest.fixture
def damaged(spark, tmp_path):
    """A gold table at v0 (good rows) overwritten at v1 by garbage."""
    delta = DeltaLakehouse(spark, TableLocator(str(tmp_path)))
    good = spark.createDataFrame([(1, "a"), (2, "b"), (3, "c")], "event_id int, customer_id string")
    delta.overwrite(good, GOLD)
    delta.overwrite(spark.createDataFrame([(-1, None)], "event_id int, customer_id string"), GOLD)
    return delta, sorted(good.collect())


def test_restore_brings_back_the_rows_and_audits_it(damaged):
    delta, good_rows = damaged
    result = restore_table(delta, "gold.fct_usage_daily", 0, "bad backfill")
    assert sorted(delta.read(GOLD).collect()) == good_rows
    assert (result.from_version, result.to_version, result.rows_before, result.rows_after) == (1, 0, 1, 3)
    assert delta.version(GOLD) == result.restore_commit == 2
    audit = delta.read(TABLE_RESTORES).collect()
    assert [(r["table"], r["from_version"], r["to_version"], r["reason"]) for r in audit] == [
        ("gold.fct_usage_daily", 1, 0, "bad backfill")
    ]
    _, entries = table_history(delta, "gold/fct_usage_daily")
    assert entries[0].operation == "RESTORE" and "bad backfill" in entries[0].user_metadata
    assert "RESTORE" in history_table(entries)


@pytest.mark.parametrize(
    ("table", "version", "fragment"),
    [
        ("fct_usage_daily", 0, "--table 'fct_usage_daily': expected <layer>.<name>"),
        ("golden.fct_usage_daily", 0, "--table 'golden.fct_usage_daily'"),
        ("gold.no_such_table", 0, "--table 'gold.no_such_table': no Delta table"),
        ("gold.fct_usage_daily", 7, "--version 7: gold.fct_usage_daily has versions 0..1"),
        ("gold.fct_usage_daily", 1, "--version 1: that is gold.fct_usage_daily's current version"),
    ],
)
def test_a_bad_restore_names_the_argument_and_changes_nothing(damaged, table, version, fragment):
    delta, _ = damaged
    with pytest.raises(RestoreError) as error:
        restore_table(delta, table, version, "x")
    assert fragment in str(error.value)
    assert delta.version(GOLD) == 1
    assert not delta.exists(TABLE_RESTORES)
