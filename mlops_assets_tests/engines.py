"""Real Spark engines for the tests: a standalone Master + Worker and a Spark Connect server, started from this
venv's pyspark on 127.0.0.1 (its wheel has no ``sbin/`` start scripts, so through ``spark-class`` and
``spark-submit``), waited for, and stopped by process group. Used once per pytest session (conftest) and by
``make bench`` (``bench/engine_bench.py``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyspark

from mlops_assets.lakehouse.spark import connect_server_command, connect_server_environ
from mlops_assets_tests.servers import free_port, stop_process_group, wait_until

SPARK_CLASS = str(Path(pyspark.__file__).parent / "bin" / "spark-class")


@dataclass(frozen=True)
class Engine:
    """A running engine: what ``MLOPS_SPARK`` is set to for it, and how long it took to answer."""

    name: str
    url: str
    startup_s: float


def _engine_environ() -> dict[str, str]:
    """Loopback only, and Python workers that run this interpreter (they import pandas and the project)."""
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        args,
        env=env,
        cwd=log.parent,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # one group per server: stopped whole, JVM children included
    )


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _alive_workers(ui_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as answer:
            return int(json.load(answer).get("aliveworkers", 0))
    except OSError:
        return 0


@contextmanager
def standalone_cluster(workdir: Path, cores: int = 1, memory: str = "2g"):
    """A Master and one Worker on 127.0.0.1; yields once the worker has registered with the master."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = _engine_environ()
    port, ui_port, worker_ui = free_port(), free_port(), free_port()
    started = time.monotonic()
    master_class, worker_class = (
        "org.apache.spark.deploy.master.Master",
        "org.apache.spark.deploy.worker.Worker",
    )
    master = _start(
        [SPARK_CLASS, master_class, "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui_port)],
        workdir / "master.log",
        env,
    )
    worker = None
    try:
        url = f"spark://127.0.0.1:{port}"
        wait_until(lambda: _port_open(port) or master.poll() is not None, 120, "the Spark master's port")
        assert master.poll() is None, (workdir / "master.log").read_text()[-3000:]
        worker_args = ["--host", "127.0.0.1", "--cores", str(cores), "--memory", memory]
        worker_args += ["--webui-port", str(worker_ui), "--work-dir", str(workdir / "work"), url]
        worker = _start([SPARK_CLASS, worker_class, *worker_args], workdir / "worker.log", env)
        wait_until(
            lambda: _alive_workers(ui_port) >= 1 or worker.poll() is not None, 120, "a registered worker"
        )
        assert worker.poll() is None, (workdir / "worker.log").read_text()[-3000:]
        yield Engine("cluster", url, round(time.monotonic() - started, 1))
    finally:
        for process in (worker, master):
            if process is not None:
                stop_process_group(process)


@contextmanager
def connect_server(workdir: Path):
    """A Spark Connect server (local[2] inside, Delta loaded) on 127.0.0.1; yields once it answers a query."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    started = time.monotonic()
    server = _start(
        connect_server_command(port), workdir / "connect.log", connect_server_environ(_engine_environ())
    )
    try:
        url = f"sc://127.0.0.1:{port}"
        wait_until(
            lambda: _port_open(port) or server.poll() is not None, 240, "the Spark Connect server's port"
        )
        assert server.poll() is None, (workdir / "connect.log").read_text()[-3000:]
        yield Engine("connect", url, round(time.monotonic() - started, 1))
    finally:
        stop_process_group(server)
