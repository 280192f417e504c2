"""Two runs writing the same Delta table at once: one wins or both serialize, never a corrupt or doubled table.

Real Delta optimistic concurrency: two writers (threads of one Spark application, as two steps of a run or
two runs sharing a cluster do) replace partitions of one table at the same moment, many times over.
"""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from pyspark.sql import functions as F

from mlops_assets.lakehouse.delta_io import PARTITION_COLUMN, DeltaLakehouse
from mlops_assets.lakehouse.tables import TableLocator, TableRef

pytestmark = pytest.mark.faults

TABLE = TableRef("silver", "usage_events")
DAY = date(2026, 3, 1)
ROUNDS = 4


def _day_rows(spark, writer: str, day: date, n: int = 50):
    return spark.range(n).select(
        F.concat(F.lit(f"{writer}-"), F.col("id").cast("string")).alias("event_id"),
        F.lit(writer).alias("writer"),
        F.lit(day).cast("date").alias(PARTITION_COLUMN),
    )


def _race(delta: DeltaLakehouse, jobs: dict[str, tuple]) -> dict[str, BaseException | None]:
    """Run each writer's replace_partitions at the same moment; what each raised, or None."""
    outcome: dict[str, BaseException | None] = {}
    barrier = threading.Barrier(len(jobs))

    def write(name: str, df, start: date, end: date) -> None:
        barrier.wait()
        try:
            delta.replace_partitions(df, TABLE, start, end)
            outcome[name] = None
        except Exception as error:
            outcome[name] = error

    threads = [threading.Thread(target=write, args=(name, *job)) for name, job in jobs.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcome


def test_two_writers_of_one_partition_one_wins_or_both_serialize(spark, tmp_path):
    delta = DeltaLakehouse(spark, TableLocator(str(tmp_path)))
    delta.replace_partitions(_day_rows(spark, "seed", DAY), TABLE, DAY, DAY)
    conflicts = 0
    for round_ in range(ROUNDS):
        a, b = f"a{round_}", f"b{round_}"
        outcome = _race(delta, {w: (_day_rows(spark, w, DAY), DAY, DAY) for w in (a, b)})
        for error in outcome.values():
            if error is not None:
                assert "Concurrent" in type(error).__name__ or "Concurrent" in str(error), error
                conflicts += 1
        assert any(e is None for e in outcome.values()), f"round {round_}: nobody won: {outcome}"
        day = delta.read_partitions(TABLE, DAY, DAY)
        writers = {r["writer"] for r in day.select("writer").distinct().collect()}
        # exactly one writer's rows: the last to commit (never a mix, never both)
        assert len(writers) == 1 and writers <= {a, b}, writers
        assert day.count() == day.select("event_id").distinct().count() == 50
    versions = [h.version for h in delta.history(TABLE)]
    assert versions == list(range(len(versions)))[::-1], "versions are contiguous"
    assert len(versions) == 1 + 2 * ROUNDS - conflicts


def test_two_writers_of_different_partitions_both_commit(spark, tmp_path):
    delta = DeltaLakehouse(spark, TableLocator(str(tmp_path)))
    days = [DAY, DAY + timedelta(days=1)]
    delta.replace_partitions(
        _day_rows(spark, "seed", days[0]).unionByName(_day_rows(spark, "seed", days[1])),
        TABLE,
        days[0],
        days[1],
    )
    for round_ in range(ROUNDS):
        jobs = {f"w{i}-{round_}": (_day_rows(spark, f"w{i}-{round_}", d), d, d) for i, d in enumerate(days)}
        outcome = _race(delta, jobs)
        assert outcome == dict.fromkeys(jobs), outcome  # disjoint partitions never conflict
        rows = delta.read_partitions(TABLE, days[0], days[1])
        by_day = {r[PARTITION_COLUMN]: r["writer"] for r in rows.select(PARTITION_COLUMN, "writer").collect()}
        assert by_day == {d: f"w{i}-{round_}" for i, d in enumerate(days)}
        assert rows.count() == 100
