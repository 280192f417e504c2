"""Monitoring: the champion's reference profile, daily drift reports computed in Spark and their check, the
sensor that launches retraining when a report recommends it, and the labelled re-run of a report."""

from mlops_assets.defs.monitoring.drift_report import (
    DRIFT_REPORT_KEY,
    VERDICT,
    drift_report,
    drift_severity,
    drift_verdicts,
)
from mlops_assets.defs.monitoring.labelled import labelled_drift_job, labelled_drift_schedule
from mlops_assets.defs.monitoring.reference_profile import REFERENCE_PROFILE_KEY, reference_profile
from mlops_assets.defs.monitoring.retraining import (
    DATA_VERSION_TAG,
    FEATURES_KEY,
    PARTITION_TAG,
    TRAINING_DATA_TAG,
    drift_retraining_sensor,
    rescore_after_retrain,
    rescore_job,
    retrain_job,
)

# Named here for test_ml_lifecycle.py until its rewrite reads it from lakehouse/catalog.py.
from mlops_assets.lakehouse.catalog import DRIFT_REPORTS

__all__ = [
    "DATA_VERSION_TAG",
    "DRIFT_REPORTS",
    "DRIFT_REPORT_KEY",
    "FEATURES_KEY",
    "PARTITION_TAG",
    "REFERENCE_PROFILE_KEY",
    "TRAINING_DATA_TAG",
    "VERDICT",
    "drift_report",
    "drift_retraining_sensor",
    "drift_severity",
    "drift_verdicts",
    "labelled_drift_job",
    "labelled_drift_schedule",
    "reference_profile",
    "rescore_after_retrain",
    "rescore_job",
    "retrain_job",
]
