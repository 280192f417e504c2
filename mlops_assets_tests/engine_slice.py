"""One slice of the real graph on the engine ``MLOPS_SPARK`` names: landing -> bronze -> silver (+ quarantine)
-> gold -> features for a few days as one run, then landing -> bronze -> silver for the last day again (a re-run
must leave no duplicates), then, given a champion, the scoring job (predictions -> drift report) for the days
SCORED_FROM..END.

Run as ``python -m mlops_assets_tests.engine_slice START END [SCORED_FROM CHAMPION_JSON]`` in a process of its
own (one process holds one classic SparkContext, and the suite's is local): it prints one JSON line with each
run's success and time. The caller reads the tables it wrote (Delta, by path) and compares them with another
engine's.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_assets.lakehouse.catalog import BRONZE, FEATURES, GOLD, PREDICTIONS, QUARANTINE, SILVER
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.tables import TableRef

SLICE_TABLES: dict[str, TableRef] = {
    **{f"bronze/{n}": r for n, r in BRONZE.items()},
    **{f"silver/{n}": r for n, r in SILVER.items()},
    **{f"quarantine/{n}": r for n, r in QUARANTINE.items()},
    **{f"gold/{n}": r for n, r in GOLD.items()},
    "features": FEATURES,
    "predictions": PREDICTIONS,
}
# The reference the slice's drift report grades against moves this feature, so the verdict has a drifted column to
# agree on (a profile of two quiet days against themselves would only ever say "none").
SHIFTED_FEATURE, SHIFT = "monthly_fee", 1.5


@dataclass
class SliceRuns:
    """What the slice's runs did, in order: success, seconds, step errors, how many asset checks ran and which
    failed, and the Spark application ids the run's materializations report (one per run: all its Spark steps share
    a session)."""

    success: list[bool] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    checks_run: list[int] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    application_ids: list[list[str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(self.success) and not self.errors

    def execute(self, job: Any, **kwargs: Any) -> SliceRuns:
        began = time.monotonic()
        result = job.execute_in_process(raise_on_error=False, **kwargs)
        self.seconds.append(round(time.monotonic() - began, 1))
        self.success.append(result.success)
        events = result.all_events
        self.errors += [str(e.event_specific_data.error) for e in events if e.is_step_failure]
        checks = [e.event_specific_data for e in events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
        self.checks_run.append(len(checks))
        self.failed_checks += sorted(
            f"{c.asset_key.to_user_string()}:{c.check_name}" for c in checks if not c.passed
        )
        materializations = [
            e.event_specific_data.materialization for e in result.get_asset_materialization_events()
        ]
        ids = {
            m.metadata["spark_application_id"].value
            for m in materializations
            if "spark_application_id" in m.metadata
        }
        self.application_ids.append(sorted(ids))
        return self

    def extend(self, other: SliceRuns) -> None:
        for name in ("success", "seconds", "errors", "checks_run", "failed_checks", "application_ids"):
            getattr(self, name).extend(getattr(other, name))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SliceRuns:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class SliceChampion:
    """A registered @champion for the slice and its reference profile (JSON), in the MLflow store every engine's
    slice shares: each slice stores the profile in its own lakehouse, as the reference_profile asset would."""

    version: str
    profile_json: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SliceChampion:
        return cls(**json.loads(text))


def register_champion(features: pd.DataFrame, resources: dict[str, Any]) -> SliceChampion:
    """Train a small model on the slice's features (a label made from one feature: the slice has no closed labels
    yet), register it as @champion, and profile it as the reference_profile asset does, with one feature moved."""
    import mlflow

    from mlops_assets.ml.mlflow_model import CHAMPION
    from mlops_assets.ml.training import tune_and_train
    from mlops_assets.monitoring.profile import build_profile_pandas
    from mlops_assets.monitoring.severity import SCORE_COLUMN

    contract = resources["feature_set"].contract()
    tracking = resources["mlflow_tracking"]
    frame = features.sort_values([contract.entity_key, contract.as_of]).reset_index(drop=True)
    low_use = frame["minutes_28d"].rank(method="first") <= 0.3 * len(frame)  # ties broken by the sort above
    frame[contract.label] = low_use.astype(int)
    model = tune_and_train(frame[::2], frame[1::2], contract, n_trials=1, seed=7).to_model(0.5)
    tracking.configure()  # the fluent run log_model writes under: this store
    experiment = mlflow.get_experiment_by_name(tracking.experiment_name).experiment_id
    registry = tracking.registry()
    with mlflow.start_run(run_name="engine-slice-champion", experiment_id=experiment):
        version = registry.register(model, contract, frame, tags={"purpose": "engine slice"}).version
    registry.set_alias(CHAMPION, version)
    reference = frame.assign(**{SCORE_COLUMN: model.predict_proba(frame)})
    reference[SHIFTED_FEATURE] = reference[SHIFTED_FEATURE] * SHIFT
    excluded = resources["monitoring"].exclude_columns
    profile = build_profile_pandas(
        reference,
        [*(c for c in contract.numerical if c not in excluded), SCORE_COLUMN],
        [c for c in contract.categorical if c not in excluded],
    )
    return SliceChampion(version, profile.to_json())


def run_scoring(start: date, end: date, resources: dict[str, Any], champion: SliceChampion) -> SliceRuns:
    """The daily scoring job (predictions -> drift report) for start..end as one run, against ``champion``."""
    from mlops_assets.definitions import build_defs
    from mlops_assets.monitoring.profile_store import store_profile
    from mlops_assets_tests.conftest import range_tags

    model_name = resources["mlflow_tracking"].model_name
    store_profile(resources["lakehouse"].delta(), model_name, champion.version, champion.profile_json)
    job = build_defs(resources).resolve_job_def("daily_scoring")
    return SliceRuns().execute(job, tags=range_tags(start, end))


def drift_verdicts(delta: DeltaLakehouse) -> list[dict[str, Any]]:
    """Each day's drift verdict and the figures behind it (the report's JSON), as the report table holds them."""
    from mlops_assets.lakehouse.catalog import DRIFT_REPORTS

    verdict_columns = ["_partition_date", "model_version", "action", "data_drift_level", "performance_level"]
    rows = delta.read(DRIFT_REPORTS).orderBy("_partition_date").collect()
    return [
        {
            **{c: str(row[c]) for c in verdict_columns},
            "drifted_columns": sorted(row["drifted_columns"]),
            "critical_columns": sorted(row["critical_columns"]),
            "report": json.loads(row["report_json"]),
        }
        for row in rows
    ]


def run_slice(start: date, end: date, resources: dict[str, Any] | None = None) -> SliceRuns:
    """The daily lakehouse job for start..end as one run, then for ``end`` alone again."""
    from mlops_assets.definitions import build_defs
    from mlops_assets_tests.conftest import range_tags
    from mlops_assets_tests.small_lakehouse import small_resources

    job = build_defs(resources or small_resources()).resolve_job_def("daily_lakehouse")
    rerun = [
        key
        for key in job.asset_layer.executable_asset_keys
        if key.path[0] in ("landing", "bronze", "silver", "quarantine")
    ]
    runs = SliceRuns().execute(job, tags=range_tags(start, end))
    if runs.ok:
        runs.execute(job, tags={"dagster/partition": end.isoformat()}, asset_selection=rerun)
    return runs


if __name__ == "__main__":
    from mlops_assets_tests.small_lakehouse import small_resources

    first, last = (date.fromisoformat(arg) for arg in sys.argv[1:3])
    slice_resources = small_resources()
    runs = run_slice(first, last, slice_resources)
    if len(sys.argv) > 3 and runs.ok:
        champion = SliceChampion.from_json(Path(sys.argv[4]).read_text())
        runs.extend(run_scoring(date.fromisoformat(sys.argv[3]), last, slice_resources, champion))
    print(runs.to_json(), flush=True)
