"""dbt that dies with the run that started it.

dagster-dbt runs dbt as a child process of the run's worker. When the worker is killed (SIGKILL, OOM), an
ordinary child runs on as an orphan: it keeps rewriting gold with no materialization recorded and holds
Derby's metastore lock while the run is re-run. On Linux a process can ask the kernel for a signal when its
parent thread exits (``PR_SET_PDEATHSIG``); the flag survives ``exec``, so a tiny launcher sets it and then
becomes the real dbt. dagster-dbt calls ``subprocess.Popen`` from the step's own thread, which lives until
dbt's output is consumed, so the signal comes only when the worker dies. dbt-spark's JVM is dbt's child and
exits when its stdin (dbt's pipe) closes.

``DbtCliResource(dbt_executable=...)`` needs one executable path: the launcher is the package's console
script ``dbt-with-parent`` (pyproject ``[project.scripts]``), installed into the venv beside dbt.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
SHIM_NAME = "dbt-with-parent"


def real_dbt() -> Path:
    return Path(sys.executable).parent / "dbt"


def die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # the parent died before the flag was set
        os._exit(1)


def main() -> None:
    """Entry point of the launcher script: set the flag, then exec dbt with the same arguments."""
    die_with_parent()
    dbt = str(real_dbt())
    os.execv(dbt, [dbt, *sys.argv[1:]])


def dbt_executable() -> str:
    """The launcher (the ``dbt-with-parent`` console script this package installs beside dbt) on Linux; the
    plain dbt elsewhere, or when the launcher is not installed."""
    shim = Path(sys.executable).parent / SHIM_NAME
    if sys.platform.startswith("linux") and shim.is_file():
        return str(shim)
    return str(real_dbt())
