"""Safe rollouts: start, judge each step from the inference table, and apply it by moving aliases, audited.

The rules are in ``mlops_assets.serving.rollout`` (pure); this is the wiring. The state lives on the registered
model's ``rollout`` tag beside ``@champion`` and ``@candidate``, where the scoring server reads both in one call.
Every decision is appended to ``ml/promotion_audit`` *before* an alias or the tag moves, as ``ml/champion``
does: a failure after the audit leaves a recorded decision that a re-run repeats, never an unrecorded move.
"""

import dagster as dg
from pydantic import Field

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime
from mlops_assets.lakehouse.catalog import INFERENCE_LOG
from mlops_assets.ml.audit import append_audit, read_audit
from mlops_assets.ml.mlflow_model import CANDIDATE, CHAMPION, ModelRegistry
from mlops_assets.ml.promotion_ledger import ROLLOUT_ABORTED, ROLLOUT_STARTED
from mlops_assets.resources import LakehouseResource, MlflowTrackingResource
from mlops_assets.serving.rollout import (
    ABORTED,
    CANARY,
    DEFAULT_STEPS,
    ROLLBACK,
    ROLLOUT_TAG,
    Rollout,
    RolloutDecision,
    RolloutGuards,
    RolloutInvalid,
    judge_step,
    plan_transition,
    start_refusal,
)

INFERENCE_LOG_KEY = dg.AssetKey(INFERENCE_LOG.asset_key_path)  # the lead's ingestion asset (issue 13)
ROLLOUT_STEP_KEY = dg.AssetKey(["serving", "rollout_step"])
ROLLOUT_ID_TAG = "mlops/rollout_id"
SENSOR_INTERVAL_S = 180
S = dg.DagsterRunStatus
UNFINISHED = [S.QUEUED, S.NOT_STARTED, S.STARTING, S.STARTED, S.CANCELING]


def read_rollout(registry: ModelRegistry) -> Rollout | None:
    """The rollout on the model's tag, or None when no rollout was ever started."""
    text = registry.model_tags().get(ROLLOUT_TAG)
    return Rollout.from_json(text) if text else None


def _apply(registry: ModelRegistry, new: Rollout, promote: bool, remove_candidate: bool) -> None:
    """Move the registry (after the audit). @champion first, then the tag, then @candidate: at every moment
    the server reads either the old routing or the new one, never a running rollout without its candidate."""
    if promote:
        registry.set_alias(CHAMPION, new.candidate_version)
    registry.set_model_tag(ROLLOUT_TAG, new.to_json())
    if remove_candidate and registry.alias_version(CANDIDATE) == new.candidate_version:
        registry.delete_alias(CANDIDATE)


def _aliases_moved(registry: ModelRegistry, state: Rollout) -> RolloutDecision | None:
    """A rollout whose @champion or @candidate was moved by something else (``make rollback``, a training
    run's promotion) compares the wrong versions: it is rolled back rather than judged."""
    champion, candidate = registry.alias_version(CHAMPION), registry.alias_version(CANDIDATE)
    if (champion, candidate) == (state.champion_version, state.candidate_version):
        return None
    return RolloutDecision(
        ROLLBACK,
        [
            f"{state.describe()}: ROLLBACK: the aliases moved during the rollout (@{CHAMPION} v{champion}, "
            f"@{CANDIDATE} v{candidate}; the rollout compares v{state.candidate_version} with "
            f"v{state.champion_version}): start a new rollout"
        ],
    )


@dg.asset(
    key=ROLLOUT_STEP_KEY,
    deps=[INFERENCE_LOG_KEY],
    group_name=groups.SERVING,
    kinds={"spark", "mlflow"},
    owners=[OWNER],
    description="Judges the running rollout's current step from the inference table (error rate, p99 "
    "latency, score PSI vs the champion, sample-ratio mismatch, minimum traffic) and applies it: advance the "
    "candidate's share, promote it to @champion after the last step, roll it back (remove @candidate), or "
    "hold (nothing moves; an inconclusive step never promotes). Every decision audited in ml/promotion_audit.",
)
def rollout_step(
    context: dg.AssetExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> dg.MaterializeResult:
    from mlops_assets.serving.rollout_stats import arm_stats, step_rows

    name, registry = mlflow_tracking.model_name, mlflow_tracking.registry()
    state = read_rollout(registry)
    if state is None or not state.running:
        status = "no rollout started" if state is None else f"{state.describe()} is {state.status}"
        context.log.info(f"{name}: {status}; nothing to judge")
        return dg.MaterializeResult(metadata={"model_name": name, "outcome": "none", "status": status})
    delta = lakehouse.delta()
    stats = {}
    decision = _aliases_moved(registry, state)
    if decision is None:
        if delta.exists(INFERENCE_LOG):
            inference = delta.read(INFERENCE_LOG)
            stats = arm_stats(step_rows(inference.where(inference["model_name"] == name), state))
        decision = judge_step(state, stats)
    transition = plan_transition(state, decision)
    if read_rollout(registry) != state:
        # `rollout abort` or a new start while this step was counting rows: theirs wins, nothing is applied.
        context.log.warning(f"{state.describe()} changed while it was judged; this judgement is dropped")
        return dg.MaterializeResult(
            metadata={"model_name": name, "outcome": "superseded", "status": "changed"}
        )
    append_audit(
        delta,
        name,
        transition.audit,
        state.champion_version,
        state.candidate_version,
        decision.reasons,
        context.run.run_id,
    )
    if transition.state != state:
        _apply(registry, transition.state, transition.promote, transition.remove_candidate)
    for reason in decision.reasons:
        context.log.info(reason)
    arms = "\n".join(
        f"| {a.arm} | {a.requests} | {a.units} | {a.error_rate:.2%} | {a.p99_latency_ms} |"
        for a in stats.values()
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "rollout_id": state.id,
            "outcome": decision.outcome,
            "audit": transition.audit,
            "step": f"{state.step + 1}/{len(state.steps)}",
            "status": transition.state.status,
            "reasons": dg.MetadataValue.md("\n".join(f"- {r}" for r in decision.reasons)),
            "arms": dg.MetadataValue.md(
                "| arm | requests | units | 5xx | p99 ms |\n|---|---|---|---|---|\n" + arms
                if arms
                else "no rows"
            ),
            "arm_stats": dg.MetadataValue.json({arm: s.to_dict() for arm, s in stats.items()}),
            "rollout": dg.MetadataValue.json(transition.state.to_dict()),
        }
    )


class StartRolloutConfig(dg.Config):
    candidate: str
    mode: str = CANARY
    steps: list[float] | None = None  # None: the mode's default steps
    min_requests_per_arm: int = 500
    # A step ignores the rows of its first seconds (servers still routing by the old weights).
    settle_seconds: float = 30.0
    # RolloutGuards fields to override, e.g. {"max_p99_latency_ms": 250}.
    guards: dict[str, float] = Field(default_factory=dict)


@dg.op(description="Start a canary or shadow rollout: @candidate and the rollout tag, audited.")
def start_rollout(
    context: dg.OpExecutionContext,
    config: StartRolloutConfig,
    lakehouse: LakehouseResource,
    mlflow_tracking: MlflowTrackingResource,
) -> str:
    name, registry = mlflow_tracking.model_name, mlflow_tracking.registry()
    current = read_rollout(registry)
    if current is not None and current.running:
        raise dg.Failure(
            f"{current.describe()} is running: abort it first (make rollout-abort)", allow_retries=False
        )
    try:
        registry.version(config.candidate)
    except Exception:  # MLflow raises its own "not found"; say it in the project's words
        raise dg.Failure(f"model {name!r} has no version {config.candidate!r}", allow_retries=False) from None
    delta = lakehouse.delta()
    refusal = start_refusal(config.mode, config.candidate, read_audit(delta, name))
    if refusal:
        raise dg.Failure(f"rollout refused: {refusal}", allow_retries=False)
    try:
        state = Rollout.start(
            config.candidate,
            registry.alias_version(CHAMPION) or "",
            config.mode,
            config.steps or DEFAULT_STEPS.get(config.mode),
            min_requests_per_arm=config.min_requests_per_arm,
            settle_seconds=config.settle_seconds,
            guards=RolloutGuards(**config.guards),
        )
    except (RolloutInvalid, TypeError) as error:  # TypeError: a guard name RolloutGuards does not have
        raise dg.Failure(str(error), allow_retries=False) from None
    steps = " -> ".join(f"{s:.0%}" for s in state.steps)
    reasons = [f"{state.describe()} started: steps {steps}, guards {state.guards}"]
    append_audit(
        delta,
        name,
        ROLLOUT_STARTED,
        state.champion_version,
        state.candidate_version,
        reasons,
        context.run.run_id,
    )
    registry.set_alias(
        CANDIDATE, state.candidate_version
    )  # before the tag: a running rollout has its candidate
    registry.set_model_tag(ROLLOUT_TAG, state.to_json())
    context.log.info(reasons[0])
    return state.id


@dg.op(description="Abort the running rollout: @candidate removed, @champion unchanged, audited.")
def abort_rollout(
    context: dg.OpExecutionContext, lakehouse: LakehouseResource, mlflow_tracking: MlflowTrackingResource
) -> str:
    name, registry = mlflow_tracking.model_name, mlflow_tracking.registry()
    state = read_rollout(registry)
    if state is None or not state.running:
        raise dg.Failure(f"model {name!r} has no running rollout; nothing changed", allow_retries=False)
    reasons = [f"{state.describe()} aborted by hand"]
    append_audit(
        lakehouse.delta(), name, ROLLOUT_ABORTED, state.champion_version, state.candidate_version, reasons,
        context.run.run_id,
    )  # fmt: skip
    _apply(registry, Rollout.from_dict({**state.to_dict(), "status": ABORTED}), False, True)
    context.log.info(reasons[0])
    return state.id


@dg.job(
    description="`python -m mlops_assets.cli rollout start` (make canary / make shadow).",
    tags=max_runtime(0.25),
)
def rollout_start() -> None:
    start_rollout()


@dg.job(description="`python -m mlops_assets.cli rollout abort`.", tags=max_runtime(0.25))
def rollout_abort() -> None:
    abort_rollout()


# The ingestion of the request log (the lead's serving/inference_log) and the step, in one run: whatever is
# materializable upstream of the step by one hop, so the job picks up the ingestion asset once it exists.
rollout_step_job = dg.define_asset_job(
    name="rollout_step_job",
    selection=dg.AssetSelection.assets(ROLLOUT_STEP_KEY).upstream(depth=1).materializable(),
    tags=max_runtime(0.5),
    description="Ingest the request log, then judge and apply the running rollout's current step.",
)


@dg.sensor(
    job=rollout_step_job,
    minimum_interval_seconds=SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 3 minutes while a rollout is running, ingest the request log and judge the step. "
    "Running by default because it is cheap when idle: one registry read, no Spark, no run.",
)
def rollout_sensor(context: dg.SensorEvaluationContext, mlflow_tracking: MlflowTrackingResource):
    state = read_rollout(mlflow_tracking.registry())
    if state is None or not state.running:
        return dg.SkipReason(
            "no rollout running" if state is None else f"{state.describe()} is {state.status}"
        )
    busy = context.instance.get_runs(
        filters=dg.RunsFilter(job_name=rollout_step_job.name, statuses=UNFINISHED), limit=1
    )
    if busy:
        return dg.SkipReason(f"run {busy[0].run_id} is still judging {state.describe()}")
    return dg.RunRequest(tags={ROLLOUT_ID_TAG: state.id, "mlops/rollout_step": str(state.step)})


defs = dg.Definitions(
    assets=[rollout_step], jobs=[rollout_start, rollout_abort, rollout_step_job], sensors=[rollout_sensor]
)
