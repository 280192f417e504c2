"""Landing files -> bronze: raw records, one row per line, with where each came from.

Bronze keeps every data line of every landing file, parsed into string columns but otherwise untouched,
with the source file, its line number, the partition and the load time. Lines that cannot be parsed are
kept too (``_parse_error`` says why); silver decides what to do with them.

Before a single row is written, each file is checked whole: an empty (0-byte) file, binary content or a
file over the size limit stops the load (an empty file would otherwise replace its day with zero rows),
and the file's *shape* is compared with the entity spec: a new or missing column, or a column whose
values no longer parse as its type, stops the load with an error naming the file and the difference.
Line-level dirt is kept and named instead: a UTF-8 byte-order mark and CRLF line ends are read as the
writer meant them; a line with invalid UTF-8 bytes, a repeated header or the wrong number of fields is a
bronze row with a ``_parse_error``, which silver quarantines under one ``record:`` reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from mlops_assets.lakehouse.entities import EntitySpec

# Splits a CSV line on commas outside double quotes: counts fields the way the writer meant them.
_CSV_FIELD_SPLIT = r',(?=(?:[^"]*"[^"]*")*[^"]*$)'
_SPARK_TYPES = {"int": "int", "double": "double", "date": "date", "timestamp": "timestamp"}
TYPE_CHANGE_MIN_VALUES = 20
TYPE_CHANGE_MIN_FAILURE = 0.5
# How parse errors start, so silver can name the reason (bronze keeps the full message).
INVALID_UTF8 = "invalid utf-8"
REPEATED_HEADER = "repeated header"
_BYTE_ORDER_MARK = "\ufeff"
_REPLACEMENT_CHARACTER = "\ufffd"  # what Spark's UTF-8 decoder puts where bytes were not valid UTF-8
_SCAN_CHUNK_BYTES = 1 << 20


@dataclass
class LandingFileError(ValueError):
    """A landing file that cannot be loaded at all (empty, binary, too large): nothing of it is written."""

    file: str
    problem: str

    def __str__(self) -> str:
        return f"Landing file {self.file} rejected: {self.problem}; nothing was loaded"


@dataclass
class LandingSchemaError(ValueError):
    """A landing file whose columns or types differ from the entity spec."""

    file: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    type_changes: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing columns {self.missing}")
        if self.unexpected:
            parts.append(f"unexpected columns {self.unexpected}")
        for column, change in self.type_changes.items():
            parts.append(f"column {column!r} {change}")
        return f"Schema change in landing file {self.file}: " + "; ".join(parts)


def landing_path(landing_root: str, day: date, spec: EntitySpec) -> str:
    return str(Path(landing_root) / day.isoformat() / spec.file_name)


def landing_files(
    landing_root: str, spec: EntitySpec, days: Sequence[date], max_file_bytes: int | None = None
) -> list[str]:
    """The day's files for an entity, each checked whole; a missing file is an error, not an empty day."""
    paths = [landing_path(landing_root, d, spec) for d in days]
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(f"Landing file(s) for {spec.name} not found: {missing}")
    for path in paths:
        check_landing_file(path, max_file_bytes)
    return paths


def check_landing_file(path: str, max_file_bytes: int | None = None) -> None:
    """Raise LandingFileError for a file no line of which should be loaded.

    A 0-byte file has no header and no rows: loading it would replace the day with nothing while every
    check passes. NUL bytes never occur in CSV or JSON text: the file is binary (or UTF-16).
    """
    size = Path(path).stat().st_size
    if size == 0:
        raise LandingFileError(path, "empty file (0 bytes, not even a header)")
    if max_file_bytes is not None and size > max_file_bytes:
        raise LandingFileError(path, f"{size} bytes is over the {max_file_bytes}-byte landing file limit")
    with open(path, "rb") as f:
        offset = 0
        while chunk := f.read(_SCAN_CHUNK_BYTES):
            if (at := chunk.find(b"\x00")) >= 0:
                raise LandingFileError(path, f"binary content (NUL byte at offset {offset + at})")
            offset += len(chunk)


def read_lines(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """Every line of every file with its 1-based line number, file path and partition date.

    Files are read whole (one task per file) so line numbers are exact; daily landing files are small.
    """
    files = spark.read.text(list(paths), wholetext=True).select(
        F.regexp_replace(F.col("value"), f"^{_BYTE_ORDER_MARK}", "").alias("value"),
        F.col("_metadata.file_path").alias("_source_file"),
    )
    lines = files.select(
        "_source_file", F.posexplode(F.split(F.col("value"), "\r?\n")).alias("_pos", "_raw")
    ).where(F.length("_raw") > 0)
    return lines.withColumn(
        "_partition_date",
        F.to_date(F.regexp_extract("_source_file", r"/(\d{4}-\d{2}-\d{2})/[^/]+$", 1)),
    )


def _parse_csv(lines: DataFrame, spec: EntitySpec) -> DataFrame:
    schema = ", ".join(f"`{c}` string" for c in spec.column_names)
    data = lines.where(F.col("_pos") > 0)  # line 0 is the header
    n_fields = F.size(F.split(F.col("_raw"), _CSV_FIELD_SPLIT))
    parsed = F.from_csv(F.col("_raw"), schema, {"mode": "PERMISSIVE"})
    header = ",".join(spec.column_names)
    error = F.coalesce(
        _invalid_utf8(),
        F.when(F.regexp_replace("_raw", r"[\s\"]", "") == header, F.lit(f"{REPEATED_HEADER} in the data")),
        F.when(
            n_fields != len(spec.columns),
            F.concat(
                F.lit(f"malformed csv: expected {len(spec.columns)} fields, got "), n_fields.cast("string")
            ),
        ),
    )
    return data.select("*", error.alias("_parse_error"), parsed.alias("_parsed"))


def _invalid_utf8() -> Column:
    return F.when(
        F.col("_raw").contains(_REPLACEMENT_CHARACTER),
        F.lit(f"{INVALID_UTF8}: bytes that do not decode (shown as U+FFFD)"),
    )


def _parse_json(lines: DataFrame, spec: EntitySpec) -> DataFrame:
    schema = ", ".join(f"`{c}` string" for c in spec.column_names)
    return lines.select(
        "*",
        F.coalesce(
            _invalid_utf8(),
            F.when(F.json_object_keys("_raw").isNull(), F.lit("malformed json: not a JSON object")),
        ).alias("_parse_error"),
        F.from_json(F.col("_raw"), schema).alias("_parsed"),
    )


def file_columns(lines: DataFrame, spec: EntitySpec) -> dict[str, list[str]]:
    """The columns each file declares: the CSV header, or the union of JSON keys (bounded: files x keys)."""
    if spec.file_format == "csv":
        rows = lines.where(F.col("_pos") == 0).select("_source_file", "_raw").collect()
        return {r["_source_file"]: [c.strip() for c in r["_raw"].split(",")] for r in rows}
    keys = (
        lines.select("_source_file", F.explode(F.json_object_keys("_raw")).alias("key"))
        .groupBy("_source_file")
        .agg(F.collect_set("key").alias("keys"))
        .collect()
    )
    return {r["_source_file"]: sorted(r["keys"]) for r in keys}


def type_failures(parsed: DataFrame, spec: EntitySpec) -> dict[str, dict[str, tuple[int, int]]]:
    """Per file and typed column: (non-null values, values that fail to parse as the spec's type)."""
    typed = [c for c in spec.columns if c.dtype in _SPARK_TYPES]
    aggs: list[Column] = []
    for c in typed:
        raw = F.col(f"_parsed.`{c.name}`")
        aggs.append(F.count(raw).alias(f"{c.name}__n"))
        aggs.append(
            F.sum(F.when(raw.isNotNull() & try_cast(raw, c.dtype).isNull(), 1).otherwise(0)).alias(
                f"{c.name}__bad"
            )
        )
    rows = parsed.where(F.col("_parse_error").isNull()).groupBy("_source_file").agg(*aggs).collect()
    return {
        r["_source_file"]: {c.name: (r[f"{c.name}__n"], r[f"{c.name}__bad"]) for c in typed} for r in rows
    }


def try_cast(column: Column, dtype: str) -> Column:
    """Cast that yields null instead of failing (Spark 4 runs ANSI mode, where a bad cast raises)."""
    return column.try_cast(_SPARK_TYPES.get(dtype, "string"))


def validate_file_schemas(lines: DataFrame, parsed: DataFrame, spec: EntitySpec) -> None:
    """Raise LandingSchemaError for the first file whose shape differs from the spec."""
    expected = spec.column_names
    failures = type_failures(parsed, spec)
    for file, columns in sorted(file_columns(lines, spec).items()):
        missing = [c for c in expected if c not in columns]
        unexpected = [c for c in columns if c not in expected]
        type_changes = {
            name: f"no longer parses as {spec.column(name).dtype} ({bad} of {n} values)"
            for name, (n, bad) in failures.get(file, {}).items()
            if n >= TYPE_CHANGE_MIN_VALUES and bad / n > TYPE_CHANGE_MIN_FAILURE
        }
        if missing or unexpected or type_changes:
            raise LandingSchemaError(file, missing, unexpected, type_changes)


def to_bronze(
    spark: SparkSession, paths: Sequence[str], spec: EntitySpec, ingested_at: datetime
) -> DataFrame:
    """Parse landing files into bronze rows, after checking every file's schema."""
    lines = read_lines(spark, paths).cache()
    parsed = (_parse_csv if spec.file_format == "csv" else _parse_json)(lines, spec).cache()
    try:
        validate_file_schemas(lines, parsed, spec)
    finally:
        # Spark's cache is keyed by the plan, and re-reading the same paths is the same plan: left cached, a
        # corrected or re-sent landing file would be served from the first read in this session.
        parsed.unpersist()
        lines.unpersist()
    return parsed.select(
        "_partition_date",
        "_source_file",
        (F.col("_pos") + 1).cast("int").alias("_source_row"),  # 1-based line number in the file
        F.lit(ingested_at).cast("timestamp").alias("_ingested_at"),
        "_raw",
        "_parse_error",
        *[F.col(f"_parsed.`{c}`").alias(c) for c in spec.column_names],
    )
