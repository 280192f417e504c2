"""pandera schemas for silver, generated from the entity specs so rules and checks cannot diverge."""

from __future__ import annotations

import pandera.pyspark as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from mlops_assets.lakehouse.entities import ColumnSpec, EntitySpec

_TYPES = {
    "string": T.StringType(),
    "int": T.IntegerType(),
    "double": T.DoubleType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
}


def _checks(c: ColumnSpec) -> list[pa.Check]:
    checks = []
    if c.allowed is not None:
        checks.append(pa.Check.isin(list(c.allowed)))
    if c.min_value is not None:
        checks.append(pa.Check.ge(c.min_value))
    if c.max_value is not None:
        checks.append(pa.Check.le(c.max_value))
    if c.pattern is not None:
        checks.append(pa.Check.str_matches(c.pattern))
    return checks


def silver_schema(spec: EntitySpec) -> pa.DataFrameSchema:
    return pa.DataFrameSchema(
        {
            c.name: pa.Column(_TYPES[c.dtype], checks=_checks(c), nullable=not c.required)
            for c in spec.columns
        },
        name=f"silver_{spec.name}",
    )


def validation_errors(df: DataFrame, spec: EntitySpec) -> list[str]:
    """pandera's findings as readable lines; empty when the frame conforms.

    pandera's PySpark backend does not raise: it collects errors on ``df.pandera.errors``.
    """
    validated = silver_schema(spec).validate(df)
    errors = validated.pandera.errors
    lines = []
    for level, categories in errors.items():
        for category, items in categories.items():
            for item in items:
                lines.append(
                    f"{level}/{category}: {item.get('column')} {item.get('check')} ({item.get('error')})"
                )
    return lines
