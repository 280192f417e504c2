"""What a new user sees and relies on: honest commit figures, the partitions' end, links to MLflow, a store
that cannot be silently moved, and a model card without blank groups."""

from datetime import date

from mlops_assets.lakehouse.catalog import PREDICTIONS
from mlops_assets.lakehouse.delta_io import NO_COMMIT, DeltaLakehouse
from mlops_assets.lakehouse.tables import TableLocator

DAY1, DAY2, EMPTY_DAY = date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 8)


def test_replace_partitions_reports_the_commit_it_made_never_an_earlier_one(spark, tmp_path):
    delta = DeltaLakehouse(spark, TableLocator(str(tmp_path)))
    ref = PREDICTIONS
    rows = spark.createDataFrame([(1, DAY1), (2, DAY1), (3, DAY2)], "x int, _partition_date date")
    first = delta.replace_partitions(rows, ref, DAY1, DAY2)
    assert (first.version, first.operation, first.num_output_rows) == (0, "WRITE", 3)

    # Nothing to write for a day that holds nothing: Delta makes no commit, and the result says so
    # (before the fix it repeated the first commit's 3 rows as if this write had made them).
    empty = rows.where("x > 100")
    nothing = delta.replace_partitions(empty, ref, EMPTY_DAY, EMPTY_DAY)
    assert (nothing.version, nothing.operation, nothing.num_output_rows) == (0, NO_COMMIT, 0)
    assert delta.version(ref) == 0

    # Emptying a day that held rows is a real commit that wrote 0 rows (Delta leaves the count out).
    emptied = delta.replace_partitions(empty, ref, DAY2, DAY2)
    assert (emptied.version, emptied.operation, emptied.num_output_rows) == (1, "WRITE", 0)
    assert delta.read(ref).count() == 2
    again = delta.replace_partitions(rows.where("x = 3"), ref, DAY2, DAY2)
    assert (again.version, again.operation, again.num_output_rows) == (2, "WRITE", 1)


def test_scoring_a_day_without_features_names_the_missing_upstream_partition(spark):
    from mlops_assets.defs.scoring import days_without_rows, missing_features_message

    features = spark.createDataFrame([(1, DAY1), (2, DAY1), (3, DAY2)], "customer_id int, as_of date")
    missing = days_without_rows(features, "as_of", [DAY1, DAY2, EMPTY_DAY])
    assert missing == [EMPTY_DAY]
    message = missing_features_message(missing, "features/churn_features", external=False)
    assert message == (
        "ml/predictions: no rows in features/churn_features for 2026-05-08 "
        "(materialize that partition with daily_lakehouse first)"
    )


def test_the_model_card_names_the_missing_group_and_lists_no_empty_groups():
    from mlops_assets.ml.evaluation import MISSING_GROUP, group_fairness

    groups = ["north"] * 40 + ["south"] * 40 + [None] * 3 + [""] * 2
    y = [1, 0] * 40 + [1, 0, 1, 0, 1]
    fairness = group_fairness(y, y, groups, attribute="region", min_group_size=10)
    # A null and a blank region are one visible group, too small to compare: named, not an empty cell.
    assert [g.group for g in fairness.groups] == [MISSING_GROUP, "north", "south"]
    assert fairness.excluded_groups == [MISSING_GROUP]
    assert all(g.strip() and "<" not in g for g in fairness.excluded_groups)


def test_mlflow_runs_of_one_job_are_told_apart_by_partition_and_run():
    from mlops_assets.resources import describe_mlflow_run

    one_day = describe_mlflow_run("daily_scoring", "abcdef0123456789", {"dagster/partition": "2026-05-08"})
    assert one_day[0] == "daily_scoring 2026-05-08 abcdef01"
    assert "`abcdef0123456789`" in one_day[1] and "2026-05-08" in one_day[1]
    tags = {
        "dagster/asset_partition_range_start": "2026-05-01",
        "dagster/asset_partition_range_end": "2026-05-07",
    }
    assert (
        describe_mlflow_run("daily_scoring", "12345678ff", tags)[0]
        == "daily_scoring 2026-05-01..2026-05-07 12345678"
    )
    assert (
        describe_mlflow_run("train_evaluate_promote", "12345678ff", {})[0]
        == "train_evaluate_promote 12345678"
    )
