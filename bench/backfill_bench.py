"""Drift backfill benchmark: a year of daily drift reports as one aggregation grouped by day (what the
``drift_report`` asset runs for a multi-day run) against the per-day loop it ran before, on the same data, in one
Spark session.

The data is the drift benchmark's shape (20 numerical and 5 categorical columns, ``drift_bench.write_dataset``) plus
a model score, ``ROWS_PER_DAY`` rows a day (the size of the external feature table the issue measured) for
``DAYS`` days, written once to Parquet; every 30th day from day 180 on is drifted. The reference profile is built
from 30 quiet days first. Both sides grade every day with the asset's own functions (``day_reports_spark`` and
``day_report_spark``) and must reach the same verdict for every day. A warm-up day compiles the query shapes first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bench.drift_bench import CATEGORICAL, NUMERICAL, write_dataset

DAYS = 365
ROWS_PER_DAY = 165
FIRST_DAY = date(2026, 1, 1)


def write_days(folder: Path, days: int, rows_per_day: int, seed: int) -> Path:
    """``days`` days of ``rows_per_day`` rows with a ``day`` and a ``score`` column, as one Parquet dataset."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = folder / "days"
    out.mkdir()
    for i in range(days):
        drifted = i >= 180 and i % 30 == 0
        part = folder / f"part-{i}.parquet"
        write_dataset(part, rows_per_day, drifted, seed + i)
        table = pq.read_table(part)
        rng = np.random.default_rng([seed, i])
        table = table.append_column("score", pa.array(rng.beta(2, 5, rows_per_day)))
        table = table.append_column("day", pa.array([FIRST_DAY + timedelta(days=i)] * rows_per_day))
        pq.write_table(table, out / f"day-{i:03d}.parquet")
        part.unlink()
    return out


def main(argv: list[str] | None = None) -> int:
    from pyspark.sql import functions as F

    from mlops_assets.lakehouse.spark import build_local_session
    from mlops_assets.monitoring.severity import DriftThresholds, PerformanceThresholds
    from mlops_assets.monitoring.spark_drift import day_report_spark, day_reports_spark
    from mlops_assets.monitoring.spark_profile import build_profile_spark

    parser = argparse.ArgumentParser(prog="python -m bench backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--rows-per-day", type=int, default=ROWS_PER_DAY)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    print(
        f"# drift-backfill-bench: {args.days} days x {args.rows_per_day} rows, 25 features + score; one aggregation "
        "grouped by day vs one per day, same Spark session (local[2]), warm-up excluded",
        flush=True,
    )
    spark = build_local_session(master="local[2]", driver_memory="4g", app_name="backfill_bench")
    drift, performance = DriftThresholds(), PerformanceThresholds()
    with tempfile.TemporaryDirectory(prefix="backfill_bench_") as tmp:
        df = spark.read.parquet(str(write_days(Path(tmp), args.days, args.rows_per_day, args.seed))).cache()
        days = sorted(r["day"] for r in df.select("day").distinct().collect())
        reference = df.where(F.col("day") < F.lit(FIRST_DAY + timedelta(days=30)))
        profile = build_profile_spark(reference, [*NUMERICAL, "score"], CATEGORICAL)

        def alone(day: date):
            return day_report_spark(
                profile, df.where(F.col("day") == F.lit(day)), drift, performance, None, None
            )

        alone(days[0])  # warm-up: compiles the per-day and the grouped query shapes
        day_reports_spark(
            profile, df.where(F.col("day") == F.lit(days[0])), "day", drift, performance, None, {}
        )

        began = time.perf_counter()
        one_pass = day_reports_spark(profile, df, "day", drift, performance, None, {})
        one_pass_s = time.perf_counter() - began
        began = time.perf_counter()
        loop = {day: alone(day) for day in days}
        loop_s = time.perf_counter() - began
    same = all(
        (one_pass[d].action, one_pass[d].summary.level, one_pass[d].summary.drifted_columns)
        == (loop[d].action, loop[d].summary.level, loop[d].summary.drifted_columns)
        for d in days
    )
    flagged = sum(1 for d in days if one_pass[d].summary.drifted_columns)
    print(
        f"drift-backfill-bench days={len(days)} rows_per_day={args.rows_per_day} one_pass_s={one_pass_s:.1f} "
        f"per_day_loop_s={loop_s:.1f} ratio={loop_s / one_pass_s:.1f}x same_verdicts={str(same).lower()} "
        f"days_flagged={flagged}",
        flush=True,
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
