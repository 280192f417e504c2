"""mlops_assets: an MLOps lakehouse whose every stage is a Dagster software-defined asset."""


def run_remote_step() -> None:
    """The Databricks ``python_wheel_task`` entry point (package ``mlops_assets``, entry point ``run_remote_step``:
    with no such named entry point in the wheel's metadata, Databricks calls ``mlops_assets.run_remote_step()``)
    with the task's parameters as ``sys.argv``. Imported lazily: Spark and Pipes load only where a step runs."""
    from mlops_assets.remote.entry import main

    main()
