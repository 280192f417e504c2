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

# The population the spec's sample size needs (~4,200 active customers on the first wave; the default ~2,000).
SOURCE = {"initial_customers": 4000, "daily_signups": 24}
DEFAULT_POPULATION_ACTIVE = 2000
CHALLENGER_SEEDS, CHALLENGER_TRIALS = (7, 11, 13), 6


def _training(seed: int, trials: int) -> dict:
    return {"ops": {"ml__churn_model": {"config": {"n_trials": trials, "seed": seed}}}}


CHAMPION_TRAINING = _training(42, 10)


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


def _eligible_challengers(resources: dict) -> tuple[str | None, list[str]]:
    """@champion, and the other versions the promotion gate let be shown to customers (the canary rule)."""
    from mlops_assets.ml.audit import read_audit
    from mlops_assets.ml.mlflow_model import CHAMPION
    from mlops_assets.ml.promotion_ledger import GATE_DECISIONS
    from mlops_assets.serving.rollout import CANARY, start_refusal

    registry = resources["mlflow_tracking"].registry()
    champion = registry.alias_version(CHAMPION)
    records = read_audit(resources["lakehouse"].delta(), registry.model_name)
    judged = {r.to_version for r in records if r.decision in GATE_DECISIONS} - {champion}
    return champion, sorted((v for v in judged if start_refusal(CANARY, v, records) is None), key=int)


def _pick_challenger(resources: dict) -> tuple[str, str]:
    """@champion and the experiment's challenger: @challenger when the gate let it serve, else the newest other
    version the gate passed (when the gate promoted the second model, the first one). Sets @challenger to it."""
    from mlops_assets.ml.mlflow_model import CHALLENGER

    registry = resources["mlflow_tracking"].registry()
    champion, passed = _eligible_challengers(resources)
    if not passed:
        raise SystemExit(
            "[experiment] no version besides @champion passed the gate: nothing to compare it with"
        )
    current = registry.alias_version(CHALLENGER)
    challenger = current if current in passed else passed[-1]
    if challenger != current:
        registry.set_alias(CHALLENGER, challenger)
        _say(f"  @challenger set to v{challenger} (the gate passed it; @champion is v{champion})")
    return champion, challenger


def _load_through(instance: dg.DagsterInstance, resources: dict, day: date) -> None:
    """The lakehouse through ``day``, from the day after what is already loaded (a re-run of `make experiment`
    does not rebuild the history; each range is one backfill run)."""
    from pyspark.sql import functions as F

    from mlops_assets.lakehouse.catalog import FEATURES

    delta = resources["lakehouse"].delta()
    loaded = delta.read(FEATURES).agg(F.max("as_of")).first()[0] if delta.exists(FEATURES) else None
    start = DEMO_START if loaded is None else loaded + timedelta(days=1)
    if start <= day:
        _run("daily_lakehouse", instance, _range_tags(start, day), _with_source())


def run(instance: dg.DagsterInstance) -> None:
    from mlops_assets.environment import build_resources

    resources = build_resources()
    spec = resources["experiment"].spec()
    _say(f"spec {resources['experiment'].spec_path}: {spec.name}: {spec.comparison.describe()}")
    _say(f"  refused on the default population: {spec.refusal(DEFAULT_POPULATION_ACTIVE)}")
    _say(f"1/5 landing -> ... -> features for {DEMO_START}..{spec.start} ({SOURCE})")
    _load_through(instance, resources, spec.start)
    _say("2/5 a champion and a challenger that passed the gate (train -> evaluate -> gate)")
    if resources["mlflow_tracking"].registry().alias_version("champion") is None:
        _run("train_evaluate_promote", instance, run_config=CHAMPION_TRAINING)
    for seed in CHALLENGER_SEEDS:  # a challenger the gate refuses may not be shown to customers: try another
        if _eligible_challengers(resources)[1]:
            break
        _run("train_evaluate_promote", instance, run_config=_training(seed, CHALLENGER_TRIALS))
    champion, challenger = _pick_challenger(resources)
    _say(f"  champion v{champion}, challenger v{challenger}")
    _say(f"3/5 {spec.waves} waves every {spec.wave_every_days} days from {spec.start}")
    for wave in spec.wave_days:
        _load_through(instance, resources, wave)
        result = _run("experiment_wave_job", instance, _partition(wave))
        units = _materialization(result, ["experiments", "units"])
        contacts = _materialization(result, ["experiments", "contacts"])
        _say(f"  wave {wave}: {units.get('enrolled')} enrolled, contacts per arm {contacts.get('per_arm')}")
    end = spec.last_outcome_day
    _say(f"4/5 the outcome window: the lakehouse through {end} (the source saw the contacts)")
    _load_through(instance, resources, end)
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
