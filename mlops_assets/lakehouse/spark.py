"""Building the one Spark session a run uses.

A Spark session lives as long as its JVM, and starting the JVM costs ~10 s, so every Spark step of a run
shares the process-wide session (``getOrCreate``). The Python side never uses a Hive metastore: tables are
addressed by path (or by Unity Catalog name in production), so any number of runs can work side by side.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}

# Runtime SQL confs: set on a classic session's builder, and by a Spark Connect client on its session (the only
# kind of conf a Connect client may set).
SESSION_SQL_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.adaptive.enabled": "true",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.sql.sources.partitionOverwriteMode": "static",
}

LOCAL_CONF = {
    # No Derby metastore on the Python side: path-based Delta tables need none, and Derby admits one JVM.
    "spark.sql.catalogImplementation": "in-memory",
    **SESSION_SQL_CONF,
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
    "spark.ui.enabled": "false",
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


def build_session(
    engine: str = "local",
    app_name: str = "mlops_assets",
    shuffle_partitions: int = 2,
    driver_memory: str = "4g",
    extra_conf: Mapping[str, str] | None = None,
) -> SparkSession:
    """The process' session on the chosen engine: ``local`` (embedded ``local[2]``), ``spark://...`` (a
    standalone cluster: this process is the driver, executors run on its workers) or ``sc://...`` (Spark
    Connect: the engine, Delta included, is the server's; this process is a thin client)."""
    if engine.startswith("sc://"):
        return build_connect_session(engine, shuffle_partitions)
    conf = dict(extra_conf or {})
    if engine.startswith("spark://"):
        # Executors on the workers start Python for mapInPandas/pandas UDFs: this interpreter, with its packages.
        conf.setdefault("spark.pyspark.python", sys.executable)
        conf.setdefault("spark.pyspark.driver.python", sys.executable)
        host = engine.removeprefix("spark://").split(":")[0]
        if host not in ("127.0.0.1", "localhost"):
            # A remote cluster's executors must reach the driver: not on loopback.
            conf.setdefault("spark.driver.bindAddress", "0.0.0.0")
            conf.setdefault("spark.driver.host", os.environ.get("SPARK_LOCAL_IP", "") or _hostname())
    master = "local[2]" if engine == "local" else engine
    return build_local_session(master, app_name, shuffle_partitions, driver_memory, conf)


def build_connect_session(url: str, shuffle_partitions: int = 2) -> SparkSession:
    """A Spark Connect client session. Only runtime SQL confs can be set from here: Delta's extension and
    catalog, memory and the Python workers' interpreter are the server's (see ``connect_server_command``)."""
    session = SparkSession.builder.remote(url).getOrCreate()
    for key, value in {**SESSION_SQL_CONF, "spark.sql.shuffle.partitions": str(shuffle_partitions)}.items():
        session.conf.set(key, value)
    return session


def _hostname() -> str:
    import socket

    return socket.gethostname()


def connect_server_command(port: int, host: str = "127.0.0.1", master: str = "local[2]") -> list[str]:
    """``spark-submit`` of a Spark Connect server with Delta, from this venv's pyspark (its ``sbin/`` has no
    start scripts), bound to ``host``. Its Python workers must run this interpreter: start it with
    ``PYSPARK_PYTHON`` set (``connect_server_environ``)."""
    import pyspark

    spark_submit = str(Path(pyspark.__file__).parent / "bin" / "spark-submit")
    conf = {
        **DELTA_CONF,
        **{k: v for k, v in LOCAL_CONF.items() if k != "spark.sql.catalogImplementation"},
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.driver.memory": "3g",
    }
    args = [
        spark_submit,
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        master,
    ]
    args += ["--packages", delta_package()]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    return [*args, "spark-internal"]


def connect_server_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: its Python workers (mapInPandas, pandas UDFs) run this interpreter."""
    return {
        **(base if base is not None else os.environ),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_LOCAL_IP": "127.0.0.1",
    }


def unreadable_on_executors(spark: SparkSession, path: str, tasks: int = 4) -> list[str]:
    """The executor hosts that cannot see ``path`` (empty when all can): a cluster's lakehouse root must be
    storage every worker reads and writes, not a folder on the driver's disk."""
    import pandas as pd

    def probe(batches):
        import os as _os
        import socket as _socket

        for _ in batches:
            yield pd.DataFrame({"host": [_socket.gethostname()], "visible": [_os.path.isdir(path)]})

    rows = spark.range(tasks).repartition(tasks).mapInPandas(probe, "host string, visible boolean").collect()
    return sorted({r["host"] for r in rows if not r["visible"]})


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
