"""How often drift monitoring cries wolf, and whether it still sees real drift: a study on the synthetic source.

A monitor is only as good as its error rates. This replays the source's scenarios over several seeds and
grades every day the way the drift report does (the reference profile's bins, the noise floors, the
severity rules; the numpy twin of the Spark aggregation, which is tested to give the same counts):

- clean days (scenario ``none``), each cut down to ``rows_per_day`` rows: how many warn (data drift at
  least moderate, what the report turns into MONITOR) and how many go critical;
- each injected scenario at the source's full daily size: is exactly its drifted set of columns flagged?

Rows are the source's usage events joined to their customer's attributes (9 columns, numerical and
categorical), so a day looks like a small feature table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd

from mlops_assets.monitoring.drift_stats import current_counts_numpy
from mlops_assets.monitoring.noise_floor import drift_with_floors
from mlops_assets.monitoring.profile import ReferenceProfile, build_profile_pandas
from mlops_assets.monitoring.severity import DatasetSummary, DriftThresholds, Level, summarize_dataset
from mlops_assets.synthetic.config import SCENARIOS, DirtConfig, SourceConfig
from mlops_assets.synthetic.source import SyntheticSource

NUMERICAL = ("sessions", "minutes_used", "support_tickets", "age", "monthly_fee")
CATEGORICAL = ("device", "plan", "region", "acquisition_channel")
START = date(2026, 1, 1)
DRIFT_START = START + timedelta(days=60)
REFERENCE_DAYS = 21
DETECTION_DAY = 28  # days after drift_start: a gradual shift has grown most of the way by then
# A broken upstream export shows in the landing files, not the simulation: nulls are injected here instead.
NULL_SPIKE_SHARE = 0.4


@dataclass(frozen=True)
class NoiseStudy:
    """False warnings on clean small days and detection of every scenario, over ``seeds``."""

    rows_per_day: int
    seeds: tuple[int, ...]
    clean_days: int
    clean_warn_days: int
    clean_critical_days: int
    # scenario -> seeds on which exactly the scenario's drifted columns were flagged (and one went critical)
    detected: dict[str, int] = field(default_factory=dict)

    @property
    def clean_warn_rate(self) -> float:
        return self.clean_warn_days / self.clean_days if self.clean_days else 0.0

    @property
    def detection_rate(self) -> float:
        total = len(self.detected) * len(self.seeds)
        return sum(self.detected.values()) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "clean_warn_rate": self.clean_warn_rate,
            "detection_rate": self.detection_rate,
        }


def scenario_rows(
    scenario: str, seed: int, customers: int = 1500, days_after_start: int = 30
) -> pd.DataFrame:
    """Every usage event of the scenario's simulation with its customer's attributes, ``event_date`` a date."""
    source = SyntheticSource(
        SourceConfig(
            seed=seed,
            initial_customers=customers,
            scenario=scenario,
            start_date=START,
            drift_start=DRIFT_START,
            dirt=DirtConfig.clean(),
        )
    )
    sim = source.simulate(DRIFT_START + timedelta(days=days_after_start))
    attributes = sim.customers[["customer_id", "plan", "region", "age", "acquisition_channel", "monthly_fee"]]
    rows = sim.usage.merge(attributes.drop_duplicates("customer_id"), on="customer_id", how="left")
    rows["event_date"] = pd.to_datetime(rows["event_date"]).dt.date
    return rows


def reference_profile(rows: pd.DataFrame) -> ReferenceProfile:
    """The profile of the ``REFERENCE_DAYS`` days before the drift starts (the training window's stand-in)."""
    window = rows[
        (rows.event_date >= DRIFT_START - timedelta(days=REFERENCE_DAYS)) & (rows.event_date < DRIFT_START)
    ]
    return build_profile_pandas(window, list(NUMERICAL), list(CATEGORICAL))


def grade_day(profile: ReferenceProfile, day: pd.DataFrame, thresholds: DriftThresholds) -> DatasetSummary:
    """One day graded as the drift report grades it (binned counts, noise floors, severity rules)."""
    counts = {name: current_counts_numpy(col, day[name]) for name, col in profile.columns.items()}
    return summarize_dataset(
        drift_with_floors(profile, counts, thresholds.noise_quantile).values(), thresholds
    )


def _with_null_spike(day: pd.DataFrame, columns: Sequence[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    day = day.copy()
    for column in columns:
        day.loc[rng.random(len(day)) < NULL_SPIKE_SHARE, column] = np.nan
    return day


def scenario_flags(scenario: str, seed: int, thresholds: DriftThresholds) -> DatasetSummary:
    """The scenario's day ``DETECTION_DAY`` after its start, at the source's full daily size, graded."""
    rows = scenario_rows(scenario, seed)
    day = rows[rows.event_date == DRIFT_START + timedelta(days=DETECTION_DAY)]
    if scenario == "null_spike":
        day = _with_null_spike(day, SCENARIOS[scenario].drifted_columns, seed)
    return grade_day(reference_profile(rows), day, thresholds)


def clean_days(seed: int, rows_per_day: int, thresholds: DriftThresholds) -> list[DatasetSummary]:
    """Every day after the reference window of a stationary source, each sampled down to ``rows_per_day``."""
    rows = scenario_rows("none", seed)
    profile = reference_profile(rows)
    rng = np.random.default_rng(seed)
    graded = []
    for _, day in rows[rows.event_date >= DRIFT_START].groupby("event_date"):
        sample = day.iloc[rng.choice(len(day), size=min(rows_per_day, len(day)), replace=False)]
        graded.append(grade_day(profile, sample, thresholds))
    return graded


def run_noise_study(
    rows_per_day: int = 150,
    seeds: Sequence[int] = tuple(range(1, 11)),
    thresholds: DriftThresholds | None = None,
    scenarios: Sequence[str] = ("gradual_covariate_shift", "sudden_covariate_shift", "null_spike"),
) -> NoiseStudy:
    """Clean days at ``rows_per_day`` and every scenario's detection, over ``seeds``."""
    t = thresholds or DriftThresholds()
    graded = [s for seed in seeds for s in clean_days(seed, rows_per_day, t)]
    detected = {}
    for scenario in scenarios:
        expected = set(SCENARIOS[scenario].drifted_columns)
        hits = 0
        for seed in seeds:
            summary = scenario_flags(scenario, seed, t)
            hits += set(summary.drifted_columns) == expected and bool(summary.critical_columns)
        detected[scenario] = hits
    return NoiseStudy(
        rows_per_day=rows_per_day,
        seeds=tuple(seeds),
        clean_days=len(graded),
        clean_warn_days=sum(s.level is not Level.NONE for s in graded),
        clean_critical_days=sum(bool(s.critical_columns) for s in graded),
        detected=detected,
    )
