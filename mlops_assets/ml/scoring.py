"""Batch scoring through Spark: the model travels to the executors as a small JSON dict, not a pickle.

Works on any DataFrame-like object with ``select`` and ``mapInPandas`` (Spark's), so nothing here imports
Spark itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from mlops_assets.ml.contract import FeatureSetContract
from mlops_assets.ml.explain import REASON_SCHEMA, reason_columns
from mlops_assets.ml.families import model_from_dict

# The reasons come last: a table written before they existed gains them as new nullable columns.
PREDICTION_SCHEMA = (
    "entity string, as_of date, score double, predicted_label int, model_name string, model_version string, "
    "shadow_score double, shadow_model_version string, " + REASON_SCHEMA
)


def score_partition(
    features: Any,
    contract: FeatureSetContract,
    model_name: str,
    champion: dict,
    champion_version: str,
    shadow: dict | None,
    shadow_version: str | None,
    carry: Sequence[str] = (),
) -> Any:
    """Score a Spark DataFrame of features with mapInPandas: the champion's score and label, its top reasons
    (``reason_1..3`` and their signed contributions, log-odds), and the shadow model's score beside them when
    there is one. ``carry`` names input columns passed through unchanged after those (the streaming path's
    event id: one code path scores batch and stream alike)."""
    key, as_of, names = contract.entity_key, contract.as_of, contract.feature_names
    carry = list(carry)
    schema = PREDICTION_SCHEMA + "".join(f", {c} {features.schema[c].dataType.simpleString()}" for c in carry)

    def predict(batches):
        model = model_from_dict(champion)
        shadow_model = model_from_dict(shadow) if shadow else None
        for batch in batches:
            scores = model.predict_proba(batch[names])
            yield pd.DataFrame(
                {
                    "entity": batch[key].astype(str),
                    "as_of": batch[as_of],
                    "score": scores,
                    "predicted_label": (scores >= model.threshold).astype("int32"),
                    "model_name": model_name,
                    "model_version": champion_version,
                    "shadow_score": shadow_model.predict_proba(batch[names]) if shadow_model else None,
                    "shadow_model_version": shadow_version,
                    **reason_columns(model.contributions(batch[names])),
                    **{c: batch[c] for c in carry},
                }
            )

    return features.select(key, as_of, *names, *carry).mapInPandas(predict, schema)
