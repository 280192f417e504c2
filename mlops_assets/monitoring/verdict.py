"""One day's drift verdict, in one type: what the report decided, as a Delta row and as run metadata.

The drift report writes it (a row of ``monitoring/drift_reports`` and the ``verdict`` metadata of the day's
materialization); the ``drift_severity`` check, the retraining sensor, the CLI and the tests read it back
through ``from_row`` / ``from_metadata`` instead of each rebuilding their own dict. ``overall_level`` is the
one rule that grades several days: the worst day's data-drift level as the report graded that day, so the
check can never disagree with the report it checks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mlops_assets.monitoring.severity import Action, DriftReport, Level

# The columns of ``monitoring/drift_reports``, in ``DayVerdict.to_row`` order.
ROW_SCHEMA = (
    "_partition_date date, model_name string, model_version string, action string, data_drift_level string, "
    "performance_level string, drifted_columns array<string>, critical_columns array<string>, "
    "baseline_roc_auc double, current_roc_auc double, data_version string, report_json string, "
    "reported_at timestamp"
)

_DATA_DRIFT_RANK = {Level.NONE: 0, Level.MODERATE: 1, Level.SIGNIFICANT: 2}


@dataclass(frozen=True)
class DayVerdict:
    """What one day's drift report decided, and from which data (``data_version``: model version, scoring
    time, labels pending or in; a re-score or the labels arriving make a new verdict)."""

    day: date
    model_name: str | None
    model_version: str
    action: Action
    data_drift_level: Level
    performance_level: Level
    drifted_columns: tuple[str, ...]
    critical_columns: tuple[str, ...]
    baseline_roc_auc: float | None
    current_roc_auc: float | None
    data_version: str

    @classmethod
    def of(
        cls, day: date, model_name: str, model_version: str, report: DriftReport, data_version: str
    ) -> DayVerdict:
        summary = report.summary
        return cls(
            day=day,
            model_name=model_name,
            model_version=model_version,
            action=report.action,
            data_drift_level=summary.level,
            performance_level=report.performance_level,
            drifted_columns=tuple(summary.drifted_columns),
            critical_columns=tuple(summary.critical_columns),
            baseline_roc_auc=report.baseline_metric,
            current_roc_auc=report.current_metric,
            data_version=data_version,
        )

    @property
    def recommends_retrain(self) -> bool:
        return self.action in (Action.RETRAIN, Action.RETRAIN_URGENT)

    def to_row(self, report_json: str, reported_at: datetime) -> tuple:
        """A row of ``ROW_SCHEMA``: the verdict, the full report as JSON and when it was written."""
        return (
            self.day,
            self.model_name,
            self.model_version,
            str(self.action),
            str(self.data_drift_level),
            str(self.performance_level),
            list(self.drifted_columns),
            list(self.critical_columns),
            self.baseline_roc_auc,
            self.current_roc_auc,
            self.data_version,
            report_json,
            reported_at,
        )

    @classmethod
    def from_row(cls, row: Any) -> DayVerdict:
        """From a ``ROW_SCHEMA`` row (a Spark ``Row`` or any mapping by column name)."""
        return cls(
            day=row["_partition_date"],
            model_name=row["model_name"],
            model_version=row["model_version"],
            action=Action(row["action"]),
            data_drift_level=Level(row["data_drift_level"]),
            performance_level=Level(row["performance_level"]),
            drifted_columns=tuple(row["drifted_columns"] or ()),
            critical_columns=tuple(row["critical_columns"] or ()),
            baseline_roc_auc=row["baseline_roc_auc"],
            current_roc_auc=row["current_roc_auc"],
            data_version=row["data_version"],
        )

    def to_metadata(self) -> dict[str, Any]:
        """JSON-compatible: the ``verdict`` metadata of the day's materialization."""
        return {
            "day": self.day.isoformat(),
            "action": str(self.action),
            "data_drift_level": str(self.data_drift_level),
            "performance_level": str(self.performance_level),
            "critical_columns": list(self.critical_columns),
            "drifted_columns": list(self.drifted_columns),
            "baseline_roc_auc": self.baseline_roc_auc,
            "current_roc_auc": self.current_roc_auc,
            "data_version": self.data_version,
            "model_name": self.model_name,
            "model_version": self.model_version,
        }

    @classmethod
    def from_metadata(cls, value: Mapping[str, Any], partition: str | None = None) -> DayVerdict:
        """From ``to_metadata``'s dict. Materializations written before the day, model name and ROC-AUCs were
        in it carry the day only as their partition: pass it."""
        day = value.get("day", partition)
        if day is None:
            raise ValueError("drift verdict without a day: pass the materialization's partition")
        return cls(
            day=date.fromisoformat(day),
            model_name=value.get("model_name"),
            model_version=value["model_version"],
            action=Action(value["action"]),
            data_drift_level=Level(value["data_drift_level"]),
            performance_level=Level(value["performance_level"]),
            drifted_columns=tuple(value["drifted_columns"]),
            critical_columns=tuple(value["critical_columns"]),
            baseline_roc_auc=value.get("baseline_roc_auc"),
            current_roc_auc=value.get("current_roc_auc"),
            data_version=value["data_version"],
        )


def overall_level(verdicts: Iterable[DayVerdict]) -> Level:
    """The data-drift level of several days: the worst day's level, as that day's report graded it
    (``severity.dataset_level``). Never re-graded from the columns, so a check over the days cannot disagree
    with the reports it checks."""
    levels = [v.data_drift_level for v in verdicts]
    return max(levels, key=_DATA_DRIFT_RANK.__getitem__, default=Level.NONE)
