"""Undo a bad overwrite: restore a Delta table to an earlier version, with an audit row.

Delta keeps every version of a table until it is vacuumed, so a bad gold overwrite (a wrong model, a bad
backfill) is undone by one ``RESTORE`` commit, itself a new version that can be undone again. Who restored
what, from which version to which, and why, goes to ``monitoring/table_restores``.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from datetime import UTC, datetime

from mlops_assets.lakehouse.catalog import TABLE_RESTORES
from mlops_assets.lakehouse.delta_io import DeltaLakehouse, HistoryEntry
from mlops_assets.lakehouse.tables import TableRef

RESTORES_SCHEMA = (
    "table string, from_version long, to_version long, restore_commit long, rows_before long, "
    "rows_after long, restored_by string, reason string, restored_at timestamp"
)


class RestoreError(ValueError):
    """A restore that cannot be done; the message names the argument (``--table`` or ``--version``)."""


@dataclass(frozen=True)
class RestoreResult:
    table: TableRef
    from_version: int
    to_version: int
    restore_commit: int
    rows_before: int
    rows_after: int


def parse_table(name: str) -> TableRef:
    """``layer.name`` or ``layer/name`` (as the asset key reads) to a TableRef."""
    parts = name.replace("/", ".").split(".")
    if len(parts) != 2:
        raise RestoreError(f"--table {name!r}: expected <layer>.<name>, e.g. gold.fct_usage_daily")
    try:
        return TableRef(*parts)
    except ValueError as error:
        raise RestoreError(f"--table {name!r}: {error}") from None


def table_history(delta: DeltaLakehouse, name: str) -> tuple[TableRef, list[HistoryEntry]]:
    ref = parse_table(name)
    if not delta.exists(ref):
        raise RestoreError(f"--table {name!r}: no Delta table at {delta.locator.path(ref)}")
    return ref, delta.history(ref)


def restore_table(delta: DeltaLakehouse, name: str, version: int, reason: str) -> RestoreResult:
    """Restore ``name`` to ``version`` (one atomic commit) and audit it; errors change nothing."""
    ref, history = table_history(delta, name)
    current = history[0].version
    versions = sorted(e.version for e in history)
    if version not in versions:
        raise RestoreError(
            f"--version {version}: {ref} has versions {versions[0]}..{current}; "
            f"see `python -m mlops_assets.cli history --table {ref}`"
        )
    if version == current:
        raise RestoreError(f"--version {version}: that is {ref}'s current version; nothing to restore")
    rows_before = delta.read(ref).count()
    commit = delta.restore(ref, version, user_metadata=f"restore to v{version}: {reason}")
    rows_after = delta.read(ref).count()
    row = [
        (
            str(ref),
            current,
            version,
            commit.version,
            rows_before,
            rows_after,
            getpass.getuser(),
            reason,
            datetime.now(UTC),
        )
    ]
    delta.append(delta.spark.createDataFrame(row, RESTORES_SCHEMA), TABLE_RESTORES)
    return RestoreResult(ref, current, version, commit.version, rows_before, rows_after)


def history_table(entries: list[HistoryEntry], limit: int = 20) -> str:
    """The newest commits as a small text table, to pick the version to restore."""
    lines = [f"{'version':>7}  {'timestamp':19}  {'operation':18}  {'rows':>9}  note"]
    for e in entries[:limit]:
        rows = "" if e.num_output_rows is None else f"{e.num_output_rows:,}"
        note = (e.user_metadata or "")[:60]
        lines.append(f"{e.version:>7}  {e.timestamp:%Y-%m-%d %H:%M:%S}  {e.operation:18}  {rows:>9}  {note}")
    return "\n".join(lines)
