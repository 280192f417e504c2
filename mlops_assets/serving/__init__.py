"""Online serving: sticky assignment, rollouts and their judge (pure: no Dagster, no import side effects)."""
