"""mlops_assets: an MLOps lakehouse whose every stage is a Dagster software-defined asset."""
