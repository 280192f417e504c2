"""Pure drift-monitoring logic: reference profiles, drift statistics (numpy and Spark), severity and actions.

No Dagster and no MLflow here, so the statistics can be unit-tested, benchmarked and reused by any asset.
"""
