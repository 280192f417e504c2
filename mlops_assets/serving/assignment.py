"""Sticky assignment of a unit (an entity id) to an arm: one salted hash, the same in Python and in Spark.

Why one function for both engines: the online server assigns a request in Python, batch jobs (and issue 14's
experiments) re-derive who was in which arm with Spark. Both must agree bit for bit, or an analysis would
attribute units to arms they never saw. The hash is sha256 of ``"<salt>:<unit>"``; its first 15 hex digits
(60 bits, so they fit a signed 64-bit long in Spark) modulo ``BUCKETS`` give the unit's bucket. Python's
``hash()`` is never used: it is salted per process (PYTHONHASHSEED), so it is not sticky across processes.

Arms take consecutive bucket ranges in the order given; the integer range ends are computed once, in
``bucket_bounds``, and both engines compare buckets with those same integers. A weight of 0 gets an empty
range, so that arm is never assigned. Changing the salt re-randomizes every unit (a new rollout, a new
experiment); keeping it keeps every unit where it was, and growing one arm's weight only moves units into it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column

BUCKETS = 10_000
HEX_DIGITS = 15  # 60 bits: below 2**63, so Spark's conv() result casts to a long without overflow
WEIGHT_TOLERANCE = 1e-9


def bucket(unit: str, salt: str) -> int:
    """The unit's bucket in [0, BUCKETS)."""
    digest = hashlib.sha256(f"{salt}:{unit}".encode()).hexdigest()
    return int(digest[:HEX_DIGITS], 16) % BUCKETS


def bucket_bounds(weights: Sequence[tuple[str, float]]) -> list[tuple[str, int]]:
    """Each arm with the exclusive end of its bucket range; validates the weights (errors name the arm)."""
    if not weights:
        raise ValueError("weights: at least one arm is required")
    names = [name for name, _ in weights]
    if len(set(names)) != len(names):
        raise ValueError(f"weights: arm names must be unique, got {names}")
    for name, weight in weights:
        if not (isinstance(weight, int | float) and math.isfinite(weight) and 0 <= weight <= 1):
            raise ValueError(f"weights[{name!r}]: {weight!r} is not a number in [0, 1]")
    total = math.fsum(w for _, w in weights)
    if abs(total - 1.0) > WEIGHT_TOLERANCE:
        raise ValueError(f"weights: they sum to {total}, not 1")
    bounds, cumulative = [], 0.0
    for name, weight in weights:
        cumulative += weight
        bounds.append((name, min(BUCKETS, round(cumulative * BUCKETS))))
    bounds[-1] = (bounds[-1][0], BUCKETS)  # rounding never leaves the top buckets unassigned
    return bounds


def _arm_of(b: int, bounds: Sequence[tuple[str, int]]) -> str:
    for name, end in bounds:
        if b < end:
            return name
    raise AssertionError("unreachable: the last range ends at BUCKETS")


def assign_arm(unit: str, salt: str, weights: Sequence[tuple[str, float]]) -> str:
    """The arm of ``unit``: the arm whose consecutive bucket range holds the unit's bucket."""
    return _arm_of(bucket(unit, salt), bucket_bounds(weights))


def spark_bucket(col: Column | str, salt: str) -> Column:
    """``bucket`` as a Spark Column (null for a null unit)."""
    from pyspark.sql import functions as F

    unit = F.col(col) if isinstance(col, str) else col
    digest = F.sha2(F.concat(F.lit(f"{salt}:"), unit.cast("string")), 256)
    value = F.conv(F.substring(digest, 1, HEX_DIGITS), 16, 10).cast("long")
    return F.pmod(value, F.lit(BUCKETS)).cast("int")


def spark_arm(col: Column | str, salt: str, weights: Sequence[tuple[str, float]]) -> Column:
    """``assign_arm`` as a Spark Column (null for a null unit)."""
    from pyspark.sql import functions as F

    b = spark_bucket(col, salt)
    bounds = bucket_bounds(weights)
    arm = F.when(b < F.lit(bounds[0][1]), F.lit(bounds[0][0]))
    for name, end in bounds[1:]:
        arm = arm.when(b < F.lit(end), F.lit(name))
    return arm
