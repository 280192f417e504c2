"""Sticky assignment: deterministic, the same in every process, weights respected, and equal in Spark."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from mlops_assets.serving.assignment import (
    BUCKETS,
    assign_arm,
    bucket,
    bucket_bounds,
    spark_arm,
    spark_bucket,
)

SALT = "rollout-7f3a"
WEIGHTS = [("champion", 0.75), ("candidate", 0.25)]


def test_the_bucket_is_the_documented_salted_sha256() -> None:
    import hashlib

    expected = int(hashlib.sha256(b"s:cust-1").hexdigest()[:15], 16) % 10_000
    assert bucket("cust-1", "s") == expected
    assert [bucket(f"u{i}", SALT) for i in range(100)] == [bucket(f"u{i}", SALT) for i in range(100)]
    # Another salt re-randomizes: most units change bucket.
    assert sum(bucket(f"u{i}", SALT) != bucket(f"u{i}", "other") for i in range(1000)) > 990


def test_assignment_is_stable_across_processes_with_different_hash_seeds() -> None:
    units = [f"cust-{i}" for i in range(2000)]
    here = [assign_arm(u, SALT, WEIGHTS) for u in units]
    probe = (
        "from mlops_assets.serving.assignment import assign_arm\n"
        f"print(','.join(assign_arm(f'cust-{{i}}', {SALT!r}, {WEIGHTS!r}) for i in range(2000)))\n"
    )
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().split(",") == here


@pytest.mark.parametrize(
    "weights", [WEIGHTS, [("a", 0.05), ("b", 0.95)], [("x", 0.2), ("y", 0.3), ("z", 0.5)]]
)
def test_weights_are_respected_within_binomial_tolerance(weights) -> None:
    n = 100_000
    arms = [assign_arm(str(i), SALT, weights) for i in range(n)]
    for name, w in weights:
        share = arms.count(name)
        sd = math.sqrt(n * w * (1 - w))
        assert abs(share - n * w) <= 4.5 * sd + n / BUCKETS, (name, share, n * w)


def test_a_zero_weight_arm_is_never_assigned_and_growing_an_arm_only_moves_units_into_it() -> None:
    units = [str(i) for i in range(20_000)]
    assert {assign_arm(u, SALT, [("champion", 1.0), ("candidate", 0.0)]) for u in units} == {"champion"}
    assert {assign_arm(u, SALT, [("champion", 0.0), ("candidate", 1.0)]) for u in units} == {"candidate"}
    # Consecutive ranges with the candidate first: 5 % -> 25 % keeps every candidate unit a candidate.
    small = {
        u for u in units if assign_arm(u, SALT, [("candidate", 0.05), ("champion", 0.95)]) == "candidate"
    }
    large = {
        u for u in units if assign_arm(u, SALT, [("candidate", 0.25), ("champion", 0.75)]) == "candidate"
    }
    assert small < large


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([], "at least one arm"),
        ([("a", 0.5), ("a", 0.5)], "unique"),
        ([("a", 0.5), ("b", 0.6)], "sum to"),
        ([("a", -0.1), ("b", 1.1)], r"weights\['a'\]"),
        ([("a", float("nan")), ("b", 1.0)], r"weights\['a'\]"),
    ],
)
def test_bad_weights_are_refused_naming_the_problem(weights, message) -> None:
    with pytest.raises(ValueError, match=message):
        bucket_bounds(weights)


def test_spark_computes_the_same_buckets_and_arms_as_python(spark) -> None:
    from pyspark.sql import functions as F

    weights = [("champion", 0.5), ("candidate", 0.3), ("shadow", 0.2)]
    ids = [f"cust-{i:06d}" for i in range(12_000)] + ["", "ünïcode-id", "with:colon"]
    df = spark.createDataFrame([(u,) for u in ids], "entity string")
    rows = df.select(
        "entity",
        spark_bucket("entity", SALT).alias("b"),
        spark_arm(F.col("entity"), SALT, weights).alias("arm"),
    ).collect()
    got = {r["entity"]: (r["b"], r["arm"]) for r in rows}
    assert got == {u: (bucket(u, SALT), assign_arm(u, SALT, weights)) for u in ids}
    null = (
        spark.createDataFrame([(None,)], "entity string").select(spark_arm("entity", SALT, weights)).first()
    )
    assert null[0] is None
