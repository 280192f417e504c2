"""Experiments: enroll each wave's units into sticky arms, contact the top of each targeted arm, hand the list to
the source system, and read the experiment out every day until its decision moves (or keeps) @champion.

The logic is in ``mlops_assets.experiments`` (pure); this is the wiring. The run order of one experiment:
``daily_lakehouse`` through a wave day, then ``experiment_wave_job`` for that day (units, contacts, export),
and after the waves ``experiment_analysis_job`` for any day (the readout of the outcomes known by then).
"""

import json
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime, partition_days, png_markdown
from mlops_assets.experiments.decision import RegistryAction, registry_action
from mlops_assets.experiments.exposure import (
    UNIT_SCHEMA,
    choose_contacts,
    churn_outcomes,
    eligible_units,
    with_arm,
)
from mlops_assets.experiments.outbound import write_contact_export
from mlops_assets.experiments.readout import INVALID, Readout, analyze
from mlops_assets.experiments.render import effects_png, markdown
from mlops_assets.experiments.spec import ExperimentSpec, SpecError
from mlops_assets.lakehouse.catalog import (
    BILLING,
    EXPERIMENT_CONTACTS,
    EXPERIMENT_READOUTS,
    EXPERIMENT_UNITS,
    FEATURES,
    PROMOTION_AUDIT,
)
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.ml.audit import append_audit, read_audit
from mlops_assets.ml.mlflow_model import CHALLENGER, CHAMPION, ModelRegistry
from mlops_assets.ml.promotion_ledger import EXPERIMENT_DECISIONS
from mlops_assets.partitions import daily_partitions
from mlops_assets.resources import (
    ExperimentResource,
    FeatureSetResource,
    LakehouseResource,
    MlflowTrackingResource,
)
from mlops_assets.serving.rollout import CANARY, start_refusal

UNITS_KEY = dg.AssetKey(EXPERIMENT_UNITS.asset_key_path)
CONTACTS_KEY = dg.AssetKey(EXPERIMENT_CONTACTS.asset_key_path)
ANALYSIS_KEY = dg.AssetKey(EXPERIMENT_READOUTS.asset_key_path)
SRM_CHECK = "sample_ratio"
EXPERIMENT_TAG = "mlops.experiment"
READOUT_SCHEMA = "experiment string, through date, decision string, readout string, _partition_date date"


def _one_day(context: dg.AssetExecutionContext) -> date:
    days = partition_days(context)
    if len(days) != 1:
        raise dg.Failure(f"run one day at a time (a wave, or a readout day), got {days[0]}..{days[-1]}")
    return days[0]


def _spec(experiment: ExperimentResource) -> ExperimentSpec:
    try:
        return experiment.spec()
    except SpecError as error:
        raise dg.Failure(f"{experiment.spec_path}: {error}", allow_retries=False) from error


def _wave_day(context: dg.AssetExecutionContext, spec: ExperimentSpec) -> date:
    day = _one_day(context)
    if day not in spec.wave_days:
        waves = ", ".join(d.isoformat() for d in spec.wave_days)
        raise dg.Failure(
            f"{day} is not a wave of experiment {spec.name!r}; its waves: {waves}", allow_retries=False
        )
    return day


def _units(delta: DeltaLakehouse, spec: ExperimentSpec):
    if not delta.exists(EXPERIMENT_UNITS):
        return None
    units = delta.read(EXPERIMENT_UNITS)
    return units.where(F.col("experiment") == spec.name)


def _pin_versions(
    delta: DeltaLakehouse, registry: ModelRegistry, spec: ExperimentSpec, pinned_rows
) -> dict[str, str]:
    """The model version of each role (champion, challenger), fixed by the first wave run and read back from the
    other waves' rows after: a model that moves mid-experiment would mix two treatments in one arm."""
    if pinned_rows is not None and pinned_rows.limit(1).count():
        first = pinned_rows.orderBy("wave").first()
        return {"champion": first["covariate_version"], **_roles_from_rows(pinned_rows, spec)}
    champion = registry.require_alias(CHAMPION, "experiments/units")
    pins = {"champion": champion}
    if any(a.model == "challenger" for a in spec.arms):
        challenger = registry.alias_version(CHALLENGER)
        if challenger in (None, champion):
            raise dg.Failure(
                f"experiment {spec.name!r} needs a challenger: @{CHALLENGER} is "
                f"{'unset' if challenger is None else f'v{challenger}, the champion itself'}; train one first",
                allow_retries=False,
            )
        refusal = start_refusal(CANARY, challenger, read_audit(delta, registry.model_name))
        if refusal:  # it would be shown to customers: it must have passed the offline gate
            raise dg.Failure(f"experiment {spec.name!r}: {refusal}", allow_retries=False)
        pins["challenger"] = challenger
    return pins


def _roles_from_rows(pinned_rows, spec: ExperimentSpec) -> dict[str, str]:
    rows = (
        pinned_rows.where(F.col("model_version").isNotNull())
        .select("arm", "model_version")
        .distinct()
        .collect()
    )
    by_arm = {r["arm"]: r["model_version"] for r in rows}
    return {a.model: by_arm[a.name] for a in spec.arms if a.model != "none" and a.name in by_arm}


@dg.asset(
    key=UNITS_KEY,
    deps=[dg.AssetKey(FEATURES.asset_key_path), dg.AssetKey(["ml", "champion"])],
    group_name=groups.EXPERIMENTS,
    partitions_def=daily_partitions,
    kinds={"spark", "delta", "mlflow"},
    owners=[OWNER],
    description="One row per enrolled unit: the customers renewing in the wave's window enter once, in the arm "
    "of the salted hash the scoring service uses, with each arm's model score (pinned versions), the champion's "
    "score as the pre-period covariate, and whether they are contacted (top of their arm). Run for a wave day.",
)
def experiment_units(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
    experiment: ExperimentResource,
) -> dg.MaterializeResult:
    spec = _spec(experiment)
    wave = _wave_day(context, spec)
    delta, contract, registry = lakehouse.delta(), feature_set.contract(), mlflow_tracking.registry()
    units = _units(delta, spec)
    earlier = units.where(F.col("wave") < F.lit(wave)) if units is not None else None
    # Pinned by any other wave (a re-run of the first wave after later ones keeps their versions).
    other_waves = units.where(F.col("wave") != F.lit(wave)) if units is not None else None
    pins = _pin_versions(delta, registry, spec, other_waves)
    features = feature_set.read(lakehouse)
    if wave == spec.wave_days[0]:
        population = features.where(F.col(contract.as_of) == F.lit(wave)).count()
        refusal = spec.refusal(population)
        if refusal:
            raise dg.Failure(refusal, metadata=spec.plan(population).to_dict(), allow_retries=False)
    rows = eligible_units(features, contract.entity_key, contract.as_of, wave, spec.wave_every_days, earlier)
    frame = with_arm(rows, contract.entity_key, spec).toPandas()
    if frame.empty:
        raise dg.Failure(
            f"no features as of {wave}: load the lakehouse through {wave} first", allow_retries=False
        )
    frame = frame.rename(columns={contract.entity_key: "customer_id"})
    frame["customer_id"] = frame["customer_id"].astype(str)
    champion = registry.load(pins["champion"])
    frame["covariate"] = champion.predict_proba(frame[contract.feature_names])
    frame["score"], frame["model_version"] = float("nan"), None
    for arm in spec.arms:
        if arm.model == "none":
            continue
        mine = frame["arm"] == arm.name
        model = champion if arm.model == "champion" else registry.load(pins[arm.model])
        frame.loc[mine, "score"] = model.predict_proba(frame.loc[mine, contract.feature_names])
        frame.loc[mine, "model_version"] = pins[arm.model]
    frame = choose_contacts(frame, spec)
    out = pd.DataFrame(
        {
            "experiment": spec.name,
            "customer_id": frame["customer_id"],
            "arm": frame["arm"],
            "wave": wave,
            "model_version": frame["model_version"],
            "score": frame["score"].astype(float),
            "covariate": frame["covariate"].astype(float),
            "covariate_version": pins["champion"],
            "contacted": frame["contacted"].astype(bool),
            "contact_rank": frame["contact_rank"].astype("float").astype("Int32"),
            "enrolled_at": datetime.now(UTC).replace(tzinfo=None),
            "_partition_date": wave,
        }
    )
    df = delta.spark.createDataFrame(out, UNIT_SCHEMA)
    commit = delta.replace_partitions(df, EXPERIMENT_UNITS, wave, wave, only=("experiment", spec.name))
    table = out.groupby("arm").agg(enrolled=("customer_id", "size"), contacted=("contacted", "sum"))
    context.log.info(f"{spec.name} wave {wave}: {len(out)} units enrolled; versions {pins}")
    return dg.MaterializeResult(
        metadata={
            "experiment": spec.name,
            "wave": wave.isoformat(),
            "enrolled": len(out),
            "contacted": int(out["contacted"].sum()),
            "versions": pins,
            "arms": dg.MetadataValue.md(table.to_markdown()),
            "delta_version": commit.version,
        }
    )


@dg.asset(
    key=CONTACTS_KEY,
    deps=[UNITS_KEY],
    group_name=groups.EXPERIMENTS,
    partitions_def=daily_partitions,
    kinds={"spark", "delta", "csv"},
    owners=[OWNER],
    description="The wave's contact list per arm (the contacted units, ranked by their arm's model), stored and "
    "exported to the source system's outbound folder, which the source reads before its next landing files.",
)
def experiment_contacts(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, experiment: ExperimentResource
) -> dg.MaterializeResult:
    spec = _spec(experiment)
    wave = _wave_day(context, spec)
    delta = lakehouse.delta()
    units = _units(delta, spec)
    if units is None:
        raise dg.Failure(f"no units for {spec.name!r}: materialize experiments/units for {wave} first")
    contacted = units.where((F.col("wave") == F.lit(wave)) & F.col("contacted")).select(
        "experiment",
        "customer_id",
        "arm",
        "wave",
        "model_version",
        "score",
        "contact_rank",
        "_partition_date",
    )
    commit = delta.replace_partitions(
        contacted, EXPERIMENT_CONTACTS, wave, wave, only=("experiment", spec.name)
    )
    rows = [(r["customer_id"], r["arm"]) for r in contacted.select("customer_id", "arm").collect()]
    path = write_contact_export(lakehouse.outbound_root, wave, spec.name, rows)
    per_arm = pd.Series([arm for _, arm in rows], dtype=object).value_counts().to_dict()
    context.log.info(f"{spec.name} wave {wave}: {len(rows)} contacts exported to {path}")
    return dg.MaterializeResult(
        metadata={
            "contacts": len(rows),
            "per_arm": {str(k): int(v) for k, v in per_arm.items()},
            "export": dg.MetadataValue.path(str(path)),
            "delta_version": commit.version,
        }
    )


def _log_to_mlflow(
    mlflow_tracking: MlflowTrackingResource, spec: ExperimentSpec, r: Readout, md: str, png: bytes
) -> str:
    """One MLflow run per experiment (found by its tag), a metric point per readout day, the readout files."""
    mlflow_tracking.configure()
    client = mlflow_tracking.client()
    exp = client.get_experiment_by_name(mlflow_tracking.experiment_name)
    found = client.search_runs([exp.experiment_id], f"tags.`{EXPERIMENT_TAG}` = '{spec.name}'", max_results=1)
    if found:
        run_id = found[0].info.run_id
    else:
        run = client.create_run(
            exp.experiment_id, run_name=f"experiment {spec.name}", tags={EXPERIMENT_TAG: spec.name}
        )
        run_id = run.info.run_id
        client.log_dict(run_id, spec.to_dict(), "experiment/spec.json")
    step = (r.through - spec.start).days
    metrics = {"srm_p_value": r.srm_p_value, "look": r.look}
    for a in r.arms:
        metrics[f"churn_{a.arm}"] = a.rate
        metrics[f"enrolled_{a.arm}"] = a.enrolled
    if r.primary:
        p = r.primary
        metrics |= {
            "primary_diff": p.diff,
            "primary_ci_low": p.ci_low,
            "primary_ci_high": p.ci_high,
            "primary_p_value": p.p_value,
            "primary_seq_low": p.seq_low,
            "primary_seq_high": p.seq_high,
            "primary_seq_p_value": p.seq_p_value,
            "primary_cuped_diff": p.cuped_diff,
        }
    for key, value in metrics.items():
        if value == value:  # NaN is not a metric point
            client.log_metric(run_id, key, float(value), step=step)
    client.set_tag(run_id, "decision", r.decision)
    client.log_text(run_id, md, f"experiment/readout_{r.through.isoformat()}.md")
    with tempfile.TemporaryDirectory() as tmp:
        plot = Path(tmp) / f"effects_{r.through.isoformat()}.png"
        plot.write_bytes(png)
        client.log_artifact(run_id, str(plot), "experiment")
    return run_id


def _acted(delta: DeltaLakehouse, model_name: str, spec: ExperimentSpec) -> bool:
    if not delta.exists(PROMOTION_AUDIT):
        return False
    audit = delta.read(PROMOTION_AUDIT)
    mine = audit.where(
        (F.col("model_name") == model_name)
        & F.col("decision").isin(list(EXPERIMENT_DECISIONS))
        & F.array_contains("reasons", f"experiment={spec.name}")
    )
    return mine.limit(1).count() > 0


def _apply(delta: DeltaLakehouse, registry: ModelRegistry, action: RegistryAction, run_id: str) -> None:
    """Audit first, then move: a failure between the two leaves a recorded decision, never an unrecorded move."""
    append_audit(
        delta,
        registry.model_name,
        action.audit,
        action.from_version,
        action.to_version,
        list(action.reasons),
        run_id,
    )
    if action.move:
        registry.set_alias(CHAMPION, action.to_version)


@dg.asset(
    key=ANALYSIS_KEY,
    deps=[UNITS_KEY, CONTACTS_KEY, dg.AssetKey(BILLING.asset_key_path)],
    group_name=groups.EXPERIMENTS,
    partitions_def=daily_partitions,
    kinds={"spark", "delta", "mlflow"},
    owners=[OWNER],
    check_specs=[
        dg.AssetCheckSpec(SRM_CHECK, asset=ANALYSIS_KEY, description="enrolled counts match the weights")
    ],
    description="The day's readout: sample-ratio check, churn per arm with CIs, the effect with its fixed-horizon "
    "CI and p-value, the always-valid (mSPRT) interval, CUPED, guardrails, and the decision (ship / keep / "
    "stop for harm / inconclusive), which moves or keeps @champion once, audited in ml/promotion_audit.",
)
def experiment_readout(
    context: dg.AssetExecutionContext,
    lakehouse: LakehouseResource,
    mlflow_tracking: MlflowTrackingResource,
    experiment: ExperimentResource,
) -> dg.MaterializeResult:
    spec = _spec(experiment)
    through = _one_day(context)
    delta, registry = lakehouse.delta(), mlflow_tracking.registry()
    units = _units(delta, spec)
    if units is None or not units.limit(1).count():
        raise dg.Failure(
            f"experiment {spec.name!r} has no units: run experiment_wave_job for {spec.wave_days[0]}"
        )
    billing = delta.read(BILLING)
    newest = billing.agg(F.max("event_date")).first()[0]
    if newest is None or newest < through:
        raise dg.Failure(f"billing is loaded through {newest}: load the lakehouse through {through} first")
    frame = churn_outcomes(units, billing, spec.horizon_days, through).toPandas()
    frame = frame.rename(columns={"customer_id": "unit"})
    versions = _arm_versions(frame)
    readout = analyze(frame, spec, through, versions)
    md, png = markdown(readout, spec), effects_png(readout)
    row = [(spec.name, through, readout.decision, _json(readout), through)]
    delta.replace_partitions(
        delta.spark.createDataFrame(row, READOUT_SCHEMA),
        EXPERIMENT_READOUTS,
        through,
        through,
        only=("experiment", spec.name),
    )
    run_id = _log_to_mlflow(mlflow_tracking, spec, readout, md, png)
    applied = "none"
    if readout.final and not _acted(delta, registry.model_name, spec):
        action = registry_action(spec, readout, registry.alias_version(CHAMPION))
        _apply(delta, registry, action, context.run.run_id)
        applied = (
            f"{action.audit} (@champion {'moved to v' + action.to_version if action.move else 'unchanged'})"
        )
        context.log.info(f"{spec.name}: {applied}")
    if readout.decision == INVALID:
        context.log.error(f"{spec.name}: {readout.reasons[0]}")
    return dg.MaterializeResult(
        metadata={
            "decision": readout.decision,
            "look": readout.look,
            "registry": applied,
            "readout": dg.MetadataValue.md(md + "\n" + png_markdown("effects", png)),
            "mlflow_run": mlflow_tracking.run_link(run_id),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=SRM_CHECK,
                passed=readout.srm_p_value >= spec.srm_alpha,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"srm_p_value": readout.srm_p_value, "chi2": readout.srm_chi2},
            )
        ],
    )


def _arm_versions(frame: pd.DataFrame) -> dict[str, str]:
    """Each arm's pinned model version (arms without a model have none)."""
    return frame.dropna(subset=["model_version"]).groupby("arm")["model_version"].first().to_dict()


def _json(readout: Readout) -> str:
    return json.dumps(readout.to_dict(), sort_keys=True)


experiment_wave_job = dg.define_asset_job(
    "experiment_wave_job",
    selection=[UNITS_KEY, CONTACTS_KEY],
    partitions_def=daily_partitions,
    tags=max_runtime(0.5),
    description="One wave of the experiment: enroll, score per arm, contact, export the list to the source.",
)
experiment_analysis_job = dg.define_asset_job(
    "experiment_analysis_job",
    selection=[ANALYSIS_KEY],
    partitions_def=daily_partitions,
    tags=max_runtime(0.5),
    description="The experiment's readout for a day; a final decision moves or keeps @champion, audited.",
)

# The daily readout, after the lakehouse (01:00) and scoring (03:00) schedules; on for a running experiment.
experiment_readout_schedule = dg.build_schedule_from_partitioned_job(experiment_analysis_job, hour_of_day=5)

defs = dg.Definitions(
    assets=[experiment_units, experiment_contacts, experiment_readout],
    jobs=[experiment_wave_job, experiment_analysis_job],
    schedules=[experiment_readout_schedule],
)
