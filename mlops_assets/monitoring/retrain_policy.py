"""When a drift report launches a retrain: the decision rules of the retraining sensor, without Dagster.

The sensor collects the facts (each day's verdict, the recent retrain runs, the features' latest
materialization) and turns the launches into run requests; every rule, and the words that explain each
decision in the tick log, are here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from mlops_assets.monitoring.verdict import DayVerdict


@dataclass(frozen=True)
class RetrainHistory:
    """The drift retrains the guardrails look at: ``window_data_versions`` / ``window_count`` over the
    guardrail window, ``last_training_data`` of the newest one, ``in_cooldown`` when one started within the
    cooldown."""

    in_cooldown: bool
    window_count: int
    window_data_versions: frozenset[str | None]
    last_training_data: str | None


@dataclass(frozen=True)
class RetrainLimits:
    cooldown_hours: float
    max_retrains: int
    window_days: int


@dataclass(frozen=True)
class RetrainDecision:
    """One report's decision; ``launch`` with the run key that makes a report launch at most once."""

    day: str
    verdict: DayVerdict
    launch: bool
    run_key: str
    explanation: str


def decide_retrains(
    reports: Iterable[tuple[str, DayVerdict]],
    history: RetrainHistory,
    limits: RetrainLimits,
    training_data_version: str | None = None,
) -> list[RetrainDecision]:
    """Which reports launch a retrain, and why the others do not; newest report first.

    One run key per report (partition + data version), so a report seen twice launches once; at most one
    launch per call (a run of critical days retrains once, for the newest). ``training_data_version``
    identifies the data a retrain would learn from now (the features' latest materialization): equal to the
    last retrain's means retraining would only repeat it.
    """
    decisions: list[RetrainDecision] = []
    launched_for = None
    for day, report in sorted(reports, key=lambda item: item[0], reverse=True):
        key = f"drift-{day}-{report.data_version}"
        action = str(report.action)
        launch = False
        if not report.recommends_retrain:
            why = f"{day}: {action} -> no retrain needed"
        elif launched_for is not None:
            why = f"{day}: {action} -> covered by the retrain launched for {launched_for} in this tick"
        elif report.data_version in history.window_data_versions:
            why = f"{day}: {action} -> skipped: this report already launched a retrain ({key})"
        elif training_data_version is not None and training_data_version == history.last_training_data:
            why = (
                f"{day}: {action} -> skipped: training data unchanged since the last retrain "
                f"(features materialization {training_data_version})"
            )
        elif history.in_cooldown:
            why = f"{day}: {action} -> skipped: cooldown of {limits.cooldown_hours} h since the last retrain"
        elif history.window_count >= limits.max_retrains:
            why = (
                f"{day}: {action} -> skipped: {history.window_count} retrains in {limits.window_days} days "
                f"(max {limits.max_retrains})"
            )
        else:
            launch, launched_for = True, day
            why = f"{day}: {action} -> LAUNCHED retraining (run key {key})"
        decisions.append(RetrainDecision(day, report, launch, key, why))
    return decisions
