"""Per-run overhead of the Spark engines on the same slice of the graph, measured side by side in one run.

Each mode runs ``mlops_assets_tests.engine_slice`` (landing -> bronze -> silver -> gold -> features for three
days, then the last day again) in a fresh child process, as a Dagster run would: ``local`` (embedded local[2]),
``cluster`` (a standalone Master + Worker on 127.0.0.1), ``connect`` (a Spark Connect server on 127.0.0.1) and
``pipes`` (local, with silver in a Dagster Pipes subprocess, the path Databricks jobs take). ``setup_s`` is the
engine's start (paid once per deployment, not per run); ``run_s`` is the child's wall time, JVM start included.
One line per engine, with the ratio to local's run time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, nullcontext
from pathlib import Path

from mlops_assets.settings import PROJECT_ROOT
from mlops_assets_tests.engines import connect_server, standalone_cluster

START, END = "2026-03-01", "2026-03-03"


def _run_slice(tmp: Path, engine: str, env_mode: str) -> tuple[float, list[float]]:
    (tmp / "dagster_home").mkdir(parents=True, exist_ok=True)
    environ = {
        **os.environ,
        "LAKEHOUSE_ROOT": str(tmp / "lakehouse"),
        "MLOPS_SPARK": engine,
        "MLOPS_ENV": env_mode,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "mlops_assets_tests.engine_slice", START, END],
        env=environ,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise RuntimeError(f"engine {engine} ({env_mode}) failed:\n{done.stderr[-3000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    if summary["success"] != [True, True]:
        raise RuntimeError(f"engine {engine} ({env_mode}): {summary['errors']}")
    return wall, summary["seconds"]


def main(argv: list[str] | None = None) -> int:
    print(
        "# engine-bench: the same 3-day slice (+ a 1-day re-run) per engine, each in a fresh process",
        flush=True,
    )
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="engine_bench_") as tmp_dir, ExitStack() as stack:
        tmp = Path(tmp_dir)
        modes = [("local", None, "local"), ("cluster", standalone_cluster, "local")]
        modes += [("connect", connect_server, "local"), ("pipes", None, "pipes")]
        for name, start, env_mode in modes:
            began = time.monotonic()
            engine = stack.enter_context(start(tmp / f"{name}_engine") if start else nullcontext(None))
            setup = time.monotonic() - began
            url = engine.url if engine else "local"
            wall, _ = _run_slice(tmp / name, url, env_mode)
            results[name] = (setup, wall)
            if engine is not None:
                stack.close()  # stop it before the next engine runs: one engine on the cores at a time
    local_run = results["local"][1]
    for name, (setup, wall) in results.items():
        print(
            f"engine-bench engine={name} setup_s={setup:.1f} run_s={wall:.1f} run_vs_local={wall / local_run:.2f}x",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
