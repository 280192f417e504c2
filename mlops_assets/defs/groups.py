"""Asset group names, in lifecycle order.

The Dagster UI lists groups sorted by name (a locale collator without numeric ordering, so ``10`` sorts
before ``2``): a two-digit prefix makes that order the lifecycle's, landing first, monitoring last.
"""

LANDING = "01_landing"
BRONZE = "02_bronze"
SILVER = "03_silver"
QUARANTINE = "04_quarantine"
GOLD = "05_gold"
FEATURES = "06_features"
TRAINING = "07_training"
EVALUATION = "08_evaluation"
REGISTRY = "09_registry"
SCORING = "10_scoring"
MONITORING = "11_monitoring"
SERVING = "12_serving"
STREAMING = "13_streaming"
EXPERIMENTS = "14_experiments"

LIFECYCLE = (
    LANDING,
    BRONZE,
    SILVER,
    QUARANTINE,
    GOLD,
    FEATURES,
    TRAINING,
    EVALUATION,
    REGISTRY,
    SCORING,
    MONITORING,
    SERVING,
    STREAMING,
    EXPERIMENTS,
)
