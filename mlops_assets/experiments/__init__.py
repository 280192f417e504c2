"""A/B and holdout experiments on churn: their specs, statistics, exposures and decisions."""
