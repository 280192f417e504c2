"""Online serving: the scoring service, its request log, sticky assignment and safe rollouts (no Dagster here)."""
