"""Files written whole or not at all: the landing files the source drops and the contact lists the lakehouse
hands back to it. No Dagster, no Spark."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename: readers see the old file or the new one.

    The temp file's name carries the writer's pid, so a writer killed before its rename (SIGKILL runs no
    cleanup) leaves a file the next write of the same path recognises as orphaned and removes; a live
    concurrent writer's temp file is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for orphan in path.parent.glob(f".{path.name}.*.tmp"):
        if not _writer_alive(orphan):
            with contextlib.suppress(FileNotFoundError):
                orphan.unlink()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _writer_alive(temp: Path) -> bool:
    """Whether the process that named this temp file (``.<file>.<pid>.<random>.tmp``) still runs."""
    try:
        pid = int(temp.name.removesuffix(".tmp").rsplit(".", 2)[-2])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
