"""Point-in-time churn features from gold, as Spark transforms.

For an as-of date T a feature may use only what the business *knew* before T: rows whose event happened
before T **and** had arrived before T (``available_date < T``; a usage row that arrives late is invisible
until it arrives). Each feature row carries ``max_event_date_used`` and ``max_available_date_used``, so
the leakage check can prove it. Labels look only at the window after T and are joined at training time.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

LABEL = "churned_30d"
LABEL_HORIZON_DAYS = 30
USAGE_WINDOW_DAYS = 28
BILLING_WINDOW_DAYS = 60


def as_of_frame(spark: SparkSession, as_of_dates: Sequence[date]) -> DataFrame:
    return spark.createDataFrame([(d,) for d in as_of_dates], "as_of date")


def _fan_out(events: DataFrame, date_col: str, window_days: int, as_of: DataFrame) -> DataFrame:
    """Pair each event with the as-of dates T whose window [T - window_days, T) contains it."""
    dates = F.sequence(F.date_add(F.col(date_col), 1), F.date_add(F.col(date_col), window_days))
    fanned = events.withColumn("as_of", F.explode(dates))
    return fanned.join(F.broadcast(as_of), "as_of")


def _known_before(df: DataFrame, as_of: Column, date_col: str) -> DataFrame:
    return df.where((F.col(date_col) < as_of) & (F.col("available_date") < as_of))


def feature_inputs(
    usage: DataFrame, billing: DataFrame, first_as_of: date, last_as_of: date
) -> tuple[DataFrame, DataFrame]:
    """The gold rows features for as-of dates ``first_as_of``..``last_as_of`` can use, so a day's run reads what
    a day needs, not all history: usage from the ``USAGE_WINDOW_DAYS`` before the first as-of date, billing from
    the ``BILLING_WINDOW_DAYS`` before it (both event_date ranges: partition filters on gold's event_date), and
    every earlier cancel (a customer who churned long ago stays out of the population). Nothing on or after the
    last as-of date can count (``_known_before``), so nothing from then is read."""
    before_last = F.col("event_date") < F.lit(last_as_of)

    def since(days: int) -> Column:
        return F.col("event_date") >= F.lit(first_as_of - timedelta(days=days))

    old_cancels = billing.where(~since(BILLING_WINDOW_DAYS) & (F.col("event_type") == "cancel"))
    return (
        usage.where(since(USAGE_WINDOW_DAYS) & before_last),
        billing.where(since(BILLING_WINDOW_DAYS) & before_last).unionByName(old_cancels),
    )


def build_features(
    as_of: DataFrame, customer_history: DataFrame, usage: DataFrame, billing: DataFrame
) -> DataFrame:
    """One row per (customer active at T, T) with features computed from data known before T."""
    a = F.col("as_of")
    # Attributes as of T: the latest version valid before T that had arrived before T.
    versions = customer_history.alias("h").join(as_of, on=F.col("h.valid_from") < a)
    versions = versions.where(F.col("h.available_date") < a)
    latest = versions.groupBy("customer_id", "as_of").agg(
        F.max_by(
            F.struct(
                "signup_date", "plan", "region", "age", "acquisition_channel", "monthly_fee", "available_date"
            ),
            "valid_from",
        ).alias("c"),
        F.max("valid_from").alias("attributes_from"),
    )

    # Customers who churned (cancel event known) before T are no longer in the population.
    cancels = billing.where(F.col("event_type") == "cancel").select(
        "customer_id", F.col("event_date").alias("cancel_date"), F.col("available_date").alias("cancel_known")
    )
    population = latest.join(cancels, "customer_id", "left").where(
        F.col("cancel_known").isNull() | (F.col("cancel_known") >= a) | (F.col("cancel_date") >= a)
    )

    # Each event feeds the as-of dates in the window after it: explode, then an equi-join with the as-of
    # dates (a hash join, not a nested loop over every as-of date).
    u = _known_before(_fan_out(usage, "event_date", USAGE_WINDOW_DAYS, as_of), a, "event_date")
    recent = F.col("event_date") >= F.date_sub(a, 7)
    usage_agg = u.groupBy("customer_id", "as_of").agg(
        # Rounded: a float sum depends on the order rows meet in (how the read split them into tasks); minutes carry
        # one decimal, so 6 decimals keep every digit and make the feature the same whatever the plan.
        F.round(F.sum(F.when(recent, F.col("minutes_used"))), 6).alias("minutes_7d"),
        F.round(F.sum("minutes_used"), 6).alias("minutes_28d"),
        F.sum(F.when(recent, F.col("sessions"))).alias("sessions_7d"),
        F.sum("sessions").alias("sessions_28d"),
        F.count(F.when(F.col("sessions") > 0, 1)).alias("active_days_28d"),  # one usage row per customer-day
        F.sum("support_tickets").alias("tickets_28d"),
        F.max(F.when(F.col("sessions") > 0, F.col("event_date"))).alias("last_use"),
        F.max_by("device", "minutes_used").alias("main_device"),  # the device of the heaviest day
        F.max("event_date").alias("usage_max_event"),
        F.max("available_date").alias("usage_max_available"),
    )

    b = _known_before(_fan_out(billing, "event_date", BILLING_WINDOW_DAYS, as_of), a, "event_date")
    billing_agg = b.groupBy("customer_id", "as_of").agg(
        F.sum(F.when(F.col("event_type") == "payment_failed", 1).otherwise(0)).alias("payment_failures_60d"),
        F.sum(F.when(F.col("event_type") == "refund", 1).otherwise(0)).alias("refunds_60d"),
        F.max("event_date").alias("billing_max_event"),
        F.max("available_date").alias("billing_max_available"),
    )

    features = population.join(usage_agg, ["customer_id", "as_of"], "left").join(
        billing_agg, ["customer_id", "as_of"], "left"
    )
    zero = F.lit(0)
    return features.select(
        "customer_id",
        "as_of",
        F.datediff(a, F.col("c.signup_date")).alias("tenure_days"),
        F.col("c.age").cast("double").alias("age"),
        F.col("c.monthly_fee").alias("monthly_fee"),
        F.coalesce("minutes_7d", zero).cast("double").alias("minutes_7d"),
        F.coalesce("minutes_28d", zero).cast("double").alias("minutes_28d"),
        F.coalesce("sessions_7d", zero).cast("double").alias("sessions_7d"),
        F.coalesce("sessions_28d", zero).cast("double").alias("sessions_28d"),
        F.coalesce("active_days_28d", zero).cast("double").alias("active_days_28d"),
        F.coalesce("tickets_28d", zero).cast("double").alias("tickets_28d"),
        # Last week's usage against the 4-week weekly average: < 1 means usage is falling.
        (F.coalesce("minutes_7d", zero) / ((F.col("minutes_28d") / 4) + F.lit(1.0))).alias("usage_trend"),
        F.coalesce(F.datediff(a, F.col("last_use")), F.lit(USAGE_WINDOW_DAYS + 1))
        .cast("double")
        .alias("days_since_last_use"),
        F.coalesce("payment_failures_60d", zero).cast("double").alias("payment_failures_60d"),
        F.coalesce("refunds_60d", zero).cast("double").alias("refunds_60d"),
        F.col("c.plan").alias("plan"),
        F.col("c.region").alias("region"),
        F.col("c.acquisition_channel").alias("acquisition_channel"),
        F.coalesce("main_device", F.lit("none")).alias("main_device"),
        F.greatest(
            F.col("attributes_from").cast("date"), F.col("usage_max_event"), F.col("billing_max_event")
        ).alias("max_event_date_used"),
        F.greatest(
            F.col("c.available_date"), F.col("usage_max_available"), F.col("billing_max_available")
        ).alias("max_available_date_used"),
    )


def churn_labels(
    features: DataFrame, billing: DataFrame, horizon_days: int = LABEL_HORIZON_DAYS
) -> DataFrame:
    """1 if the customer's cancel event falls in [T, T + horizon), else 0: only the window after T."""
    cancels = (
        billing.where(F.col("event_type") == "cancel")
        .groupBy("customer_id")
        .agg(F.min("event_date").alias("churn_date"))
    )
    labeled = features.join(cancels, "customer_id", "left")
    in_window = (F.col("churn_date") >= F.col("as_of")) & (
        F.col("churn_date") < F.date_add(F.col("as_of"), horizon_days)
    )
    return labeled.withColumn(LABEL, F.when(in_window, 1).otherwise(0)).drop("churn_date")


def leakage_violations(features: DataFrame) -> int:
    """Rows whose features used data from on or after their as-of date (must be zero)."""
    return features.where(
        (F.col("max_event_date_used") >= F.col("as_of"))
        | (F.col("max_available_date_used") >= F.col("as_of"))
    ).count()


def labelled_as_of_dates(
    as_of_dates: Sequence[date], first_known: date, last_known: date, warmup_days: int, every_days: int
) -> list[date]:
    """The as-of dates a training set may use: a full usage window behind them (``warmup_days`` after the
    first data) and a closed label window after them (``LABEL_HORIZON_DAYS`` before the last), sampled every
    ``every_days``-th day ending at the newest. ValueError naming the dates when fewer than 3 remain."""
    dates = sorted(
        d
        for d in as_of_dates
        if (last_known - d).days >= LABEL_HORIZON_DAYS and (d - first_known).days >= warmup_days
    )
    sampled = dates[::-1][::every_days][::-1]  # every Nth day, ending at the newest
    if len(sampled) < 3:
        raise ValueError(
            f"training_set: only {len(sampled)} as-of date(s) have a closed {LABEL_HORIZON_DAYS}-day label "
            f"window (features through {dates[-1] if dates else None}, data through {last_known}); "
            "backfill more days"
        )
    return sampled
