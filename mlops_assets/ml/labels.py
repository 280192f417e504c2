"""A feature set's labels from where its contract says, with the date each label became known, as Spark transforms.

Why: performance drift can only be measured on a day whose labels are final, and a training set may only use
rows whose labels are. The built-in features' labels come from billing and close ``LABEL_HORIZON_DAYS`` after
the as-of date; an external table's come from its own label column or from a separate label table (the
contract's ``labels``), each row with the date its label became known. One rule covers all three: a row's
label counts once it is known on or before ``known_through``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from mlops_assets.lakehouse.features import LABEL_HORIZON_DAYS, churn_labels
from mlops_assets.ml.contract import FeatureSetContract

# The date a row's label became known, added next to the label by ``LabelSource.attach``.
LABEL_KNOWN_ON = "_label_known_on"


@dataclass(frozen=True)
class LabelSource:
    """Where the labels of ``contract``'s rows come from, and through which date they are known: ``billing``
    for the built-in features (known through billing's newest available date), ``table`` for a separate
    label table, neither for the feature table's own label column (both known through the run's date)."""

    contract: FeatureSetContract
    known_through: date
    billing: DataFrame | None = None
    table: DataFrame | None = None

    def __post_init__(self) -> None:
        if self.billing is None and (self.contract.labels is None or self.contract.source is None):
            raise ValueError(f"feature set {self.contract.name!r} names no labels: billing is needed")

    def attach(self, rows: DataFrame) -> DataFrame:
        """``rows`` with the contract's label column and ``LABEL_KNOWN_ON`` (null where nothing is known)."""
        c = self.contract
        if self.billing is not None:
            known_on = F.date_add(F.col(c.as_of), LABEL_HORIZON_DAYS)
            return churn_labels(rows, self.billing).withColumn(LABEL_KNOWN_ON, known_on)
        assert c.labels is not None  # __post_init__
        if self.table is None:
            return rows.withColumn(LABEL_KNOWN_ON, F.to_date(F.col(c.labels.available)))
        # The label table's as-of in the feature table's type, so a date joins a date (not a midnight timestamp).
        labels = self.table.select(
            F.col(c.entity_key),
            F.col(c.as_of).cast(rows.schema[c.as_of].dataType).alias(c.as_of),
            F.col(c.label),
            F.to_date(F.col(c.labels.available)).alias(LABEL_KNOWN_ON),
        )
        return rows.drop(c.label).join(labels, [c.entity_key, c.as_of], "left")

    def known(self) -> Column:
        """True for an attached row whose label is there and was known by ``known_through``."""
        return (
            F.col(self.contract.label).isNotNull()
            & F.col(LABEL_KNOWN_ON).isNotNull()
            & (F.col(LABEL_KNOWN_ON) <= F.lit(self.known_through))
        )

    def labelled_days(self, attached: DataFrame, days: Sequence[date]) -> list[date]:
        """The ``days`` whose every row's label is known (a day with one label still open stays pending: an
        AUC over the labels that came first would be biased). One small aggregation; none for billing, whose
        labels all close the same number of days after the as-of date."""
        if self.billing is not None:
            return [d for d in days if (self.known_through - d).days >= LABEL_HORIZON_DAYS]
        counts = attached.groupBy(F.to_date(F.col(self.contract.as_of)).alias("day")).agg(
            F.count(F.lit(1)).alias("rows"), F.count(F.when(self.known(), 1)).alias("known")
        )
        complete = {r["day"] for r in counts.collect() if r["rows"] == r["known"]}
        return [d for d in days if d in complete]
