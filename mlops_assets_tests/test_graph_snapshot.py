"""The asset graph equals its committed snapshot: a refactor of the definitions provably changes nothing.

No JVM: definitions load without Spark (the Spark resource starts its session on first use).
"""

import os
import subprocess
import sys

from mlops_assets_tests.graph_snapshot import SNAPSHOT, graph_snapshot, render


def test_graph_equals_its_snapshot():
    from mlops_assets.definitions import build_defs

    current = render(graph_snapshot(build_defs()))
    if os.environ.get("UPDATE_GRAPH_SNAPSHOT") == "1":
        SNAPSHOT.parent.mkdir(exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.read_text() == current, (
        "the graph changed; if intended, regenerate with UPDATE_GRAPH_SNAPSHOT=1 and review the diff"
    )


def test_loading_the_definitions_starts_no_jvm():
    """In a fresh interpreter: in this one, an earlier test module may already have started Spark."""
    probe = (
        "from pyspark import SparkContext\n"
        "from mlops_assets.definitions import build_defs\n"
        "build_defs()\n"
        "assert SparkContext._active_spark_context is None, 'a SparkContext was started'\n"
        "assert SparkContext._gateway is None, 'a JVM gateway was started'\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
