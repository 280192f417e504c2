"""The service's request log: JSON lines a Dagster asset ingests into the Delta inference table.

The server never opens Spark. Each process appends to its own ``<host>-<pid>-<start>.jsonl.open`` file and
renames it to ``.jsonl`` when it closes it (every ``rotate_seconds`` and on shutdown): a closed file never
changes again, so ingestion takes closed files whole, once each, by name. A file left ``.open`` by a killed
server is closed by the next ingestion once it is older than ``STALE_OPEN_SECONDS``.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

OPEN_SUFFIX = ".jsonl.open"
CLOSED_SUFFIX = ".jsonl"
STALE_OPEN_SECONDS = 600


@dataclass(frozen=True)
class LogRecord:
    """One (request, entity, arm): what the inference table stores per row."""

    request_id: str
    logged_at: str  # ISO 8601, UTC
    entity: str | None
    as_of: str | None
    arm: str | None
    served: bool
    model_name: str
    model_version: str | None
    rollout_id: str | None
    score: float | None
    predicted_label: int | None
    latency_ms: float
    status: int
    error: str | None
    features: str | None  # JSON of the contract's features as received

    @classmethod
    def refusal(
        cls,
        request_id: str,
        model_name: str,
        rollout_id: str | None,
        latency_ms: float,
        status: int,
        error: str,
    ) -> LogRecord:
        """A request answered with an error before any model scored it (no entity, no features kept)."""
        return cls(
            request_id, datetime.now(UTC).isoformat(), None, None, None, False, model_name, None, rollout_id,
            None, None, latency_ms, status, error, None,
        )  # fmt: skip

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), allow_nan=False)


class RequestLogWriter:
    """Appends records; thread-safe; rotation by a background thread so no request waits on a rename."""

    def __init__(self, directory: str | Path, rotate_seconds: float = 10.0) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rotate_seconds = rotate_seconds
        self._prefix = f"{socket.gethostname()}-{os.getpid()}"
        self._lock = threading.Lock()
        self._file = None
        self._path: Path | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._rotate_loop, name="request-log-rotation", daemon=True)
        self._thread.start()

    def write(self, records: list[LogRecord]) -> None:
        lines = "".join(r.to_json() + "\n" for r in records)
        with self._lock:
            if self._file is None:
                self._path = self.directory / f"{self._prefix}-{time.time_ns()}{OPEN_SUFFIX}"
                self._file = open(self._path, "a", encoding="utf-8")  # noqa: SIM115 (kept open until rotation)
            self._file.write(lines)

    def rotate(self) -> Path | None:
        """Close the current file (fsync, then rename to ``.jsonl``); the next write opens a new one."""
        with self._lock:
            if self._file is None or self._path is None:
                return None
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            closed = self._path.with_name(self._path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX)
            os.replace(self._path, closed)
            self._file, self._path = None, None
            return closed

    def _rotate_loop(self) -> None:
        while not self._stop.wait(self.rotate_seconds):
            self.rotate()

    def close(self) -> None:
        self._stop.set()
        self.rotate()


def close_stale_files(directory: str | Path, now: float | None = None) -> list[Path]:
    """Rename ``.open`` files no live writer has touched for ``STALE_OPEN_SECONDS`` (a killed server's), so
    their complete lines get ingested; a torn last line is dropped by the reader as malformed."""
    now = time.time() if now is None else now
    closed = []
    for path in Path(directory).glob(f"*{OPEN_SUFFIX}"):
        if now - path.stat().st_mtime > STALE_OPEN_SECONDS:
            target = path.with_name(path.name[: -len(OPEN_SUFFIX)] + CLOSED_SUFFIX)
            os.replace(path, target)
            closed.append(target)
    return closed


def request_log_dir(lakehouse_root: str) -> str:
    """Where the service writes and the ingestion asset reads (beside the lakehouse's tables)."""
    return str(Path(lakehouse_root) / "_serving" / "request_log")
