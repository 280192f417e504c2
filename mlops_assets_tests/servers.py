"""Processes tests start and watch: servers on a free loopback port, readiness, whole process groups, liveness."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll condition until it returns something truthy (returned), or fail naming what was awaited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out waiting for {what}")


def process_alive(pid: int) -> bool:
    """Whether pid runs (a zombie, exited but not reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in "ZX"


def dbt_builds(root_pid: int) -> list[int]:
    """Pids of `dbt build` processes started (at any depth) by root_pid."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
            stat = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if any(a.endswith((b"dbt-with-parent", b"/dbt")) for a in args) and b"build" in args:
            pid, ppid = int(cmdline.parent.name), int(stat[1])
            if ppid == root_pid:
                found.append(pid)
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, accept: Callable[[bytes], bool], timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{process.args} exited with {process.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if accept(response.read()):
                    return
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url} not ready within {timeout_s}s")


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process' group (started with start_new_session), SIGKILL what is left after 20 s."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def code_locations_loaded(port: int) -> Callable[[bytes], bool]:
    """Readiness of a Dagster webserver: every code location LOADED, asked through its GraphQL API."""
    query = json.dumps(
        {"query": "{ workspaceOrError { ... on Workspace { locationEntries { loadStatus } } } }"}
    )

    def loaded(_: bytes) -> bool:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=query.encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    return loaded
