"""Every table of the lakehouse, declared once: asset code, the CLI and the tests name tables from here.

Where a table lives is the ``TableLocator``'s business (``tables.py``); what it is called is decided here.
"""

from __future__ import annotations

from mlops_assets.lakehouse.entities import ENTITIES
from mlops_assets.lakehouse.tables import TableRef

# Raw, validated and rejected rows of each source entity.
BRONZE = {name: TableRef("bronze", name) for name in ENTITIES}
SILVER = {name: TableRef("silver", name) for name in ENTITIES}
QUARANTINE = {name: TableRef("quarantine", name) for name in ENTITIES}

# The dbt models (dbt_project/models/gold); their tables sit where these refs point.
GOLD_MODELS = ("customer_history", "dim_customers", "fct_usage_daily", "fct_billing_events")
GOLD = {name: TableRef("gold", name) for name in GOLD_MODELS}
BILLING = GOLD["fct_billing_events"]

FEATURES = TableRef("features", "churn_features")
TRAINING_SET = TableRef("ml", "training_set")
PREDICTIONS = TableRef("ml", "predictions")
PROMOTION_AUDIT = TableRef("ml", "promotion_audit")
REFERENCE_PROFILES = TableRef("monitoring", "reference_profiles")
DRIFT_REPORTS = TableRef("monitoring", "drift_reports")
TABLE_RESTORES = TableRef("monitoring", "table_restores")
# What the scoring service answered (its request log, ingested), and the log lines that were not JSON.
INFERENCE_LOG = TableRef("serving", "inference_log")
INFERENCE_LOG_QUARANTINE = TableRef("quarantine", "inference_log")
# Streaming inference: an append-only event source (never rewritten: a Delta stream cannot follow a rewrite),
# the stream's predictions and the events it could not score, each with the rules it broke.
SCORE_EVENTS = TableRef("stream", "score_events")
STREAM_PREDICTIONS = TableRef("ml", "stream_predictions")
STREAM_DEAD_LETTER = TableRef("ml", "stream_dead_letter")
# Experiments: every enrolled unit (arm, wave, scores, contacted), each wave's contact list, and each day's readout.
EXPERIMENT_UNITS = TableRef("experiments", "units")
EXPERIMENT_CONTACTS = TableRef("experiments", "contacts")
EXPERIMENT_READOUTS = TableRef("experiments", "readouts")

# In lifecycle order (what `python -m mlops_assets.cli demo` lists).
LIFECYCLE_TABLES: tuple[TableRef, ...] = (
    *BRONZE.values(),
    *SILVER.values(),
    *QUARANTINE.values(),
    *GOLD.values(),
    FEATURES,
    TRAINING_SET,
    PREDICTIONS,
    PROMOTION_AUDIT,
    REFERENCE_PROFILES,
    DRIFT_REPORTS,
    INFERENCE_LOG,
    SCORE_EVENTS,
    STREAM_PREDICTIONS,
    STREAM_DEAD_LETTER,
    EXPERIMENT_UNITS,
    EXPERIMENT_CONTACTS,
    EXPERIMENT_READOUTS,
)
