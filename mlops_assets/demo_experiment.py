"""``make experiment``: one experiment from plan to decision on the synthetic source, in its own environment.

Why its own environment (``var/experiment``): the experiment needs more customers than the demo's source has
(the spec's sample size; with the demo's population the plan is refused, and this prints that refusal first),
and it writes contacts the source reacts to. The timeline: the lakehouse through the first wave, a champion and
a challenger trained on it, each wave (lakehouse through the wave day, then enroll, score, contact, export),
the outcome window, then the daily readouts until a decision moves or keeps @champion.
"""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from mlops_assets.cli import DEMO_START, _range_tags, _run

# The population the spec's sample size needs (~4,100 active customers on the first wave; the default ~2,000).
SOURCE = {"initial_customers": 4000, "daily_signups": 24}
DEFAULT_POPULATION_ACTIVE = 2000
CHAMPION_TRAINING = {"ops": {"ml__churn_model": {"config": {"n_trials": 10, "seed": 42}}}}
CHALLENGER_TRAINING = {"ops": {"ml__churn_model": {"config": {"n_trials": 6, "seed": 7}}}}


def _say(line: str) -> None:
    print(f"[experiment] {line}", flush=True)


def _with_source(run_config: dict | None = None) -> dict:
    return {**(run_config or {}), "resources": {"source": {"config": SOURCE}}}


def _partition(day: date) -> dict[str, str]:
    return {"dagster/partition": day.isoformat()}


def _materialization(result: dg.ExecuteInProcessResult, key: list[str]) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.path == key:
            return {k: v.value for k, v in event.event_specific_data.materialization.metadata.items()}
    return {}


def _pick_challenger(resources: dict) -> tuple[str, str]:
    """@champion and @challenger after the two trainings. When the gate promoted the second model, the first
    (which the gate passed too) is the challenger: the experiment always compares two different models."""
    from mlops_assets.ml.audit import read_audit
    from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION
    from mlops_assets.ml.promotion_ledger import GATE_DECISIONS, REFUSED

    registry = resources["mlflow_tracking"].registry()
    champion, challenger = registry.alias_version(CHAMPION), registry.alias_version(CHALLENGER)
    if challenger not in (None, champion):
        return champion, challenger
    records = read_audit(resources["lakehouse"].delta(), registry.model_name)
    passed = [r.to_version for r in records if r.decision in GATE_DECISIONS and r.decision != REFUSED]
    others = sorted({v for v in passed if v != champion}, key=int)
    if not others:
        raise SystemExit("[experiment] no second model passed the gate: nothing to compare the champion with")
    registry.set_alias(CHALLENGER, others[-1])
    _say(f"  @challenger set to v{others[-1]} (the gate passed it; @champion is v{champion})")
    return champion, others[-1]


def run(instance: dg.DagsterInstance) -> None:
    from mlops_assets.environment import build_resources

    resources = build_resources()
    spec = resources["experiment"].spec()
    _say(f"spec {resources['experiment'].spec_path}: {spec.name}: {spec.comparison.describe()}")
    _say(f"  refused on the default population: {spec.refusal(DEFAULT_POPULATION_ACTIVE)}")
    _say(f"1/5 landing -> ... -> features for {DEMO_START}..{spec.start} ({SOURCE})")
    _run("daily_lakehouse", instance, _range_tags(DEMO_START, spec.start), _with_source())
    registry = resources["mlflow_tracking"].registry()
    if registry.alias_version("challenger") in (None, registry.alias_version("champion")):
        _say("2/5 a champion and a challenger: two training runs (train -> evaluate -> gate)")
        if registry.alias_version("champion") is None:
            _run("train_evaluate_promote", instance, run_config=CHAMPION_TRAINING)
        _run("train_evaluate_promote", instance, run_config=CHALLENGER_TRAINING)
    else:
        _say("2/5 champion and challenger already trained")
    champion, challenger = _pick_challenger(resources)
    _say(f"  champion v{champion}, challenger v{challenger}")
    _say(f"3/5 {spec.waves} waves every {spec.wave_every_days} days from {spec.start}")
    previous = spec.start
    for wave in spec.wave_days:
        if wave > previous:
            _run("daily_lakehouse", instance, _range_tags(previous + timedelta(days=1), wave), _with_source())
        result = _run("experiment_wave_job", instance, _partition(wave))
        units = _materialization(result, ["experiments", "units"])
        contacts = _materialization(result, ["experiments", "contacts"])
        _say(f"  wave {wave}: {units.get('enrolled')} enrolled, contacts per arm {contacts.get('per_arm')}")
        previous = wave
    end = spec.last_outcome_day
    _say(
        f"4/5 the outcome window: lakehouse {previous + timedelta(days=1)}..{end} (the source saw the contacts)"
    )
    _run("daily_lakehouse", instance, _range_tags(previous + timedelta(days=1), end), _with_source())
    _say("5/5 daily readouts at each wave's horizon (the always-valid interval makes every look safe)")
    readout = {}
    for wave in spec.wave_days:
        day = wave + timedelta(days=spec.horizon_days)
        result = _run("experiment_analysis_job", instance, _partition(day))
        readout = _materialization(result, ["experiments", "readouts"])
        _say(f"  {day}: look {readout['look']}: {readout['decision']}; registry: {readout['registry']}")
        if readout["decision"] in ("ship", "keep", "stop_harm"):
            break
    text = readout["readout"].split("![effects]")[0]
    print(text, flush=True)
    _say(f"MLflow: {readout['mlflow_run']}")
    _say("browse it: `make experiment-dev` (the Dagster UI on this experiment's instance)")
