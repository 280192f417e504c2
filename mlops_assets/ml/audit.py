"""The promotion audit table, ``ml/promotion_audit``: every promotion, refusal and rollback, appended, never
rewritten. The rules that read it (``plan_promotion``, ``rollback_target``) are in ``promotion_ledger``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mlops_assets.lakehouse.catalog import PROMOTION_AUDIT
from mlops_assets.ml.promotion_ledger import AuditRecord

if TYPE_CHECKING:
    from mlops_assets.lakehouse.delta_io import DeltaLakehouse

AUDIT_SCHEMA = (
    "model_name string, decision string, from_version string, to_version string, reasons array<string>, "
    "decided_at timestamp, dagster_run_id string"
)


def append_audit(
    delta: DeltaLakehouse,
    model_name: str,
    decision: str,
    from_version: str | None,
    to_version: str | None,
    reasons: list[str],
    run_id: str,
) -> None:
    """Every promotion, refusal and rollback, appended (never rewritten)."""
    row = (model_name, decision, from_version, to_version, reasons, datetime.now(UTC), run_id)
    delta.append(delta.spark.createDataFrame([row], AUDIT_SCHEMA), PROMOTION_AUDIT)


def read_audit(delta: DeltaLakehouse, model_name: str) -> list[AuditRecord]:
    """The model's ledger rows (none before the first decision)."""
    if not delta.exists(PROMOTION_AUDIT):
        return []
    table = delta.read(PROMOTION_AUDIT)
    rows = table.where(table["model_name"] == model_name).collect()
    return [
        AuditRecord(r["decision"], r["from_version"], r["to_version"], r["dagster_run_id"], r["decided_at"])
        for r in rows
    ]
