"""Streaming inference: score an append-only Delta event table incrementally, each event exactly once.

Why this shape:

* The source is ``stream/score_events``, appended to and never rewritten. A Delta stream over a table rewritten
  with ``replaceWhere`` (``features/churn_features`` on every re-run) stops with
  ``DELTA_SOURCE_TABLE_IGNORE_CHANGES``, and ``skipChangeCommits`` silently drops the corrected rows.
* ``trigger(availableNow=True)``: a Dagster run processes what has arrived and stops (no resident stream).
* Exactly once: ``foreachBatch`` writes each micro-batch with Delta's idempotent-write options (``txnAppId`` +
  ``txnVersion=batch_id``). A run killed after a sink write but before Spark commits the batch to its checkpoint
  replays the same batch id with the same rows on restart, and Delta skips the writes it has already committed.
  The app id carries the checkpoint's query id: a reset checkpoint restarts batch ids at 0, and under the old
  app id Delta would skip every write of the new stream.
* Events carry their features as a JSON payload, as a producer sends them: typing them at the edge would turn a
  mistyped value into a silent null. Each micro-batch is checked against the contract (and the champion's known
  categories); rows that cannot be scored go to a dead-letter table with the rules they broke
  (``plan:unknown_category``), as silver's quarantine does. Scorable rows go through ``score_partition``, the
  code path of ``ml/predictions``.

Pure: no Dagster imports; Spark is imported inside the functions (the module imports without a JVM).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.families import known_categories, model_from_dict
from mlops_assets.ml.scoring import score_partition

FEATURES_COLUMN = "features"  # the JSON payload of an event
BATCH_COLUMN = "stream_batch_id"
SINK_EXTRA = ("event_id", "event_time")
# How long a micro-batch waits for the query id it writes under (set once ``start()`` returns).
QUERY_ID_WAIT_S = 120.0


def event_columns(contract: FeatureSetContract) -> list[str]:
    """The columns of ``stream/score_events``, in order."""
    return ["event_id", "event_time", contract.entity_key, contract.as_of, FEATURES_COLUMN, "event_date"]


# --- the events: what the project's own producer appends ---------------------------------------------------


def events_from_features(
    features: Any, contract: FeatureSetContract, day: date, malformed_share: float
) -> Any:
    """A day's feature rows as score events: a deterministic event id and time per (day, entity, as-of), the
    features as a JSON payload (nulls kept as JSON null: a missing value is scorable, a missing key is not).

    ``malformed_share`` of them (chosen by hash, so a re-run picks the same) carry what real producers send after
    an upstream release or by an old client: a category the model never saw, a dropped field, a NaN from a
    division by zero upstream, a string where a number belongs. The dead letter then always has content to check.
    """
    from pyspark.sql import functions as F

    key, as_of, names = contract.entity_key, contract.as_of, contract.feature_names
    ident = F.sha2(
        F.concat_ws("|", F.lit(day.isoformat()), F.col(key).cast("string"), F.col(as_of).cast("string")), 256
    )
    bucket = F.conv(F.substring(ident, 33, 6), 16, 10).cast("long") % 10_000
    second = F.conv(F.substring(ident, 40, 6), 16, 10).cast("long") % 86_400

    def payload(**replace: Any) -> Any:
        cols = [replace.get(n, F.col(n)).alias(n) for n in names if replace.get(n, True) is not None]
        return F.to_json(F.struct(*cols), {"ignoreNullFields": "false"})

    numerical, categorical = contract.numerical, contract.categorical
    variants = []
    for i, name in enumerate(numerical):
        pick = (bucket / 4).cast("long") % len(numerical) == i
        variants += [
            (pick & (bucket % 4 == 1), payload(**{name: None})),
            (pick & (bucket % 4 == 2), payload(**{name: F.lit(float("nan"))})),
            (pick & (bucket % 4 == 3), payload(**{name: F.lit("n/a")})),
        ]
        if not categorical:
            variants.append((pick & (bucket % 4 == 0), payload(**{name: F.lit("n/a")})))
    for i, name in enumerate(categorical):
        pick = (bucket / 4).cast("long") % len(categorical) == i
        variants.append((pick & (bucket % 4 == 0), payload(**{name: F.lit(f"{name}-from-a-newer-release")})))
    chosen = payload()
    if malformed_share > 0 and variants:
        bad = bucket < round(malformed_share * 10_000)
        chosen = F.when(bad & variants[0][0], variants[0][1])
        for condition, value in variants[1:]:
            chosen = chosen.when(bad & condition, value)
        chosen = chosen.otherwise(payload())
    return features.select(
        F.substring(ident, 1, 32).alias("event_id"),
        F.timestamp_seconds(F.unix_timestamp(F.lit(day).cast("timestamp")) + second).alias("event_time"),
        F.col(key).cast("string").alias(key),
        F.to_date(F.col(as_of)).alias(as_of),
        chosen.alias(FEATURES_COLUMN),
        F.lit(day).alias("event_date"),
    )


def append_idempotent(df: Any, location: str, app_id: str, version: int, by_name: bool = False) -> None:
    """Append with Delta's idempotent-write options: a second write under the same (app id, version) or a lower
    version is skipped by Delta, so a replayed write adds nothing."""
    writer = df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", version)
    if by_name:
        writer.saveAsTable(location)
    else:
        writer.save(location)


# --- checking a micro-batch -----------------------------------------------------------------------------------


def checked_events(events: Any, contract: FeatureSetContract, categories: Mapping[str, list[str]]) -> Any:
    """Events with the contract's features typed from the payload and ``rules_broken``: every rule the row breaks
    as ``field:rule`` (``missing``: the key is absent; ``bad_type``: not a number; ``not_finite``: NaN or
    infinite; ``unknown_category``: not among the champion's categories; ``features:malformed``: the payload is
    not a JSON object). An empty list means scorable; a JSON null is a missing value, which the models impute."""
    from pyspark.sql import functions as F

    payload = F.from_json(F.col(FEATURES_COLUMN), "map<string,string>")
    events = events.withColumn("__payload", payload)
    p = F.col("__payload")
    rules = [
        F.when(F.col(contract.entity_key).isNull(), F.lit(f"{contract.entity_key}:missing")),
        F.when(F.col(contract.as_of).isNull(), F.lit(f"{contract.as_of}:missing")),
    ]
    typed = []
    for name in contract.feature_names:
        raw, present = p[name], F.map_contains_key(p, name)
        rules.append(F.when(~present, F.lit(f"{name}:missing")))
        if name in contract.numerical:
            # A bare NaN / Infinity token (not JSON, but Python's json.dumps writes it) arrives quoted.
            value = F.regexp_replace(raw, '^"|"$', "").try_cast("double")
            rules.append(F.when(raw.isNotNull() & value.isNull(), F.lit(f"{name}:bad_type")))
            rules.append(F.when(F.isnan(value) | (F.abs(value) == float("inf")), F.lit(f"{name}:not_finite")))
            typed.append(value.alias(name))
        else:
            known = categories.get(name)
            if known:
                rules.append(F.when(raw.isNotNull() & ~raw.isin(*known), F.lit(f"{name}:unknown_category")))
            typed.append(raw.alias(name))
    broken = F.filter(F.array(*rules), lambda r: r.isNotNull())
    # A payload that did not parse has no trustworthy fields: its one reason is the record's.
    broken = F.when(p.isNull(), F.array(F.lit(f"{FEATURES_COLUMN}:malformed"))).otherwise(broken)
    return events.select(
        *[c for c in events.columns if c != "__payload"], *typed, broken.alias("rules_broken")
    )


# --- the stream -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamTables:
    """Where the stream reads and writes: Delta paths, or catalog names when ``by_name``; the checkpoint is a
    path under the lakehouse root."""

    source: str
    sink: str
    dead_letter: str
    checkpoint: str
    by_name: bool = False

    def sql_name(self, location: str) -> str:
        return location if self.by_name else "delta.`" + location.replace("`", "``") + "`"


@dataclass(frozen=True)
class StreamRunResult:
    """What one ``availableNow`` run did. Versions are the source's: ``start_version`` was fully processed
    before the run (None: nothing was), ``end_version`` after it; lag is how many source versions remain."""

    query_id: str
    batch_ids: tuple[int, ...]
    rows_scored: int
    rows_dead_lettered: int
    rules_broken: dict[str, int]
    start_version: int | None
    end_version: int | None
    latest_source_version: int
    sink_app_id: str
    dead_letter_app_id: str

    @property
    def batches(self) -> int:
        return len(self.batch_ids)

    @property
    def lag_versions(self) -> int:
        return self.latest_source_version - (self.end_version if self.end_version is not None else -1)

    @property
    def dead_letter_rate(self) -> float:
        total = self.rows_scored + self.rows_dead_lettered
        return self.rows_dead_lettered / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "query_id": self.query_id,
            "batch_ids": list(self.batch_ids),
            "rows_scored": self.rows_scored,
            "rows_dead_lettered": self.rows_dead_lettered,
            "rules_broken": dict(self.rules_broken),
            "start_version": self.start_version,
            "end_version": self.end_version,
            "latest_source_version": self.latest_source_version,
            "sink_app_id": self.sink_app_id,
            "dead_letter_app_id": self.dead_letter_app_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StreamRunResult:
        return cls(**{**d, "batch_ids": tuple(d["batch_ids"]), "rules_broken": dict(d["rules_broken"])})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StreamRunResult:
        return cls.from_dict(json.loads(text))


def app_ids(sink: str, dead_letter: str, query_id: str) -> tuple[str, str]:
    """One Delta app id per sink, tied to the checkpoint's query id (a new checkpoint gets a new one)."""
    return f"{sink}-{query_id}", f"{dead_letter}-{query_id}"


def processed_through(offset: Mapping[str, Any] | None) -> int | None:
    """The last source version a Delta offset has fully processed: an offset points at (version, index) still to
    read (index -1: the version's start), so everything before ``reservoirVersion`` is done."""
    if not offset:
        return None
    return int(offset["reservoirVersion"]) - 1


@dataclass
class _Tally:
    batch_ids: list[int] = field(default_factory=list)
    scored: int = 0
    dead: int = 0
    rules: Counter = field(default_factory=Counter)


def run_stream(
    spark: Any,
    tables: StreamTables,
    contract: FeatureSetContract,
    model_name: str,
    champion: Mapping[str, Any],
    champion_version: str,
    *,
    sink_name: str = "ml.stream_predictions",
    dead_letter_name: str = "ml.stream_dead_letter",
    max_files_per_trigger: int | None = None,
    after_batch_written: Callable[[int], None] | None = None,
) -> StreamRunResult:
    """Score every event that arrived since the checkpoint, then stop (``availableNow``).

    ``after_batch_written(batch_id)`` is a fault-injection hook, off by default: called after a micro-batch's
    rows are in both sinks and before Spark commits the batch to the checkpoint (the kill test SIGKILLs its own
    process there). Raises whatever failed the query.

    Limits: a replayed batch is checked against the champion of the re-run; if @champion moved (with other known
    categories) between a kill that fell between the two sink writes and the re-run, an event could land in
    both sinks or neither. Offsets come from ``recentProgress`` (Spark keeps the last 100 batches).
    """
    from pyspark.sql import functions as F

    categories = known_categories(model_from_dict(champion))
    tally = _Tally()
    ids: dict[str, tuple[str, str]] = {}
    ready = threading.Event()

    def write_batch(batch: Any, batch_id: int) -> None:
        if not ready.wait(QUERY_ID_WAIT_S):
            raise RuntimeError("streaming query id not set; refusing to write without an idempotent app id")
        sink_app, dead_app = ids["app"]
        checked = checked_events(batch, contract, categories).persist()
        try:
            good = checked.where(F.size("rules_broken") == 0)
            bad = checked.where(F.size("rules_broken") > 0)
            scored = score_partition(
                good, contract, model_name, dict(champion), champion_version, None, None, carry=SINK_EXTRA
            ).select(
                "*",
                F.lit(batch_id).cast("long").alias(BATCH_COLUMN),
                F.current_timestamp().alias("scored_at"),
            )
            dead = bad.select(
                *event_columns(contract),
                F.array_join("rules_broken", "; ").alias("reason"),
                "rules_broken",
                F.lit(batch_id).cast("long").alias(BATCH_COLUMN),
                F.current_timestamp().alias("dead_lettered_at"),
            )
            # One small aggregation counts both sinks and every rule ("" is the scorable rows' reason).
            by_reason = checked.groupBy(F.array_join("rules_broken", "; ").alias("r")).count().collect()
            append_idempotent(scored, tables.sink, sink_app, batch_id, tables.by_name)
            append_idempotent(dead, tables.dead_letter, dead_app, batch_id, tables.by_name)
        finally:
            checked.unpersist()
        tally.batch_ids.append(batch_id)
        for row in by_reason:
            if row["r"]:
                tally.dead += row["count"]
                tally.rules.update({rule: row["count"] for rule in row["r"].split("; ")})
            else:
                tally.scored += row["count"]
        if after_batch_written is not None:
            after_batch_written(batch_id)

    reader = spark.readStream.format("delta")
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    source = reader.table(tables.source) if tables.by_name else reader.load(tables.source)
    query = (
        source.writeStream.foreachBatch(write_batch)
        .option("checkpointLocation", tables.checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    query_id = str(query.id)
    ids["app"] = app_ids(sink_name, dead_letter_name, query_id)
    ready.set()
    query.awaitTermination()
    progress = [p for p in query.recentProgress if p.get("sources")]
    start = json.loads(progress[0]["sources"][0]["startOffset"] or "null") if progress else None
    end = json.loads(progress[-1]["sources"][0]["endOffset"] or "null") if progress else None
    latest = spark.sql(f"DESCRIBE HISTORY {tables.sql_name(tables.source)} LIMIT 1").first()["version"]
    return StreamRunResult(
        query_id=query_id,
        batch_ids=tuple(tally.batch_ids),
        rows_scored=tally.scored,
        rows_dead_lettered=tally.dead,
        rules_broken=dict(tally.rules),
        start_version=processed_through(start),
        end_version=processed_through(end),
        latest_source_version=int(latest),
        sink_app_id=ids["app"][0],
        dead_letter_app_id=ids["app"][1],
    )
