"""Spark steps run away from the Dagster process, through Dagster Pipes: on Databricks (a job run whose task
is this package's entry point, ``mlops_assets.run_remote_step``) or in a local subprocess
(``python -m mlops_assets.remote``; ``MLOPS_ENV=pipes`` makes every run use it, and the tests run it).

Which steps run remotely: silver (``STEPS`` in ``lakehouse/steps.py``); training, evaluation and scoring stay in
the Dagster process.
"""
