"""ML building blocks (contract, training, evaluation, promotion) that the Dagster assets call.

Nothing here imports Dagster or Spark, and nothing runs at import: the asset layer owns scheduling and Spark
I/O, these modules compute and return values, so they are testable on small in-memory frames. MLflow is
confined to ``mlflow_model.py`` (packaging, registry aliases, loading a version).
"""
