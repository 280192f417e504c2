"""Every server the project starts listens on 127.0.0.1 only: read from the kernel's socket table
(``/proc/net/tcp*`` joined with each process' open sockets), not assumed from the command line.

`make dev` (webserver, daemon, code server), `make mlflow` and the Spark driver of a run are started the
way users start them; the detector itself is tested on a socket bound to every interface.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mlops_assets_tests.servers import code_locations_loaded, free_port, stop_process_group, wait_for

pytestmark = pytest.mark.security

PROJECT = Path(__file__).resolve().parent.parent
_LISTEN = "0A"  # TCP state LISTEN in /proc/net/tcp


def _descendants(root: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return tree


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue  # the process ended, or is not ours to read
    return inodes


def _address(hex_address: str) -> str:
    """/proc/net/tcp's little-endian hex address as text (IPv4 or IPv6)."""
    raw = bytes.fromhex(hex_address)
    swapped = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(swapped))


def listening_addresses(root_pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket in LISTEN state held by root_pid or any descendant."""
    inodes = _socket_inodes(_descendants(root_pid))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


@contextmanager
def _make(target: str, dagster_home: Path, **variables: str) -> Iterator[subprocess.Popen]:
    """Run `make <target>` as users do, in its own process group, stopped (whole group) at the end.

    Its own DAGSTER_HOME, so its daemon never sees the suite's runs."""
    args = ["make", "-s", target, *(f"{k}={v}" for k, v in variables.items())]
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    process = subprocess.Popen(args, cwd=PROJECT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        yield process
    finally:
        stop_process_group(process)


def _assert_loopback_only(pid: int, must_include: int | None = None) -> set[tuple[str, int]]:
    listening = listening_addresses(pid)
    assert listening, "no listening socket found: the detector looked at the wrong processes"
    exposed = {(a, p) for a, p in listening if not _loopback(a)}
    assert not exposed, f"listening beyond loopback: {sorted(exposed)}"
    if must_include is not None:
        assert must_include in {p for _, p in listening}
    return listening


def test_the_detector_sees_a_socket_bound_to_every_interface():
    with socket.socket() as exposed, socket.socket() as local:
        exposed.bind(("0.0.0.0", 0))
        exposed.listen()
        local.bind(("127.0.0.1", 0))
        local.listen()
        found = listening_addresses(os.getpid())
        assert ("0.0.0.0", exposed.getsockname()[1]) in found
        assert ("127.0.0.1", local.getsockname()[1]) in found
    assert not _loopback("0.0.0.0") and _loopback("::1") and _loopback("::ffff:127.0.0.1")


def test_the_spark_driver_listens_on_loopback_only(spark):
    assert spark.range(3).count() == 3  # driver RPC and block manager are up
    listening = _assert_loopback_only(os.getpid())
    assert len(listening) >= 2, listening  # driver RPC + block manager (the Spark UI is off)


def test_make_dev_listens_on_loopback_only(tmp_path):
    """The webserver, the daemon and the code server dagster dev starts, once the code location loaded."""
    port = free_port()
    with _make("dev", tmp_path / "dagster_home", DAGSTER_PORT=str(port)) as process:
        wait_for(f"http://127.0.0.1:{port}/server_info", code_locations_loaded(port), 300, process)
        # The webserver's port; the daemon and code server are in the same tree (gRPC over a local socket).
        _assert_loopback_only(process.pid, must_include=port)
        assert len(_descendants(process.pid)) >= 4  # make, dagster dev, webserver, daemon, code server


def test_make_mlflow_listens_on_loopback_only(tmp_path):
    port = free_port()
    with _make("mlflow", tmp_path / "dagster_home", MLFLOW_PORT=str(port)) as process:
        wait_for(f"http://127.0.0.1:{port}/health", lambda body: b"OK" in body, 180, process)
        _assert_loopback_only(process.pid, must_include=port)
