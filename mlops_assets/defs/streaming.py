"""Streaming inference: the append-only event source, the asset that scores new events exactly once with
@champion (Structured Streaming, ``availableNow``), a blocking check on the dead-letter rate, and a sensor that
runs it when the source gets a new Delta version.

The scoring itself is ``mlops_assets/ml/streaming.py`` (pure); this module wires it to resources and the UI.
"""

import re
from pathlib import Path

import dagster as dg
from pydantic import Field
from pyspark.sql import functions as F

from mlops_assets.defs import groups
from mlops_assets.defs.common import OWNER, max_runtime, partition_days
from mlops_assets.lakehouse.catalog import FEATURES, SCORE_EVENTS, STREAM_DEAD_LETTER, STREAM_PREDICTIONS
from mlops_assets.lakehouse.delta_io import DeltaLakehouse
from mlops_assets.lakehouse.tables import TableRef
from mlops_assets.ml.mlflow_model import CHAMPION
from mlops_assets.ml.streaming import StreamTables, append_idempotent, events_from_features, run_stream
from mlops_assets.partitions import daily_partitions
from mlops_assets.resources import FeatureSetResource, LakehouseResource, MlflowTrackingResource

SCORE_EVENTS_KEY = dg.AssetKey(SCORE_EVENTS.asset_key_path)
STREAM_PREDICTIONS_KEY = dg.AssetKey(STREAM_PREDICTIONS.asset_key_path)
DEAD_LETTER_CHECK = "dead_letter_rate"
STREAM_JOB = "stream_scoring"
# Where the stream's checkpoint lives, under the lakehouse root (beside the tables it belongs to).
CHECKPOINTS = "_checkpoints"
_COMMIT_FILE = re.compile(r"^(\d{20})\.json$")


class ScoreEventsConfig(dg.Config):
    malformed_share: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="share of the day's events sent malformed (built-in synthetic features only), so the dead "
        "letter and its check always see some",
    )


@dg.asset(
    key=SCORE_EVENTS.asset_key_path,
    deps=[dg.AssetKey(FEATURES.asset_key_path)],
    group_name=groups.STREAMING,
    partitions_def=daily_partitions,
    kinds={"spark", "delta"},
    owners=[OWNER],
    description="A day's feature rows appended as score events (entity, as-of, event id and time, the features "
    "as a JSON payload). Append-only and idempotent per day: the stream's source, never rewritten.",
)
def score_events(
    context: dg.AssetExecutionContext,
    config: ScoreEventsConfig,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
) -> dg.MaterializeResult:
    """Appends under ``txnAppId=score_events-<day>``: a re-run of a day is skipped by Delta, never duplicated
    (the events of a day are immutable, like a producer's messages; corrections would be new events)."""
    (day,) = partition_days(context)
    contract = feature_set.contract()
    delta = lakehouse.delta()
    rows = feature_set.read(lakehouse).where(F.to_date(F.col(contract.as_of)) == F.lit(day))
    # Malformed events only on the built-in synthetic pipeline: an external feature table is someone's real data.
    share = config.malformed_share if contract.source is None else 0.0
    # One file per day: a day's events are small, and the stream's micro-batches are counted in files.
    events = events_from_features(rows, contract, day, share).coalesce(1).persist()
    try:
        count = events.count()
        before = delta.version(SCORE_EVENTS) if delta.exists(SCORE_EVENTS) else None
        if count:
            location = (
                delta.locator.identifier(SCORE_EVENTS)
                if delta.locator.catalog
                else delta.locator.path(SCORE_EVENTS)
            )
            append_idempotent(
                events, location, f"score_events-{day.isoformat()}", 0, bool(delta.locator.catalog)
            )
    finally:
        events.unpersist()
    after = delta.version(SCORE_EVENTS) if delta.exists(SCORE_EVENTS) else None
    appended = after is not None and after != before
    context.log.info(f"{day}: {count} events, {'appended' if appended else 'nothing new appended'}")
    return dg.MaterializeResult(
        metadata={
            "events": count,
            "appended": appended,
            "delta_version": after if after is not None else -1,
            "malformed_share": share,
            "table": str(SCORE_EVENTS),
        }
    )


class StreamScoringConfig(dg.Config):
    max_dead_letter_rate: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="the blocking check fails when more than this share of the run's events is dead-lettered",
    )
    max_files_per_trigger: int | None = Field(
        default=None, ge=1, description="Delta source rate limit per micro-batch (None: Spark's default)"
    )


def stream_tables(delta: DeltaLakehouse, root: str) -> StreamTables:
    locator = delta.locator
    by_name = bool(locator.catalog)

    def where(ref: TableRef) -> str:
        return locator.identifier(ref) if by_name else locator.path(ref)

    checkpoint = f"{root.rstrip('/')}/{CHECKPOINTS}/{STREAM_PREDICTIONS.layer}/{STREAM_PREDICTIONS.name}"
    return StreamTables(
        where(SCORE_EVENTS), where(STREAM_PREDICTIONS), where(STREAM_DEAD_LETTER), checkpoint, by_name
    )


@dg.asset(
    key=STREAM_PREDICTIONS.asset_key_path,
    deps=[SCORE_EVENTS_KEY, dg.AssetKey(["ml", "champion"])],
    group_name=groups.STREAMING,
    kinds={"spark", "delta", "mlflow"},
    owners=[OWNER],
    check_specs=[
        dg.AssetCheckSpec(
            DEAD_LETTER_CHECK,
            asset=STREAM_PREDICTIONS.asset_key_path,
            blocking=True,
            description="the share of this run's events that could not be scored stays under the threshold",
        )
    ],
    description="Scores the events that arrived since the last run with @champion (Structured Streaming, "
    "availableNow), exactly once into ml/stream_predictions; events that cannot be scored go to "
    "ml/stream_dead_letter with the rules they broke.",
)
def stream_predictions(
    context: dg.AssetExecutionContext,
    config: StreamScoringConfig,
    lakehouse: LakehouseResource,
    feature_set: FeatureSetResource,
    mlflow_tracking: MlflowTrackingResource,
) -> dg.MaterializeResult:
    registry = mlflow_tracking.registry()
    version = registry.require_alias(CHAMPION, STREAM_PREDICTIONS_KEY.to_user_string())
    champion = registry.load(version).to_dict()
    delta = lakehouse.delta()
    if not delta.exists(SCORE_EVENTS):
        raise dg.Failure(
            f"{SCORE_EVENTS} does not exist yet: materialize {SCORE_EVENTS_KEY.to_user_string()} first",
            allow_retries=False,
        )
    tables = stream_tables(delta, lakehouse.root)
    result = run_stream(
        delta.spark,
        tables,
        feature_set.contract(),
        mlflow_tracking.model_name,
        champion,
        version,
        sink_name=str(STREAM_PREDICTIONS),
        dead_letter_name=str(STREAM_DEAD_LETTER),
        max_files_per_trigger=config.max_files_per_trigger,
    )
    rate = result.dead_letter_rate
    context.log.info(
        f"{result.batches} batches: {result.rows_scored} scored, {result.rows_dead_lettered} dead-lettered "
        f"(source v{result.start_version}..v{result.end_version}, lag {result.lag_versions})"
    )
    rules = "\n".join(
        f"| `{rule}` | {n} |" for rule, n in sorted(result.rules_broken.items(), key=lambda kv: -kv[1])
    )
    check = dg.AssetCheckResult(
        check_name=DEAD_LETTER_CHECK,
        passed=rate <= config.max_dead_letter_rate,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "dead_letter_rate": rate,
            "threshold": config.max_dead_letter_rate,
            "rows_dead_lettered": result.rows_dead_lettered,
            "rows_scored": result.rows_scored,
            "rules_broken": dg.MetadataValue.json(result.rules_broken),
        },
        description=f"{result.rows_dead_lettered} of {result.rows_scored + result.rows_dead_lettered} events "
        f"dead-lettered ({rate:.2%}; threshold {config.max_dead_letter_rate:.2%})",
    )
    return dg.MaterializeResult(
        metadata={
            "source_start_version": -1 if result.start_version is None else result.start_version,
            "source_end_version": -1 if result.end_version is None else result.end_version,
            "source_latest_version": result.latest_source_version,
            "lag_versions": result.lag_versions,
            "batches": result.batches,
            "batch_ids": dg.MetadataValue.json(list(result.batch_ids)),
            "rows_scored": result.rows_scored,
            "rows_dead_lettered": result.rows_dead_lettered,
            "dead_letter_rate": rate,
            "rules_broken": dg.MetadataValue.md("| rule | events |\n|---|---|\n" + rules)
            if rules
            else "none",
            "model_version": version,
            "checkpoint": tables.checkpoint,
            "sink_app_id": result.sink_app_id,
            "dead_letter_app_id": result.dead_letter_app_id,
            "stream_run": dg.MetadataValue.json(result.to_dict()),
        },
        check_results=[check],
    )


def latest_delta_version(table: Path) -> int | None:
    """A Delta table's newest version from its log's file names, without a JVM (``deltalake`` is not installed):
    the highest ``<20 digits>.json`` commit in ``_delta_log``. None when there is no table (yet)."""
    log = table / "_delta_log"
    if not log.is_dir():
        return None
    versions = [int(m.group(1)) for p in log.iterdir() if (m := _COMMIT_FILE.match(p.name))]
    return max(versions) if versions else None


score_events_job = dg.define_asset_job(
    name="score_events_job",
    selection=dg.AssetSelection.assets(SCORE_EVENTS_KEY),
    partitions_def=daily_partitions,
    tags=max_runtime(hours=0.5),
    description="Append a day's events to stream/score_events (what a producer would send; idempotent per day).",
)

stream_scoring_job = dg.define_asset_job(
    name=STREAM_JOB,
    selection=dg.AssetSelection.assets(STREAM_PREDICTIONS_KEY),
    tags=max_runtime(hours=1),
    description="Score the events that arrived since the last run (Structured Streaming, availableNow) with "
    "@champion; launched by score_events_sensor when the source table gets a new version.",
)


@dg.sensor(
    job=stream_scoring_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a stream_scoring run when stream/score_events has a new Delta version (the cursor).",
)
def score_events_sensor(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource):
    """Reads only the table's ``_delta_log`` listing: a tick costs no Spark session. The run key is the version,
    so a version is never requested twice; a run processes everything up to the newest version anyway."""
    if lakehouse.catalog or "://" in lakehouse.root:
        return dg.SkipReason("the source is not a local path; schedule stream_scoring instead")
    latest = latest_delta_version(Path(lakehouse.locator.path(SCORE_EVENTS)))
    if latest is None:
        return dg.SkipReason(f"{SCORE_EVENTS} does not exist yet")
    seen = int(context.cursor) if context.cursor else None
    if seen is not None and latest <= seen:
        return dg.SkipReason(f"{SCORE_EVENTS} still at version {latest}")
    context.update_cursor(str(latest))
    return dg.RunRequest(run_key=f"score_events-v{latest}", tags={"score_events_version": str(latest)})


defs = dg.Definitions(
    assets=[score_events, stream_predictions],
    jobs=[score_events_job, stream_scoring_job],
    sensors=[score_events_sensor],
)
