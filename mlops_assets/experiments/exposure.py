"""Who enters an experiment, in which arm, who is contacted, and what happened to them: the unit table's logic.

Pure transforms (Spark for the lakehouse's tables, pandas for a wave's few thousand units); the assets in
``mlops_assets.defs.experiments`` wire them. Assignment is ``serving.assignment.spark_arm``: the salted hash the
online service uses, so a unit is in the same arm wherever it is looked up.
"""

from __future__ import annotations

import calendar
import math
from datetime import date, timedelta

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from mlops_assets.experiments.spec import ExperimentSpec
from mlops_assets.serving.assignment import spark_arm

UNIT_SCHEMA = (
    "experiment string, customer_id string, arm string, wave date, model_version string, score double, "
    "covariate double, covariate_version string, contacted boolean, contact_rank int, enrolled_at timestamp, _partition_date date"
)


def renews_within(signup_date: Column, wave: date, window_days: int) -> Column:
    """True for a customer whose monthly renewal (the sign-up's day of the month, the month's last day when the
    month is shorter) falls in (wave, wave + window_days]."""
    dom = F.dayofmonth(signup_date)
    hits = []
    for k in range(1, window_days + 1):
        day = wave + timedelta(days=k)
        last = calendar.monthrange(day.year, day.month)[1]
        hits.append((dom == day.day) | ((dom > last) & F.lit(day.day == last)))
    condition = hits[0]
    for hit in hits[1:]:
        condition = condition | hit
    return condition


def eligible_units(
    features: DataFrame, entity_key: str, as_of: str, wave: date, window_days: int, already: DataFrame | None
) -> DataFrame:
    """The wave's eligible rows of the feature table: active on the wave day (a feature row as of it), renewing
    in the wave's window, never enrolled before (assignment is sticky: a unit enters once)."""
    rows = features.where(F.col(as_of) == F.lit(wave))
    signup = F.date_sub(F.col(as_of), F.col("tenure_days").cast("int"))
    rows = rows.where(renews_within(signup, wave, window_days))
    if already is not None:
        rows = rows.join(already.select(F.col("customer_id").alias(entity_key)), entity_key, "left_anti")
    return rows


def with_arm(rows: DataFrame, entity_key: str, spec: ExperimentSpec) -> DataFrame:
    """Each row's arm from the spec's salt (its name) and weights."""
    return rows.withColumn("arm", spark_arm(F.col(entity_key).cast("string"), spec.name, spec.weights))


def choose_contacts(units: pd.DataFrame, spec: ExperimentSpec) -> pd.DataFrame:
    """``units`` (one wave: arm, score) with ``contacted`` and ``contact_rank`` (1 = highest score in the arm).

    top_k contacts ceil(value x the arm's units) per targeted arm, highest scores first (ties by customer id, so
    a re-run picks the same customers); threshold contacts every unit scoring at least value. An arm whose model
    is ``none`` (the holdout) is never contacted."""
    out = units.copy()
    out["contacted"] = False
    out["contact_rank"] = pd.array([None] * len(out), dtype="Int32")
    for arm in spec.arms:
        mine = out[out["arm"] == arm.name]
        if arm.model == "none" or mine.empty:
            continue
        ranked = mine.sort_values(["score", "customer_id"], ascending=[False, True])
        out.loc[ranked.index, "contact_rank"] = np.arange(1, len(ranked) + 1, dtype=np.int32)
        if spec.targeting_rule == "top_k":
            chosen = ranked.index[: math.ceil(spec.targeting_value * len(ranked))]
        else:
            chosen = ranked.index[ranked["score"] >= spec.targeting_value]
        out.loc[chosen, "contacted"] = True
    return out


def churn_outcomes(units: DataFrame, billing: DataFrame, horizon_days: int, through: date) -> DataFrame:
    """``units`` with ``churned``: 1 when the unit's cancel falls in [wave, wave + horizon), 0 when it does not and
    the window has closed by ``through``, null while the window is still open (the model's own label rule)."""
    cancels = (
        billing.where((F.col("event_type") == "cancel") & (F.col("event_date") <= F.lit(through)))
        .groupBy("customer_id")
        .agg(F.min("event_date").alias("churn_date"))
    )
    end = F.date_add(F.col("wave"), horizon_days)
    in_window = (F.col("churn_date") >= F.col("wave")) & (F.col("churn_date") < end)
    closed = end <= F.lit(through)  # the same rule as ExperimentSpec.outcome_final
    churned = F.when(closed, F.when(in_window, 1).otherwise(0))
    return units.join(cancels, "customer_id", "left").withColumn("churned", churned).drop("churn_date")
