"""Per-arm numbers of a rollout step, counted from the inference table with Spark (two small aggregations).

Separate from ``rollout.py`` so the judge and the server import no Spark. Rows of the step are those of the
rollout id logged at or after the step's start plus its settle time (the server re-reads weights on a TTL).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from mlops_assets.serving.rollout import SCORE_BINS, ArmStats, Rollout

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

P99_ACCURACY = (
    10_000  # percentile_approx: relative rank error 1/10,000, exact for the few thousand rows of a step
)


def step_window_start(state: Rollout) -> datetime:
    """The first logged_at that belongs to the current step, an aware UTC instant (naive stamps are UTC)."""
    start = datetime.fromisoformat(state.step_started_at)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    return start + timedelta(seconds=state.settle_seconds)


def step_rows(inference: DataFrame, state: Rollout) -> DataFrame:
    from pyspark.sql import functions as F

    return inference.where(
        (F.col("rollout_id") == state.id) & (F.col("logged_at") >= F.lit(step_window_start(state)))
    )


def arm_stats(rows: DataFrame) -> dict[str, ArmStats]:
    """Requests, distinct units, 5xx rows, p99 latency and the score histogram of each arm in ``rows``."""
    from pyspark.sql import functions as F

    ok = (F.col("status") < 500) & F.col("score").isNotNull()
    totals = rows.groupBy("arm").agg(
        F.count(F.lit(1)).alias("requests"),
        F.countDistinct("entity").alias("units"),
        F.sum(F.when(F.col("status") >= 500, 1).otherwise(0)).alias("errors"),
        F.percentile_approx("latency_ms", 0.99, P99_ACCURACY).alias("p99"),
    )
    score_bin = F.least(F.floor(F.col("score") * SCORE_BINS), F.lit(SCORE_BINS - 1))
    bins = (
        rows.where(ok)
        .select("arm", F.greatest(score_bin, F.lit(0)).cast("int").alias("bin"))
        .groupBy("arm", "bin")
        .count()
        .collect()
    )
    histograms: dict[str, list[int]] = {}
    for r in bins:
        histograms.setdefault(r["arm"], [0] * SCORE_BINS)[r["bin"]] = int(r["count"])
    return {
        r["arm"]: ArmStats(
            arm=r["arm"],
            requests=int(r["requests"]),
            units=int(r["units"]),
            errors=int(r["errors"]),
            p99_latency_ms=float(r["p99"]) if r["p99"] is not None else None,
            score_counts=tuple(histograms.get(r["arm"], [0] * SCORE_BINS)),
        )
        for r in totals.collect()
        if r["arm"] is not None
    }
