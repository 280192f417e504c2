"""From drift statistics to decisions: column severity, dataset verdict, performance drop, action.

Statistics alone do not tell anyone what to do. This module turns them into three graded levels and one
action, with every threshold configurable and every rule stated in code:

- column severity none/warn/critical: PSI is the primary signal; the Jensen-Shannon distance, a jump of
  the null rate and values outside the reference range can each raise it too (a null spike or a unit
  change may leave the PSI of the remaining values untouched);
- dataset data-drift level none/moderate/significant from the number and share of drifted columns;
- performance-drop level none/moderate/significant from a baseline and a current metric;
- the action: an explicit table ``ACTION_MATRIX`` over (data drift, performance drop).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from mlops_assets.monitoring.cbpe import PerformanceEstimate
from mlops_assets.monitoring.drift_stats import DriftResult


class Severity(StrEnum):
    NONE = "none"
    WARN = "warn"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.NONE: 0, Severity.WARN: 1, Severity.CRITICAL: 2}


class Level(StrEnum):
    """A graded level shared by dataset data drift and performance drop.

    ``PENDING`` is for performance only: the day's labels have not arrived yet, so no drop is known either way.
    """

    NONE = "none"
    MODERATE = "moderate"
    SIGNIFICANT = "significant"
    PENDING = "pending"


class Action(StrEnum):
    NO_ACTION = "NO_ACTION"
    MONITOR = "MONITOR"
    INVESTIGATE = "INVESTIGATE"
    RETRAIN = "RETRAIN"
    RETRAIN_URGENT = "RETRAIN_URGENT"

    @property
    def rank(self) -> int:
        return list(Action).index(self)


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds of column severity and of the dataset verdict; a statistic at or above a bound trips it.

    PSI 0.1 / 0.25 are the industry-standard "some shift" / "major shift" bounds. The JS bounds (base 2)
    sit slightly looser than the PSI ones (for small shifts JS ~ sqrt(PSI / 5.5), so 0.15 ~ PSI 0.12):
    JS is a second opinion that stays finite when PSI is inflated by an almost-empty bin. KS and the
    chi-square p-value are off by default: at production volumes their significance tests flag
    differences far too small to matter; set them to use them.

    ``noise_quantile``: each bound is raised to the statistic's noise floor at the day's sample size (its
    no-drift quantile, see ``noise_floor.py``) when the floor is higher, so a small day does not warn on
    chance alone; None grades against the fixed bounds only.
    """

    psi_warn: float = 0.1
    psi_critical: float = 0.25
    js_warn: float | None = 0.15
    js_critical: float | None = 0.25
    ks_warn: float | None = None
    ks_critical: float | None = None
    chi2_p_value_warn: float | None = None
    # Absolute change of the share of nulls (0.02 = two percentage points).
    null_rate_change_warn: float | None = 0.02
    null_rate_change_critical: float | None = 0.10
    # Share of current non-null values outside the reference [min, max].
    out_of_range_warn: float | None = 0.01
    out_of_range_critical: float | None = 0.05
    # Dataset verdict: a column "drifted" has severity warn or critical.
    dataset_moderate_share: float = 0.1
    dataset_significant_share: float = 0.3
    dataset_significant_critical_count: int = 3
    noise_quantile: float | None = 0.999

    def __post_init__(self) -> None:
        if self.noise_quantile is not None and not 0.5 <= self.noise_quantile < 1:
            raise ValueError(f"noise_quantile must be in [0.5, 1) or None, got {self.noise_quantile}")
        pairs = [
            ("psi", self.psi_warn, self.psi_critical),
            ("js", self.js_warn, self.js_critical),
            ("ks", self.ks_warn, self.ks_critical),
            ("null_rate_change", self.null_rate_change_warn, self.null_rate_change_critical),
            ("out_of_range", self.out_of_range_warn, self.out_of_range_critical),
            ("dataset_share", self.dataset_moderate_share, self.dataset_significant_share),
        ]
        for name, warn, critical in pairs:
            if warn is not None and critical is not None and warn > critical:
                raise ValueError(f"{name}: warn threshold {warn} above critical {critical}")


@dataclass(frozen=True)
class ColumnAssessment:
    """A column's drift result with its severity and the rules that set it."""

    result: DriftResult
    severity: Severity
    reasons: tuple[str, ...]

    @property
    def column(self) -> str:
        return self.result.column

    @property
    def drifted(self) -> bool:
        return self.severity is not Severity.NONE

    def to_dict(self) -> dict[str, Any]:
        return {"severity": str(self.severity), "reasons": list(self.reasons), **self.result.to_dict()}


def _grade(
    name: str,
    value: float | None,
    warn: float | None,
    critical: float | None,
    floor: float | None = None,
    n: int | None = None,
) -> tuple[Severity, str | None]:
    """The level ``value`` reaches; a bound below the noise ``floor`` (at ``n`` rows) is replaced by the floor,
    which ``value`` must then exceed."""
    if value is None or not math.isfinite(value):
        return Severity.NONE, None
    for level, bound in ((Severity.CRITICAL, critical), (Severity.WARN, warn)):
        if bound is None:
            continue
        if floor is not None and floor > bound:
            # Strictly above: the floor is a quantile, and a count-based statistic (the out-of-range share)
            # sits exactly on it far more often than 1 - quantile of the time.
            if value > floor:
                return level, f"{name}={value:.3g}>{floor:.3g} (noise floor at n={n}; threshold {bound:g})"
        elif value >= bound:
            return level, f"{name}={value:.3g}>={bound:g}"
    return Severity.NONE, None


def assess_column(result: DriftResult, thresholds: DriftThresholds | None = None) -> ColumnAssessment:
    """Severity of one column: the worst grade over all configured rules (against the noise floor the
    result carries, when ``thresholds.noise_quantile`` is set)."""
    t = thresholds or DriftThresholds()
    null_change = abs(result.null_rate_change) if result.null_rate_change is not None else None
    noise = result.noise_floor if t.noise_quantile is not None else None
    n = noise.current_n if noise is not None else None

    def floor(statistic: str) -> float | None:
        return getattr(noise, statistic) if noise is not None else None

    grades = [
        _grade("psi", result.psi, t.psi_warn, t.psi_critical, floor("psi"), n),
        _grade("js", result.js_distance, t.js_warn, t.js_critical, floor("js_distance"), n),
        _grade("ks", result.ks_statistic, t.ks_warn, t.ks_critical, floor("ks_statistic"), n),
        _grade(
            "null_rate_change",
            null_change,
            t.null_rate_change_warn,
            t.null_rate_change_critical,
            floor("null_rate_change"),
            result.current_rows,
        ),
        _grade(
            "out_of_range",
            result.out_of_range_rate,
            t.out_of_range_warn,
            t.out_of_range_critical,
            floor("out_of_range_rate"),
            n,
        ),
    ]
    p_value = result.chi2_p_value
    if t.chi2_p_value_warn is not None and p_value is not None and p_value < t.chi2_p_value_warn:
        grades.append((Severity.WARN, f"chi2_p={p_value:.3g}<{t.chi2_p_value_warn:g}"))
    severity = max((g for g, _ in grades), key=lambda s: s.rank, default=Severity.NONE)
    return ColumnAssessment(result, severity, tuple(r for _, r in grades if r is not None))


def _sort_key(a: ColumnAssessment) -> tuple[int, float, str]:
    return (-a.severity.rank, -(a.result.psi or 0.0), a.column)


@dataclass(frozen=True)
class DatasetSummary:
    """The dataset-level verdict: which columns drifted and how much that is."""

    columns: tuple[ColumnAssessment, ...]  # sorted: most severe first, then by PSI
    drifted_columns: tuple[str, ...]
    critical_columns: tuple[str, ...]
    drift_share: float
    level: Level
    reference_rows: int
    current_rows: int

    @property
    def n_columns(self) -> int:
        return len(self.columns)

    def most_drifted(self, n: int = 5) -> list[ColumnAssessment]:
        """The ``n`` most severe drifted columns (for histograms)."""
        return [a for a in self.columns if a.drifted][:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": str(self.level),
            "drift_share": self.drift_share,
            "drifted_columns": list(self.drifted_columns),
            "critical_columns": list(self.critical_columns),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "columns": [a.to_dict() for a in self.columns],
        }


# The model's score is a key column of every drift report: prediction drift is the most direct signal that the
# model now sees something else, so the score going critical makes the day's data drift significant on its
# own, whatever the other columns do.
SCORE_COLUMN = "score"
KEY_COLUMNS = (SCORE_COLUMN,)


def dataset_level(
    n_columns: int,
    n_drifted: int,
    n_critical: int,
    thresholds: DriftThresholds | None = None,
    critical_key_column: bool = False,
) -> Level:
    """Data drift level of a dataset from its counts of drifted (warn or critical) and critical columns.

    significant: share drifted >= dataset_significant_share, or at least dataset_significant_critical_count
    critical columns, or a critical key column (e.g. the model score); moderate: share drifted >=
    dataset_moderate_share or any critical column; else none.
    """
    t = thresholds or DriftThresholds()
    share = n_drifted / n_columns if n_columns else 0.0
    if share >= t.dataset_significant_share or n_critical >= t.dataset_significant_critical_count:
        return Level.SIGNIFICANT
    if critical_key_column:
        return Level.SIGNIFICANT
    if share >= t.dataset_moderate_share or n_critical > 0:
        return Level.MODERATE
    return Level.NONE


def summarize_dataset(
    results: Iterable[DriftResult],
    thresholds: DriftThresholds | None = None,
    key_columns: Sequence[str] = (),
) -> DatasetSummary:
    """Assess every column and grade the dataset; ``key_columns`` going critical makes it significant."""
    t = thresholds or DriftThresholds()
    assessed = sorted((assess_column(r, t) for r in results), key=_sort_key)
    drifted = tuple(a.column for a in assessed if a.drifted)
    critical = tuple(a.column for a in assessed if a.severity is Severity.CRITICAL)
    level = dataset_level(
        len(assessed), len(drifted), len(critical), t, bool(set(critical) & set(key_columns))
    )
    return DatasetSummary(
        columns=tuple(assessed),
        drifted_columns=drifted,
        critical_columns=critical,
        drift_share=len(drifted) / len(assessed) if assessed else 0.0,
        level=level,
        reference_rows=max((a.result.reference_rows for a in assessed), default=0),
        current_rows=max((a.result.current_rows for a in assessed), default=0),
    )


# --- performance and action -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerformanceThresholds:
    """Margins of the performance-drop level; a drop at or above a margin trips it.

    ``relative``: margins are fractions of the baseline (0.05 = 5 % worse) rather than metric units.
    ``higher_is_better``: False for losses and errors (log loss, RMSE), where an increase is a drop.
    """

    moderate_margin: float = 0.02
    significant_margin: float = 0.05
    higher_is_better: bool = True
    relative: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.moderate_margin <= self.significant_margin:
            raise ValueError("need 0 <= moderate_margin <= significant_margin")


def performance_drop(
    baseline: float, current: float, thresholds: PerformanceThresholds | None = None
) -> float:
    """How much worse current is than baseline, positive when worse, in the thresholds' units."""
    t = thresholds or PerformanceThresholds()
    drop = baseline - current if t.higher_is_better else current - baseline
    if t.relative:
        return drop / abs(baseline) if baseline != 0 else (math.inf if drop > 0 else 0.0)
    return drop


def performance_drop_level(
    baseline: float | None, current: float | None, thresholds: PerformanceThresholds | None = None
) -> Level:
    """Performance-drop level; pending while either metric is unknown (labels arrive later than features)."""
    t = thresholds or PerformanceThresholds()
    if baseline is None or current is None or not (math.isfinite(baseline) and math.isfinite(current)):
        return Level.PENDING
    drop = performance_drop(baseline, current, t)
    if drop >= t.significant_margin:
        return Level.SIGNIFICANT
    if drop >= t.moderate_margin:
        return Level.MODERATE
    return Level.NONE


# Rows: data drift level; columns: performance drop level. Read as "what do we do on Monday".
# Drift without a performance drop is a warning sign, not a reason to retrain (the model may be robust to
# it); a performance drop without drift points at concept drift or a label problem, so look first unless
# it is large; any significant drop retrains, and both significant retrains urgently.
# Labels pending (a churn label closes 30 days after the scoring day): act on the data alone. A significant
# shift retrains at once -- the retrain is gated, so a worse challenger is refused -- rather than scoring a
# month of shifted inputs unchecked; when the labels arrive and show no drop, the same drift is downgraded to
# INVESTIGATE (the model held up).
ACTION_MATRIX: Mapping[tuple[Level, Level], Action] = MappingProxyType(
    {
        # (data drift,       performance drop):  action
        (Level.NONE, Level.NONE): Action.NO_ACTION,
        (Level.MODERATE, Level.NONE): Action.MONITOR,
        (Level.SIGNIFICANT, Level.NONE): Action.INVESTIGATE,
        (Level.NONE, Level.MODERATE): Action.INVESTIGATE,
        (Level.MODERATE, Level.MODERATE): Action.RETRAIN,
        (Level.SIGNIFICANT, Level.MODERATE): Action.RETRAIN,
        (Level.NONE, Level.SIGNIFICANT): Action.RETRAIN,
        (Level.MODERATE, Level.SIGNIFICANT): Action.RETRAIN,
        (Level.SIGNIFICANT, Level.SIGNIFICANT): Action.RETRAIN_URGENT,
        (Level.NONE, Level.PENDING): Action.NO_ACTION,
        (Level.MODERATE, Level.PENDING): Action.MONITOR,
        (Level.SIGNIFICANT, Level.PENDING): Action.RETRAIN,
    }
)


def recommend_action(data_drift: Level, performance: Level, estimated: Level | None = None) -> Action:
    """The matrix's action; while labels are pending, a label-free ``estimated`` drop level (CBPE) may
    escalate it as a measured drop would, but never lower it: the estimate cannot see a concept shift."""
    action = ACTION_MATRIX[(Level(data_drift), Level(performance))]
    if (
        Level(performance) is Level.PENDING
        and estimated is not None
        and Level(estimated) is not Level.PENDING
    ):
        action = max(action, ACTION_MATRIX[(Level(data_drift), Level(estimated))], key=lambda a: a.rank)
    return action


@dataclass(frozen=True)
class DriftReport:
    """Everything a monitoring run decides: the dataset summary, the performance drop and the action."""

    summary: DatasetSummary
    performance_level: Level
    action: Action
    metric_name: str = "metric"
    baseline_metric: float | None = None
    current_metric: float | None = None
    # The label-free estimate of the metric (CBPE) and the drop level it implies; None without calibration.
    estimate: PerformanceEstimate | None = None
    estimated_level: Level | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "data_drift_level": str(self.summary.level),
            "performance_level": str(self.performance_level),
            "metric_name": self.metric_name,
            "baseline_metric": self.baseline_metric,
            "current_metric": self.current_metric,
            "estimate": self.estimate.to_dict() if self.estimate is not None else None,
            "estimated_level": str(self.estimated_level) if self.estimated_level is not None else None,
            "summary": self.summary.to_dict(),
        }

    def figures(self) -> dict[str, float | int]:
        """The numbers users plot over days (max PSI, column counts, the metric): absent ones left out."""
        psis = [a.result.psi for a in self.summary.columns if a.result.psi is not None]
        figures: dict[str, float | int] = {
            "max_psi": round(max(psis), 4) if psis else 0.0,
            "critical_column_count": len(self.summary.critical_columns),
            "drifted_column_count": len(self.summary.drifted_columns),
            "drift_share": round(self.summary.drift_share, 4),
            "current_rows": self.summary.current_rows,
        }
        if self.baseline_metric is not None:
            figures[f"baseline_{self.metric_name}"] = round(self.baseline_metric, 4)
        if self.current_metric is not None:
            figures[f"current_{self.metric_name}"] = round(self.current_metric, 4)
        if self.estimate is not None:
            figures[f"estimated_{self.metric_name}"] = round(self.estimate.estimate, 4)
            figures[f"estimated_{self.metric_name}_lower"] = round(self.estimate.lower, 4)
            figures[f"estimated_{self.metric_name}_upper"] = round(self.estimate.upper, 4)
        return figures


def build_report(
    summary: DatasetSummary,
    baseline_metric: float | None = None,
    current_metric: float | None = None,
    metric_name: str = "metric",
    performance_thresholds: PerformanceThresholds | None = None,
    estimate: PerformanceEstimate | None = None,
) -> DriftReport:
    level = performance_drop_level(baseline_metric, current_metric, performance_thresholds)
    estimated_level = (
        performance_drop_level(baseline_metric, estimate.estimate, performance_thresholds)
        if estimate is not None
        else None
    )
    return DriftReport(
        summary=summary,
        performance_level=level,
        action=recommend_action(summary.level, level, estimated_level),
        metric_name=metric_name,
        baseline_metric=baseline_metric,
        current_metric=current_metric,
        estimate=estimate,
        estimated_level=estimated_level,
    )
