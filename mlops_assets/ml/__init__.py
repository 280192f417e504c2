"""Pure-Python ML building blocks (contract, training, evaluation, promotion) that the Dagster assets call.

Nothing here imports Dagster, MLflow or Spark, and nothing runs at import: the asset layer owns I/O and
logging, these modules only compute and return values, so they are testable on small in-memory frames.
"""
