"""A stand-in for Databricks' control plane, which the tests cannot reach: a small HTTP server on 127.0.0.1
that answers the REST calls databricks-sdk 0.47 makes for a Pipes step, and runs submitted tasks as local
subprocesses. Everything else in the tests is real: databricks-sdk's ``WorkspaceClient`` pointed at this host
with a (fake) token, dagster-databricks' Pipes clients, dagster-pipes on the remote side, and the project's
entry point (``mlops_assets.run_remote_step``) in a process with its own Spark JVM.

What it implements (and only that; anything else is a recorded 404 ``ENDPOINT_NOT_FOUND``):

- Jobs 2.2 (2.1 accepted too): ``POST runs/submit`` (one-time runs; tasks with ``python_wheel_task`` or
  ``spark_python_task`` on ``existing_cluster_id``, ``new_cluster`` or a serverless ``environment_key``),
  ``GET runs/get`` (life cycle PENDING -> RUNNING -> TERMINATING -> TERMINATED, result SUCCESS / FAILED /
  CANCELED, ``state_message``, ``run_page_url``, the task runs), ``GET runs/get-output`` (of a task run: the
  Python error and its traceback, as Databricks shows a failed task), ``POST runs/cancel``.
- Clusters 2.1: ``GET clusters/get`` (the clusters the test declares; unknown ids are an error).
- DBFS 2.0: ``mkdirs``, ``put`` (base64), ``get-status``, ``read`` (offset/length, base64), ``list``,
  ``delete`` (recursive or not), over a folder ``<root>/dbfs``.
- Files API: ``/api/2.0/fs/files{path}`` (PUT, GET with Range, HEAD, DELETE) and
  ``/api/2.0/fs/directories{path}`` (PUT, GET, HEAD, DELETE) for ``/Volumes/...`` over ``<root>/Volumes``.
- Missing paths are 404 with an ``error_code`` (``RESOURCE_DOES_NOT_EXIST`` for DBFS, ``NOT_FOUND`` for
  files); a wrong or missing bearer token is 401.

How a task runs: a subprocess (its own session, so a cancel kills the whole group) of this interpreter, in a
fresh environment as a cluster has (PATH, HOME, JAVA_HOME, the task's ``spark_env_vars``), with the project
importable from ``library_path`` (the cluster "has the wheel installed": libraries are recorded, not installed)
and ``MLOPS_FUSE_ROOT`` set to this server's root, so the task sees DBFS at ``<root>/dbfs`` and volumes at
``<root>/Volumes`` as a cluster sees them at ``/dbfs`` and ``/Volumes`` (``mlops_assets/remote/pipes_io.py``).
A ``python_wheel_task`` calls the named entry point of the package's metadata, else
``<package_name>.<entry_point>()``, with the parameters as ``sys.argv[1:]``, as Databricks does.
Driver output goes to ``<root>/runs/<run_id>/stdout|stderr``.

Every request is recorded (method, path, query, JSON body, headers) without its Authorization header, so a
test can compare them with what a real workspace would receive.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from mlops_assets.remote.pipes_io import FUSE_ROOT_VAR
from mlops_assets_tests.fake_databricks_storage import ApiError, FakeStorage

FAILED_MESSAGE = "Workload failed, see run output for details"
CANCELED_MESSAGE = "Run cancelled."
# What the fake "cluster image" takes from the test's environment; nothing else (no secret) leaks into a task.
CLUSTER_ENV = ("PATH", "HOME", "JAVA_HOME", "LANG", "TMPDIR", "OMP_WAIT_POLICY")
WHEEL_LAUNCHER = """
import importlib, importlib.metadata as md, sys
package, entry = sys.argv[1], sys.argv[2]
sys.argv = [package, *sys.argv[3:]]
try:
    named = [e for e in md.distribution(package).entry_points if e.name == entry]
except md.PackageNotFoundError:
    named = []
(named[0].load() if named else getattr(importlib.import_module(package), entry))()
"""


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    headers: dict[str, str]
    status: int = 0  # the answer's status and error code, once answered
    error_code: str | None = None


@dataclass
class FakeRun:
    run_id: int
    task_run_id: int
    request: dict[str, Any]
    task: dict[str, Any]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0
    cancel_requested: bool = False

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": self.life_cycle_state,
            "state_message": self.state_message,
            "user_cancelled_or_timedout": self.cancel_requested,
        }
        if self.result_state:
            state["result_state"] = self.result_state
        return state


class FakeDatabricks(FakeStorage):
    """The control plane: start() it, point a WorkspaceClient at ``url`` with ``token``, stop() it."""

    def __init__(
        self, root: Path, token: str, library_path: str, clusters: dict[str, dict[str, Any]] | None = None
    ) -> None:
        self.root, self.token, self.library_path = root, token, library_path
        self.dbfs_root, self.volumes_root = root / "dbfs", root / "Volumes"
        for folder in (self.dbfs_root, self.volumes_root, root / "runs"):
            folder.mkdir(parents=True, exist_ok=True)
        self.clusters = clusters or {}
        self.requests: list[Recorded] = []
        self.runs: dict[int, FakeRun] = {}
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # ---- life of the server
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeDatabricks:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _serve(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        for run in self.runs.values():
            self._kill(run)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def calls(self, method: str, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # ---- HTTP plumbing
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(h.path)
        path, query = unquote(parsed.path), parse_qs(parsed.query)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        is_file_body = path.startswith("/api/2.0/fs/files") and h.command == "PUT"
        try:
            body = json.loads(raw) if raw and not is_file_body else None
        except ValueError:
            body = None
        headers = {k: v for k, v in h.headers.items() if k.lower() != "authorization"}
        recorded = Recorded(h.command, path, query, body, headers)
        with self._lock:
            self.requests.append(recorded)
        try:
            if h.headers.get("Authorization") != f"Bearer {self.token}":
                raise ApiError(401, "UNAUTHENTICATED", "Invalid access token.")
            status, payload, extra = self._route(
                h.command, path, query, body or {}, raw, h.headers.get("Range")
            )
        except ApiError as error:
            status, extra = error.status, {}
            payload = {"error_code": error.error_code, "message": error.message}
        recorded.status, recorded.error_code = (
            status,
            (payload.get("error_code") if isinstance(payload, dict) else None),
        )
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        h.send_response(status)
        h.send_header(
            "Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        )
        for key, value in extra.items():
            h.send_header(key, value)
        if "Content-Length" not in extra:
            h.send_header("Content-Length", str(0 if status == 204 else len(data)))
        h.end_headers()
        if h.command != "HEAD" and status != 204:
            h.wfile.write(data)

    def _route(self, method, path, query, body, raw, range_header):
        one = {k: v[0] for k, v in query.items()}
        jobs = re.fullmatch(r"/api/2\.[12]/jobs/runs/(submit|get|get-output|cancel)", path)
        if jobs:
            action = jobs.group(1)
            if (method, action) == ("POST", "submit"):
                return 200, self._submit(body), {}
            if (method, action) == ("GET", "get"):
                return 200, self._get_run(int(one.get("run_id", 0))), {}
            if (method, action) == ("GET", "get-output"):
                return 200, self._get_output(int(one.get("run_id", 0))), {}
            if (method, action) == ("POST", "cancel"):
                self._cancel(int(body.get("run_id", 0)))
                return 200, {}, {}
        if (method, path) == ("GET", "/api/2.1/clusters/get"):
            cluster_id = one.get("cluster_id", "")
            if cluster_id not in self.clusters:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Cluster {cluster_id} does not exist")
            return 200, {"cluster_id": cluster_id, "state": "RUNNING", **self.clusters[cluster_id]}, {}
        if path.startswith("/api/2.0/dbfs/"):
            return self._dbfs(method, path.removeprefix("/api/2.0/dbfs/"), one, body)
        if path.startswith("/api/2.0/fs/files/"):
            return self._files(method, path.removeprefix("/api/2.0/fs/files"), one, raw, range_header)
        if path.startswith("/api/2.0/fs/directories/"):
            return self._directories(method, path.removeprefix("/api/2.0/fs/directories"))
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")

    # ---- Jobs: one-time runs
    def _submit(self, body: dict[str, Any]) -> dict[str, Any]:
        tasks = body.get("tasks") or []
        if len(tasks) != 1:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "this stand-in runs one task per submitted run")
        task = tasks[0]
        if not task.get("task_key"):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "Task key must be specified")
        computes = [k for k in ("existing_cluster_id", "new_cluster", "environment_key") if task.get(k)]
        if len(computes) != 1:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"exactly one compute per task, got {computes}")
        if task.get("existing_cluster_id") and task["existing_cluster_id"] not in self.clusters:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"Cluster {task['existing_cluster_id']} does not exist"
            )
        if task.get("environment_key") and task["environment_key"] not in {
            e.get("environment_key") for e in body.get("environments", [])
        }:
            raise ApiError(
                400, "INVALID_PARAMETER_VALUE", f"environment {task['environment_key']} not defined"
            )
        argv = self._argv(task)
        env = {k: os.environ[k] for k in CLUSTER_ENV if k in os.environ}
        env.update((task.get("new_cluster") or {}).get("spark_env_vars") or {})
        env.update(self.clusters.get(task.get("existing_cluster_id") or "", {}).get("spark_env_vars") or {})
        env.update({"PYTHONPATH": self.library_path, FUSE_ROOT_VAR: str(self.root)})
        with self._lock:
            run = FakeRun(next(self._ids), next(self._ids), body, task, env=env, argv=argv)
            self.runs[run.run_id] = run
        threading.Thread(target=self._execute, args=(run,), daemon=True).start()
        return {"run_id": run.run_id}

    def _argv(self, task: dict[str, Any]) -> list[str]:
        if wheel := task.get("python_wheel_task"):
            return [
                sys.executable,
                "-c",
                WHEEL_LAUNCHER,
                wheel["package_name"],
                wheel["entry_point"],
                *wheel.get("parameters", []),
            ]
        if script := task.get("spark_python_task"):
            file = script["python_file"]
            local = self._dbfs_path(file) if file.startswith("dbfs:") else self._volume_path(file)
            return [sys.executable, str(local), *script.get("parameters", [])]
        raise ApiError(
            400, "INVALID_PARAMETER_VALUE", "this stand-in runs python_wheel_task or spark_python_task"
        )

    def _execute(self, run: FakeRun) -> None:
        folder = self.root / "runs" / str(run.run_id)
        folder.mkdir(parents=True, exist_ok=True)
        time.sleep(0.2)  # a moment PENDING, as a cluster takes one to pick the run up
        with self._lock:
            if run.cancel_requested:
                run.life_cycle_state, run.result_state, run.state_message = (
                    "TERMINATED",
                    "CANCELED",
                    CANCELED_MESSAGE,
                )
                return
            with open(folder / "stdout", "wb") as out, open(folder / "stderr", "wb") as err:
                run.process = subprocess.Popen(
                    run.argv, env=run.env, cwd=folder, stdout=out, stderr=err, start_new_session=True
                )
            run.life_cycle_state = "RUNNING"
        code = run.process.wait()
        with self._lock:
            run.life_cycle_state = "TERMINATING"
        time.sleep(0.2)  # the cluster's clean-up
        with self._lock:
            run.end_time = int(time.time() * 1000)
            run.life_cycle_state = "TERMINATED"
            if run.cancel_requested:
                run.result_state, run.state_message = "CANCELED", CANCELED_MESSAGE
            elif code == 0:
                run.result_state = "SUCCESS"
            else:
                run.result_state, run.state_message = "FAILED", FAILED_MESSAGE

    def _run(self, run_id: int) -> FakeRun:
        if run_id not in self.runs:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")
        return self.runs[run_id]

    def _get_run(self, run_id: int) -> dict[str, Any]:
        with self._lock:
            run = self._run(run_id)
            return {
                "run_id": run.run_id,
                "job_id": run.run_id,
                "run_name": run.request.get("run_name", "Untitled"),
                "run_type": "SUBMIT_RUN",
                "run_page_url": f"{self.url}/?o=0#job/{run.run_id}/run/{run.run_id}",
                "state": run.state(),
                "start_time": run.start_time,
                "end_time": run.end_time,
                "tasks": [
                    {"run_id": run.task_run_id, "task_key": run.task["task_key"], "state": run.state()}
                ],
            }

    def _get_output(self, task_run_id: int) -> dict[str, Any]:
        if task_run_id in self.runs:
            raise ApiError(
                400,
                "INVALID_PARAMETER_VALUE",
                "Retrieving the output of runs with multiple tasks is not supported. Please retrieve the "
                "output of each individual task run instead.",
            )
        run = next((r for r in self.runs.values() if r.task_run_id == task_run_id), None)
        if run is None:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Run {task_run_id} does not exist.")
        output: dict[str, Any] = {"metadata": self._get_run(run.run_id)}
        if run.result_state == "FAILED":
            stderr = (self.root / "runs" / str(run.run_id) / "stderr").read_text(errors="replace")
            trace = (
                stderr[stderr.rfind("Traceback (most recent call last):") :]
                if "Traceback" in stderr
                else stderr
            )
            lines = [line for line in trace.splitlines() if line.strip()]
            output["error"] = lines[-1] if lines else "the task exited with an error"
            output["error_trace"] = trace[-20_000:]
        return output

    def _cancel(self, run_id: int) -> None:
        with self._lock:
            run = self._run(run_id)
            if run.life_cycle_state in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
                return
            run.cancel_requested = True
        self._kill(run)

    @staticmethod
    def _kill(run: FakeRun) -> None:
        if run.process is None or run.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(run.process.pid, sig)
                run.process.wait(wait_s)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue
