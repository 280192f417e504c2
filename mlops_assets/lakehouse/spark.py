"""Building the one Spark session a run uses.

A Spark session lives as long as its JVM, and starting the JVM costs ~10 s, so every Spark step of a run
shares the process-wide session (``getOrCreate``). The Python side never uses a Hive metastore: tables are
addressed by path (or by Unity Catalog name in production), so any number of runs can work side by side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from pyspark.sql import SparkSession

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

LOCAL_CONF = {
    # No Derby metastore on the Python side: path-based Delta tables need none, and Derby admits one JVM.
    "spark.sql.catalogImplementation": "in-memory",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.ui.showConsoleProgress": "false",
    # Delta replays its log with 50 shuffle tasks by default: pure overhead for laptop-sized tables
    # (measured: silver steps 2-4x faster with 2).
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.default.parallelism": "2",
}


def delta_package() -> str:
    """The Maven coordinate of the Delta jar matching the installed delta-spark wheel."""
    import importlib.metadata

    import pyspark

    # Same rule as delta's configure_spark_with_delta_pip: the wheel ships no jars, Ivy fetches this one.
    spark_minor = ".".join(pyspark.__version__.split(".")[:2])
    return f"io.delta:delta-spark_{spark_minor}_2.13:{importlib.metadata.version('delta_spark')}"


def build_local_session(
    master: str = "local[2]",
    app_name: str = "mlops_assets",
    shuffle_partitions: int = 2,
    driver_memory: str = "4g",
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """Return the process' Spark session, creating it (and the JVM) on first use only."""
    from delta import configure_spark_with_delta_pip

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # Python workers (mapInPandas scoring) must run this interpreter, with its packages, not PATH's python3;
    # a local SparkContext reads the choice from the environment when it starts.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    conf = {
        **DELTA_CONF,
        **LOCAL_CONF,
        "spark.sql.shuffle.partitions": str(shuffle_partitions),
        "spark.driver.memory": driver_memory,
        **(extra_conf or {}),
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    return configure_spark_with_delta_pip(builder).getOrCreate()
